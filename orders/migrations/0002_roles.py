"""Create the three staff roles as groups with permissions.

Roles are data, but the app relies on them existing, so a migration creates them.
Permissions are created explicitly because Django only creates them after all
migrations have run (post_migrate), which is too late on a fresh database.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEWER = [("orders", "view_order")]
UPLOADER = VIEWER + [
    ("orders", "upload_note"),
    ("orders", "manage_delivery"),
    ("orders", "view_usage"),
    ("orders", "view_delivery"),
]
ADMIN_APPS = ("orders", "auth", "axes", "django_tasks_database")


def create_roles(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")

    def perms(pairs):
        found = []
        for app_label, codename in pairs:
            found.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        return found

    viewer, _ = Group.objects.get_or_create(name="viewer")
    viewer.permissions.set(perms(VIEWER))
    uploader, _ = Group.objects.get_or_create(name="uploader")
    uploader.permissions.set(perms(UPLOADER))
    admin, _ = Group.objects.get_or_create(name="admin")
    admin.permissions.set(Permission.objects.filter(content_type__app_label__in=ADMIN_APPS))


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=["viewer", "uploader", "admin"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("axes", "__first__"),
        ("django_tasks_database", "__first__"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
