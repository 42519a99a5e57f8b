"""The audited address is the client's, by the same rule django-axes locks out by: behind
PROXY_COUNT proxies that append to X-Forwarded-For, the PROXY_COUNT-th entry from the
right; with none, REMOTE_ADDR. Whatever the client writes into the header cannot move it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from django.test import RequestFactory
from django.urls import reverse

from hcoint.client_ip import client_ip
from orders.models import AuditEvent
from tests.factories import OrderFactory

pytestmark = pytest.mark.django_db

BALANCER = "10.0.0.2"  # REMOTE_ADDR when the load balancer forwards the request
CLIENT = "203.0.113.9"
FORGED = "198.51.100.66"


@pytest.mark.parametrize(
    ("proxy_count", "forwarded_for", "remote_addr", "expected"),
    [
        pytest.param(0, FORGED, CLIENT, CLIENT, id="no-proxy-ignores-the-header"),
        pytest.param(1, CLIENT, BALANCER, CLIENT, id="one-proxy"),
        pytest.param(1, f"{FORGED}, {CLIENT}", BALANCER, CLIENT, id="one-proxy-forged-entry"),
        pytest.param(1, f"{FORGED},{FORGED}, {CLIENT}", BALANCER, CLIENT, id="one-proxy-several-forged"),
        pytest.param(2, f"{FORGED}, {CLIENT}, 10.0.0.7", BALANCER, CLIENT, id="two-proxies-forged-entry"),
        pytest.param(2, CLIENT, BALANCER, BALANCER, id="fewer-entries-than-proxies"),
        pytest.param(1, f"{CLIENT}, not-an-address", BALANCER, BALANCER, id="garbage-where-ours-should-be"),
        pytest.param(1, "", BALANCER, BALANCER, id="no-header"),
        pytest.param(1, "2001:DB8::1", BALANCER, "2001:db8::1", id="ipv6-normalised"),
    ],
)
def test_client_ip_follows_the_proxy_count(settings, proxy_count, forwarded_for, remote_addr, expected):
    settings.PROXY_COUNT = proxy_count
    request = RequestFactory().get("/", HTTP_X_FORWARDED_FOR=forwarded_for, REMOTE_ADDR=remote_addr)
    assert client_ip(request) == expected


@pytest.mark.parametrize(
    ("proxy_count", "forwarded_for", "remote_addr"),
    [
        pytest.param(0, FORGED, CLIENT, id="no-proxy"),
        pytest.param(1, f"{FORGED}, {CLIENT}", BALANCER, id="one-proxy"),
        pytest.param(2, f"{FORGED}, {CLIENT}, 10.0.0.7", BALANCER, id="two-proxies"),
    ],
)
def test_a_forged_forwarded_for_entry_does_not_reach_the_audit_record(
    client, settings, viewer, partner, proxy_count, forwarded_for, remote_addr
):
    settings.PROXY_COUNT = proxy_count
    order = OrderFactory(partner=partner)
    client.force_login(viewer)

    client.get(reverse("order_detail", args=[order.pk]), HTTP_X_FORWARDED_FOR=forwarded_for, REMOTE_ADDR=remote_addr)

    event = AuditEvent.objects.get(action=AuditEvent.Action.VIEW_ORDER)
    assert event.ip_address == CLIENT


@pytest.mark.parametrize(
    ("proxy_count", "forwarded_for", "remote_addr"),
    [
        pytest.param(0, FORGED, CLIENT, id="no-proxy"),
        pytest.param(1, f"{FORGED}, {CLIENT}", BALANCER, id="one-proxy"),
    ],
)
def test_a_failed_sign_in_is_locked_out_and_audited_under_the_same_address(
    client, settings, viewer, proxy_count, forwarded_for, remote_addr
):
    settings.PROXY_COUNT = proxy_count

    client.post(
        reverse("login"),
        {"username": "vera", "password": "wrong"},
        HTTP_X_FORWARDED_FOR=forwarded_for,
        REMOTE_ADDR=remote_addr,
    )

    [attempt] = AccessAttempt.objects.all()
    event = AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN_FAILED)
    assert attempt.ip_address == event.ip_address == CLIENT


def test_behind_the_load_balancer_a_lockout_holds_the_client_not_everyone(client, settings, viewer):
    settings.PROXY_COUNT = 1

    def sign_in(password, forwarded_for):
        return client.post(
            reverse("login"),
            {"username": "vera", "password": password},
            HTTP_X_FORWARDED_FOR=forwarded_for,
            REMOTE_ADDR=BALANCER,
        )

    # A new forged entry on every try does not reset the count for the real address.
    for number in range(settings.AXES_FAILURE_LIMIT):
        sign_in("wrong", f"198.51.100.{number}, {CLIENT}")
    assert sign_in("correct-horse-battery", f"{FORGED}, {CLIENT}").status_code == 429
    # Vera at her own desk, through the same load balancer, is not locked out by it.
    assert sign_in("correct-horse-battery", "192.0.2.44").status_code == 302


def test_a_negative_proxy_count_stops_the_app_from_starting():
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DJANGO_SETTINGS_MODULE": "hcoint.settings",
        "DEBUG": "true",
        "PROXY_COUNT": "-1",
    }
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "PROXY_COUNT must be 0 or more" in result.stderr
