"""The review step: the note's pages beside the patient's name, DOB and order id, a Send button
that creates the delivery, and a corrected-resend form that needs a reason."""

import pytest
from django.urls import reverse
from django.utils import timezone

from orders.models import AuditEvent, Delivery, Order
from tests.factories import ClinicalNoteFactory, DeliveryFactory, OrderFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def order(partner):
    return OrderFactory(partner=partner)


@pytest.fixture
def next_note(order, uploader):
    """A new note for an order whose earlier note was already sent."""
    DeliveryFactory(order=order, created_by=uploader, status=Delivery.Status.SENT)
    return ClinicalNoteFactory(order=order, uploaded_by=uploader)


def test_review_shows_the_note_beside_whose_order_it_is(client, uploader, order):
    note = ClinicalNoteFactory(order=order, uploaded_by=uploader)
    client.force_login(uploader)
    response = client.get(reverse("review_note", args=[note.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert f'<img src="{reverse("note_page", args=[note.pk, 1])}"' in html
    assert f'href="{reverse("note_pdf", args=[note.pk])}"' in html
    assert "<iframe" not in html
    for text in ("Samplepatient, Testy", "Feb 29, 1948", order.ehr_order_id, "clinical-note.pdf", note.sha256):
        assert text in html
    assert f'action="{reverse("send_note", args=[note.pk])}"' in html
    assert "Send to Cascade Health" in html


def test_send_button_posts_and_lands_on_the_timeline_with_a_claimable_delivery(client, uploader, order):
    note = ClinicalNoteFactory(order=order, uploaded_by=uploader)
    client.force_login(uploader)
    response = client.post(reverse("send_note", args=[note.pk]), follow=True)
    delivery = Delivery.objects.get()
    assert response.redirect_chain == [(reverse("order_detail", args=[order.pk]), 302)]
    assert (delivery.note, delivery.status) == (note, Delivery.Status.PENDING)
    # What a worker polling now would take: the delivery the Send button made.
    assert list(Delivery.objects.claimable(timezone.now())) == [delivery]
    html = response.content.decode()
    assert "The note is queued for delivery" in html
    assert '<span class="state state-pending">Pending</span>' in html
    order.refresh_from_db()
    assert order.state == Order.State.SENDING


def test_send_needs_post(client, uploader, order):
    note = ClinicalNoteFactory(order=order, uploaded_by=uploader)
    client.force_login(uploader)
    assert client.get(reverse("send_note", args=[note.pk])).status_code == 405
    assert not Delivery.objects.exists()


def test_second_send_is_refused_with_a_clear_message(client, uploader, order):
    DeliveryFactory(order=order, created_by=uploader)
    note = ClinicalNoteFactory(order=order, uploaded_by=uploader)
    client.force_login(uploader)
    review = client.get(reverse("review_note", args=[note.pk])).content.decode()
    assert "already on its way" in review
    assert reverse("send_note", args=[note.pk]) not in review

    response = client.post(reverse("send_note", args=[note.pk]), follow=True)
    assert response.redirect_chain[-1][0] == reverse("review_note", args=[note.pk])
    assert "already on its way" in response.content.decode()
    assert order.deliveries.count() == 1


def test_after_a_sent_note_the_review_offers_a_corrected_resend(client, uploader, next_note):
    client.force_login(uploader)
    html = client.get(reverse("review_note", args=[next_note.pk])).content.decode()
    assert reverse("send_note", args=[next_note.pk]) not in html
    assert f'action="{reverse("resend_note", args=[next_note.pk])}"' in html
    assert 'name="reason"' in html


def test_corrected_resend_without_a_reason_shows_the_error_next_to_the_field(client, uploader, order, next_note):
    client.force_login(uploader)
    response = client.post(reverse("resend_note", args=[next_note.pk]), {"reason": "  "})
    assert response.status_code == 400
    assert '<p class="error" id="id_reason_error">Give a reason.</p>' in response.content.decode()
    assert order.deliveries.count() == 1


def test_corrected_resend_with_a_reason_is_sent_and_recorded(client, uploader, order, next_note):
    client.force_login(uploader)
    response = client.post(reverse("resend_note", args=[next_note.pk]), {"reason": "Signed copy replaces draft"})
    assert response.status_code == 302
    delivery = Delivery.objects.get(note=next_note)
    assert delivery.is_correction and delivery.correction_reason == "Signed copy replaces draft"
    assert AuditEvent.objects.filter(action=AuditEvent.Action.RESEND_NOTE, outcome="success").count() == 1
    html = client.get(reverse("order_detail", args=[order.pk])).content.decode()
    assert "Corrected resend" in html and "Signed copy replaces draft" in html


def test_review_of_a_sent_note_shows_its_delivery(client, uploader, order):
    delivery = DeliveryFactory(order=order, created_by=uploader, status=Delivery.Status.RETRY_SCHEDULED)
    client.force_login(uploader)
    html = client.get(reverse("review_note", args=[delivery.note.pk])).content.decode()
    assert "This note was sent for delivery" in html
    assert '<span class="state state-retry_scheduled">Retry scheduled</span>' in html


def test_review_for_a_cancelled_order_has_no_send_button(client, uploader, order):
    note = ClinicalNoteFactory(order=order, uploaded_by=uploader)
    Order.objects.filter(pk=order.pk).update(state=Order.State.CANCELLED)
    client.force_login(uploader)
    html = client.get(reverse("review_note", args=[note.pk])).content.decode()
    assert "This order was cancelled, so it takes no new notes." in html
    assert reverse("send_note", args=[note.pk]) not in html
