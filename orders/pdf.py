"""Is this upload a PDF we are willing to send into a hospital's chart?

`pdf_check(data)` returns the page count or raises `PdfRejected` with a message in
plain words for the uploader and a short `reason` code for logs. The checks follow
ops.md §5: the bytes (not the name) say PDF, a maintained parser opens it, it is not
encrypted, it has pages, it is under the size limit, and no object anywhere carries
JavaScript, an auto-run or launch action, an embedded file or rich media.

An open action that only says which page to show first (a destination, or a `/GoTo`
action) is allowed: office suites write `/OpenAction [page /XYZ null null 0]` into
ordinary documents. Any other open action runs by itself the moment the file is opened
and is refused.

Active content is found by parsing and walking every object in the file, not by
scanning the raw bytes: names can be hex-escaped (`/J#61vaScript`) and objects can
sit inside compressed object streams, both invisible to a byte scan.
"""

import io

from django.conf import settings
from django.template.defaultfilters import filesizeformat
from pypdf import PdfReader
from pypdf.errors import PyPdfError
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, NameObject

PDF_MAGIC = b"%PDF-"

# Name -> what the uploader is told it is. A name counts whether it is a dictionary
# key (`/OpenAction ...`) or a value (`/S /JavaScript`, `/Type /EmbeddedFile`).
ACTIVE_CONTENT = {
    "/JavaScript": ("javascript", "The PDF contains JavaScript."),
    "/JS": ("javascript", "The PDF contains JavaScript."),
    "/AA": ("auto_action", "The PDF runs actions automatically (when a page or field is opened or closed)."),
    "/Launch": ("launch", "The PDF tries to launch another program or file."),
    "/EmbeddedFile": ("embedded_file", "The PDF has a file embedded in it."),
    "/EmbeddedFiles": ("embedded_file", "The PDF has a file embedded in it."),
    "/EF": ("embedded_file", "The PDF has a file embedded in it."),
    "/FileAttachment": ("embedded_file", "The PDF has a file attached to it."),
    "/RichMedia": ("rich_media", "The PDF contains rich media (video, sound or Flash)."),
}

PLAIN_DOCUMENT = "Notes must be plain documents; save or print it to a plain PDF."
AUTO_ACTION = ("auto_action", "The PDF runs an action when it is opened.")

# The only action type allowed to run on open: it shows a page of this document. Every
# other type is refused there because nobody clicked anything: /JavaScript runs code;
# /Launch, /GoToR and /GoToE open other files; /URI, /SubmitForm and /ImportData reach
# out to a server or load outside data (a beacon the moment the note is viewed);
# /Named can print or run menu commands; /Rendition, /Sound and /Movie play media; /Hide,
# /SetOCGState, /ResetForm and /Trans change what the reviewer sees. On a link the same
# types stay allowed (a click is a person's choice), except /JavaScript and /Launch, which
# ACTIVE_CONTENT refuses wherever they appear.
SAFE_OPEN_ACTION_TYPES = {"/GoTo"}

# A malicious file could nest containers deeply to exhaust the stack; real notes are shallow.
MAX_NESTING = 200


class PdfRejected(ValueError):
    """Why an upload is refused: `message` for the person, `reason` for the log line."""

    def __init__(self, message, reason):
        super().__init__(message)
        self.message = message
        self.reason = reason


def pdf_check(data, *, max_bytes=None):
    """Check `data` (the whole file) and return its page count, or raise PdfRejected."""
    max_bytes = settings.NOTE_MAX_BYTES if max_bytes is None else max_bytes
    if not data:
        raise PdfRejected("The file is empty.", "empty")
    pdf_check_size(len(data), max_bytes=max_bytes)
    if not data.startswith(PDF_MAGIC):
        raise PdfRejected(
            "This file is not a PDF (its contents do not start the way a PDF does, whatever its name says).",
            "not_pdf",
        )
    reader = _open(data)
    if reader.is_encrypted:
        raise PdfRejected(
            "The PDF is encrypted or password-protected. Save an unprotected copy and upload that.", "encrypted"
        )
    try:
        page_count = len(reader.pages)
        _refuse_active_content(reader)
    except PdfRejected:
        raise
    except (PyPdfError, ValueError, TypeError, KeyError, AttributeError, RecursionError, OSError):
        raise PdfRejected("The PDF could not be opened; it looks damaged.", "unreadable") from None
    if page_count == 0:
        raise PdfRejected("The PDF has no pages.", "no_pages")
    return page_count


def pdf_check_size(size, *, max_bytes=None):
    """Refuse a file over the limit before reading it into memory."""
    max_bytes = settings.NOTE_MAX_BYTES if max_bytes is None else max_bytes
    if size > max_bytes:
        raise PdfRejected(
            f"The file is {filesizeformat(size)}; the largest note we can send is {filesizeformat(max_bytes)}.",
            "too_large",
        )


def _open(data):
    try:
        return PdfReader(io.BytesIO(data), strict=False)
    except (PyPdfError, ValueError, TypeError, KeyError, AttributeError, RecursionError, OSError):
        raise PdfRejected("The PDF could not be opened; it looks damaged.", "unreadable") from None


def _all_objects(reader):
    """The trailer and every object the file defines, including those in object streams."""
    yield reader.trailer
    ids = set()
    for generation, entries in reader.xref.items():
        ids.update((idnum, generation) for idnum in entries)
    ids.update((idnum, 0) for idnum in reader.xref_objStm)
    for idnum, generation in sorted(ids):
        yield reader.get_object(IndirectObject(idnum, generation, reader))


def _refuse_active_content(reader):
    for obj in _all_objects(reader):
        _walk(obj, depth=0)


def _walk(obj, *, depth):
    """Look through one object's direct contents. Indirect references are not followed:
    every indirect object is visited on its own by `_all_objects`."""
    if depth > MAX_NESTING:
        raise PdfRejected("The PDF could not be opened; it looks damaged.", "unreadable")
    if isinstance(obj, IndirectObject):
        return
    if isinstance(obj, NameObject):
        _refuse_name(obj)
    elif isinstance(obj, DictionaryObject):
        # A stream's dictionary is the stream object itself (StreamObject subclasses it).
        for key, value in obj.items():
            _refuse_name(key)
            if key == "/OpenAction":
                _refuse_open_action(value)
            _walk(value, depth=depth + 1)
    elif isinstance(obj, ArrayObject):
        for item in obj:
            _walk(item, depth=depth + 1)


def _refuse_name(name):
    found = ACTIVE_CONTENT.get(str(name))
    if found:
        reason, message = found
        raise PdfRejected(f"{message} {PLAIN_DOCUMENT}", reason)


def _refuse_open_action(value):
    """Allow an open destination (an array, or a named destination) or a plain `/GoTo`.

    Only a dictionary is an action. A `/GoTo` may not chain further actions with `/Next`,
    whose types would run on open too. What the destination itself holds is walked like
    everything else.
    """
    action = value.get_object() if isinstance(value, IndirectObject) else value
    if not isinstance(action, DictionaryObject):
        return
    if action.get("/S") in SAFE_OPEN_ACTION_TYPES and "/Next" not in action:
        return
    reason, message = AUTO_ACTION
    raise PdfRejected(f"{message} {PLAIN_DOCUMENT}", reason)
