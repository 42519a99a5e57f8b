"""The PDF itself: opened inline in a tab of its own, or downloaded; signed in, audited,
never cached, never framed (the review page shows page images instead)."""

import pytest
from django.urls import reverse

from orders.models import AuditEvent
from orders.views import pdf_file_name
from tests.conftest import sample_bytes
from tests.factories import ClinicalNoteFactory, OrderFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def note(partner, uploader):
    return ClinicalNoteFactory(order=OrderFactory(partner=partner), uploaded_by=uploader)


def test_inline_view_serves_the_pdf_and_may_not_be_framed(client, viewer, note):
    client.force_login(viewer)
    response = client.get(reverse("note_pdf", args=[note.pk]))
    assert response.status_code == 200
    assert response.getvalue() == sample_bytes("clinical-note.pdf")
    assert response["Content-Length"] == str(len(sample_bytes("clinical-note.pdf")))
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'inline; filename="clinical-note.pdf"'
    assert "no-store" in response["Cache-Control"]
    assert response["X-Frame-Options"] == "DENY"


def test_download_is_an_attachment(client, viewer, note):
    client.force_login(viewer)
    response = client.get(reverse("note_download", args=[note.pk]))
    assert response["Content-Disposition"] == 'attachment; filename="clinical-note.pdf"'
    assert "no-store" in response["Cache-Control"]
    assert response["X-Frame-Options"] == "DENY"


def test_other_pages_may_not_be_framed(client, viewer, note):
    client.force_login(viewer)
    response = client.get(reverse("review_note", args=[note.pk]))
    assert response.status_code == 403  # a viewer may not review; the header is still set
    assert response["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize(
    ("action", "url_name"),
    [(AuditEvent.Action.VIEW_PDF, "note_pdf"), (AuditEvent.Action.DOWNLOAD_PDF, "note_download")],
)
def test_viewing_and_downloading_are_audited(client, viewer, note, action, url_name):
    client.force_login(viewer)
    client.get(reverse(url_name, args=[note.pk]))
    event = AuditEvent.objects.get(action=action)
    assert (event.actor, event.object_type, event.object_id, event.order) == (
        viewer,
        "clinicalnote",
        str(note.pk),
        note.order,
    )


@pytest.mark.parametrize(
    ("uploaded", "served"),
    [
        ("clinical-note.pdf", "clinical-note.pdf"),
        ("Résumé de visite.PDF", "Resume_de_visite.pdf"),
        ('evil"; filename=x.exe', "evil_filename_x.exe.pdf"),
        ("\u0645\u0644\u0641.pdf", "note-{pk}.pdf"),
        ("../../etc/passwd", "etc_passwd.pdf"),
    ],
)
def test_file_name_in_the_header_is_safe_ascii(note, uploaded, served):
    note.file_name = uploaded
    name = pdf_file_name(note)
    assert name == served.format(pk=note.pk)
    assert name.isascii() and '"' not in name and "/" not in name


def test_missing_note_is_404(client, viewer):
    client.force_login(viewer)
    assert client.get(reverse("note_pdf", args=[999999])).status_code == 404
