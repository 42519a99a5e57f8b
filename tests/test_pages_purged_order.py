"""Pages keep working on what the retention purge emptied, say what was removed and when, and
refuse cleanly (410, or a message) whatever needs the removed bytes."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from orders.delivery import DeliveryError, delivery_retry_now, delivery_send_once
from orders.models import AuditEvent, ClinicalNote, Delivery, InboundMessage, NotePreview, Order
from orders.notes import NoteRefused, note_send
from orders.retention import PDF_REMOVED, purge
from tests.factories import ClinicalNoteFactory, DeliveryFactory, InboundMessageFactory, OrderFactory

pytestmark = pytest.mark.django_db

LONG_AGO = timezone.now() - timedelta(days=3000)


@pytest.fixture
def purged(partner, uploader):
    """A filed order whose patient details, PDFs and raw message were all removed."""
    order = OrderFactory(partner=partner)
    filed = DeliveryFactory(
        order=order, created_by=uploader, sent=True, status=Delivery.Status.FILED, confirmed_at=LONG_AGO
    )
    unsent = ClinicalNoteFactory(order=order, uploaded_by=uploader, file_name="second-draft.pdf")
    message = InboundMessageFactory(partner=partner)
    message.orders.set([order])
    Order.objects.filter(pk=order.pk).update(state=Order.State.FILED, updated_at=LONG_AGO)
    InboundMessage.objects.filter(pk=message.pk).update(last_seen_at=LONG_AGO)
    counts = purge()
    assert counts["orders"] == 1 and counts["notes"] == 2 and counts["messages"] == 1
    order.refresh_from_db()
    return {"order": order, "filed": filed, "unsent": unsent, "message": message}


def test_the_order_page_says_what_was_removed_and_when(client, uploader, purged):
    client.force_login(uploader)
    order = purged["order"]
    response = client.get(reverse("order_detail", args=[order.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    day = f"{timezone.localtime(order.patient_purged_at):%b} {timezone.localtime(order.patient_purged_at).day}"
    assert f"Patient details removed on {day}" in page
    assert "under the 365-day retention" in page
    assert page.count("PDF removed on") == 2
    assert "under the 90-day retention" in page
    assert "Raw message removed on" in page
    # No link to bytes that are gone, and the removed note is not offered for sending.
    assert reverse("note_pdf", args=[purged["unsent"].pk]) not in page
    assert reverse("review_note", args=[purged["unsent"].pk]) not in page
    assert "Uploaded but not sent" not in page
    assert "Samplepatient" not in page


def test_the_order_list_and_the_reconcile_page_show_purged_orders(client, uploader, purged):
    client.force_login(uploader)
    page = client.get(reverse("order_list")).content.decode()
    assert "(patient details removed)" in page
    assert client.get(reverse("reconcile")).status_code == 200
    searched = client.get(reverse("order_list"), {"q": "Samplepatient"})
    assert searched.status_code == 200
    assert reverse("order_detail", args=[purged["order"].pk]) not in searched.content.decode()


@pytest.mark.parametrize("view", ["note_pdf", "note_download"])
def test_a_removed_pdf_answers_410_with_a_page_that_says_so(client, viewer, purged, view):
    client.force_login(viewer)
    note = purged["filed"].note
    response = client.get(reverse(view, args=[note.pk]))
    assert response.status_code == 410
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "This PDF was removed" in page
    assert "90-day retention" in page
    event = AuditEvent.objects.filter(object_type="clinicalnote", object_id=str(note.pk)).latest("id")
    assert event.outcome == AuditEvent.Outcome.FAILURE


def test_the_purge_takes_a_notes_page_images_with_its_pdf(client, viewer, partner, uploader):
    """A page image shows what the PDF shows: it must not outlive the PDF's retention."""
    order = OrderFactory(partner=partner)
    delivery = DeliveryFactory(
        order=order, created_by=uploader, sent=True, status=Delivery.Status.FILED, confirmed_at=LONG_AGO
    )
    client.force_login(viewer)
    page_url = reverse("note_page", args=[delivery.note.pk, 1])
    assert client.get(page_url).status_code == 200
    assert NotePreview.objects.filter(note=delivery.note).exists()

    assert purge()["notes"] == 1

    assert not NotePreview.objects.filter(note=delivery.note).exists()
    response = client.get(page_url)
    assert response.status_code == 410
    assert response.content.decode() == PDF_REMOVED


def test_the_review_page_of_a_removed_note_renders_without_the_pdf_and_refuses_to_send(client, uploader, purged):
    client.force_login(uploader)
    note = purged["unsent"]
    response = client.get(reverse("review_note", args=[note.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "PDF removed on" in page
    assert reverse("note_pdf", args=[note.pk]) not in page
    assert "patient details were removed under the retention rules" in page
    response = client.post(reverse("send_note", args=[note.pk]))
    assert response.status_code == 302
    assert not Delivery.objects.filter(note=note).exists()


def test_sending_a_removed_pdf_is_refused_even_on_an_open_order(uploader, partner):
    note = ClinicalNoteFactory(order=OrderFactory(partner=partner), uploaded_by=uploader)
    ClinicalNote.objects.filter(pk=note.pk).update(content=b"", content_purged_at=timezone.now())
    note.refresh_from_db()
    with pytest.raises(NoteRefused) as refused:
        note_send(note=note, user=uploader)
    assert refused.value.message == PDF_REMOVED
    with pytest.raises(NoteRefused):
        note_send(note=note, user=uploader, correction_reason="Wrong page")
    assert not Delivery.objects.filter(note=note).exists()


def test_retrying_a_delivery_whose_pdf_was_removed_is_refused(admin_user, partner):
    delivery = DeliveryFactory(order=OrderFactory(partner=partner), failed=True)
    ClinicalNote.objects.filter(pk=delivery.note_id).update(content=b"", content_purged_at=timezone.now())
    with pytest.raises(DeliveryError, match="removed under the retention rules"):
        delivery_retry_now(delivery=delivery, user=admin_user)
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED


def test_a_queued_delivery_whose_pdf_is_gone_fails_with_a_reason_instead_of_sending(partner):
    delivery = DeliveryFactory(order=OrderFactory(partner=partner, sending=True))
    ClinicalNote.objects.filter(pk=delivery.note_id).update(content=b"", content_purged_at=timezone.now())
    assert delivery_send_once(delivery_id=delivery.pk) is None
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.last_error == PDF_REMOVED
    assert delivery.attempt_count == 0


def test_the_admin_pages_render_for_purged_records(client, admin_user, purged):
    client.force_login(admin_user)
    order_page = client.get(reverse("admin:orders_order_change", args=[purged["order"].pk]))
    assert order_page.status_code == 200
    message_page = client.get(reverse("admin:orders_inboundmessage_change", args=[purged["message"].pk]))
    assert message_page.status_code == 200
    assert "Removed on" in message_page.content.decode()
    note_page = client.get(reverse("admin:orders_clinicalnote_change", args=[purged["unsent"].pk]))
    assert note_page.status_code == 200
