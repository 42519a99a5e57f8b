"""Sign-in, failed sign-in and sign-out are each audited and logged, by user id only."""

import logging

import pytest
from django.urls import reverse

from orders.models import AuditEvent
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-new-longer-passphrase"


def sign_in(client, username, password=PASSWORD):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR="10.9.8.7")


def test_sign_in_page_needs_no_session(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert '<input type="password" name="password"' in response.content.decode()


def test_sign_in_lands_on_the_orders_and_is_audited(client, viewer, caplog):
    with caplog.at_level(logging.INFO, logger="orders"):
        response = sign_in(client, "vera")
    # Home: the worklist for uploaders; a viewer goes on to the order list.
    assert response.status_code == 302 and response["Location"] == reverse("home")
    assert client.get(reverse("home"))["Location"] == reverse("order_list")
    event = AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN)
    assert (event.actor, event.actor_username, event.ip_address, event.outcome) == (
        viewer,
        "vera",
        "10.9.8.7",
        AuditEvent.Outcome.SUCCESS,
    )
    [record] = [r for r in caplog.records if r.getMessage() == "auth.signed_in"]
    assert record.user_id == viewer.pk


def test_sign_in_returns_to_the_page_asked_for(client, viewer):
    response = client.post(reverse("login"), {"username": "vera", "password": PASSWORD, "next": "/orders/7/"})
    assert response["Location"] == "/orders/7/"


def test_failed_sign_in_shows_an_error_and_is_audited(client, viewer, caplog):
    with caplog.at_level(logging.INFO, logger="orders"):
        response = sign_in(client, "vera", "wrong password")
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    event = AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN_FAILED)
    assert (event.actor, event.outcome, event.ip_address) == (viewer, AuditEvent.Outcome.FAILURE, "10.9.8.7")
    [record] = [r for r in caplog.records if r.getMessage() == "auth.sign_in_failed"]
    assert record.user_id == viewer.pk
    assert "wrong password" not in repr(record.__dict__)


def test_failed_sign_in_for_an_unknown_name_records_no_name(client, db, caplog):
    with caplog.at_level(logging.INFO, logger="orders"):
        sign_in(client, "my-password-typed-here", "whatever")
    event = AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN_FAILED)
    assert (event.actor, event.actor_username) == (None, "")
    for record in caplog.records:
        if record.name.startswith("orders"):
            assert "my-password-typed-here" not in repr(record.__dict__)


def test_sign_out_is_a_post_and_is_audited(client, viewer):
    sign_in(client, "vera")
    assert client.get(reverse("logout")).status_code == 405
    response = client.post(reverse("logout"))
    assert response.status_code == 302 and response["Location"] == reverse("login")
    event = AuditEvent.objects.get(action=AuditEvent.Action.SIGN_OUT)
    assert event.actor == viewer
    assert client.get(reverse("order_list")).status_code == 302


def test_every_page_offers_a_sign_out_form(client, viewer):
    client.force_login(viewer)
    html = client.get(reverse("order_list")).content.decode()
    assert f'<form method="post" action="{reverse("logout")}"' in html


def test_password_change(client, db):
    user = UserFactory(username="paula", role="viewer")
    client.force_login(user)
    assert client.get(reverse("password_change")).status_code == 200
    response = client.post(
        reverse("password_change"),
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response["Location"] == reverse("password_change_done")
    assert "Password changed" in client.get(reverse("password_change_done")).content.decode()


def test_password_change_errors_show_next_to_the_field(client, db):
    client.force_login(UserFactory(username="paula", role="viewer"))
    response = client.post(
        reverse("password_change"), {"old_password": "nope", "new_password1": "x", "new_password2": "y"}
    )
    html = response.content.decode()
    assert '<p class="error" id="id_old_password_error">' in html
    assert '<p class="error" id="id_new_password2_error">' in html


def test_there_is_no_password_reset_page(client, db):
    # No mail is configured, so a reset link could never arrive; admins reset passwords.
    assert client.get("/accounts/password_reset/").status_code == 404
