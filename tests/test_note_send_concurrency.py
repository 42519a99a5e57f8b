"""Two people pressing Send for the same order at the same moment: exactly one delivery."""

import threading
from unittest import mock

import pytest
from django.db import close_old_connections, connection

from orders import notes
from orders.models import Delivery
from tests.factories import ClinicalNoteFactory, OrderFactory

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL's row locks and concurrent transactions"
)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_sends_for_one_order_create_one_delivery(partner, uploader):
    order = OrderFactory(partner=partner)
    first, second = (
        ClinicalNoteFactory(order=order, uploaded_by=uploader),
        ClinicalNoteFactory(order=order, uploaded_by=uploader),
    )
    barrier = threading.Barrier(2)
    outcomes = []

    def send(note):
        try:
            barrier.wait(timeout=10)
            notes.note_send(note=note, user=uploader)
            outcomes.append("sent")
        except notes.NoteRefused as refused:
            outcomes.append(refused.reason)
        finally:
            close_old_connections()
            connection.close()

    with mock.patch("orders.notes.delivery_enqueue", autospec=True):
        threads = [threading.Thread(target=send, args=(note,)) for note in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

    assert sorted(outcomes) == ["in_flight", "sent"]
    assert Delivery.objects.filter(order=order).count() == 1
