"""Sign-in spraying: many user names from one address. After SIGN_IN_ADDRESS_FAILURE_LIMIT
failures from one address within the cool-off window, that address gets the lockout page
(429) for every account, with one `auth.throttled` log line; other addresses are not
affected, and the next window starts again (hcoint/throttle.py, django-axes)."""

import logging
from datetime import timedelta

import pytest
from django.db.models import F
from django.urls import reverse

from orders.models import AuditEvent, ThrottleCount
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

LIMIT = 4
SPRAYER = "203.0.113.7"


@pytest.fixture(autouse=True)
def _small_limit(settings):
    # Below the per-account limit, so only the per-address count can lock anyone out.
    settings.SIGN_IN_ADDRESS_FAILURE_LIMIT = LIMIT
    assert settings.AXES_FAILURE_LIMIT > 1


def attempt(client, username, password="wrong", address=SPRAYER, **extra):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address, **extra)


def spray(client, count, address=SPRAYER):
    return [attempt(client, f"guess-{index}", address=address).status_code for index in range(count)]


def throttled_events(caplog):
    return [record for record in caplog.records if getattr(record, "event", None) == "auth.throttled"]


def test_spraying_locks_the_address_out_for_every_account(client, viewer, caplog):
    caplog.set_level(logging.INFO)
    assert spray(client, LIMIT - 1) == [200] * (LIMIT - 1)
    assert not throttled_events(caplog)

    locking = attempt(client, "vera")
    assert locking.status_code == 429
    assert "Too many failed sign-ins" in locking.content.decode()

    # Even the right password, for an account that has not failed once, from there.
    refused = attempt(client, "vera", PASSWORD)
    assert refused.status_code == 429
    assert "Try again in 30 minutes" in refused.content.decode()
    assert "_auth_user_id" not in client.session
    assert spray(client, 3) == [429] * 3

    (record,) = throttled_events(caplog)
    assert record.levelno == logging.WARNING
    assert (record.scope, record.limit, record.window_seconds) == ("sign_in_address", LIMIT, 30 * 60)
    logged = record.getMessage() + repr(record.__dict__)
    assert SPRAYER not in logged and "guess-" not in logged and "vera" not in logged


def test_refused_attempts_are_audited_as_denied(client, viewer):
    spray(client, LIMIT + 1)
    outcomes = list(
        AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN_FAILED).values_list("outcome", flat=True)
    )
    assert outcomes == ["failure"] * (LIMIT - 1) + ["denied", "denied"]


def test_other_addresses_sign_in_as_usual(client, viewer):
    spray(client, LIMIT)
    assert attempt(client, "vera", PASSWORD, address="192.0.2.1").status_code == 302


def test_the_address_is_the_client_behind_the_load_balancer(client, viewer, settings):
    settings.PROXY_COUNT = 1
    for index in range(LIMIT):
        attempt(client, f"guess-{index}", address="10.0.0.1", HTTP_X_FORWARDED_FOR=SPRAYER)
    assert attempt(client, "vera", PASSWORD, address="10.0.0.1", HTTP_X_FORWARDED_FOR=SPRAYER).status_code == 429
    assert attempt(client, "vera", PASSWORD, address="10.0.0.1", HTTP_X_FORWARDED_FOR="192.0.2.1").status_code == 302


def test_the_next_window_starts_again(client, viewer, settings, caplog):
    caplog.set_level(logging.INFO)
    spray(client, LIMIT + 1)
    ThrottleCount.objects.update(
        window_start=F("window_start") - timedelta(seconds=settings.SIGN_IN_ADDRESS_WINDOW_SECONDS)
    )
    assert attempt(client, "vera", PASSWORD).status_code == 302
    client.post(reverse("logout"))
    assert spray(client, LIMIT) == [200] * (LIMIT - 1) + [429]
    assert len(throttled_events(caplog)) == 2


def test_the_per_account_lockout_still_comes_first(client, viewer, settings):
    settings.SIGN_IN_ADDRESS_FAILURE_LIMIT = 100
    statuses = [attempt(client, "vera").status_code for _ in range(settings.AXES_FAILURE_LIMIT)]
    assert statuses[-1] == 429
    assert not ThrottleCount.objects.filter(count__gte=100).exists()
