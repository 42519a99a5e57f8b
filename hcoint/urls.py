from django.contrib import admin
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path

from hcoint.middleware import healthcheck_response

admin.site.site_header = "HCOINT back office"
admin.site.site_title = "HCOINT"


@login_not_required
def healthcheck(request):
    return healthcheck_response()


# Renders without the database or context processors, and shows the request id.
handler500 = "hcoint.errors.server_error"

urlpatterns = [
    path("healthcheck", healthcheck, name="healthcheck"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("", include("orders.urls")),
]
