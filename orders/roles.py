"""The three staff roles: Django groups with permissions.

- viewer: sees orders.
- uploader: also uploads and sends notes, retries or abandons deliveries, sees usage.
- admin: also partners, users, second factors, raw messages and the Django admin (every
  permission of the apps below; see hcoint.admin.can_open_admin).

`roles_sync` creates the groups and sets their permissions. Migration 0002 runs it on
a fresh database, and it runs again after every `migrate` (post_migrate), so a model
added later is covered by the admin role without a hand-written data migration.
"""

from django.contrib.auth.management import create_permissions

VIEWER = [("orders", "view_order")]
UPLOADER = [
    *VIEWER,
    ("orders", "upload_note"),
    ("orders", "manage_delivery"),
    ("orders", "view_usage"),
    ("orders", "view_delivery"),
]
# mfa: an admin removes the authenticators of a user who lost their second factor;
# socialaccount: unlinks a company sign-in (docs/runbook.md).
ADMIN_APPS = ("orders", "auth", "axes", "mfa", "socialaccount")


def roles_sync(apps, using="default"):
    """Create the role groups if missing and give each exactly its permissions.

    `apps` is an app registry: a migration's historical one, or the global one.
    Permissions are created first because Django only creates them in its own
    post_migrate handler, which for later apps in INSTALLED_APPS has not run yet.
    """
    for app_config in apps.get_app_configs():
        # create_permissions skips an app whose models_module is None, which is how a
        # migration's historical app configs look; mark them for the call only.
        original = getattr(app_config, "models_module", None)
        app_config.models_module = original or True
        try:
            create_permissions(app_config, apps=apps, verbosity=0, using=using)
        finally:
            app_config.models_module = original

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    permissions = Permission.objects.using(using)

    def named(pairs):
        return [permissions.get(content_type__app_label=app, codename=codename) for app, codename in pairs]

    roles = {
        "viewer": named(VIEWER),
        "uploader": named(UPLOADER),
        "admin": list(permissions.filter(content_type__app_label__in=ADMIN_APPS)),
    }
    for name, granted in roles.items():
        group, _ = Group.objects.using(using).get_or_create(name=name)
        group.permissions.set(granted)


def roles_sync_after_migrate(sender, apps, using, **kwargs):
    roles_sync(apps, using=using)
