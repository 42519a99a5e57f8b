"""Sessions end after SESSION_IDLE_MINUTES without a request (each request restarts the
clock), SESSION_MAX_HOURS after sign-in however active, and at browser close; cookies are
Secure when DEBUG is off. Pages with a form warn before the idle sign-out (static/js/idle.js;
tests/browser/test_sign_in_mfa.py watches it in a browser)."""

import datetime
from unittest import mock

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def sign_in(client):
    response = client.post(reverse("login"), {"username": "vera", "password": PASSWORD})
    assert response.status_code == 302
    return response


def get_orders_at(client, when):
    with mock.patch("django.utils.timezone.now", return_value=when):
        return client.get(reverse("order_list"))


def test_idle_timeout_defaults_to_thirty_minutes():
    assert settings.SESSION_COOKIE_AGE == 30 * 60
    assert settings.SESSION_SAVE_EVERY_REQUEST
    assert settings.SESSION_EXPIRE_AT_BROWSER_CLOSE


def test_session_ends_after_the_idle_time(client, viewer):
    start = timezone.now()
    with mock.patch("django.utils.timezone.now", return_value=start):
        sign_in(client)
    idle = datetime.timedelta(seconds=settings.SESSION_COOKIE_AGE)
    response = get_orders_at(client, start + idle + datetime.timedelta(seconds=5))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_activity_keeps_the_session_alive(client, viewer):
    start = timezone.now()
    with mock.patch("django.utils.timezone.now", return_value=start):
        sign_in(client)
    almost = datetime.timedelta(seconds=settings.SESSION_COOKIE_AGE - 60)
    assert get_orders_at(client, start + almost).status_code == 200
    assert get_orders_at(client, start + 2 * almost).status_code == 200
    assert get_orders_at(client, start + 3 * almost).status_code == 200


def test_session_cookie_ends_with_the_browser(client, viewer):
    response = sign_in(client)
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["expires"] == "" and cookie["max-age"] == ""
    assert cookie["httponly"]


def test_cookies_are_secure_outside_debug():
    assert not settings.DEBUG
    assert settings.SESSION_COOKIE_SECURE and settings.CSRF_COOKIE_SECURE


def test_absolute_lifetime_defaults_to_twelve_hours():
    assert settings.SESSION_MAX_HOURS == 12


def test_session_ends_after_the_absolute_lifetime_however_active(client, viewer):
    start = timezone.now()
    with (
        mock.patch("django.utils.timezone.now", return_value=start),
        mock.patch("time.time", return_value=start.timestamp()),
    ):
        sign_in(client)
    step = datetime.timedelta(seconds=settings.SESSION_COOKIE_AGE - 60)
    when = start
    while when + step < start + datetime.timedelta(hours=settings.SESSION_MAX_HOURS):
        when += step
        with mock.patch("time.time", return_value=when.timestamp()):
            assert get_orders_at(client, when).status_code == 200
    when += step
    with mock.patch("time.time", return_value=when.timestamp()):
        response = get_orders_at(client, when)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")
    assert "expired=1" in response["Location"]
    assert "time limit" in client.get(response["Location"]).content.decode()
    assert get_orders_at(client, when)["Location"].startswith(reverse("login"))


def test_pages_with_a_form_load_the_idle_warning(client, viewer):
    client.force_login(viewer)
    html = client.get(reverse("order_list")).content.decode()
    assert 'src="/static/js/idle.js"' in html
    assert f'data-idle-seconds="{settings.SESSION_COOKIE_AGE}"' in html
    assert 'id="idle-warning"' in html and " hidden" in html
