"""Simultaneous deliveries of one message have exactly one effect (real transactions, PostgreSQL)."""

import json
import threading

import pytest
from django.db import connection, connections
from django.test import Client

from orders.models import InboundMessage, Order
from tests.conftest import PARTNER_TOKEN, sample_json
from tests.factories import PartnerFactory

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: SQLite serialises every writer, so there is no race to prove",
    ),
    # serialized_rollback: restore the migrated data (roles, content types) afterwards, as the
    # other transactional tests expect, instead of leaving a flushed database behind.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

THREADS = 6


def post_together(bodies):
    """Post each body from its own thread and connection, all released at the same moment."""
    barrier = threading.Barrier(len(bodies))
    statuses = [None] * len(bodies)

    def post(index, body):
        try:
            client = Client()
            barrier.wait(timeout=30)
            response = client.post(
                "/redox/webhook/", body, content_type="application/json", headers={"verification-token": PARTNER_TOKEN}
            )
            statuses[index] = response.status_code
        finally:
            connections.close_all()

    threads = [threading.Thread(target=post, args=(i, body)) for i, body in enumerate(bodies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return statuses


def test_the_same_message_delivered_simultaneously_is_stored_and_applied_once(caplog):
    PartnerFactory(name="Race Hospital", token=PARTNER_TOKEN)
    body = json.dumps(sample_json("order-new.json")).encode()
    statuses = post_together([body] * THREADS)
    assert statuses == [200] * THREADS
    message = InboundMessage.objects.get()
    assert message.times_seen == THREADS
    assert message.status == InboundMessage.Status.PROCESSED
    order = Order.objects.get()
    assert list(message.orders.all()) == [order]
    created = [r for r in caplog.records if getattr(r, "event", None) == "order.created"]
    assert len(created) == 1


def test_different_messages_for_one_unseen_order_at_once_make_one_order():
    PartnerFactory(name="Race Hospital", token=PARTNER_TOKEN)
    bodies = []
    for index in range(THREADS):
        data = sample_json("order-update.json")
        data["Meta"]["Logs"][0]["ID"] = f"log-{index}"
        data["Meta"]["EventDateTime"] = f"2026-10-06T09:30:0{index}.000Z"
        data["Order"]["Comments"] = f"comment {index}"
        bodies.append(json.dumps(data).encode())
    statuses = post_together(bodies)
    assert statuses == [200] * THREADS
    assert InboundMessage.objects.filter(status=InboundMessage.Status.PROCESSED).count() == THREADS
    order = Order.objects.get()
    assert order.messages.count() == THREADS
    # Whatever the arrival order, the newest event's data wins.
    assert order.comments == f"comment {THREADS - 1}"
