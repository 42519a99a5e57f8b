"""Run the gate and the rebuild in a child process with CPU-time and memory limits.

A hostile file can make a parser loop or allocate without end. Web workers run threads
(gunicorn gthread), so limits set in the worker would bind every request it serves; a
child process gets its own. The child is a fresh interpreter (`python -I`, no inherited
environment: no secrets, no Django) that sets `resource.setrlimit` on itself before it
reads the file, and the parent waits with a wall-clock timeout as well.

The protocol: the parent writes the limits as one JSON line then the file to the child's
stdin; the child answers with one JSON line, followed by the rebuilt copy when accepted.
"""

import hashlib
import json
import logging
import os
import resource
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

from hcoint.events import log_event
from orders.pdf.refusals import MESSAGES, CheckedPdf, Limits, PdfRejected

logger = logging.getLogger(__name__)

# The directory that holds the `orders` package, so the child can import it.
PROJECT_DIR = str(Path(__file__).resolve().parents[2])
CHILD_CODE = "import sys; sys.path.insert(0, sys.argv[1]); from orders.pdf.sandbox import child_main; child_main()"


def check_in_child(data, limits):
    """Return a CheckedPdf for `data`, or raise PdfRejected; the work happens in a child."""
    request = json.dumps(asdict(limits)).encode() + b"\n" + data
    try:
        finished = subprocess.run(  # noqa: S603 - our own interpreter and code, no shell
            [sys.executable, "-I", "-c", CHILD_CODE, PROJECT_DIR],
            input=request,
            capture_output=True,
            timeout=limits.cpu_seconds * 2 + 10,
            env={"LC_ALL": "C.UTF-8"},
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise PdfRejected.because("too_complex") from None
    header, _, content = finished.stdout.partition(b"\n")
    try:
        answer = json.loads(header) if finished.returncode == 0 else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        # Killed for CPU time (SIGXCPU/SIGKILL), out of memory, or failed before it could
        # answer. The child's stderr is not logged: parser messages may quote the file.
        log_event(logger, "pdf_check.child_failed", level=logging.WARNING, returncode=finished.returncode)
        raise PdfRejected.because("too_complex")
    if not answer["ok"]:
        raise PdfRejected(answer["message"], answer["reason"])
    return CheckedPdf(
        page_count=answer["page_count"], content=content, original_sha256=hashlib.sha256(data).hexdigest()
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


def _limit_self(limits):
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def child_main():
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    limits = Limits(**json.loads(stdin.readline()))
    _limit_self(limits)
    data = stdin.read()
    try:
        checked = check_and_rebuild(data, limits)
    except PdfRejected as rejected:
        answer, content = {"ok": False, "reason": rejected.reason, "message": rejected.message}, b""
    except MemoryError:
        answer, content = {"ok": False, "reason": "too_complex", "message": MESSAGES["too_complex"]}, b""
    else:
        answer, content = {"ok": True, "page_count": checked.page_count}, checked.content
    stdout.write(json.dumps(answer).encode() + b"\n" + content)
    stdout.flush()
    os._exit(0)  # skip interpreter teardown: nothing left to clean up, and it costs time
