"""One billable result per order: a send is refused while another delivery for the order
is pending, sending, retry-scheduled or sent; a failed or abandoned one does not count."""

from unittest import mock

import pytest
from django.db import connection

from orders import notes
from orders.models import AuditEvent, Delivery, Order
from tests.factories import ClinicalNoteFactory, DeliveryFactory, OrderFactory

pytestmark = pytest.mark.django_db


def test_send_creates_a_pending_delivery_and_queues_it_in_the_same_transaction(uploader, partner, enqueue):
    order = OrderFactory(partner=partner)
    note = ClinicalNoteFactory(order=order, uploaded_by=uploader)

    seen = {}

    def check(*, delivery):
        seen["in_transaction"] = connection.in_atomic_block
        seen["row_visible"] = Delivery.objects.filter(pk=delivery.pk).exists()

    enqueue.side_effect = check
    delivery = notes.note_send(note=note, user=uploader)

    assert delivery.status == Delivery.Status.PENDING
    assert delivery.note == note and delivery.order == order and delivery.created_by == uploader
    assert not delivery.is_correction
    enqueue.assert_called_once_with(delivery=delivery)
    assert seen == {"in_transaction": True, "row_visible": True}
    order.refresh_from_db()
    assert order.state == Order.State.SENDING


def test_send_is_audited(uploader, partner, enqueue):
    order = OrderFactory(partner=partner)
    delivery = notes.note_send(note=ClinicalNoteFactory(order=order, uploaded_by=uploader), user=uploader)
    event = AuditEvent.objects.get(action=AuditEvent.Action.SEND_NOTE)
    assert (event.actor, event.object_type, event.object_id, event.order) == (
        uploader,
        "delivery",
        str(delivery.pk),
        order,
    )
    assert event.outcome == AuditEvent.Outcome.SUCCESS


@pytest.mark.parametrize("status", [Delivery.Status.PENDING, Delivery.Status.SENDING, Delivery.Status.RETRY_SCHEDULED])
def test_send_refused_while_a_delivery_is_in_flight(uploader, partner, enqueue, status):
    order = OrderFactory(partner=partner)
    DeliveryFactory(order=order, created_by=uploader, status=status)
    with pytest.raises(notes.NoteRefused) as refused:
        notes.note_send(note=ClinicalNoteFactory(order=order, uploaded_by=uploader), user=uploader)
    assert refused.value.message == notes.IN_FLIGHT_REFUSAL
    assert order.deliveries.count() == 1
    enqueue.assert_not_called()


def test_send_refused_once_a_note_was_sent(uploader, partner, enqueue):
    order = OrderFactory(partner=partner, state=Order.State.SENT)
    DeliveryFactory(order=order, created_by=uploader, status=Delivery.Status.SENT)
    with pytest.raises(notes.NoteRefused) as refused:
        notes.note_send(note=ClinicalNoteFactory(order=order, uploaded_by=uploader), user=uploader)
    assert refused.value.message == notes.ALREADY_SENT
    assert "corrected resend" in refused.value.message
    assert order.deliveries.count() == 1


def test_refused_send_is_audited_as_a_failure(uploader, partner, enqueue):
    order = OrderFactory(partner=partner)
    DeliveryFactory(order=order, created_by=uploader)
    note = ClinicalNoteFactory(order=order, uploaded_by=uploader)
    with pytest.raises(notes.NoteRefused):
        notes.note_send(note=note, user=uploader)
    event = AuditEvent.objects.get(action=AuditEvent.Action.SEND_NOTE)
    assert event.outcome == AuditEvent.Outcome.FAILURE
    assert (event.object_type, event.object_id, event.order) == ("clinicalnote", str(note.pk), order)


@pytest.mark.parametrize("status", [Delivery.Status.FAILED, Delivery.Status.ABANDONED])
def test_send_allowed_after_a_failed_or_abandoned_delivery(uploader, partner, enqueue, status):
    order = OrderFactory(partner=partner, state=Order.State.FAILED)
    DeliveryFactory(order=order, created_by=uploader, status=status)
    delivery = notes.note_send(note=ClinicalNoteFactory(order=order, uploaded_by=uploader), user=uploader)
    assert delivery.status == Delivery.Status.PENDING
    assert not delivery.is_correction


def test_the_same_note_cannot_be_sent_twice(uploader, partner, enqueue):
    order = OrderFactory(partner=partner)
    note = ClinicalNoteFactory(order=order, uploaded_by=uploader)
    first = notes.note_send(note=note, user=uploader)
    Delivery.objects.filter(pk=first.pk).update(status=Delivery.Status.ABANDONED)
    with pytest.raises(notes.NoteRefused) as refused:
        notes.note_send(note=note, user=uploader)
    assert refused.value.message == notes.NOTE_ALREADY_SENT


def test_database_constraint_refusal_gets_the_same_clear_message(uploader, partner, enqueue):
    """Two sends racing past the checks: the partial unique constraint stops the second."""
    order = OrderFactory(partner=partner)
    DeliveryFactory(order=order, created_by=uploader, status=Delivery.Status.PENDING)
    note = ClinicalNoteFactory(order=order, uploaded_by=uploader)
    with mock.patch("orders.notes.note_send_blocker", return_value=None), pytest.raises(notes.NoteRefused) as refused:
        notes.note_send(note=note, user=uploader)
    assert refused.value.message == notes.IN_FLIGHT_REFUSAL
    assert order.deliveries.count() == 1


def test_a_failure_to_queue_leaves_no_delivery_behind(uploader, partner, enqueue):
    order = OrderFactory(partner=partner)
    note = ClinicalNoteFactory(order=order, uploaded_by=uploader)
    enqueue.side_effect = RuntimeError("queue unavailable")
    with pytest.raises(RuntimeError):
        notes.note_send(note=note, user=uploader)
    assert not Delivery.objects.exists()
    order.refresh_from_db()
    assert order.state == Order.State.AWAITING_NOTE
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SEND_NOTE).exists()
