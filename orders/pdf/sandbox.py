"""Run PDF work in a child process with CPU-time and memory limits: the upload gate and
its rebuild, and the page images and text of orders/pdf/preview.py.

A hostile file can make a parser loop or allocate without end, and PDFium (the page
renderer) is not thread-safe. Web workers run threads (gunicorn gthread), so limits set in
the worker would bind every request it serves, and a renderer crash would take the worker
with it; a child process gets its own limits and dies alone. The child is a fresh
interpreter (`python -I`, no inherited environment: no secrets, no Django) that sets
`resource.setrlimit` on itself before it reads the file, and the parent waits with a
wall-clock timeout as well.

The protocol: the job's name, its limits and its parameters go as one JSON argument (ids
and numbers only, never the file's content), the file to the child's stdin; the child
answers with one JSON line, followed by the job's bytes (the rebuilt copy, a PNG, the
text). Neither side copies the file to frame it. The upload check never has the file in
the parent's memory at all: the upload's temporary file is the child's stdin, and the
child's answer goes to a temporary file of its own, which the note is then stored from a
piece at a time (orders/note_content.py). Smaller answers (a PNG, text) come back in
memory, as a view of the child's output.
"""

import contextlib
import hashlib
import io
import json
import logging
import subprocess
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

from hcoint.events import log_event
from orders.pdf.refusals import CheckedPdf, Limits, PdfRejected

logger = logging.getLogger(__name__)

# The directory that holds the `orders` package, so the child can import it. The child
# starts in orders/pdf/child.py, which imports nothing heavy: each job imports what it needs.
PROJECT_DIR = str(Path(__file__).resolve().parents[2])
# argv: [-c, PROJECT_DIR, the job's JSON header]
CHILD_CODE = "import sys; sys.path.insert(0, sys.argv[1]); from orders.pdf.child import child_main; child_main()"

# The answer's JSON line is short (a page count, a refusal, a few numbers); a longer first
# line is no answer of ours.
MAX_ANSWER_LINE = 64 * 1024
HASH_PIECE_BYTES = 1024 * 1024


class ChildFailed(Exception):
    """The child ran out of time or memory, crashed, or gave no answer."""


def run_in_child(job, data, *, cpu_seconds, memory_bytes, output=None, **params):
    """Run `job` on `data` (bytes, or the pathlib.Path of a file) in a limited child; return
    its (answer dict, content).

    Without `output`, content is a read-only memoryview of the child's output in memory
    (bytes(content) where bytes are needed: one copy, made by the caller that needs it).
    With `output` (a binary temporary file) the child writes there and content is the
    offset in `output` at which the job's bytes begin.

    Raises ChildFailed when the child was killed (CPU time, memory, a signal such as a
    renderer's SIGSEGV) or timed out. The child's stderr is not logged: parser messages may
    quote the file.
    """
    header = {"job": job, "cpu_seconds": cpu_seconds, "memory_bytes": memory_bytes, **params}
    is_path = isinstance(data, Path)
    try:
        # A file is opened here, for the child alone: its own offset, from the first byte.
        with data.open("rb") if is_path else contextlib.nullcontext() as stdin:
            finished = subprocess.run(  # noqa: S603 - our own interpreter and code, no shell
                [sys.executable, "-I", "-c", CHILD_CODE, PROJECT_DIR, json.dumps(header)],
                input=None if is_path else data,
                stdin=stdin,
                stdout=subprocess.PIPE if output is None else output,
                stderr=subprocess.DEVNULL,
                timeout=cpu_seconds * 2 + 10,
                env={"LC_ALL": "C.UTF-8"},
                check=False,
            )
    except subprocess.TimeoutExpired:
        log_event(logger, "pdf_child.timeout", level=logging.WARNING, job=job)
        raise ChildFailed("timeout") from None
    if output is None:
        first_line = finished.stdout[: finished.stdout.find(b"\n") + 1]
    else:
        output.seek(0)
        first_line = output.readline(MAX_ANSWER_LINE)
    try:
        answer = json.loads(first_line) if finished.returncode == 0 and first_line.endswith(b"\n") else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        # Killed for CPU time (SIGXCPU/SIGKILL), out of memory, or failed before it could answer.
        log_event(logger, "pdf_child.failed", level=logging.WARNING, job=job, returncode=finished.returncode)
        raise ChildFailed(str(finished.returncode))
    if output is not None:
        return answer, len(first_line)
    return answer, memoryview(finished.stdout)[len(first_line) :]


def check_in_child(data, limits):
    """Return a CheckedPdf for `data` (bytes, or the pathlib.Path of a file), or raise
    PdfRejected; the work happens in a child, and the rebuilt copy is left in a temporary file."""
    copy = tempfile.TemporaryFile()  # noqa: SIM115 - handed over open, in the CheckedPdf
    try:
        answer, offset = run_in_child(
            "check",
            data,
            cpu_seconds=limits.cpu_seconds,
            memory_bytes=limits.memory_bytes,
            output=copy,
            limits=asdict(limits),
        )
        if not answer["ok"]:
            raise PdfRejected(answer["message"], answer["reason"])
        return CheckedPdf(page_count=answer["page_count"], original_sha256=sha256_of(data), copy=copy, offset=offset)
    except BaseException as failed:
        copy.close()
        if isinstance(failed, ChildFailed):
            raise PdfRejected.because("too_complex") from None
        raise


def sha256_of(data):
    """The SHA-256 hex of bytes, or of the file at a pathlib.Path, read in pieces."""
    if not isinstance(data, Path):
        return hashlib.sha256(data).hexdigest()
    digest = hashlib.sha256()
    with data.open("rb") as file:
        while piece := file.read(HASH_PIECE_BYTES):
            digest.update(piece)
    return digest.hexdigest()


def check_and_rebuild(data, limits):
    """The whole job: gate the upload, rebuild it, and gate the copy too (in this process;
    the copy in memory)."""
    from orders.pdf.gate import inspect
    from orders.pdf.rebuild import rebuild

    page_count = inspect(data, limits)
    try:
        content = rebuild(data)
    except MemoryError:
        raise
    except Exception:  # noqa: BLE001 - a copy we cannot make is a file we do not send
        raise PdfRejected.because("rebuild_failed") from None
    try:
        # The size limit is for what staff may upload; the copy is checked for everything else.
        copied_pages = inspect(content, replace(limits, max_bytes=max(limits.max_bytes, len(content))))
    except PdfRejected:
        raise PdfRejected.because("rebuild_failed") from None
    if copied_pages != page_count:
        raise PdfRejected.because("rebuild_failed")
    return CheckedPdf(page_count=page_count, original_sha256=sha256_of(data), copy=io.BytesIO(content))


def check_job(request, data):
    """The child's side of `check_in_child`."""
    try:
        checked = check_and_rebuild(data, Limits(**request["limits"]))
    except PdfRejected as rejected:
        return {"ok": False, "reason": rejected.reason, "message": rejected.message}, b""
    return {"ok": True, "page_count": checked.page_count}, checked.copy.getbuffer()
