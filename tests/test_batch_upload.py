"""Bulk upload: many PDFs in one request, each through the gate, matched, previewed and kept
in the database until a person decides; a refused file is listed with its reason."""

import re
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from orders.models import BatchFile, UploadBatch
from tests.conftest import events, settings_defaults
from tests.factories import BatchFileFactory, UserFactory, other_patient_order
from tests.pdf_text import text_pdf

pytestmark = pytest.mark.django_db

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def pdf(name, *lines):
    return SimpleUploadedFile(name, text_pdf(["\n".join(lines)]), content_type="application/pdf")


def upload(client, *files):
    return client.post(reverse("batch_list"), {"pdfs": list(files)})


def file_block(page, row):
    """The fieldset of one file on the batch page."""
    return re.search(rf'<fieldset [^>]*id="file-{row.pk}".*?</fieldset>', page, flags=re.DOTALL).group(0)


@pytest.fixture
def orders(partner):
    return [other_patient_order(number, partner=partner) for number in range(3)]


def test_each_file_is_stored_beside_its_proposal_and_a_bad_one_is_listed_with_its_reason(
    client, uploader, orders, caplog
):
    first, second, third = orders
    client.force_login(uploader)
    response = upload(
        client,
        pdf(f"note {first.ehr_order_id}.pdf", "Clinical note"),
        pdf("scan-0002.pdf", f"MRN: {second.patient_mrn}", f"DOB: {second.patient_dob:%m/%d/%Y}"),
        SimpleUploadedFile("not-a-pdf.pdf", b"just some text", content_type="application/pdf"),
        pdf("nothing.pdf", "Nobody we know"),
    )
    batch = UploadBatch.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("batch_detail", args=[batch.pk])
    assert batch.created_by == uploader and batch.file_count == 4
    rows = list(batch.files.all())
    assert [row.file_name for row in rows] == [
        f"note {first.ehr_order_id}.pdf",
        "scan-0002.pdf",
        "not-a-pdf.pdf",
        "nothing.pdf",
    ]
    by_name, by_text, refused, unmatched = rows
    assert by_name.proposed_order == first and by_name.proposal[0]["order"] == first.pk
    assert by_text.proposed_order == second and by_text.proposal[0]["score"] >= 85
    assert unmatched.proposed_order is None and unmatched.proposal == []
    assert refused.decision == BatchFile.Decision.REFUSED and refused.reason == "not_pdf"
    assert "This file is not a PDF" in refused.problem and not bytes(refused.content)
    for row in (by_name, by_text, unmatched):
        assert row.decision == BatchFile.Decision.PENDING
        assert bytes(row.content).startswith(b"%PDF-") and row.page_count == 1
        # Rendered when first shown, not during the upload.
        assert not bytes(row.preview_png)
    # Nothing was sent, and nothing became a note, before a person confirmed it.
    assert not first.notes.exists() and not second.notes.exists()
    [created] = events(caplog, "batch.created")
    assert (created.files, created.refused, created.preselected) == (4, 1, 2)

    # A reload finds the batch as it was: it lives in the database.
    page = client.get(reverse("batch_detail", args=[batch.pk])).content.decode()
    assert "4 files uploaded; 1 refused by the PDF check." in page
    assert "This file is not a PDF" in page
    assert first.patient_last_name in page and first.ehr_order_id in page
    assert f'value="{first.pk}" id="id_file_{by_name.pk}_{first.pk}" checked' in page
    # Each candidate row shows the match's confidence and the patient's date of birth.
    for row, order in ((by_name, by_name.proposed_order), (by_text, by_text.proposed_order)):
        block = file_block(page, row)
        assert f"<td>{row.proposal[0]['score']}%</td>" in block
        assert f"<td>{order.patient_dob:%b} {order.patient_dob.day}, {order.patient_dob.year}</td>" in block
    # Weak or no match: nothing starts selected but "decide later".
    assert f'id="id_file_{unmatched.pk}_later" checked' in page
    assert "No order awaiting a note matches this file" in page


def test_the_page_lists_the_users_open_batches_only(client, uploader):
    mine = BatchFileFactory(batch__created_by=uploader).batch
    expired = BatchFileFactory(batch__created_by=uploader, batch__expires_at=timezone.now()).batch
    theirs = BatchFileFactory(batch__created_by=UserFactory(uploader=True)).batch
    client.force_login(uploader)
    html = client.get(reverse("batch_list")).content.decode()
    assert f'href="{reverse("batch_detail", args=[mine.pk])}"' in html
    assert f'href="{reverse("batch_detail", args=[expired.pk])}"' not in html
    assert f'href="{reverse("batch_detail", args=[theirs.pk])}"' not in html


def test_another_users_batch_and_its_preview_answer_404(client, uploader):
    row = BatchFileFactory(batch__created_by=UserFactory(uploader=True))
    client.force_login(uploader)
    assert client.get(reverse("batch_detail", args=[row.batch_id])).status_code == 404
    assert client.get(reverse("batch_file_preview", args=[row.pk])).status_code == 404
    assert client.post(reverse("batch_send", args=[row.batch_id]), {f"file_{row.pk}": "skip"}).status_code == 404


def test_the_preview_is_rendered_on_first_view_then_kept(client, uploader):
    row = BatchFileFactory(batch__created_by=uploader, content=text_pdf(["Page one"]), preview_png=b"")
    client.force_login(uploader)
    first = client.get(reverse("batch_file_preview", args=[row.pk]))
    assert first.status_code == 200 and first.content.startswith(PNG_MAGIC)
    row.refresh_from_db()
    assert bytes(row.preview_png) == first.content
    with mock.patch("orders.batches.render_page", autospec=True) as render:
        assert client.get(reverse("batch_file_preview", args=[row.pk])).content == first.content
    render.assert_not_called()


