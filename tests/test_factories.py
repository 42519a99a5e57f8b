"""tests/factories.py builds rows the application would: each delivery state is one a worker
would treat as that state, a note's hashes describe its bytes, roles are the real groups."""

import hashlib
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from orders import note_content
from orders.ingest import message_ingest
from orders.models import ClinicalNote, Delivery, InboundMessage, Partner
from orders.notes import note_upload
from redox import inbound
from tests.conftest import sample_bytes
from tests.factories import (
    SAMPLE_PDF,
    ClinicalNoteFactory,
    DeliveryFactory,
    InboundMessageFactory,
    OrderFactory,
    PartnerFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("state", "claimable_at_creation", "claimable_later"),
    [
        ("pending", True, True),
        ("sending", False, True),  # only once its lease has run out
        ("retry_scheduled", False, True),  # once due
        ("sent", False, False),
        ("failed", False, False),
        ("abandoned", False, False),
    ],
)
def test_each_delivery_state_is_claimable_exactly_when_a_worker_would_take_it(
    state, claimable_at_creation, claimable_later
):
    delivery = DeliveryFactory(**({state: True} if state != "pending" else {}))
    assert delivery.status == state
    later = delivery.created_at + timedelta(hours=1)
    assert (delivery in Delivery.objects.claimable(delivery.created_at)) is claimable_at_creation
    assert (delivery in Delivery.objects.claimable(later)) is claimable_later


def test_a_delivery_and_its_note_belong_to_one_order_and_one_uploader():
    delivery = DeliveryFactory(content=b"%PDF-1.7 other bytes")
    note = delivery.note
    assert note.order == delivery.order
    assert note.uploaded_by == delivery.created_by
    assert list(delivery.created_by.groups.values_list("name", flat=True)) == ["uploader"]
    assert note_content.read(note) == b"%PDF-1.7 other bytes"


def test_a_note_is_the_sample_pdf_with_its_size_and_hashes(client, partner, uploader):
    note = ClinicalNoteFactory()
    assert note_content.read(note) == SAMPLE_PDF == sample_bytes("clinical-note.pdf")
    assert note.size == len(SAMPLE_PDF)
    assert note.sha256 == note.original_sha256 == hashlib.sha256(SAMPLE_PDF).hexdigest()

    # What the app writes for the same PDF: uploaded through the page, it is known by the
    # same original hash, file name and page count ...
    order = OrderFactory(partner=partner)
    client.force_login(uploader)
    upload = SimpleUploadedFile(note.file_name, SAMPLE_PDF, content_type="application/pdf")
    assert client.post(reverse("upload_note", args=[order.pk]), {"file": upload}).status_code == 302
    uploaded = order.notes.get()
    assert (uploaded.original_sha256, uploaded.file_name, uploaded.page_count) == (
        note.original_sha256,
        note.file_name,
        note.page_count,
    )
    # ... and stored as the clean copy itself (the factory's "rebuilt to the same bytes"),
    # it gets the factory's size and hash.
    stored = note_upload(
        order=OrderFactory(partner=partner),
        file_name=note.file_name,
        content=SAMPLE_PDF,
        page_count=uploaded.page_count,
        user=uploader,
        original_sha256=uploaded.original_sha256,
    )
    columns = ("file_name", "size", "sha256", "original_sha256", "page_count")
    assert ClinicalNote.objects.values(*columns).get(pk=stored.pk) == ClinicalNote.objects.values(*columns).get(
        pk=note.pk
    )


def test_an_order_is_the_sample_order_under_its_own_id():
    first, second = OrderFactory(), OrderFactory()
    assert first.ehr_order_id != second.ehr_order_id
    assert (first.patient_last_name, first.patient_mrn, first.visit_number) == (
        "Samplepatient",
        "MRN0048213",
        "VIS-2026-000731",
    )
    assert first.patient_dob.isoformat() == "1948-02-29"


def test_a_message_is_keyed_as_the_webhook_keys_it():
    message = InboundMessageFactory()
    body = sample_bytes("order-new.json")
    assert bytes(message.body) == body
    assert message.dedupe_key == inbound.dedupe_key(body, inbound.read(body).meta)
    assert (message.data_model, message.event_type, message.status) == ("Order", "New", InboundMessage.Status.RECEIVED)

    # The same sample through ingest (for another partner, as the key is unique per partner)
    # is keyed, hashed and indexed exactly as the factory row.
    ingested = message_ingest(partner=PartnerFactory(), body=body, headers={}).message
    columns = ("dedupe_key", "body_sha256", "redox_log_id", "data_model", "event_type", "event_at")
    app_row = InboundMessage.objects.values(*columns).get(pk=ingested.pk)
    assert app_row == InboundMessage.objects.values(*columns).get(pk=message.pk)
    assert all(app_row.values()), app_row


def test_a_partner_is_found_by_its_token():
    partner = PartnerFactory(token="factory-token-0123456789abcdef")  # noqa: S106
    assert Partner.objects.for_token("factory-token-0123456789abcdef") == partner


@pytest.mark.parametrize("role", ["viewer", "uploader", "admin"])
def test_role_traits_use_the_real_groups(role):
    user = UserFactory(**{role: True})
    assert list(user.groups.all()) == [Group.objects.get(name=role)]
    assert user.is_staff is (role == "admin")
    assert UserFactory(role=role).is_staff is False
