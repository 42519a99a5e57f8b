"""The order search reads an index: a folded search column and a GIN trigram index on it.

- `search_text`: a new column with a database default of "", so containers still running
  the previous release keep inserting orders (adding it rewrites nothing on PostgreSQL 11+).
- pg_trgm: created if missing. It is a "trusted" extension since PostgreSQL 13, so the
  database owner can create it without being a superuser (docs/runbook.md).
- The column is filled in batches, each its own transaction (the migration is not atomic).
- The index is built CONCURRENTLY: writes go on while it builds.
- Reversing drops the index (concurrently) and the column, and keeps the extension.

Only the column exists on SQLite, where the search keeps its original query: the other
steps do nothing there. The index stays out of the model state for the same reason (a
SQLite table rebuild would try to create it).
"""

from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations, models

INDEX = "order_search_trgm"


class KeepOnReverse(TrigramExtension):
    """TrigramExtension whose reverse does nothing: the extension may serve other indexes,
    dropping it needs more rights than creating it, and Django's reverse would query
    pg_extension on SQLite too."""

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        return


def fill(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    from orders.search import fill_search_text

    fill_search_text(apps.get_model("orders", "Order"), using=schema_editor.connection.alias)


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} ON orders_order USING gin (search_text gin_trgm_ops)"
    )


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("orders", "0014_delivery_confirmation"),
    ]

    operations = [
        migrations.AddField(
            model_name="order",
            name="search_text",
            field=models.TextField(blank=True, db_default="", default="", editable=False),
        ),
        KeepOnReverse(),
        migrations.RunPython(fill, migrations.RunPython.noop, elidable=True),
        migrations.RunPython(create_index, drop_index),
    ]