def test_a_file_that_cannot_be_rendered_says_so_on_the_page(client, uploader):
    row = BatchFileFactory(batch__created_by=uploader, content=b"%PDF-1.7 not really", preview_png=b"")
    client.force_login(uploader)
    assert client.get(reverse("batch_file_preview", args=[row.pk])).status_code == 404
    row.refresh_from_db()
    assert row.preview_problem
    page = client.get(reverse("batch_detail", args=[row.batch_id])).content.decode()
    assert escape(row.preview_problem) in page
    assert reverse("batch_file_preview", args=[row.pk]) not in page


def test_the_preview_is_the_cached_png_never_stored_by_the_browser(client, uploader):
    row = BatchFileFactory(batch__created_by=uploader, preview_png=PNG_MAGIC + b"rest")
    client.force_login(uploader)
    response = client.get(reverse("batch_file_preview", args=[row.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response.content == PNG_MAGIC + b"rest"
    assert "no-store" in response["Cache-Control"]


def test_no_files_is_a_form_error(client, uploader):
    client.force_login(uploader)
    response = client.post(reverse("batch_list"), {})
    assert response.status_code == 400
    assert "Choose or drop the PDFs to upload." in response.content.decode()
    assert not UploadBatch.objects.exists()


def test_more_files_than_allowed_are_refused_in_words(client, uploader, settings):
    settings.UPLOAD_BATCH_MAX_FILES = settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    client.force_login(uploader)
    response = upload(client, pdf("a.pdf", "a"), pdf("b.pdf", "b"), pdf("c.pdf", "c"))
    assert response.status_code == 400
    assert "Upload at most 2 files at once." in response.content.decode()
    assert not UploadBatch.objects.exists()


def test_a_body_over_the_limit_is_refused_before_it_is_read(client, uploader, settings):
    settings.UPLOAD_BATCH_MAX_BYTES = 1
    client.force_login(uploader)
    response = client.post(reverse("batch_list"), {}, CONTENT_LENGTH=str(5 * 1024 * 1024))
    assert response.status_code == 413
    assert "upload at most 1" in response.content.decode()


def test_files_over_the_total_size_are_refused_by_the_form_in_words(client, uploader, settings):
    """A body under the request limit (which allows for the multipart framing) whose files
    together are over UPLOAD_BATCH_MAX_BYTES is refused by the form, naming both sizes."""
    files = [pdf("a.pdf", "first note"), pdf("b.pdf", "second note")]
    total = sum(upload.size for upload in files)
    settings.UPLOAD_BATCH_MAX_BYTES = total - 1
    client.force_login(uploader)
    response = upload(client, *files)
    assert response.status_code == 400
    html = response.content.decode()
    assert f"The files come to {filesizeformat(total)}; upload at most {filesizeformat(total - 1)} at once." in html
    assert not UploadBatch.objects.exists()

    # Exactly at the limit, the same files are taken.
    settings.UPLOAD_BATCH_MAX_BYTES = total
    for upload_file in files:
        upload_file.seek(0)
    assert upload(client, *files).status_code == 302
    assert UploadBatch.objects.get().file_count == 2


def test_the_bulk_upload_defaults_take_a_visits_worth_and_keep_it_a_week(monkeypatch):
    """Issue 13: at least 50 files and 200 MB in one upload; files nobody sent go after 7 days."""
    names = ("UPLOAD_BATCH_EXPIRY_DAYS", "UPLOAD_BATCH_MAX_FILES", "UPLOAD_BATCH_MAX_BYTES")
    defaults = settings_defaults(monkeypatch, *names)
    assert defaults["UPLOAD_BATCH_EXPIRY_DAYS"] == 7
    assert defaults["UPLOAD_BATCH_MAX_FILES"] >= 50
    assert defaults["UPLOAD_BATCH_MAX_BYTES"] >= 200 * 2**20


def test_fifty_files_in_one_request_each_go_to_a_temporary_file(client, uploader, partner, monkeypatch):
    """The default limits take a visit's worth of files, and no file is held in memory by the upload."""
    from django.core.files.uploadedfile import TemporaryUploadedFile

    seen = []

    def check_file(batch, position, upload):
        seen.append(type(upload))
        return BatchFile(batch=batch, position=position, decision=BatchFile.Decision.REFUSED), 0

    monkeypatch.setattr("orders.batches._check_file", check_file)
    client.force_login(uploader)
    files = [pdf(f"note-{index}.pdf", f"Note {index}") for index in range(50)]
    response = upload(client, *files)
    assert response.status_code == 302
    assert seen == [TemporaryUploadedFile] * 50


def test_the_upload_needs_the_csrf_token(uploader, orders):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(uploader)
    response = upload(client, pdf("a.pdf", "a"))
    assert response.status_code == 403
    assert not UploadBatch.objects.exists()


def test_the_nav_links_to_bulk_upload_for_uploaders_only(client, uploader, viewer):
    client.force_login(uploader)
    assert f'href="{reverse("batch_list")}"' in client.get(reverse("order_list")).content.decode()
    client.force_login(viewer)
    assert f'href="{reverse("batch_list")}"' not in client.get(reverse("order_list")).content.decode()
