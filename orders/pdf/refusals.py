"""What an upload check can answer: a refusal in plain words, the limits it works within,
and the checked file. No Django here: the child process that runs the check imports this."""

from dataclasses import dataclass
from typing import BinaryIO

PLAIN_DOCUMENT = "Notes must be plain documents; save or print it again as a plain PDF and upload that."
PDF_MAGIC = b"%PDF-"
RESAVE = "Open it and save or print it again as PDF, then upload the new file."

# Reason code -> the message the uploader reads. The code goes to the log line and the
# tests; the message names no patient data and no PDF jargon.
MESSAGES = {
    "empty": "The file is empty.",
    "not_pdf": "This file is not a PDF (its contents do not start the way a PDF does, whatever its name says).",
    "unreadable": (
        f"The PDF is damaged: it can only be opened by repairing it, and viewers repair it differently. {RESAVE}"
    ),
    "duplicate_key": f"The PDF says the same thing twice in different ways, so viewers would disagree on it. {RESAVE}",
    "duplicate_object": f"The PDF defines the same part twice, so viewers would disagree on it. {RESAVE}",
    "parsers_disagree": f"The PDF reads differently depending on the program that opens it. {RESAVE}",
    "encrypted": "The PDF is encrypted or password-protected. Save an unprotected copy and upload that.",
    "no_pages": "The PDF has no pages.",
    "too_many_pages": "The PDF has more pages than we accept for one note.",
    "too_many_objects": f"The PDF is built from more parts than we accept for one note. {RESAVE}",
    "too_deep": f"The PDF is nested more deeply than we accept. {RESAVE}",
    "inflate_limit": "The PDF unpacks to far more data than a note needs. Print it again to PDF and upload that.",
    "too_complex": "The PDF took too long or too much memory to check. Print it again to PDF and upload that.",
    "unsupported_filter": f"The PDF packs some of its contents in a way we do not accept. {RESAVE}",
    "external_content": f"The PDF loads part of its contents from another file. {PLAIN_DOCUMENT}",
    "javascript": f"The PDF contains JavaScript. {PLAIN_DOCUMENT}",
    "launch": f"The PDF tries to launch another program or file. {PLAIN_DOCUMENT}",
    "auto_action": (
        f"The PDF runs an action by itself when it is opened (or when a page or field is opened or closed). "
        f"{PLAIN_DOCUMENT}"
    ),
    "submit_form": f"The PDF sends form data to a server. {PLAIN_DOCUMENT}",
    "import_data": f"The PDF loads data from another file. {PLAIN_DOCUMENT}",
    "other_file": f"The PDF links into another file. {PLAIN_DOCUMENT}",
    "unsafe_link": f"The PDF has a link that is not a web or email address. {PLAIN_DOCUMENT}",
    "rich_media": f"The PDF contains rich media (video, sound or Flash). {PLAIN_DOCUMENT}",
    "three_d": f"The PDF contains a 3D model. {PLAIN_DOCUMENT}",
    "xfa": f"The PDF contains a dynamic (XFA) form. {PLAIN_DOCUMENT}",
    "embedded_file": f"The PDF has a file embedded in it. {PLAIN_DOCUMENT}",
    "file_attachment": f"The PDF has a file attached to it. {PLAIN_DOCUMENT}",
    "rebuild_failed": "We could not make a clean copy of this PDF. Print it again to PDF and upload that.",
}


class PdfRejected(ValueError):
    """Why an upload is refused: `message` for the person, `reason` for the log line."""

    def __init__(self, message, reason):
        super().__init__(message)
        self.message = message
        self.reason = reason

    @classmethod
    def because(cls, reason):
        return cls(MESSAGES[reason], reason)


@dataclass(frozen=True)
class Limits:
    """How much work one check may do. Built from settings in the web process and handed to
    the child as plain numbers."""

    max_bytes: int
    max_inflated_bytes: int
    max_objects: int
    max_pages: int
    max_depth: int
    cpu_seconds: int = 20
    memory_bytes: int = 1024 * 1024 * 1024


@dataclass(frozen=True)
class CheckedPdf:
    """An accepted upload: the rebuilt copy we store, show and send, and the upload's hash.

    The copy is in a temporary file (`copy`, from byte `offset`), not in memory: `open()`
    gives the file at the copy's first byte, for reading it in pieces; `content` reads it
    whole (small files, and the bulk upload's rows)."""

    page_count: int
    original_sha256: str
    copy: BinaryIO
    offset: int = 0

    def open(self) -> BinaryIO:
        self.copy.seek(self.offset)
        return self.copy

    @property
    def content(self) -> bytes:
        return self.open().read()

    def close(self) -> None:
        """Remove the temporary file (closing it unlinks it)."""
        self.copy.close()


def refuse_basics(data, limits, *, size=None):
    """The checks that need no parser; the web process runs them too, before the child.
    `data` may be just the first bytes of a file whose `size` is given."""
    size = len(data) if size is None else size
    if not size:
        raise PdfRejected.because("empty")
    if size > limits.max_bytes:
        raise PdfRejected("The file is larger than the largest note we can send.", "too_large")
    if not data.startswith(PDF_MAGIC):
        raise PdfRejected.because("not_pdf")
