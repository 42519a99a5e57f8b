"""A corrected resend is the only way to send a second note for an order, and it needs a reason."""

import pytest
from django.utils import timezone

from orders import notes
from orders.models import AuditEvent, Delivery, Order
from tests.factories import ClinicalNoteFactory, DeliveryFactory, OrderFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent_order(partner, uploader):
    order = OrderFactory(partner=partner, state=Order.State.SENT)
    DeliveryFactory(order=order, created_by=uploader, status=Delivery.Status.SENT)
    return order


def test_corrected_resend_after_a_sent_note_records_the_reason(sent_order, uploader):
    note = ClinicalNoteFactory(order=sent_order, uploaded_by=uploader)
    delivery = notes.note_send(note=note, user=uploader, correction_reason="  Wrong visit date on page 2.  ")
    assert delivery.is_correction
    assert delivery.correction_reason == "Wrong visit date on page 2."
    assert delivery.status == Delivery.Status.PENDING
    assert list(Delivery.objects.claimable(timezone.now())) == [delivery]
    sent_order.refresh_from_db()
    assert sent_order.state == Order.State.SENDING


def test_corrected_resend_is_audited_as_a_resend(sent_order, uploader):
    delivery = notes.note_send(
        note=ClinicalNoteFactory(order=sent_order, uploaded_by=uploader), user=uploader, correction_reason="Corrected"
    )
    event = AuditEvent.objects.get(action=AuditEvent.Action.RESEND_NOTE)
    assert (event.object_id, event.order, event.outcome) == (str(delivery.pk), sent_order, AuditEvent.Outcome.SUCCESS)


@pytest.mark.parametrize("reason", ["", "   "])
def test_corrected_resend_without_a_reason_is_refused(sent_order, uploader, reason):
    with pytest.raises(notes.NoteRefused) as refused:
        notes.note_send(
            note=ClinicalNoteFactory(order=sent_order, uploaded_by=uploader), user=uploader, correction_reason=reason
        )
    assert refused.value.message == notes.REASON_REQUIRED
    assert sent_order.deliveries.count() == 1


def test_corrected_resend_waits_while_another_delivery_is_in_flight(sent_order, uploader):
    DeliveryFactory(order=sent_order, created_by=uploader, status=Delivery.Status.RETRY_SCHEDULED, is_correction=True)
    with pytest.raises(notes.NoteRefused) as refused:
        notes.note_send(
            note=ClinicalNoteFactory(order=sent_order, uploaded_by=uploader), user=uploader, correction_reason="Again"
        )
    assert refused.value.message == notes.IN_FLIGHT_REFUSAL
    assert sent_order.deliveries.count() == 2


def test_plain_send_after_a_correction_is_still_refused(sent_order, uploader):
    notes.note_send(
        note=ClinicalNoteFactory(order=sent_order, uploaded_by=uploader), user=uploader, correction_reason="Corrected"
    )
    Delivery.objects.filter(is_correction=True).update(status=Delivery.Status.SENT)
    with pytest.raises(notes.NoteRefused) as refused:
        notes.note_send(note=ClinicalNoteFactory(order=sent_order, uploaded_by=uploader), user=uploader)
    assert refused.value.message == notes.ALREADY_SENT
