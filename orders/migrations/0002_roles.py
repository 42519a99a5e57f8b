"""Create the three staff roles as groups with permissions.

Roles are data, but the app relies on them existing, so a migration creates them.
The rules live in orders/roles.py, which also re-applies them after every migrate.
"""

from django.db import migrations

from orders.roles import roles_sync


def create_roles(apps, schema_editor):
    roles_sync(apps, using=schema_editor.connection.alias)


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=["viewer", "uploader", "admin"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("axes", "__first__"),
        # It also waited for the task queue app's tables, whose permissions the admin role
        # then got; that app is gone (the Delivery row is the queue, migration 0011).
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
