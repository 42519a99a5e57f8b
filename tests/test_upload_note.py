"""Uploading a note: one PDF per submission, checked, stored with its SHA-256 and page
count, then on to the review page; a refused file is explained next to the field."""

import hashlib
import io
import logging

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from pypdf import PdfReader
from pypdf.actions import JavaScript

from orders import note_content
from orders.models import AuditEvent, ClinicalNote, Order
from tests.factories import PATIENT_VALUES, SAMPLE_PDF, OrderFactory
from tests.pdf_corpus import pdf_bytes

pytestmark = pytest.mark.django_db


def pdf_file(content=SAMPLE_PDF, name="clinical-note.pdf", content_type="application/pdf"):
    return SimpleUploadedFile(name, content, content_type=content_type)


@pytest.fixture
def order(partner):
    return OrderFactory(partner=partner)


def upload(client, order, **data):
    return client.post(reverse("upload_note", args=[order.pk]), data)


def test_form_shows_whose_order_it_is(client, uploader, order):
    client.force_login(uploader)
    response = client.get(reverse("upload_note", args=[order.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Samplepatient, Testy" in html and "Feb 29, 1948" in html and order.ehr_order_id in html
    assert 'enctype="multipart/form-data"' in html
    assert '<input type="file" name="file"' in html


def test_upload_stores_the_pdf_and_goes_to_review(client, uploader, order):
    client.force_login(uploader)
    response = upload(client, order, file=pdf_file())
    note = ClinicalNote.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("review_note", args=[note.pk])
    # What is kept is the clean copy rebuilt from the upload; the upload is known by its hash.
    copy = bytes(note_content.read(note))
    assert copy != SAMPLE_PDF and copy.startswith(b"%PDF-")
    assert len(PdfReader(io.BytesIO(copy)).pages) == 1
    assert note.original_sha256 == hashlib.sha256(SAMPLE_PDF).hexdigest()
    assert note.sha256 == hashlib.sha256(copy).hexdigest()
    assert (note.size, note.page_count, note.file_name) == (len(copy), 1, "clinical-note.pdf")
    assert (note.order, note.uploaded_by) == (order, uploader)


def test_the_reviewer_previews_and_downloads_the_rebuilt_copy(client, uploader, order):
    uploaded = pdf_bytes(pages=2)
    client.force_login(uploader)
    upload(client, order, file=pdf_file(uploaded))
    note = ClinicalNote.objects.get()
    for name in ("note_pdf", "note_download"):
        response = client.get(reverse(name, args=[note.pk]))
        served = response.getvalue()
        assert served == note_content.read(note)
        assert served != uploaded
        assert len(PdfReader(io.BytesIO(served)).pages) == 2


def test_upload_is_audited_and_logged(client, uploader, order, caplog):
    client.force_login(uploader)
    with caplog.at_level(logging.INFO, logger="orders"):
        upload(client, order, file=pdf_file())
    note = ClinicalNote.objects.get()
    event = AuditEvent.objects.get(action=AuditEvent.Action.UPLOAD_NOTE)
    assert (event.actor, event.object_type, event.object_id, event.order, event.outcome) == (
        uploader,
        "clinicalnote",
        str(note.pk),
        order,
        AuditEvent.Outcome.SUCCESS,
    )
    uploaded = [record for record in caplog.records if record.getMessage() == "note.uploaded"]
    assert len(uploaded) == 1 and uploaded[0].note_id == note.pk


def test_the_name_does_not_make_a_pdf(client, uploader, order):
    client.force_login(uploader)
    response = upload(client, order, file=pdf_file(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, name="scan.pdf"))
    assert response.status_code == 400
    assert "This file is not a PDF" in response.content.decode()
    assert not ClinicalNote.objects.exists()


def test_a_real_pdf_with_another_name_is_accepted(client, uploader, order):
    client.force_login(uploader)
    response = upload(client, order, file=pdf_file(name="note.bin", content_type="application/octet-stream"))
    assert response.status_code == 302
    assert ClinicalNote.objects.get().file_name == "note.bin"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"%PDF-1.7 broken", "damaged"),
        (pdf_bytes(lambda writer: writer.encrypt("pw")), "encrypted"),
        (pdf_bytes(lambda writer: writer.add_open_action(JavaScript("app.alert(1)"))), "The PDF"),
        (pdf_bytes(lambda writer: writer.add_attachment("x.exe", b"MZ")), "embedded"),
    ],
    ids=["damaged", "encrypted", "javascript", "embedded-file"],
)
def test_refused_pdf_is_explained_next_to_the_field(client, uploader, order, content, message):
    client.force_login(uploader)
    response = upload(client, order, file=pdf_file(content))
    assert response.status_code == 400
    errors = response.context["form"].errors["file"]
    assert len(errors) == 1 and message in errors[0]
    assert '<p class="error" id="id_file_error">' in response.content.decode()
    assert not ClinicalNote.objects.exists()


