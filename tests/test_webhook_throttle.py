"""Wrong-token floods on the webhook: after WEBHOOK_BAD_TOKEN_LIMIT wrong or missing tokens
from one address in a minute, that address gets 429 before its body is read, with one
`webhook.throttled` log line per window; a right token always passes (hcoint/throttle.py)."""

import logging
from datetime import timedelta
from unittest import mock

import pytest
from django.db.models import F

from orders.models import InboundMessage, Order, ThrottleCount
from tests.conftest import PARTNER_TOKEN, events, sample_bytes

pytestmark = pytest.mark.django_db

URL = "/redox/webhook/"
LIMIT = 3
FLOODER = "203.0.113.7"
REDOX_EGRESS = "198.51.100.20"


@pytest.fixture(autouse=True)
def _small_limit(settings):
    settings.WEBHOOK_BAD_TOKEN_LIMIT = LIMIT


def post(client, token, address=FLOODER, body=None):
    headers = {"verification-token": token} if token is not None else {}
    body = sample_bytes("order-new.json") if body is None else body
    return client.post(URL, body, content_type="application/json", headers=headers, REMOTE_ADDR=address)


def end_the_window():
    ThrottleCount.objects.update(window_start=F("window_start") - timedelta(minutes=1))


def test_a_wrong_token_flood_gets_429_and_one_log_line_per_window(client, partner, caplog):
    caplog.set_level(logging.INFO)
    statuses = [post(client, "wrong-token").status_code for _ in range(LIMIT - 1)]
    assert statuses == [401] * (LIMIT - 1)
    assert not events(caplog, "webhook.throttled")

    reaching = post(client, None)
    assert reaching.status_code == 429
    flood = [post(client, "wrong-token") for _ in range(10)]
    assert {response.status_code for response in flood} == {429}
    assert 0 < int(flood[-1]["Retry-After"]) <= 60

    (throttled,) = events(caplog, "webhook.throttled")
    assert throttled.levelno == logging.WARNING
    assert (throttled.scope, throttled.limit, throttled.window_seconds) == ("webhook_bad_token", LIMIT, 60)
    assert FLOODER not in throttled.getMessage() + repr(throttled.__dict__)
    # The refused flood logs nothing per request: only the failures up to the limit did.
    assert len(events(caplog, "webhook.auth_failed")) == LIMIT
    assert InboundMessage.objects.count() == 0


def test_a_throttled_address_is_refused_before_its_body_is_read(client, partner):
    for _ in range(LIMIT):
        post(client, "wrong-token")
    # Even a body small enough to be a verification challenge is not read once throttled.
    with mock.patch("django.http.HttpRequest.read", side_effect=AssertionError("body read")):
        assert post(client, "wrong-token").status_code == 429


def test_a_right_token_from_a_throttled_address_is_delivered_and_not_counted(client, partner):
    # Someone floods from an address Redox also sends from.
    for _ in range(LIMIT + 2):
        post(client, "wrong-token", address=REDOX_EGRESS)
    assert post(client, "wrong-token", address=REDOX_EGRESS).status_code == 429
    before = ThrottleCount.objects.get().count

    assert post(client, PARTNER_TOKEN, address=REDOX_EGRESS).status_code == 200
    assert Order.objects.count() == 1
    assert ThrottleCount.objects.get().count == before


def test_right_tokens_are_never_counted(client, partner):
    for _ in range(LIMIT + 1):
        assert post(client, PARTNER_TOKEN, body=b"{}").status_code == 200
    assert not ThrottleCount.objects.exists()


def test_other_addresses_are_not_throttled(client, partner):
    for _ in range(LIMIT):
        post(client, "wrong-token")
    assert post(client, "wrong-token", address="192.0.2.1").status_code == 401


def test_the_address_is_the_client_behind_the_load_balancer(client, partner, settings):
    settings.PROXY_COUNT = 1
    balancer = {"REMOTE_ADDR": "10.0.0.1"}
    for _ in range(LIMIT):
        client.post(URL, b"{}", content_type="application/json", HTTP_X_FORWARDED_FOR=FLOODER, **balancer)
    assert (
        client.post(URL, b"{}", content_type="application/json", HTTP_X_FORWARDED_FOR=FLOODER, **balancer).status_code
        == 429
    )
    other = client.post(URL, b"{}", content_type="application/json", HTTP_X_FORWARDED_FOR="192.0.2.1", **balancer)
    assert other.status_code == 401


def test_the_count_starts_again_in_the_next_window(client, partner, caplog):
    caplog.set_level(logging.INFO)
    for _ in range(LIMIT + 1):
        post(client, "wrong-token")
    assert post(client, "wrong-token").status_code == 429

    end_the_window()
    assert post(client, "wrong-token").status_code == 401
    for _ in range(LIMIT - 1):
        post(client, "wrong-token")
    assert post(client, "wrong-token").status_code == 429
    # One line for each window in which the limit was reached.
    assert len(events(caplog, "webhook.throttled")) == 2


def test_the_throttle_also_covers_get(client, partner):
    for _ in range(LIMIT):
        client.get(URL, headers={"verification-token": "wrong"}, REMOTE_ADDR=FLOODER)
    assert client.get(URL, headers={"verification-token": "wrong"}, REMOTE_ADDR=FLOODER).status_code == 429
