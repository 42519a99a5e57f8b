"""The review page shows the note's pages as images the server rendered, so checking the
patient needs no PDF plug-in: in Chromium the first page's image loads at once, later ones
as the reviewer scrolls to them, and nothing on the page embeds the PDF."""

import pytest
from django.conf import settings
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.factories import ClinicalNoteFactory, OrderFactory, UserFactory
from tests.pdf_text import text_pdf

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

# Waits for the image to load and decode (it rejects for a broken image), then its size.
LOADED = "image => image.decode().then(() => [image.naturalWidth, image.naturalHeight])"


def test_the_review_page_shows_the_rendered_pages(page, partner):
    uploader = UserFactory(username="ursula", role="uploader")
    pages = [f"Synthetic note, page {number}" for number in (1, 2, 3)]
    note = ClinicalNoteFactory(
        order=OrderFactory(partner=partner), uploaded_by=uploader, content=text_pdf(pages), page_count=3
    )
    sign_in(page, "ursula")
    page.goto(f"/notes/{note.pk}/")

    first = page.get_by_role("img", name="Page 1 of 3 of the note")
    expect(first).to_be_visible()
    width, height = first.evaluate(LOADED)
    assert 0 < width < height <= settings.NOTE_PREVIEW_MAX_PX

    last = page.get_by_role("img", name="Page 3 of 3 of the note")
    last.scroll_into_view_if_needed()
    assert last.evaluate(LOADED) == [width, height]

    assert page.locator("iframe, embed, object").count() == 0
    expect(page.get_by_role("link", name="Open the PDF in a new tab")).to_be_visible()
    assert not page.problems, page.problems
