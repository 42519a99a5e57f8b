"""A note queued for an order the partner then cancels is never sent: the delivery is
abandoned, with the reason on the order's timeline, and "retry now" is refused."""

import logging
from datetime import timedelta

import pytest
from django.urls import reverse

from orders.delivery import ORDER_CANCELLED_RETRY, DeliveryError, delivery_retry_now, delivery_send_once
from orders.ingest import message_ingest
from orders.models import AuditEvent, Delivery, DeliveryAttempt, Order
from tests.conftest import sample_bytes
from tests.delivery_fakes import T0, FakeRedox, permanent, transient
from tests.factories import DeliveryFactory, OrderFactory

pytestmark = pytest.mark.django_db

NOW = T0 + timedelta(minutes=5)
REASON = "The partner cancelled the order before the note was sent."


@pytest.fixture
def order(partner):
    # The same Order.ID as the Cancel sample, so the webhook's Cancel lands on this order.
    return OrderFactory(partner=partner, ehr_order_id="157720311", sending=True)


def cancel_from_partner(partner):
    message_ingest(partner=partner, body=sample_bytes("order-cancel.json"), headers={})


def test_a_pending_delivery_is_not_sent_once_the_partner_cancels(partner, order, uploader, caplog):
    delivery = DeliveryFactory(order=order, created_by=uploader, created_at=T0, enqueue=True)
    cancel_from_partner(partner)
    fake = FakeRedox()

    with fake.patch(), caplog.at_level(logging.INFO):
        result = delivery_send_once(delivery_id=delivery.pk, now=NOW)

    assert result is None
    assert fake.messages == []
    assert fake.uploads == []
    delivery.refresh_from_db()
    order.refresh_from_db()
    assert delivery.status == Delivery.Status.ABANDONED
    assert delivery.abandoned_reason == REASON
    assert delivery.abandoned_by is None
    assert delivery.sent_at is None
    assert delivery.redox_log_id == ""
    assert not DeliveryAttempt.objects.exists()
    assert order.state == Order.State.CANCELLED
    [abandoned] = [record for record in caplog.records if getattr(record, "event", None) == "delivery.abandoned"]
    assert abandoned.reason == "order_cancelled"
    assert (abandoned.delivery_id, abandoned.order_id, abandoned.partner_id) == (delivery.pk, order.pk, partner.pk)


def test_a_delivery_waiting_for_a_retry_is_not_sent_once_the_partner_cancels(partner, order, uploader):
    delivery = DeliveryFactory(order=order, created_by=uploader, created_at=T0, enqueue=True)
    with FakeRedox(transient(503)).patch():
        delivery_send_once(delivery_id=delivery.pk, now=T0)
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.RETRY_SCHEDULED
    cancel_from_partner(partner)
    fake = FakeRedox()

    with fake.patch():
        delivery_send_once(delivery_id=delivery.pk, now=delivery.next_attempt_at)

    assert fake.messages == []
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.ABANDONED
    assert delivery.abandoned_reason == REASON
    assert delivery.attempts.count() == 1
    assert Order.objects.get(pk=order.pk).state == Order.State.CANCELLED


def test_the_reason_shows_on_the_orders_timeline(client, partner, order, uploader, viewer):
    delivery = DeliveryFactory(order=order, created_by=uploader, created_at=T0, enqueue=True)
    cancel_from_partner(partner)
    with FakeRedox().patch():
        delivery_send_once(delivery_id=delivery.pk, now=NOW)

    client.force_login(viewer)
    page = client.get(reverse("order_detail", args=[order.pk])).content.decode()

    assert f"Abandoned: {REASON}" in page
    assert "Order cancelled" in page


def test_a_cancelled_orders_waiting_delivery_says_it_will_not_be_sent(client, partner, order, uploader):
    DeliveryFactory(order=order, created_by=uploader, created_at=T0, enqueue=True)
    cancel_from_partner(partner)

    client.force_login(uploader)
    page = client.get(reverse("order_detail", args=[order.pk])).content.decode()

    assert "The order was cancelled, so this note will not be sent." in page
    assert "Waiting for the delivery worker" not in page


def test_retry_now_is_refused_for_a_failed_delivery_of_a_cancelled_order(partner, order, uploader):
    delivery = DeliveryFactory(order=order, created_by=uploader, created_at=T0, enqueue=True)
    with FakeRedox(permanent()).patch():
        delivery_send_once(delivery_id=delivery.pk, now=T0)
    cancel_from_partner(partner)
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED

    with pytest.raises(DeliveryError) as refused:
        delivery_retry_now(delivery=delivery, user=uploader, now=NOW)

    assert str(refused.value) == ORDER_CANCELLED_RETRY
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED
    assert Order.objects.get(pk=order.pk).state == Order.State.CANCELLED


def test_retry_now_of_a_delivery_abandoned_for_cancellation_is_refused_on_the_page(client, partner, order, uploader):
    delivery = DeliveryFactory(order=order, created_by=uploader, created_at=T0, enqueue=True)
    cancel_from_partner(partner)
    with FakeRedox().patch():
        delivery_send_once(delivery_id=delivery.pk, now=NOW)

    client.force_login(uploader)
    response = client.post(reverse("retry_delivery", args=[delivery.pk]), follow=True)

    assert ORDER_CANCELLED_RETRY in response.content.decode()
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.ABANDONED
    assert AuditEvent.objects.get(action=AuditEvent.Action.RETRY_DELIVERY).outcome == AuditEvent.Outcome.FAILURE


def test_a_cancelled_orders_failed_delivery_offers_abandon_but_not_retry(client, partner, order, uploader):
    delivery = DeliveryFactory(order=order, created_by=uploader, created_at=T0, enqueue=True)
    with FakeRedox(permanent()).patch():
        delivery_send_once(delivery_id=delivery.pk, now=T0)
    cancel_from_partner(partner)

    client.force_login(uploader)
    page = client.get(reverse("order_detail", args=[order.pk])).content.decode()

    assert reverse("abandon_delivery", args=[delivery.pk]) in page
    assert reverse("retry_delivery", args=[delivery.pk]) not in page
