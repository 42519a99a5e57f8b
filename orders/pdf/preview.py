"""Pictures and text of a PDF's pages, made by PDFium in a child process.

    png = render_page(data, page_index=0)     # PNG bytes, longer side <= NOTE_PREVIEW_MAX_PX
    text = first_pages_text(data, pages=2)    # the text layer, pages separated by "\f"
    texts = first_pages_texts([data, ...])    # the same for a batch: a text or a PreviewError each

Staff check a note against its patient by looking at images of its pages, so the check
never depends on a browser's PDF plug-in and the browser never runs the PDF. PDFium is not
thread-safe and web workers run threads (a trial crashed a worker with SIGSEGV), so the
work runs in the same limited child process as the upload gate (orders/pdf/sandbox.py,
orders/pdf/render.py), with the gate's CPU-time and memory limits. Anything that goes wrong
there raises `PreviewError`: `message` in plain words for staff, `reason` for logs.
"""

from pathlib import Path

from django.conf import settings

from orders.pdf.refusals import PDF_MAGIC
from orders.pdf.render import PAGE_BREAK
from orders.pdf.sandbox import ChildFailed, run_in_child

__all__ = ["PAGE_BREAK", "PreviewError", "first_pages_text", "first_pages_texts", "render_page", "text_groups"]

# Most bytes of PDFs one child reads for first_pages_texts: with their copies and PDFium's
# work they must fit well within the child's memory limit (NOTE_CHECK_MEMORY_MB).
TEXT_GROUP_BYTES = 16 * 1024 * 1024

MESSAGES = {
    "not_pdf": "This file is not a PDF, so it has no pages to show.",
    "unreadable": "This PDF's pages cannot be shown as pictures. Open the PDF to check it.",
    "too_complex": "Showing this page took too long or too much memory. Open the PDF to check it.",
    "no_such_page": "The PDF has no such page.",
}


class PreviewError(Exception):
    """A page that cannot be shown or read: `message` for the person, `reason` for the log."""

    def __init__(self, reason):
        self.message = MESSAGES[reason]
        self.reason = reason
        super().__init__(self.message)


def render_page(data: bytes | Path, page_index: int = 0) -> bytes:
    """The page at `page_index` (0 is the first) of `data` (the PDF's bytes, or the Path of a
    file holding it) as PNG bytes, its longer side at most NOTE_PREVIEW_MAX_PX pixels. Pages
    past NOTE_PREVIEW_MAX_PAGES are not rendered."""
    if not 0 <= page_index < settings.NOTE_PREVIEW_MAX_PAGES:
        raise PreviewError("no_such_page")
    answer, content = _run("render", data, page_index=page_index, max_px=settings.NOTE_PREVIEW_MAX_PX)
    return bytes(content)


def first_pages_text(data: bytes, pages: int = 2) -> str:
    """The text of the first `pages` pages (at most NOTE_PREVIEW_MAX_PAGES), separated by a
    form feed ("\\f"); "" for pages that are pictures only (a scan has no text layer)."""
    pages = max(1, min(pages, settings.NOTE_PREVIEW_MAX_PAGES))
    answer, content = _run("text", data, pages=pages)
    return str(content, "utf-8", "replace")


def first_pages_texts(files: list[bytes], pages: int = 2) -> list[str | PreviewError]:
    """first_pages_text for each of `files`, in order: its text, or the PreviewError that
    file alone raises. One child reads a whole group of files (up to TEXT_GROUP_BYTES), so a
    batch pays for starting PDFium once, not once per file; if a file takes that child down
    (time, memory, a crash), each file of its group is read again in a child of its own."""
    pages = max(1, min(pages, settings.NOTE_PREVIEW_MAX_PAGES))
    results: list[str | PreviewError] = [""] * len(files)
    readable = []
    for index, data in enumerate(files):
        if not data or not data.startswith(PDF_MAGIC):
            results[index] = PreviewError("not_pdf")
        else:
            readable.append(index)
    for group in text_groups(readable, lambda index: len(files[index])):
        _read_group(files, group, pages, results)
    return results


def text_groups(items, size):
    """`items` in runs, in order, whose sizes (`size(item)`, in bytes) together fit one
    text-reading child (TEXT_GROUP_BYTES); an item larger than that makes a run of its own."""
    group: list = []
    total = 0
    for item in items:
        if group and total + size(item) > TEXT_GROUP_BYTES:
            yield group
            group, total = [], 0
        group.append(item)
        total += size(item)
    if group:
        yield group


def _read_group(files, indexes, pages, results):
    try:
        answer, content = run_in_child(
            "texts",
            b"".join(files[index] for index in indexes),
            cpu_seconds=settings.NOTE_CHECK_CPU_SECONDS,
            memory_bytes=settings.NOTE_CHECK_MEMORY_MB * 1024 * 1024,
            pages=pages,
            sizes=[len(files[index]) for index in indexes],
        )
    except ChildFailed:
        for index in indexes:
            try:
                results[index] = first_pages_text(files[index], pages)
            except PreviewError as failed:
                results[index] = failed
        return
    offset = 0
    for index, item in zip(indexes, answer["files"], strict=True):
        text = content[offset : offset + item["text_bytes"]]
        offset += item["text_bytes"]
        results[index] = str(text, "utf-8", "replace") if item["ok"] else _error(item)


def _error(answer):
    return PreviewError(answer.get("reason") if answer.get("reason") in MESSAGES else "unreadable")


def _run(job, data, **params):
    if isinstance(data, Path):
        with data.open("rb") as file:
            head = file.read(len(PDF_MAGIC))
    else:
        head = bytes(data[: len(PDF_MAGIC)])
    if head != PDF_MAGIC:
        raise PreviewError("not_pdf")
    try:
        answer, content = run_in_child(
            job,
            data,
            cpu_seconds=settings.NOTE_CHECK_CPU_SECONDS,
            memory_bytes=settings.NOTE_CHECK_MEMORY_MB * 1024 * 1024,
            **params,
        )
    except ChildFailed:
        raise PreviewError("too_complex") from None
    if not answer.get("ok"):
        raise _error(answer)
    return answer, content
