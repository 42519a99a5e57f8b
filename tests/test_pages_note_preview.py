"""The review page shows the note's pages as images the server made, so the patient check
never depends on a PDF plug-in: each page a signed-in, audited, never-cached PNG, rendered
once and kept in the database."""

import logging
import re
import struct

import pytest
from django.urls import reverse

from orders import previews
from orders.models import AuditEvent, NotePreview
from tests.conftest import events
from tests.factories import PATIENT_VALUES, ClinicalNoteFactory, OrderFactory
from tests.pdf_text import text_pdf

pytestmark = pytest.mark.django_db


@pytest.fixture
def note(partner, uploader):
    content = text_pdf(["Synthetic note, page one", "page two", "page three"])
    return ClinicalNoteFactory(order=OrderFactory(partner=partner), uploaded_by=uploader, content=content, page_count=3)


@pytest.fixture
def renders(monkeypatch):
    """The page indexes actually rendered (not served from the cache)."""
    calls = []
    real = previews.render_page

    def counting(data, page_index=0):
        calls.append(page_index)
        return real(data, page_index)

    monkeypatch.setattr(previews, "render_page", counting)
    return calls


def page_url(note, number):
    return reverse("note_page", args=[note.pk, number])


def test_a_page_is_a_png_for_whoever_may_see_the_note(client, viewer, note, settings):
    client.force_login(viewer)
    response = client.get(page_url(note, 2))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response.content[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", response.content[16:24])
    assert max(width, height) <= settings.NOTE_PREVIEW_MAX_PX
    assert int(response["Content-Length"]) == len(response.content)
    assert {"no-store", "private"} <= {part.strip() for part in response["Cache-Control"].split(",")}


def test_a_page_is_rendered_once_then_served_from_the_database(client, viewer, note, renders):
    client.force_login(viewer)
    first = client.get(page_url(note, 1)).content
    again = client.get(page_url(note, 1)).content
    assert again == first
    assert renders == [0]
    cached = NotePreview.objects.get()
    assert (cached.note, cached.page_index, bytes(cached.png)) == (note, 0, first)
    client.get(page_url(note, 3))
    assert renders == [0, 2]


def test_each_view_of_a_page_is_audited_as_a_view_of_the_pdf(client, viewer, note):
    client.force_login(viewer)
    client.get(page_url(note, 1))
    client.get(page_url(note, 1))
    events_seen = AuditEvent.objects.filter(action=AuditEvent.Action.VIEW_PDF)
    assert [(e.actor, e.object_type, e.object_id, e.order) for e in events_seen] == [
        (viewer, "clinicalnote", str(note.pk), note.order)
    ] * 2


@pytest.mark.parametrize("number", [0, 4, 99])
def test_a_page_the_note_does_not_have_is_not_found(client, viewer, note, number):
    client.force_login(viewer)
    assert client.get(f"/notes/{note.pk}/pages/{number}.png").status_code == 404
    assert not NotePreview.objects.exists()


def test_pages_past_the_bound_are_not_rendered(client, viewer, note, settings, renders):
    settings.NOTE_PREVIEW_MAX_PAGES = 2
    client.force_login(viewer)
    assert client.get(page_url(note, 3)).status_code == 404
    assert renders == []


def test_a_note_that_cannot_be_rendered_says_so_in_words_and_is_not_audited(client, viewer, note, caplog, renders):
    note = ClinicalNoteFactory(order=note.order, uploaded_by=note.uploaded_by, content=b"%PDF-1.7 broken beyond repair")
    client.force_login(viewer)
    with caplog.at_level(logging.WARNING):
        response = client.get(page_url(note, 1))
    assert response.status_code == 422
    assert "Open the PDF" in response.content.decode()
    # The failure is remembered, without an image, so the next view runs no child.
    [kept] = NotePreview.objects.all()
    assert (kept.page_index, bytes(kept.png), kept.problem) == (0, b"", "unreadable")
    again = client.get(page_url(note, 1))
    assert (again.status_code, again.content) == (422, response.content)
    assert renders == [0]
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.VIEW_PDF).exists()
    first, second = events(caplog, "note.preview_failed")
    assert (first.note_id, first.reason) == (second.note_id, second.reason) == (note.pk, "unreadable")


def test_the_review_page_shows_every_page_as_an_image_later_ones_lazily(client, uploader, note):
    client.force_login(uploader)
    html = client.get(reverse("review_note", args=[note.pk])).content.decode()
    images = re.findall(r"<img [^>]*>", html)
    assert [re.search(r'src="([^"]+)"', image)[1] for image in images] == [page_url(note, n) for n in (1, 2, 3)]
    assert "loading" not in images[0]
    assert all('loading="lazy"' in image for image in images[1:])
    alts = [re.search(r'alt="([^"]+)"', image)[1] for image in images]
    assert alts == ["Page 1 of 3 of the note", "Page 2 of 3 of the note", "Page 3 of 3 of the note"]
    assert "<iframe" not in html
    assert f'href="{reverse("note_pdf", args=[note.pk])}"' in html


def test_the_review_page_says_how_many_pages_it_does_not_show(client, uploader, note, settings):
    settings.NOTE_PREVIEW_MAX_PAGES = 2
    client.force_login(uploader)
    html = client.get(reverse("review_note", args=[note.pk])).content.decode()
    assert len(re.findall(r"<img ", html)) == 2
    assert "1 more page not shown here" in html


def test_image_urls_and_alt_texts_carry_no_patient_data(client, uploader, note):
    client.force_login(uploader)
    html = client.get(reverse("review_note", args=[note.pk])).content.decode()
    for image in re.findall(r"<img [^>]*>", html):
        # The sample patient's values, and the year of birth written any way.
        for value in (*PATIENT_VALUES, "1948"):
            assert value not in image
