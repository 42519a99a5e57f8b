"""A cancelled order takes no new notes: neither an upload nor a send, each with a clear message."""

import pytest

from orders import notes
from orders.models import AuditEvent, ClinicalNote, Delivery, Order
from tests.conftest import sample_bytes
from tests.factories import ClinicalNoteFactory, OrderFactory

pytestmark = pytest.mark.django_db


def test_send_refused_for_a_cancelled_order(partner, uploader):
    order = OrderFactory(partner=partner)
    note = ClinicalNoteFactory(order=order, uploaded_by=uploader)
    Order.objects.filter(pk=order.pk).update(state=Order.State.CANCELLED)
    with pytest.raises(notes.NoteRefused) as refused:
        notes.note_send(note=note, user=uploader)
    assert refused.value.message == "This order was cancelled, so it takes no new notes."
    assert not Delivery.objects.exists()


def test_corrected_resend_refused_for_a_cancelled_order(partner, uploader):
    order = OrderFactory(partner=partner, state=Order.State.CANCELLED)
    with pytest.raises(notes.NoteRefused) as refused:
        notes.note_send(
            note=ClinicalNoteFactory(order=order, uploaded_by=uploader), user=uploader, correction_reason="Corrected"
        )
    assert refused.value.message == notes.CANCELLED


def test_upload_refused_for_a_cancelled_order(partner, uploader):
    order = OrderFactory(partner=partner, state=Order.State.CANCELLED)
    with pytest.raises(notes.NoteRefused) as refused:
        notes.note_upload(
            order=order, file_name="note.pdf", content=sample_bytes("clinical-note.pdf"), page_count=1, user=uploader
        )
    assert refused.value.message == notes.CANCELLED
    assert not ClinicalNote.objects.exists()
    event = AuditEvent.objects.get(action=AuditEvent.Action.UPLOAD_NOTE)
    assert event.outcome == AuditEvent.Outcome.FAILURE


def test_cancellation_between_upload_and_send_is_caught_at_send(partner, uploader):
    order = OrderFactory(partner=partner)
    note = notes.note_upload(
        order=order, file_name="note.pdf", content=sample_bytes("clinical-note.pdf"), page_count=1, user=uploader
    )
    order.cancel()
    order.save()
    with pytest.raises(notes.NoteRefused):
        notes.note_send(note=note, user=uploader)
