from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path

from hcoint.middleware import healthcheck_response


@login_not_required
def healthcheck(request):
    return healthcheck_response()


# Renders without the database or context processors, and shows the request id.
handler500 = "hcoint.errors.server_error"

urlpatterns = [
    path("healthcheck", healthcheck, name="healthcheck"),
    # Sign-in, sign-out and password change only: no mail is configured, so the
    # password-reset pages Django would add could never work. Admins reset passwords.
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password_change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("admin/", admin.site.urls),
    path("", include("orders.urls")),
]
