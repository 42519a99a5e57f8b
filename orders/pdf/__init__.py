"""Is this upload a PDF we are willing to send into a hospital's chart, and what do we send?

    checked = pdf_check(data)          # CheckedPdf(page_count, original_sha256, the copy)
    checked = pdf_check_file(path)     # the same for a file on disk
    checked = pdf_check_upload(upload) # the same for a Django UploadedFile, closed after
    pdf_check_size(upload.size)        # before reading an upload into memory

`pdf_check` refuses with `PdfRejected` (a plain-words `message` for the uploader and a
short `reason` code for logs) or returns the rebuilt copy to store, show and send, in a
temporary file (`checked.open()`; `checked.content` reads it whole). The
gate (`gate.py`) and the copy (`rebuild.py`) run in a child process with CPU and memory
limits (`sandbox.py`). docs/security.md ("PDF uploads") says what is refused and why.
"""

from pathlib import Path

from orders.pdf.refusals import PDF_MAGIC, CheckedPdf, Limits, PdfRejected, refuse_basics

__all__ = [
    "CheckedPdf",
    "Limits",
    "PdfRejected",
    "limits_from_settings",
    "pdf_check",
    "pdf_check_file",
    "pdf_check_size",
    "pdf_check_upload",
]


def limits_from_settings(*, max_bytes=None):
    # Django is imported inside the functions: the child process imports this package on
    # its way to orders.pdf.sandbox, and importing Django there would cost every check and
    # every preview some 70 ms for nothing.
    from django.conf import settings

    return Limits(
        max_bytes=settings.NOTE_MAX_BYTES if max_bytes is None else max_bytes,
        max_inflated_bytes=settings.NOTE_MAX_INFLATED_BYTES,
        max_objects=settings.NOTE_MAX_OBJECTS,
        max_pages=settings.NOTE_MAX_PAGES,
        max_depth=settings.NOTE_MAX_DEPTH,
        cpu_seconds=settings.NOTE_CHECK_CPU_SECONDS,
        memory_bytes=settings.NOTE_CHECK_MEMORY_MB * 1024 * 1024,
    )


def pdf_check(data, *, max_bytes=None):
    """Check `data` (the whole file); return a CheckedPdf or raise PdfRejected."""
    from orders.pdf.sandbox import check_in_child

    limits = limits_from_settings(max_bytes=max_bytes)
    pdf_check_size(len(data), max_bytes=limits.max_bytes)
    # The cheap checks here, so an obvious refusal costs no child process.
    refuse_basics(data, limits)
    return check_in_child(data, limits)


def pdf_check_upload(upload):
    """pdf_check for a Django UploadedFile: its size first, so an oversized upload is never
    read; the file is closed however it ends. An upload Django spooled to a temporary file
    (over FILE_UPLOAD_MAX_MEMORY_SIZE) goes to the checker as that file, never read into
    this process's memory; a small one, already in memory, as its bytes."""
    try:
        pdf_check_size(upload.size or 0)
        if hasattr(upload, "temporary_file_path"):
            upload.file.flush()  # Django leaves the last bytes it wrote in the file's buffer
            return pdf_check_file(upload.temporary_file_path())
        data = b"".join(upload.chunks())
    finally:
        upload.close()
    return pdf_check(data)


def pdf_check_file(path, *, max_bytes=None):
    """pdf_check for the file at `path` (a pathlib.Path or str), read by the checker's child process."""
    from orders.pdf.sandbox import check_in_child

    path = Path(path)
    limits = limits_from_settings(max_bytes=max_bytes)
    size = path.stat().st_size
    pdf_check_size(size, max_bytes=limits.max_bytes)
    with path.open("rb") as file:
        head = file.read(len(PDF_MAGIC))
    refuse_basics(head, limits, size=size)
    return check_in_child(path, limits)


def pdf_check_size(size, *, max_bytes=None):
    """Refuse a file over the limit before reading it into memory."""
    from django.conf import settings
    from django.template.defaultfilters import filesizeformat

    max_bytes = settings.NOTE_MAX_BYTES if max_bytes is None else max_bytes
    if size > max_bytes:
        raise PdfRejected(
            f"The file is {filesizeformat(size)}; the largest note we can send is {filesizeformat(max_bytes)}.",
            "too_large",
        )
