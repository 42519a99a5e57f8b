"""Staff with the uploader role can retry a failed or waiting delivery now, or abandon it with a reason."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied

from orders.delivery import DeliveryError, delivery_abandon, delivery_retry_now, delivery_send_once
from orders.models import Delivery, Order
from tests.delivery_fakes import T0, FakeRedox, permanent
from tests.factories import DeliveryFactory, OrderFactory

pytestmark = pytest.mark.django_db

NOW = T0 + timedelta(hours=1)


def with_status(delivery, status, **fields):
    Delivery.objects.filter(pk=delivery.pk).update(status=status, **fields)
    delivery.refresh_from_db()
    return delivery


@pytest.fixture
def order(partner):
    return OrderFactory(partner=partner, sending=True)


@pytest.fixture
def failed(order, uploader):
    delivery = DeliveryFactory(order=order, created_by=uploader, created_at=T0, enqueue=True)
    with FakeRedox(permanent()).patch():
        delivery_send_once(delivery_id=delivery.pk, now=T0)
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED
    return delivery


def test_retry_now_queues_a_failed_delivery_which_is_then_sent(failed, order, uploader):
    delivery_retry_now(delivery=failed, user=uploader, now=NOW)

    assert failed.status == Delivery.Status.PENDING
    assert failed.next_attempt_at == NOW
    order.refresh_from_db()
    assert order.state == Order.State.SENDING
    # The row is the queue: due now, it is the next thing a worker claims.
    assert list(Delivery.objects.claimable(NOW)) == [failed]

    with FakeRedox().patch():
        delivery_send_once(delivery_id=failed.pk, now=NOW)
    failed.refresh_from_db()
    order.refresh_from_db()
    assert failed.status == Delivery.Status.SENT
    assert failed.attempt_count == 2
    assert order.state == Order.State.SENT


def test_retry_now_skips_the_wait_of_a_scheduled_retry(order, uploader):
    delivery = with_status(
        DeliveryFactory(order=order, created_by=uploader, created_at=T0, enqueue=True),
        Delivery.Status.RETRY_SCHEDULED,
        next_attempt_at=NOW + timedelta(hours=1),
    )

    delivery_retry_now(delivery=delivery, user=uploader, now=NOW)

    assert delivery.status == Delivery.Status.PENDING
    assert delivery.next_attempt_at == NOW


@pytest.mark.parametrize(
    "status", [Delivery.Status.PENDING, Delivery.Status.SENDING, Delivery.Status.SENT, Delivery.Status.ABANDONED]
)
def test_retry_now_is_refused_while_a_send_may_be_in_the_air_or_after_it_ended(order, uploader, status):
    delivery = with_status(DeliveryFactory(order=order, created_by=uploader, created_at=T0, enqueue=True), status)

    with pytest.raises(DeliveryError, match="cannot be retried"):
        delivery_retry_now(delivery=delivery, user=uploader, now=NOW)

    delivery.refresh_from_db()
    assert delivery.status == status


def test_retry_now_is_refused_when_another_note_for_the_order_is_in_flight(failed, order, uploader):
    DeliveryFactory(order=order, created_by=uploader, created_at=T0, enqueue=True)

    with pytest.raises(DeliveryError, match="already being delivered"):
        delivery_retry_now(delivery=failed, user=uploader, now=NOW)

    failed.refresh_from_db()
    assert failed.status == Delivery.Status.FAILED


def test_abandon_a_failed_first_delivery_returns_the_order_to_awaiting_note(failed, order, uploader):
    delivery_abandon(delivery=failed, user=uploader, reason="Partner asked us to fax it", now=NOW)

    assert failed.status == Delivery.Status.ABANDONED
    assert failed.abandoned_reason == "Partner asked us to fax it"
    assert failed.abandoned_by == uploader
    order.refresh_from_db()
    assert order.state == Order.State.AWAITING_NOTE


def test_abandon_a_failed_correction_leaves_the_order_sent_when_an_earlier_note_was_sent(order, uploader):
    first = DeliveryFactory(order=order, created_by=uploader, created_at=T0, enqueue=True)
    with FakeRedox().patch():
        delivery_send_once(delivery_id=first.pk, now=T0)
    correction = DeliveryFactory(
        order=order,
        created_by=uploader,
        is_correction=True,
        correction_reason="Wrong page",
        created_at=T0,
        enqueue=True,
    )
    with FakeRedox(permanent()).patch():
        delivery_send_once(delivery_id=correction.pk, now=T0)
    order.refresh_from_db()
    assert order.state == Order.State.FAILED

    delivery_abandon(delivery=correction, user=uploader, reason="Sent the right page by phone", now=NOW)

    order.refresh_from_db()
    assert order.state == Order.State.SENT


def test_abandon_a_scheduled_retry_stops_it_being_sent(order, uploader):
    delivery = with_status(
        DeliveryFactory(order=order, created_by=uploader, created_at=T0, enqueue=True),
        Delivery.Status.RETRY_SCHEDULED,
        next_attempt_at=NOW,
    )
    delivery_abandon(delivery=delivery, user=uploader, reason="Duplicate", now=NOW)

    fake = FakeRedox()
    with fake.patch():
        assert delivery_send_once(delivery_id=delivery.pk, now=NOW) is None
    assert fake.messages == []


def test_abandon_keeps_a_cancelled_order_cancelled(failed, order, uploader):
    Order.objects.filter(pk=order.pk).update(state=Order.State.CANCELLED)

    delivery_abandon(delivery=failed, user=uploader, reason="Order was cancelled", now=NOW)

    order.refresh_from_db()
    assert order.state == Order.State.CANCELLED


@pytest.mark.parametrize(
    "status", [Delivery.Status.PENDING, Delivery.Status.SENDING, Delivery.Status.SENT, Delivery.Status.ABANDONED]
)
def test_abandon_is_refused_while_a_send_may_be_in_the_air_or_after_it_ended(order, uploader, status):
    delivery = with_status(DeliveryFactory(order=order, created_by=uploader, created_at=T0, enqueue=True), status)

    with pytest.raises(DeliveryError, match="cannot be abandoned"):
        delivery_abandon(delivery=delivery, user=uploader, reason="Because", now=NOW)

    delivery.refresh_from_db()
    assert delivery.status == status


def test_abandon_needs_a_reason(failed, uploader):
    with pytest.raises(DeliveryError, match="why"):
        delivery_abandon(delivery=failed, user=uploader, reason="   ", now=NOW)
    failed.refresh_from_db()
    assert failed.status == Delivery.Status.FAILED


def test_a_viewer_can_neither_retry_nor_abandon(failed, viewer):
    with pytest.raises(PermissionDenied):
        delivery_retry_now(delivery=failed, user=viewer)
    with pytest.raises(PermissionDenied):
        delivery_abandon(delivery=failed, user=viewer, reason="No")
    failed.refresh_from_db()
    assert failed.status == Delivery.Status.FAILED
