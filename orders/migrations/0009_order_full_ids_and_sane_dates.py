"""Whole EHR order ids, and no stored time a page cannot show.

1. `Order.ehr_order_id` grows from 100 to 500 characters. Ingest used to cut a longer
   id to 100 on New, and the order's Update and Cancel, which look it up by the whole
   id, never found it. Now ids are matched in full, and an id over 500 characters is
   refused (the message is stored and marked failed) instead of cut.
   Why a bound and not a TextField with a hash column: the unique (partner, id) index
   stays as it is and keeps protecting inserts from containers still running the
   previous release, and 500 characters of UTF-8 (at most 2,000 bytes) always fit
   PostgreSQL's btree entry limit (about 2,700 bytes). Widening a varchar is a catalogue
   change on PostgreSQL: no table rewrite, no index rebuild. The previous release keeps
   cutting at 100 while it still runs, as it did before.

2. Times from Redox stored before ingest bounded them (redox/values.py: EARLIEST_TIME,
   LATEST_TIME, EARLIEST_DOB, LATEST_DOB) are set to NULL when out of range. psycopg2
   cannot read back a timestamptz outside Python's years 1..9999, so one such row made
   every page showing its order, the order list included, answer 500. The bounds are
   copied here, not imported, so this migration keeps doing what it did if they change.
   The raw message is kept, so nothing is lost: reprocessing reads the body again.
   Plain SQL, so the bad values are never read into Python. No CHECK constraint: the
   previous release, still serving during the deploy, can store such values until it
   stops, and this repair can be run again (`repair_out_of_range_dates`).

Not atomic: the widening and each UPDATE commit on their own, so the webhook never
waits behind one long transaction.
"""

from datetime import UTC, date, datetime

from django.db import migrations, models

EARLIEST_TIME = datetime(1900, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2200, 1, 1, tzinfo=UTC)
EARLIEST_DOB = date(1850, 1, 1)
LATEST_DOB = date(2200, 1, 1)

# The columns filled from what Redox sent (not from our own clock), per model.
FROM_REDOX = {
    "Order": {
        "transaction_at": (EARLIEST_TIME, LATEST_TIME),
        "last_event_at": (EARLIEST_TIME, LATEST_TIME),
        "cancelled_at": (EARLIEST_TIME, LATEST_TIME),
        "patient_dob": (EARLIEST_DOB, LATEST_DOB),
    },
    "InboundMessage": {
        "event_at": (EARLIEST_TIME, LATEST_TIME),
    },
}


def repair_out_of_range_dates(apps, schema_editor):
    """Set every time from Redox outside the sane range to NULL. Safe to run again."""
    connection = schema_editor.connection
    quote = connection.ops.quote_name
    for model_name, columns in FROM_REDOX.items():
        table = quote(apps.get_model("orders", model_name)._meta.db_table)
        for column, (earliest, latest) in columns.items():
            column = quote(column)
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {table} SET {column} = NULL WHERE {column} < %s OR {column} >= %s",
                    [earliest, latest],
                )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("orders", "0008_note_original_sha256"),
    ]

    operations = [
        migrations.AlterField(
            model_name="order",
            name="ehr_order_id",
            field=models.CharField(max_length=500, verbose_name="EHR order id"),
        ),
        migrations.RunPython(repair_out_of_range_dates, migrations.RunPython.noop, elidable=True),
    ]
