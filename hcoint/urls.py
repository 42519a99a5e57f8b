from django.contrib import admin
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
    # Sign-in (allauth: passwords, MFA, company sign-in), sign-out and password change.
    path("", include("hcoint.signin_urls")),
    path("admin/", admin.site.urls),
    path("", include("orders.urls")),
]
