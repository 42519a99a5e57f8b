"""The back office: Django's admin, open to the admin role as well as to staff.

Django's admin admits only `is_staff` users, but HCOINT's roles are groups, and the
admin role includes "the Django admin" (issue 3): an admin-group user who is not also
marked staff would be sent to the admin's sign-in page and told it is not a staff
account. `can_open_admin` is the one rule; the site's `has_permission`, its sign-in
form, the nav's Admin link and the order timeline's raw-message link all ask it.
Inside the admin each page still needs its own model permission, as always.
"""

from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

# Granted to the admin role by migration 0002 (with every other orders, auth and axes
# permission) and to no other role: the admin role is exactly who holds it.
ADMIN_ROLE_PERMISSION = "orders.change_partner"


def can_open_admin(user):
    """Whether `user` may open the back office: active, and staff or in the admin role."""
    return bool(user.is_active and (user.is_staff or user.has_perm(ADMIN_ROLE_PERMISSION)))


def admin_link(request):
    """Context processor: `can_open_admin` for the nav's Admin link."""
    user = getattr(request, "user", None)
    return {"can_open_admin": user is not None and can_open_admin(user)}


class HcointAdminAuthenticationForm(AdminAuthenticationForm):
    """The admin's own sign-in form, admitting whoever `can_open_admin` admits."""

    def confirm_login_allowed(self, user):
        AuthenticationForm.confirm_login_allowed(self, user)
        if not can_open_admin(user):
            raise ValidationError(
                self.error_messages["invalid_login"],
                code="invalid_login",
                params={"username": self.username_field.verbose_name},
            )


class HcointAdminSite(AdminSite):
    site_header = "HCOINT back office"
    site_title = "HCOINT"
    login_form = HcointAdminAuthenticationForm

    def has_permission(self, request):
        return can_open_admin(request.user)
