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
text). Neither side copies the file to frame it: the parent hands `data` to stdin as it is
and returns a view of the answer's bytes (a 4 MB check peaks at 7.7 MB of the parent's
memory instead of 11.5 MB, measured with tracemalloc).
"""

import hashlib
import json
import logging
import subprocess
import sys
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


class ChildFailed(Exception):
    """The child ran out of time or memory, crashed, or gave no answer."""


def run_in_child(job, data, *, cpu_seconds, memory_bytes, **params):
    """Run `job` on `data` in a limited child; return its (answer dict, content), the
    content a read-only memoryview of the child's output (bytes(content) where bytes are
    needed: one copy, made by the caller that needs it).

    Raises ChildFailed when the child was killed (CPU time, memory, a signal such as a
    renderer's SIGSEGV) or timed out. The child's stderr is not logged: parser messages may
    quote the file.
    """
    header = {"job": job, "cpu_seconds": cpu_seconds, "memory_bytes": memory_bytes, **params}
    try:
        finished = subprocess.run(  # noqa: S603 - our own interpreter and code, no shell
            [sys.executable, "-I", "-c", CHILD_CODE, PROJECT_DIR, json.dumps(header)],
            input=data,
            capture_output=True,
            timeout=cpu_seconds * 2 + 10,
            env={"LC_ALL": "C.UTF-8"},
            check=False,
        )
    except subprocess.TimeoutExpired:
        log_event(logger, "pdf_child.timeout", level=logging.WARNING, job=job)
        raise ChildFailed("timeout") from None
    output = finished.stdout
    end = output.find(b"\n")
    try:
        answer = json.loads(output[:end]) if finished.returncode == 0 and end >= 0 else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        # Killed for CPU time (SIGXCPU/SIGKILL), out of memory, or failed before it could answer.
        log_event(logger, "pdf_child.failed", level=logging.WARNING, job=job, returncode=finished.returncode)
        raise ChildFailed(str(finished.returncode))
    return answer, memoryview(output)[end + 1 :]


def check_in_child(data, limits):
    """Return a CheckedPdf for `data`, or raise PdfRejected; the work happens in a child."""
    try:
        answer, content = run_in_child(
            "check", data, cpu_seconds=limits.cpu_seconds, memory_bytes=limits.memory_bytes, limits=asdict(limits)
        )
    except ChildFailed:
        raise PdfRejected.because("too_complex") from None
    if not answer["ok"]:
        raise PdfRejected(answer["message"], answer["reason"])
    return CheckedPdf(
        page_count=answer["page_count"], content=bytes(content), original_sha256=hashlib.sha256(data).hexdigest()
    )


def check_and_rebuild(data, limits):
    """The whole job: gate the upload, rebuild it, and gate the copy too."""
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
    return CheckedPdf(page_count=page_count, content=content, original_sha256=hashlib.sha256(data).hexdigest())


def check_job(request, data):
    """The child's side of `check_in_child`."""
    try:
        checked = check_and_rebuild(data, Limits(**request["limits"]))
    except PdfRejected as rejected:
        return {"ok": False, "reason": rejected.reason, "message": rejected.message}, b""
    return {"ok": True, "page_count": checked.page_count}, checked.content
