from django.contrib.admin.apps import AdminConfig


class HcointAdminConfig(AdminConfig):
    """django.contrib.admin with HCOINT's site, which the admin role can open (hcoint/admin.py)."""

    default_site = "hcoint.admin.HcointAdminSite"
