from unittest import mock

from django.db.utils import OperationalError


def test_healthcheck_answers_ok_without_sign_in(client, db):
    response = client.get("/healthcheck")
    assert response.status_code == 200
    assert response.content == b"ok"


def test_healthcheck_accepts_aptibles_containers_host(client, db):
    response = client.get("/healthcheck", HTTP_HOST="containers")
    assert response.status_code == 200


def test_other_pages_still_reject_the_containers_host(client, db):
    response = client.get("/", HTTP_HOST="containers")
    assert response.status_code == 400


def test_healthcheck_is_503_when_the_database_does_not_answer(client, db):
    with mock.patch("hcoint.middleware.connection.cursor", side_effect=OperationalError("down")):
        response = client.get("/healthcheck", HTTP_HOST="containers")
    assert response.status_code == 503


def test_healthcheck_is_exempt_from_the_https_redirect(client, db, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthcheck").status_code == 200
    assert client.get("/").status_code == 301
