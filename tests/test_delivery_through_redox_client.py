"""A delivery through the real Redox client, with Redox faked over HTTP (`responses`)."""

import base64
import json
from datetime import timedelta

import pytest
import requests
import responses
from django.utils import timezone

from orders.delivery import delivery_send_once
from orders.models import Delivery, DeliveryAttempt, Order
from tests.factories import SAMPLE_PDF, DeliveryFactory, OrderFactory

pytestmark = pytest.mark.django_db

API = "https://redox.test"
BLOB = "https://blob.redox.test/upload"


@pytest.fixture(autouse=True)
def _redox_api_key(settings):
    # Changing REDOX_* settings makes redox.client build a fresh process-wide client.
    settings.REDOX_API_BASE_URL = API
    settings.REDOX_UPLOAD_URL = BLOB
    settings.REDOX_API_KEY = "api-key-1"
    settings.REDOX_API_SECRET = "api-secret-1"
    settings.REDOX_INLINE_MAX_BYTES = 200_000


@pytest.fixture
def redox():
    with responses.RequestsMock() as mocked:
        expires = (timezone.now() + timedelta(hours=24)).isoformat()
        mocked.post(
            f"{API}/auth/authenticate",
            json={"accessToken": "token-1", "expires": expires, "refreshToken": "refresh-1"},
        )
        yield mocked


def endpoint_calls(mocked):
    return [call for call in mocked.calls if call.request.url == f"{API}/endpoint"]


def test_an_accepted_message_marks_the_delivery_sent_with_redox_log_id(partner, uploader, redox):
    order = OrderFactory(partner=partner, sending=True)
    delivery = DeliveryFactory(order=order, created_by=uploader, created_at=timezone.now(), enqueue=True)
    redox.post(f"{API}/endpoint", json={"Meta": {"Logs": [{"ID": "log-abc", "AttemptID": "try-1"}]}})
    now = timezone.now()

    delivery_send_once(delivery_id=delivery.pk, now=now)

    delivery.refresh_from_db()
    order.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT
    assert delivery.redox_log_id == "log-abc"
    assert order.state == Order.State.SENT
    [call] = endpoint_calls(redox)
    assert call.request.headers["Authorization"] == "Bearer token-1"
    assert call.request.headers["Content-Type"] == "application/json"
    sent = json.loads(call.request.body)
    assert sent["Meta"]["DataModel"] == "Results"
    assert sent["Meta"]["Destinations"][0]["ID"] == partner.destination_id
    assert sent["Orders"][0]["ID"] == order.ehr_order_id
    assert sent["Orders"][0]["ApplicationOrderID"] == f"hcoint-delivery-{delivery.pk}"
    assert base64.b64decode(sent["Orders"][0]["Results"][0]["Value"]) == SAMPLE_PDF


def test_a_400_fails_the_delivery_with_redox_meta_errors_text(partner, uploader, redox):
    delivery = DeliveryFactory(
        order=OrderFactory(partner=partner, sending=True), created_by=uploader, created_at=timezone.now(), enqueue=True
    )
    text = "No subscriptions found. Meta.Destinations needs to contain a destination from existing subscriptions"
    redox.post(
        f"{API}/endpoint",
        status=400,
        json={"Meta": {"Errors": [{"ID": 1, "Text": text, "Type": "message", "Module": "Send"}]}},
    )

    delivery_send_once(delivery_id=delivery.pk, now=timezone.now())

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.last_error == text
    attempt = delivery.attempts.get()
    assert (attempt.outcome, attempt.http_status) == (DeliveryAttempt.Outcome.PERMANENT, 400)


def test_a_429_waits_as_long_as_redox_retry_after_says(partner, uploader, redox):
    delivery = DeliveryFactory(
        order=OrderFactory(partner=partner, sending=True), created_by=uploader, created_at=timezone.now(), enqueue=True
    )
    redox.post(f"{API}/endpoint", status=429, headers={"Retry-After": "120"}, json={})
    now = timezone.now()

    delivery_send_once(delivery_id=delivery.pk, now=now)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.RETRY_SCHEDULED
    assert delivery.next_attempt_at == now + timedelta(seconds=120)
    assert delivery.attempts.get().http_status == 429


def test_a_connection_error_is_retried(partner, uploader, redox):
    delivery = DeliveryFactory(
        order=OrderFactory(partner=partner, sending=True), created_by=uploader, created_at=timezone.now(), enqueue=True
    )
    redox.post(f"{API}/endpoint", body=requests.ConnectionError("connection refused"))

    delivery_send_once(delivery_id=delivery.pk, now=timezone.now())

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.RETRY_SCHEDULED
    attempt = delivery.attempts.get()
    assert attempt.outcome == DeliveryAttempt.Outcome.TRANSIENT
    assert attempt.http_status is None


def test_a_large_pdf_goes_to_the_blob_store_and_the_message_carries_its_uri(partner, uploader, redox, settings):
    settings.REDOX_INLINE_MAX_BYTES = 100
    delivery = DeliveryFactory(
        order=OrderFactory(partner=partner, sending=True), created_by=uploader, created_at=timezone.now(), enqueue=True
    )
    redox.post(BLOB, status=201, json={"URI": "https://blob.redox.test/abc123"})
    redox.post(f"{API}/endpoint", json={"Meta": {"Logs": [{"ID": "log-big"}]}})

    delivery_send_once(delivery_id=delivery.pk, now=timezone.now())

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT
    [upload] = [call for call in redox.calls if call.request.url == BLOB]
    assert SAMPLE_PDF in upload.request.body
    [call] = endpoint_calls(redox)
    assert json.loads(call.request.body)["Orders"][0]["Results"][0]["Value"] == "https://blob.redox.test/abc123"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, Delivery.Status.FAILED),
        (403, Delivery.Status.FAILED),
        (404, Delivery.Status.FAILED),
        (413, Delivery.Status.FAILED),
        (401, Delivery.Status.RETRY_SCHEDULED),  # still refused after one re-authentication
        (429, Delivery.Status.RETRY_SCHEDULED),
        (500, Delivery.Status.RETRY_SCHEDULED),
        (502, Delivery.Status.RETRY_SCHEDULED),
        (503, Delivery.Status.RETRY_SCHEDULED),
        (504, Delivery.Status.RETRY_SCHEDULED),
    ],
)
def test_each_redox_error_class_leads_to_its_state(partner, uploader, redox, status, expected):
    delivery = DeliveryFactory(
        order=OrderFactory(partner=partner, sending=True), created_by=uploader, created_at=timezone.now(), enqueue=True
    )
    redox.post(f"{API}/endpoint", status=status, json={"Meta": {"Errors": [{"Text": f"Sandbox said {status}"}]}})

    delivery_send_once(delivery_id=delivery.pk, now=timezone.now())

    delivery.refresh_from_db()
    assert delivery.status == expected
    assert f"Sandbox said {status}" in delivery.last_error
    assert delivery.attempts.get().http_status == status
