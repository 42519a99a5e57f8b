"""End to end: the worker delivers through the real client to the local Redox sandbox over a real socket.

The same three journeys a person sees after `make run`: sent at once; sent after three
failures and visible retries; rejected, failed with the sandbox's text, then "retry now".
"""

import pytest
from django.core.management import call_command
from django.utils import timezone

from orders.delivery import delivery_retry_now, delivery_send_once
from orders.models import Delivery, DeliveryAttempt, Order
from tests.factories import DeliveryFactory, OrderFactory
from tests.sandbox_server import base_url, start_in_thread

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("restore_signal_handlers"),
]


@pytest.fixture
def sandbox(settings):
    server = start_in_thread(port=0)
    settings.REDOX_API_BASE_URL = base_url(server)
    settings.REDOX_UPLOAD_URL = f"{base_url(server)}/upload"
    settings.REDOX_API_KEY = "sandbox-api-key"
    settings.REDOX_API_SECRET = "sandbox-api-secret"
    yield server
    server.shutdown()
    server.server_close()


def accepted_refs(sandbox):
    return [m.delivery_ref for m in sandbox.state.messages() if m.outcome == "accepted"]


def test_the_worker_delivers_to_the_sandbox_and_records_its_log_id(partner, uploader, sandbox):
    order = OrderFactory(partner=partner, sending=True)
    delivery = DeliveryFactory(order=order, created_by=uploader, created_at=timezone.now(), enqueue=True)

    call_command("deliver", "--until-idle")

    delivery.refresh_from_db()
    order.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT
    [received] = sandbox.state.messages()
    assert received.outcome == "accepted"
    assert received.delivery_ref == f"hcoint-delivery-{delivery.pk}"
    assert delivery.redox_log_id == received.log_ids[0]
    assert order.state == Order.State.SENT


def test_three_sandbox_failures_end_sent_after_visible_retries(partner, uploader, sandbox):
    sandbox.state.fail_next(3, status=503, retry_after=1)
    delivery = DeliveryFactory(
        order=OrderFactory(partner=partner, sending=True), created_by=uploader, created_at=timezone.now(), enqueue=True
    )
    now = timezone.now()
    seen = []

    for _ in range(4):
        delivery_send_once(delivery_id=delivery.pk, now=now)
        delivery.refresh_from_db()
        seen.append((delivery.status, delivery.next_attempt_at is not None))
        now = delivery.next_attempt_at or now

    assert seen == [("retry_scheduled", True)] * 3 + [("sent", False)]
    assert [a.http_status for a in delivery.attempts.all()] == [503, 503, 503, 200]
    assert accepted_refs(sandbox) == [f"hcoint-delivery-{delivery.pk}"]


def test_a_rejection_fails_with_the_sandbox_text_and_retry_now_sends_it_once_accepted(partner, uploader, sandbox):
    sandbox.state.reject(None, "No subscriptions found for this destination")
    delivery = DeliveryFactory(
        order=OrderFactory(partner=partner, sending=True), created_by=uploader, created_at=timezone.now(), enqueue=True
    )

    delivery_send_once(delivery_id=delivery.pk, now=timezone.now())
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.last_error == "No subscriptions found for this destination"
    assert delivery.attempts.get().outcome == DeliveryAttempt.Outcome.PERMANENT

    sandbox.state.clear()
    delivery_retry_now(delivery=delivery, user=uploader)
    call_command("deliver", "--until-idle")

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT
    assert accepted_refs(sandbox) == [f"hcoint-delivery-{delivery.pk}"]
