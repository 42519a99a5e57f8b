"""The review page fetches the note's delivery once: it shows it, and the same row decides
between Send, a corrected resend and an explanation (notes.note_send_blocker)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from orders import notes
from tests.factories import ClinicalNoteFactory, DeliveryFactory, OrderFactory

pytestmark = pytest.mark.django_db


def note_delivery_queries(client, note):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(reverse("review_note", args=[note.pk]))
    assert response.status_code == 200
    asked = [q["sql"] for q in captured.captured_queries if 'FROM "orders_delivery"' in q["sql"]]
    return response, [sql for sql in asked if '"orders_delivery"."note_id" =' in sql]


def test_an_unsent_note_asks_for_its_delivery_once(client, uploader, partner):
    note = ClinicalNoteFactory(order=OrderFactory(partner=partner), uploaded_by=uploader)
    client.force_login(uploader)
    response, asked = note_delivery_queries(client, note)
    assert len(asked) == 1, asked
    assert response.context["can_send"] and response.context["delivery"] is None


def test_a_sent_note_asks_for_its_delivery_once_and_is_not_sent_again(client, uploader, partner):
    note = ClinicalNoteFactory(order=OrderFactory(partner=partner), uploaded_by=uploader)
    delivery = DeliveryFactory(order=note.order, note=note, created_by=uploader, sent=True)
    client.force_login(uploader)
    response, asked = note_delivery_queries(client, note)
    assert len(asked) == 1, asked
    assert response.context["delivery"] == delivery
    assert not response.context["can_send"]
    assert response.context["blocker"] == notes.NOTE_ALREADY_SENT


def test_the_blocker_asks_the_database_when_given_no_delivery(uploader, partner):
    note = ClinicalNoteFactory(order=OrderFactory(partner=partner), uploaded_by=uploader)
    assert notes.note_send_blocker(note=note) is None
    DeliveryFactory(order=note.order, note=note, created_by=uploader, sent=True)
    assert notes.note_send_blocker(note=note)[1] == "note_already_sent"
    # Given, the caller's answer is taken as it is.
    assert notes.note_send_blocker(note=note, delivery=None) == (notes.ALREADY_SENT, "already_sent")
