"""Drill: `kill -9` a worker in the middle of a send, start another. Nothing is lost, and Redox
gets at most one extra copy, carrying the same delivery id.

Run by `make test` on PostgreSQL and by `make drills`. The lease here is 3 s (production: 60 s,
DELIVERY_LEASE_SECONDS), so the second worker takes the delivery over within seconds.
"""

import time

import pytest
from django.db import connection
from django.utils import timezone

from orders.delivery import WORKER_LOST_ERROR
from orders.models import Delivery, DeliveryAttempt, Order
from tests.drill_support import (
    accepted_refs,
    database_url,
    requires_postgresql,
    sandbox,
    start_worker,
    wait_for,
    worker_env,
)
from tests.factories import DeliveryFactory, OrderFactory

pytestmark = [
    pytest.mark.drill,
    requires_postgresql,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_a_worker_killed_mid_send_is_replaced_without_loss_and_at_most_one_extra_copy(partner, uploader, tmp_path):
    order = OrderFactory(partner=partner, sending=True)
    delivery = DeliveryFactory(order=order, created_by=uploader, created_at=timezone.now(), enqueue=True)
    ref = f"hcoint-delivery-{delivery.pk}"
    processes = []
    with sandbox(hold_first_send=True) as redox:
        env = worker_env(database_url(connection.settings_dict), redox)
        try:
            first = start_worker("worker-1", env, tmp_path)
            processes.append(first)
            wait_for("the first worker's send to reach Redox", redox.held.is_set, timeout=30, alive=[first])

            # Mid-send, the row is the first worker's, and its heartbeat keeps the 3 s lease alive.
            claimed = Delivery.objects.get(pk=delivery.pk)
            assert claimed.status == Delivery.Status.SENDING
            time.sleep(4)
            renewed = Delivery.objects.get(pk=delivery.pk)
            assert renewed.status == Delivery.Status.SENDING and renewed.attempt_count == 1
            assert renewed.lease_expires_at > claimed.lease_expires_at, "the lease is renewed while sending"

            first.kill_hard()
            killed_at = time.monotonic()
            # Redox receives the message the dead worker sent: the copy nobody recorded.
            redox.release.set()
            wait_for("Redox to accept the dead worker's message", lambda: accepted_refs(redox), timeout=10)

            second = start_worker("worker-2", env, tmp_path)
            processes.append(second)
            wait_for(
                "the second worker to deliver",
                lambda: Delivery.objects.get(pk=delivery.pk).status == Delivery.Status.SENT,
                timeout=30,
                alive=[second],
            )
            recovered_in = time.monotonic() - killed_at
            assert second.terminate() == 0, second.tail()
        finally:
            for process in processes:
                process.stop()

        refs = accepted_refs(redox)

    assert refs == [ref, ref], "the lost send and its replacement: one extra copy, same delivery id"
    assert recovered_in < 30
    delivery.refresh_from_db()
    order.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT
    assert order.state == Order.State.SENT
    assert [(a.outcome, a.error) for a in delivery.attempts.all()] == [
        (DeliveryAttempt.Outcome.TRANSIENT, WORKER_LOST_ERROR),
        (DeliveryAttempt.Outcome.SENT, ""),
    ]
    assert "delivery.lease_expired" in second.output()
