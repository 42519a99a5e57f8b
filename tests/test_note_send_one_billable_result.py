"""One billable result per order: a send is refused while another delivery for the order
is pending, sending, retry-scheduled or sent; a failed or abandoned one does not count."""

import logging
from unittest import mock

import pytest
from django.utils import timezone

from orders import notes
from orders.models import AuditEvent, Delivery, Order
from tests.factories import ClinicalNoteFactory, DeliveryFactory, OrderFactory

pytestmark = pytest.mark.django_db


def queued(caplog):
    """The deliveries announced to the workers (delivery_enqueue's `delivery.queued` events)."""
    return [record.delivery_id for record in caplog.records if getattr(record, "event", None) == "delivery.queued"]


def test_send_creates_a_claimable_delivery_and_wakes_the_workers_once_committed(
    uploader, partner, caplog, django_capture_on_commit_callbacks
):
    order = OrderFactory(partner=partner)
    note = ClinicalNoteFactory(order=order, uploaded_by=uploader)

    with caplog.at_level(logging.INFO, logger="orders.delivery"), django_capture_on_commit_callbacks() as on_commit:
        delivery = notes.note_send(note=note, user=uploader)

    assert delivery.status == Delivery.Status.PENDING
    assert delivery.note == note and delivery.order == order and delivery.created_by == uploader
    assert not delivery.is_correction
    # The row is the queue: a worker polling now takes it, woken or not.
    assert list(Delivery.objects.claimable(timezone.now())) == [delivery]
    assert queued(caplog) == [delivery.pk]
    assert [callback.__name__ for callback in on_commit] == ["wake_workers"]
    order.refresh_from_db()
    assert order.state == Order.State.SENDING


def test_send_is_audited(uploader, partner):
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
def test_send_refused_while_a_delivery_is_in_flight(uploader, partner, caplog, status):
    order = OrderFactory(partner=partner)
    DeliveryFactory(order=order, created_by=uploader, status=status)
    with pytest.raises(notes.NoteRefused) as refused:
        notes.note_send(note=ClinicalNoteFactory(order=order, uploaded_by=uploader), user=uploader)
    assert refused.value.message == notes.IN_FLIGHT_REFUSAL
    assert order.deliveries.count() == 1
    assert queued(caplog) == []


def test_send_refused_once_a_note_was_sent(uploader, partner):
    order = OrderFactory(partner=partner, state=Order.State.SENT)
    DeliveryFactory(order=order, created_by=uploader, status=Delivery.Status.SENT)
    with pytest.raises(notes.NoteRefused) as refused:
        notes.note_send(note=ClinicalNoteFactory(order=order, uploaded_by=uploader), user=uploader)
    assert refused.value.message == notes.ALREADY_SENT
    assert "corrected resend" in refused.value.message
    assert order.deliveries.count() == 1


def test_refused_send_is_audited_as_a_failure(uploader, partner):
    order = OrderFactory(partner=partner)
    DeliveryFactory(order=order, created_by=uploader)
    note = ClinicalNoteFactory(order=order, uploaded_by=uploader)
    with pytest.raises(notes.NoteRefused):
        notes.note_send(note=note, user=uploader)
    event = AuditEvent.objects.get(action=AuditEvent.Action.SEND_NOTE)
    assert event.outcome == AuditEvent.Outcome.FAILURE
    assert (event.object_type, event.object_id, event.order) == ("clinicalnote", str(note.pk), order)


@pytest.mark.parametrize("status", [Delivery.Status.FAILED, Delivery.Status.ABANDONED])
def test_send_allowed_after_a_failed_or_abandoned_delivery(uploader, partner, status):
    order = OrderFactory(partner=partner, state=Order.State.FAILED)
    DeliveryFactory(order=order, created_by=uploader, status=status)
    delivery = notes.note_send(note=ClinicalNoteFactory(order=order, uploaded_by=uploader), user=uploader)
    assert delivery.status == Delivery.Status.PENDING
    assert not delivery.is_correction


def test_the_same_note_cannot_be_sent_twice(uploader, partner):
    order = OrderFactory(partner=partner)
    note = ClinicalNoteFactory(order=order, uploaded_by=uploader)
    first = notes.note_send(note=note, user=uploader)
    Delivery.objects.filter(pk=first.pk).update(status=Delivery.Status.ABANDONED)
    with pytest.raises(notes.NoteRefused) as refused:
        notes.note_send(note=note, user=uploader)
    assert refused.value.message == notes.NOTE_ALREADY_SENT


def test_database_constraint_refusal_gets_the_same_clear_message(uploader, partner):
    """Two sends racing past the checks: the partial unique constraint stops the second."""
    order = OrderFactory(partner=partner)
    DeliveryFactory(order=order, created_by=uploader, status=Delivery.Status.PENDING)
    note = ClinicalNoteFactory(order=order, uploaded_by=uploader)
    with mock.patch("orders.notes.note_send_blocker", return_value=None), pytest.raises(notes.NoteRefused) as refused:
        notes.note_send(note=note, user=uploader)
    assert refused.value.message == notes.IN_FLIGHT_REFUSAL
    assert order.deliveries.count() == 1


def test_a_failure_to_queue_leaves_no_delivery_behind(uploader, partner):
    """The delivery, the order's state and the audit row are one transaction with the queueing."""
    order = OrderFactory(partner=partner)
    note = ClinicalNoteFactory(order=order, uploaded_by=uploader)
    failing = mock.patch("orders.notes.delivery_enqueue", autospec=True, side_effect=RuntimeError("queue unavailable"))
    with failing, pytest.raises(RuntimeError, match="queue unavailable"):
        notes.note_send(note=note, user=uploader)
    assert not Delivery.objects.exists()
    order.refresh_from_db()
    assert order.state == Order.State.AWAITING_NOTE
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SEND_NOTE).exists()
