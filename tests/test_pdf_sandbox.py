"""The PDF check runs in a child process with CPU-time and memory limits, so no upload
can hang or exhaust a web worker; what the child answers is what pdf_check returns."""

import hashlib
import json
import logging
import resource
import subprocess
import sys
from dataclasses import asdict, replace

import pytest

from orders.pdf import pdf_check
from orders.pdf import sandbox as sandbox_module
from orders.pdf.refusals import MESSAGES, Limits, PdfRejected
from orders.pdf.sandbox import PROJECT_DIR, check_and_rebuild, check_in_child
from tests.factories import SAMPLE_PDF
from tests.pdf_corpus import basic, stream, with_link, zeros_deflated
from tests.test_pdf_gate_refuses import LIMITS


def test_the_child_returns_the_same_copy_as_the_check_itself():
    checked, in_process = check_in_child(SAMPLE_PDF, LIMITS), check_and_rebuild(SAMPLE_PDF, LIMITS)
    assert (checked.page_count, checked.content) == (in_process.page_count, in_process.content)
    assert checked.original_sha256 == in_process.original_sha256 == hashlib.sha256(SAMPLE_PDF).hexdigest()
    # The copy is in a temporary file, not in memory; read again, it is the same.
    assert checked.open().read() == checked.content and checked.copy.fileno() >= 0


def test_a_refusal_in_the_child_reaches_the_caller_with_its_reason():
    with pytest.raises(PdfRejected) as caught:
        check_in_child(with_link(b"<< /S /Launch /F (calc.exe) >>"), LIMITS)
    assert (caught.value.reason, caught.value.message) == ("launch", MESSAGES["launch"])


def test_pdf_check_reads_its_limits_from_settings(settings):
    settings.NOTE_MAX_PAGES = 2
    with pytest.raises(PdfRejected) as caught:
        pdf_check(basic(pages=3))
    assert caught.value.reason == "too_many_pages"


def test_the_child_gets_no_environment(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://secret@db/hcoint")
    seen = {}
    real_run = subprocess.run

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(sandbox_module.subprocess, "run", spy)
    check_in_child(SAMPLE_PDF, LIMITS)
    assert seen["env"] == {"LC_ALL": "C.UTF-8"}
    assert seen["timeout"] > LIMITS.cpu_seconds


def test_the_child_limits_its_own_cpu_time_and_memory():
    limits = replace(LIMITS, cpu_seconds=7, memory_bytes=900 * 1024 * 1024)
    code = (
        "import json, resource, sys; sys.path.insert(0, sys.argv[1]);"
        "from orders.pdf.refusals import Limits; from orders.pdf.child import _limit_self;"
        "limits = Limits(**json.loads(sys.argv[2])); _limit_self(limits.cpu_seconds, limits.memory_bytes);"
        "print(json.dumps([resource.getrlimit(resource.RLIMIT_CPU), resource.getrlimit(resource.RLIMIT_AS)]))"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", code, PROJECT_DIR, json.dumps(asdict(limits))],
        capture_output=True,
        check=True,
    )
    cpu, memory = json.loads(result.stdout)
    assert cpu == [7, 8]
    assert memory == [900 * 1024 * 1024] * 2
    # The test process itself is untouched.
    assert resource.getrlimit(resource.RLIMIT_AS)[0] != 900 * 1024 * 1024


def test_a_child_out_of_memory_is_a_refusal_not_a_crash():
    # The inflate budget is set far above the memory limit, so memory runs out first.
    bomb = basic(extra=[(20, stream(zeros_deflated(400 << 20), b"/Filter /FlateDecode"))])
    limits = replace(LIMITS, max_inflated_bytes=4 << 30, memory_bytes=300 << 20)
    with pytest.raises(PdfRejected) as caught:
        check_in_child(bomb, limits)
    assert caught.value.reason == "too_complex"


@pytest.mark.slow
def test_a_child_over_its_cpu_time_is_stopped_and_the_file_refused():
    # Thirty streams that each unpack to 100 MB: seconds of CPU, little memory at a time.
    packed = zeros_deflated(100 << 20)
    data = basic(extra=[(20 + n, stream(packed, b"/Filter /FlateDecode")) for n in range(30)])
    limits = replace(LIMITS, max_inflated_bytes=8 << 30, cpu_seconds=1)
    with pytest.raises(PdfRejected) as caught:
        check_in_child(data, limits)
    assert caught.value.reason == "too_complex"


def test_a_child_that_never_answers_is_stopped(monkeypatch):
    def hang(*args, **kwargs):
        raise subprocess.TimeoutExpired(args[0], kwargs["timeout"])

    monkeypatch.setattr(sandbox_module.subprocess, "run", hang)
    with pytest.raises(PdfRejected) as caught:
        check_in_child(SAMPLE_PDF, LIMITS)
    assert caught.value.reason == "too_complex"


@pytest.mark.parametrize(
    ("returncode", "stdout"),
    [(-9, b""), (1, b""), (0, b"not json\n"), (0, b"[1]\n")],
    ids=["killed", "crashed", "garbled", "not-an-answer"],
)
def test_a_child_that_fails_before_answering_is_a_refusal_and_logged(monkeypatch, caplog, returncode, stdout):
    def failed(*args, **kwargs):
        return subprocess.CompletedProcess(args[0], returncode, stdout=stdout, stderr=b"Samplepatient")

    monkeypatch.setattr(sandbox_module.subprocess, "run", failed)
    with caplog.at_level(logging.WARNING, logger="orders.pdf"), pytest.raises(PdfRejected) as caught:
        check_in_child(SAMPLE_PDF, LIMITS)
    assert caught.value.reason == "too_complex"
    (record,) = [record for record in caplog.records if record.getMessage() == "pdf_child.failed"]
    assert record.returncode == returncode
    assert "Samplepatient" not in caplog.text


def test_a_copy_that_fails_the_gate_is_never_returned(monkeypatch):
    # The copy must pass the same gate as the upload; a broken rebuild is a refusal.
    monkeypatch.setattr("orders.pdf.rebuild.rebuild", lambda data: b"%PDF-1.7 not really")
    with pytest.raises(PdfRejected) as caught:
        check_and_rebuild(SAMPLE_PDF, LIMITS)
    assert caught.value.reason == "rebuild_failed"


def test_a_rebuild_that_raises_is_a_refusal(monkeypatch):
    def explode(data):
        raise RuntimeError("qpdf said no")

    monkeypatch.setattr("orders.pdf.rebuild.rebuild", explode)
    with pytest.raises(PdfRejected) as caught:
        check_and_rebuild(SAMPLE_PDF, LIMITS)
    assert caught.value.reason == "rebuild_failed"


def test_limits_default_to_settings_values(settings):
    from orders.pdf import limits_from_settings

    settings.NOTE_CHECK_MEMORY_MB = 512
    limits = limits_from_settings()
    assert isinstance(limits, Limits)
    assert limits.memory_bytes == 512 * 1024 * 1024
    assert limits.max_inflated_bytes == settings.NOTE_MAX_INFLATED_BYTES
