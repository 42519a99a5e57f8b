"""Error pages: in the app's style, with the request id for support and nothing else."""

import pytest
from django.test import Client, RequestFactory
from django.urls import path

from hcoint import urls as hcoint_urls
from hcoint.errors import server_error

MRN = "MRN0048213"


def explode(request):
    raise ValueError(f"could not parse identifier {MRN}")


# This module doubles as the URLconf for the 500 test: the real one plus a failing view.
urlpatterns = [path("explode/", explode), *hcoint_urls.urlpatterns]
handler500 = hcoint_urls.handler500


def request_id_shown(response):
    request_id = response["X-Request-ID"]
    assert request_id
    assert f"<code>{request_id}</code>" in response.content.decode()
    return request_id


def test_not_found_page(client, viewer):
    client.force_login(viewer)
    response = client.get("/orders/999999/no-such-page/?q=Samplepatient")
    assert response.status_code == 404
    html = response.content.decode()
    assert "<h1>Not found</h1>" in html
    assert "css/app.css" in html  # the app's layout and stylesheet
    assert "Samplepatient" not in html
    assert "no-such-page" not in html
    request_id_shown(response)


def test_forbidden_page(client, viewer):
    client.force_login(viewer)
    response = client.get("/usage/")
    assert response.status_code == 403
    assert "<h1>Not allowed</h1>" in response.content.decode()
    request_id_shown(response)


def test_bad_request_page(client):
    response = client.get("/", HTTP_HOST="evil.example.com")
    assert response.status_code == 400
    html = response.content.decode()
    assert "<h1>Bad request</h1>" in html
    assert "evil.example.com" not in html
    request_id_shown(response)


def test_expired_form_page(uploader):
    client = Client(enforce_csrf_checks=True)
    client.force_login(uploader)
    response = client.post("/accounts/logout/")
    assert response.status_code == 403
    assert "This form has expired" in response.content.decode()
    request_id_shown(response)


@pytest.mark.urls("tests.test_error_pages")
def test_server_error_page_shows_only_the_request_id(viewer):
    client = Client(raise_request_exception=False)
    client.force_login(viewer)
    response = client.get("/explode/")
    assert response.status_code == 500
    html = response.content.decode()
    assert "<h1>Something went wrong</h1>" in html
    assert MRN not in html
    assert "ValueError" not in html
    request_id_shown(response)


def test_server_error_page_renders_without_the_database():
    # No `db` fixture: pytest-django makes any database access in this test an error.
    request = RequestFactory().get("/")
    request.request_id = "0123456789abcdef"
    response = server_error(request)
    assert response.status_code == 500
    assert "<code>0123456789abcdef</code>" in response.content.decode()
    assert 'href="/static/css/app.css"' in response.content.decode()


def test_tracebacks_are_not_mailed(settings):
    assert settings.ADMINS == []
