"""One successful send costs a fixed, small number of queries: the worker's send path reads
each row it needs once (orders/delivery.py, orders/delivery_log.py)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orders.delivery import delivery_send_once
from orders.models import Delivery
from tests.delivery_fakes import T0, FakeRedox, accepted
from tests.factories import DeliveryFactory, OrderFactory

pytestmark = pytest.mark.django_db

NOW = T0 + timedelta(seconds=5)


def test_one_successful_send_reads_each_row_once(partner, uploader):
    order = OrderFactory(partner=partner, sending=True)
    delivery = DeliveryFactory(order=order, created_by=uploader, created_at=T0, enqueue=True)
    with FakeRedox(accepted()).patch(), CaptureQueriesContext(connection) as captured:
        delivery_send_once(delivery_id=delivery.pk, now=NOW)
    assert Delivery.objects.get(pk=delivery.pk).status == Delivery.Status.SENT
    sent = statements(captured)
    # Claim: the delivery with its note (no content), the order's lock with its state and
    # purge mark, two updates. Send: the order with its partner, the PDF's one piece.
    # Outcome: the delivery with its order, the attempt, two updates. (Fourteen before.)
    assert len(sent) == 10, "\n".join(sent)
    assert not [sql for sql in sent if sql.startswith('SELECT 1 AS "a"')]  # no separate retention checks
    assert not [sql for sql in sent if sql.startswith('SELECT "orders_order"."partner_id"')]  # none to log
    # The note is joined into the claim and not read again; its PDF is read once, a piece per query.
    assert not [sql for sql in sent if sql.startswith('SELECT "orders_clinicalnote"')]
    pieces = [sql for sql in sent if 'FROM "orders_notechunk"' in sql]
    assert len(pieces) == 1 and pieces[0].startswith('SELECT "orders_notechunk"."data" AS "data" FROM')
    if connection.features.has_select_for_update_of:
        # Only the delivery rows are locked by the joined queries; the order's own lock is separate.
        locked = [sql for sql in sent if "FOR UPDATE" in sql and 'FROM "orders_delivery"' in sql]
        assert len(locked) == 2
        assert all('FOR UPDATE OF "orders_delivery"' in sql for sql in locked)


def statements(captured):
    return [q["sql"] for q in captured.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
