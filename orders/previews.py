"""A note's pages as images for the review page, rendered once and kept in the database.

    png = note_page_png(note, page_index)   # raises PreviewError (orders/pdf/preview.py)

Rendering runs PDFium in a limited child process (orders/pdf/preview.py) and costs a
tenth of a second or more, so each page is rendered on first view and kept in NotePreview
(containers have no durable disk). A note's content never changes once stored, so an image
never goes stale. Two requests rendering the same page at once both answer; the second
insert is ignored by the unique constraint.
"""

import logging
import time

from hcoint.events import log_event
from orders.models import ClinicalNote, NotePreview
from orders.pdf.preview import render_page

logger = logging.getLogger(__name__)


def note_page_png(note, page_index):
    cached = NotePreview.objects.filter(note=note, page_index=page_index).values_list("png", flat=True).first()
    if cached is not None:
        return bytes(cached)
    content = ClinicalNote.objects.values_list("content", flat=True).get(pk=note.pk)
    started = time.monotonic()
    png = render_page(bytes(content), page_index)
    NotePreview.objects.bulk_create(
        [NotePreview(note=note, page_index=page_index, png=png)],
        ignore_conflicts=True,
    )
    log_event(
        logger,
        "note.preview_rendered",
        note_id=note.pk,
        page=page_index + 1,
        size=len(png),
        duration_ms=round((time.monotonic() - started) * 1000),
    )
    return png
