"""A note's pages as images for the review page, rendered once and kept in the database.

    png = note_page_png(note, page_index)   # raises PreviewError (orders/pdf/preview.py)

Rendering runs PDFium in a limited child process (orders/pdf/preview.py) and costs a
tenth of a second or more, so each page is rendered on first view and kept in NotePreview
(containers have no durable disk). A note's content never changes once stored, so an image
never goes stale, and neither does a failure: a page that cannot be rendered is kept as a
row with no image and the reason, and raises the same PreviewError without a child on
every later view (as orders/batches.py batch_file_png remembers a batch file's). Two
requests rendering the same page at once both answer; the second insert is ignored by the
unique constraint.
"""

import logging
import tempfile
import time
from pathlib import Path

from hcoint.events import log_event
from orders import note_content
from orders.models import NotePreview
from orders.pdf.preview import PreviewError, render_page

logger = logging.getLogger(__name__)


# Not remembered: a page past NOTE_PREVIEW_MAX_PAGES is refused before any child runs.
NOT_KEPT = {"no_such_page"}


def note_page_png(note, page_index):
    cached = NotePreview.objects.filter(note=note, page_index=page_index).values_list("png", "problem").first()
    if cached is not None:
        png, problem = cached
        # "not_pdf" cannot be true of a stored note (each passed the upload check): it is what
        # a container of the release before note pieces saw of a note stored only in pieces
        # (migration 0022), so it is rendered again rather than believed.
        if problem and problem != "not_pdf":
            raise PreviewError(problem)
        if not problem:
            return bytes(png)
        NotePreview.objects.filter(note=note, page_index=page_index).delete()
    started = time.monotonic()
    try:
        # The note goes to the renderer's child as a temporary file, written a piece at a
        # time: the web process never holds the whole PDF.
        with tempfile.NamedTemporaryFile(prefix="note-", suffix=".pdf") as spooled:
            for piece in note_content.pieces(note):
                spooled.write(piece)
            spooled.flush()
            png = render_page(Path(spooled.name), page_index)
    except PreviewError as failed:
        if failed.reason not in NOT_KEPT:
            _keep(NotePreview(note=note, page_index=page_index, png=b"", problem=failed.reason))
        raise
    _keep(NotePreview(note=note, page_index=page_index, png=png))
    log_event(
        logger,
        "note.preview_rendered",
        note_id=note.pk,
        page=page_index + 1,
        size=len(png),
        duration_ms=round((time.monotonic() - started) * 1000),
    )
    return png


def _keep(preview):
    NotePreview.objects.bulk_create([preview], ignore_conflicts=True)
