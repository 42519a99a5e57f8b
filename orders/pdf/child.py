"""The child process's entry point (orders/pdf/sandbox.py starts it): limit itself, read
the request and the file, run the job, answer. It imports only the standard library's
lightest modules, so each preview or text job pays for PDFium and nothing else; the
upload check imports its parsers in its own job."""

import importlib
import json
import os
import resource
import sys

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


def _limit_self(cpu_seconds, memory_bytes):
    """Bind this process to `cpu_seconds` of CPU time and `memory_bytes` of address space."""
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def child_main():
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    # The job's header is the last argument (orders/pdf/sandbox.py CHILD_CODE); the file is stdin.
    request = json.loads(sys.argv[2])
    _limit_self(request["cpu_seconds"], request["memory_bytes"])
    data = stdin.read()
    module_name, _, function_name = JOBS[request["job"]].partition(":")
    try:
        job = getattr(importlib.import_module(module_name), function_name)
        answer, content = job(request, data)
    except MemoryError:
        answer, content = OUT_OF_MEMORY, b""
    stdout.write(json.dumps(answer).encode() + b"\n")
    stdout.write(content)
    stdout.flush()
    os._exit(0)  # skip interpreter teardown: nothing left to clean up, and it costs time
