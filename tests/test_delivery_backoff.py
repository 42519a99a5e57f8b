"""Transient failures back off exponentially with jitter, honour Retry-After, and stop at the max age."""

import random
from datetime import timedelta

import pytest

from orders.delivery import delivery_send_once, retry_delay_seconds
from orders.models import Delivery, Order
from tests.delivery_fakes import T0, FakeRedox, transient
from tests.factories import DeliveryFactory, OrderFactory


@pytest.fixture(autouse=True)
def _backoff_settings(settings):
    settings.DELIVERY_RETRY_BASE_SECONDS = 30
    settings.DELIVERY_RETRY_MAX_SECONDS = 3600
    settings.DELIVERY_MAX_AGE_HOURS = 24


def test_the_delay_doubles_from_the_base_up_to_the_cap():
    upper = [retry_delay_seconds(n, rand=lambda: 1.0) for n in range(1, 10)]
    assert upper == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert retry_delay_seconds(500, rand=lambda: 1.0) == 3600


def test_jitter_keeps_the_delay_in_the_upper_half_of_its_ceiling():
    assert retry_delay_seconds(1, rand=lambda: 0.0) == 15
    assert retry_delay_seconds(4, rand=lambda: 0.0) == 120
    assert retry_delay_seconds(20, rand=lambda: 0.0) == 1800
    draws = random.Random(4)
    for attempt in range(1, 12):
        ceiling = min(3600, 30 * 2 ** (attempt - 1))
        delays = {retry_delay_seconds(attempt, rand=draws.random) for _ in range(50)}
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert len(delays) > 1, "jitter spreads retries out"


def test_retry_after_is_a_floor_not_a_cap():
    assert retry_delay_seconds(1, retry_after=120, rand=lambda: 1.0) == 120
    assert retry_delay_seconds(8, retry_after=120, rand=lambda: 1.0) == 3600


@pytest.mark.django_db
def test_successive_failures_wait_longer_each_time_within_the_jitter_bounds(partner, uploader):
    delivery = DeliveryFactory(
        order=OrderFactory(partner=partner, sending=True), created_by=uploader, created_at=T0, enqueue=True
    )
    now = T0
    waits = []
    with FakeRedox(default=transient(503)).patch():
        for _ in range(9):
            delivery_send_once(delivery_id=delivery.pk, now=now)
            delivery.refresh_from_db()
            waits.append((delivery.next_attempt_at - now).total_seconds())
            now = delivery.next_attempt_at

    for attempt, wait in enumerate(waits, start=1):
        ceiling = min(3600, 30 * 2 ** (attempt - 1))
        assert ceiling / 2 <= wait <= ceiling
    assert waits[-1] >= 1800, "capped at DELIVERY_RETRY_MAX_SECONDS, still at least half of it"
    assert delivery.status == Delivery.Status.RETRY_SCHEDULED
    assert delivery.attempt_count == 9


@pytest.mark.django_db
def test_redox_retry_after_is_honoured(partner, uploader):
    delivery = DeliveryFactory(
        order=OrderFactory(partner=partner, sending=True), created_by=uploader, created_at=T0, enqueue=True
    )

    with FakeRedox(transient(429, retry_after=900)).patch():
        delivery_send_once(delivery_id=delivery.pk, now=T0)

    delivery.refresh_from_db()
    assert delivery.next_attempt_at == T0 + timedelta(seconds=900)


@pytest.mark.django_db
def test_the_last_retry_is_at_the_max_age_and_a_failure_then_fails_the_delivery(partner, uploader):
    order = OrderFactory(partner=partner, sending=True)
    delivery = DeliveryFactory(order=order, created_by=uploader, created_at=T0, enqueue=True)
    deadline = T0 + timedelta(hours=24)
    almost = deadline - timedelta(seconds=10)
    Delivery.objects.filter(pk=delivery.pk).update(attempt_count=20)

    with FakeRedox(default=transient(503)).patch():
        delivery_send_once(delivery_id=delivery.pk, now=almost)
        delivery.refresh_from_db()
        assert delivery.status == Delivery.Status.RETRY_SCHEDULED
        assert delivery.next_attempt_at == deadline

        delivery_send_once(delivery_id=delivery.pk, now=deadline)

    delivery.refresh_from_db()
    order.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.next_attempt_at is None
    assert delivery.last_error == "Redox /endpoint: HTTP 503. Gave up after 22 attempts over 24 hours."
    assert order.state == Order.State.FAILED


@pytest.mark.django_db
def test_retry_after_beyond_the_max_age_still_gets_one_last_try_when_redox_allows(partner, uploader):
    delivery = DeliveryFactory(
        order=OrderFactory(partner=partner, sending=True), created_by=uploader, created_at=T0, enqueue=True
    )
    now = T0 + timedelta(hours=23, minutes=59)

    with FakeRedox(transient(429, retry_after=600)).patch():
        delivery_send_once(delivery_id=delivery.pk, now=now)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.RETRY_SCHEDULED
    assert delivery.next_attempt_at == now + timedelta(seconds=600)


@pytest.mark.django_db
def test_the_max_age_is_a_setting(partner, uploader, settings):
    settings.DELIVERY_MAX_AGE_HOURS = 1
    delivery = DeliveryFactory(
        order=OrderFactory(partner=partner, sending=True), created_by=uploader, created_at=T0, enqueue=True
    )

    with FakeRedox(transient(503)).patch():
        delivery_send_once(delivery_id=delivery.pk, now=T0 + timedelta(hours=1))

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED
    assert "Gave up after 1 attempt over 1 hour." in delivery.last_error
