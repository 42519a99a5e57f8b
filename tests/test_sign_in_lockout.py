"""Repeated failed sign-ins lock the account (from that address) for a while (django-axes);
the lockout page says so plainly, and each attempt is recorded."""

import logging

import pytest
from django.urls import reverse

from orders.models import AuditEvent
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def attempt(client, password):
    return client.post(reverse("login"), {"username": "vera", "password": password}, REMOTE_ADDR="10.0.0.5")


def test_locked_out_after_repeated_failures_even_with_the_right_password(client, viewer, settings, caplog):
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        assert attempt(client, "wrong").status_code == 200
    with caplog.at_level(logging.INFO, logger="orders"):
        locking = attempt(client, "wrong")
    assert locking.status_code == 429
    assert "Too many failed sign-ins" in locking.content.decode()
    assert [r for r in caplog.records if r.getMessage() == "auth.locked_out"]

    refused = attempt(client, PASSWORD)
    assert refused.status_code == 429
    assert "Try again in 30 minutes" in refused.content.decode()
    assert "_auth_user_id" not in client.session


def test_each_attempt_is_audited_and_lockouts_are_marked_denied(client, viewer, settings):
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit + 1):
        attempt(client, "wrong")
    outcomes = list(
        AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN_FAILED).values_list("outcome", flat=True)
    )
    assert outcomes == ["failure"] * (limit - 1) + ["denied", "denied"]
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN).exists()


def test_a_successful_sign_in_resets_the_count(client, viewer, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        attempt(client, "wrong")
    assert attempt(client, PASSWORD).status_code == 302
    client.post(reverse("logout"))
    assert attempt(client, "wrong").status_code == 200


def test_the_lock_is_per_account_and_address(client, viewer, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, "wrong")
    other_address = client.post(reverse("login"), {"username": "vera", "password": PASSWORD}, REMOTE_ADDR="10.0.0.99")
    assert other_address.status_code == 302