def test_empty_file_is_refused(client, uploader, order):
    client.force_login(uploader)
    response = upload(client, order, file=pdf_file(b""))
    assert response.context["form"].errors["file"] == ["The file is empty."]


def test_missing_file_is_refused(client, uploader, order):
    client.force_login(uploader)
    response = upload(client, order)
    assert response.context["form"].errors["file"] == ["Choose the PDF to upload."]


def test_file_over_the_limit_is_refused(client, uploader, order, settings):
    settings.NOTE_MAX_BYTES = 500
    client.force_login(uploader)
    response = upload(client, order, file=pdf_file())
    assert response.status_code == 400
    assert "the largest note we can send is 500" in response.context["form"].errors["file"][0]


def test_only_one_file_per_submission(client, uploader, order):
    client.force_login(uploader)
    response = upload(client, order, file=[pdf_file(), pdf_file(name="second.pdf")])
    assert response.status_code == 400
    assert "Choose one PDF." in response.context["form"].errors["file"][0]
    assert not ClinicalNote.objects.exists()


def test_refused_upload_is_audited_and_logged_without_patient_data(client, uploader, order, caplog):
    client.force_login(uploader)
    with caplog.at_level(logging.INFO):
        upload(client, order, file=pdf_file(pdf_bytes(lambda writer: writer.encrypt("pw")), name="Samplepatient.pdf"))
    event = AuditEvent.objects.get(action=AuditEvent.Action.UPLOAD_NOTE)
    assert (event.outcome, event.order) == (AuditEvent.Outcome.FAILURE, order)
    rejected = [record for record in caplog.records if record.getMessage() == "note.rejected"]
    assert len(rejected) == 1 and rejected[0].reason == "encrypted"
    for record in caplog.records:
        text = record.getMessage() + repr(record.__dict__)
        for value in PATIENT_VALUES:
            assert value not in text


def test_cancelled_order_takes_no_upload(client, uploader, order):
    Order.objects.filter(pk=order.pk).update(state=Order.State.CANCELLED)
    client.force_login(uploader)
    page = client.get(reverse("upload_note", args=[order.pk])).content.decode()
    assert "This order was cancelled, so it takes no new notes." in page
    assert '<input type="file"' not in page
    response = upload(client, order, file=pdf_file())
    assert response.status_code == 400
    assert not ClinicalNote.objects.exists()
    assert response.context["form"].non_field_errors() == ["This order was cancelled, so it takes no new notes."]


def test_file_name_path_is_stripped(client, uploader, order):
    client.force_login(uploader)
    upload(client, order, file=pdf_file(name="C:\\Users\\staff\\Desktop\\note.pdf"))
    assert ClinicalNote.objects.get().file_name == "note.pdf"


def test_the_review_page_names_both_hashes(client, uploader, order):
    client.force_login(uploader)
    upload(client, order, file=pdf_file())
    note = ClinicalNote.objects.get()
    page = client.get(reverse("review_note", args=[note.pk])).content.decode()
    assert note.sha256 in page
    assert note.original_sha256 in page and "SHA-256 of the upload" in page
