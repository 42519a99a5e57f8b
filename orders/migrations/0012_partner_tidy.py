"""Partner: stop using source_id/source_name; is_production now flags mismatched messages.

source_id and source_name were stored and acted on nowhere. Dropping the columns now
would break the previous release's containers, which still serve during a deploy and
select and insert them. So, in this release:

1. the columns get a database default (""), so rows inserted by this release's code,
   which no longer knows the fields, still satisfy NOT NULL;
2. the fields leave Django's model state only (SeparateDatabaseAndState); the columns
   stay in the database.

A later release drops the columns with RunSQL ("ALTER TABLE orders_partner DROP COLUMN
source_id, DROP COLUMN source_name"), once no container runs code that reads them.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0011_delivery_lease"),
    ]

    operations = [
        migrations.AlterField(
            model_name="partner",
            name="source_id",
            field=models.CharField(
                blank=True, db_default="", default="", max_length=100, verbose_name="Redox source id (unused)"
            ),
        ),
        migrations.AlterField(
            model_name="partner",
            name="source_name",
            field=models.CharField(
                blank=True, db_default="", default="", max_length=200, verbose_name="Redox source name (unused)"
            ),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(model_name="partner", name="source_id"),
                migrations.RemoveField(model_name="partner", name="source_name"),
            ],
            database_operations=[],
        ),
        migrations.AlterField(
            model_name="partner",
            name="is_production",
            field=models.BooleanField(
                default=False,
                help_text="Off for a Redox development or staging connection. Messages whose Meta.Test disagrees "
                "are flagged and alert.",
                verbose_name="production connection",
            ),
        ),
    ]
