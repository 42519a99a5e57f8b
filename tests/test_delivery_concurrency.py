"""Two workers never send the same delivery at once (row lock with SKIP LOCKED, on PostgreSQL)."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction

from orders.delivery import delivery_send_once
from orders.models import Delivery
from tests.delivery_fakes import T0, FakeRedox, accepted
from tests.factories import DeliveryFactory, OrderFactory

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="row locks (SELECT ... FOR UPDATE SKIP LOCKED) need PostgreSQL; set DATABASE_URL",
    ),
]

NOW = T0 + timedelta(seconds=5)


def in_thread(target, *args):
    """Run `target` in a thread with its own database connection, closed afterwards."""
    outcome = {}

    def run():
        try:
            outcome["value"] = target(*args)
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_an_attempt_skips_a_delivery_another_worker_has_locked(partner, uploader):
    delivery = DeliveryFactory(
        order=OrderFactory(partner=partner, sending=True), created_by=uploader, created_at=T0, enqueue=True
    )
    locked = threading.Event()
    release = threading.Event()

    def other_worker_holds_the_row():
        with transaction.atomic():
            Delivery.objects.select_for_update().get(pk=delivery.pk)
            locked.set()
            release.wait(timeout=10)

    holder, _ = in_thread(other_worker_holds_the_row)
    assert locked.wait(timeout=10)
    fake = FakeRedox()
    try:
        with fake.patch():
            # Without SKIP LOCKED this would wait for the other transaction instead.
            result = delivery_send_once(delivery_id=delivery.pk, now=NOW)
    finally:
        release.set()
        holder.join()

    assert result is None
    assert fake.messages == []
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.PENDING
    assert delivery.attempt_count == 0


def test_workers_racing_for_the_same_deliveries_send_each_exactly_once(partner, uploader):
    deliveries = [
        DeliveryFactory(
            order=OrderFactory(partner=partner, ehr_order_id=f"race-{n}", sending=True),
            created_by=uploader,
            created_at=T0,
            enqueue=True,
        )
        for n in range(8)
    ]
    workers = 4
    in_flight = {}
    overlaps = []
    guard = threading.Lock()

    def slow_accept(message):
        ref = message["Orders"][0]["ApplicationOrderID"]
        with guard:
            in_flight[ref] = in_flight.get(ref, 0) + 1
            if in_flight[ref] > 1:
                overlaps.append(ref)
        threading.Event().wait(0.05)
        with guard:
            in_flight[ref] -= 1
        return accepted()

    fake = FakeRedox(default=slow_accept)
    with fake.patch():
        for delivery in deliveries:
            barrier = threading.Barrier(workers)

            def attempt(delivery_id=delivery.pk, barrier=barrier):
                barrier.wait(timeout=10)
                return delivery_send_once(delivery_id=delivery_id, now=NOW)

            threads = [in_thread(attempt) for _ in range(workers)]
            for thread, _ in threads:
                thread.join()
            assert all("error" not in outcome for _, outcome in threads), [o.get("error") for _, o in threads]
            assert sum(outcome["value"] is not None for _, outcome in threads) == 1

    assert overlaps == []
    assert sorted(fake.sends_per_delivery.values()) == [1] * len(deliveries)
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.SENT}
    assert set(Delivery.objects.values_list("attempt_count", flat=True)) == {1}
