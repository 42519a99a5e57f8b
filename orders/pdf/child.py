"""The child process's entry point (orders/pdf/sandbox.py starts it): limit itself, read
the request and the file, run the job, answer. It imports only the standard library's
lightest modules, so each preview or text job pays for PDFium and nothing else; the
upload check imports its parsers in its own job."""

import importlib
import json
import os
import resource
import sys
from types import SimpleNamespace

# Already loaded with the orders.pdf package on the way here; no Django in it.
from orders.pdf.refusals import MESSAGES

# Job name -> "module:function": function(request, data) -> (answer dict, content bytes).
JOBS = {
    "check": "orders.pdf.sandbox:check_job",
    "render": "orders.pdf.render:render_job",
    "text": "orders.pdf.render:text_job",
    "texts": "orders.pdf.render:texts_job",
}
OUT_OF_MEMORY = {"ok": False, "reason": "too_complex", "message": MESSAGES["too_complex"]}


def _limit_self(limits):
    """Bind this process to `limits` (anything with `cpu_seconds` and `memory_bytes`, such as Limits)."""
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def child_main():
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    request = json.loads(stdin.readline())
    _limit_self(SimpleNamespace(cpu_seconds=request["cpu_seconds"], memory_bytes=request["memory_bytes"]))
    data = stdin.read()
    module_name, _, function_name = JOBS[request["job"]].partition(":")
    try:
        job = getattr(importlib.import_module(module_name), function_name)
        answer, content = job(request, data)
    except MemoryError:
        answer, content = OUT_OF_MEMORY, b""
    stdout.write(json.dumps(answer).encode() + b"\n" + content)
    stdout.flush()
    os._exit(0)  # skip interpreter teardown: nothing left to clean up, and it costs time
