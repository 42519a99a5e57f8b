"""Tracing: custom spans with opaque tags, a scrubber for ddtrace's own spans, and no agent needed."""

import json
import os
import socket
import sys
from pathlib import Path

import pytest
from ddtrace.trace import Span

from hcoint import tracing
from hcoint.phi import WITHHELD
from tests.processes import run_python

ROOT = Path(__file__).resolve().parent.parent
MRN = "MRN0048213"


def test_span_does_nothing_when_tracing_is_off():
    # The test settings run with DD_TRACE_ENABLED=false and without ddtrace-run.
    with tracing.span("redox.request", partner_id=1) as handle:
        handle.set_tag("outcome", "sent")
    assert handle.active is False


def test_span_carries_opaque_tags_and_drops_sensitive_ones(recording_tracer):
    with tracing.span("redox.request", resource="Results.New", partner_id=3, delivery_id=42) as handle:
        handle.set_tags(data_model="Results", patient_name="Samplepatient", outcome="sent")
        handle.set_tag("http.status_code", 200)
    (span,) = recording_tracer.spans
    tags = span.get_tags()
    assert span.resource == "Results.New"
    assert tags["partner_id"] == "3"
    assert tags["delivery_id"] == "42"
    assert tags["data_model"] == "Results"
    assert tags["outcome"] == "sent"
    assert tags["http.status_code"] == "200"
    assert "patient_name" not in tags
    assert span.finished


def test_an_exception_in_a_span_is_recorded_without_its_message(recording_tracer):
    with pytest.raises(ValueError), tracing.span("redox.request"):
        int(MRN)
    (span,) = recording_tracer.spans
    tags = span.get_tags()
    assert span.error == 1
    assert tags["error.type"] == "ValueError"
    assert tags["error.message"] == WITHHELD
    assert MRN not in tags["error.stack"]
    assert span.finished


def test_the_scrubber_removes_query_strings_user_names_and_unsafe_messages():
    span = Span("django.request")
    span.set_tag("http.url", "https://hcoint.example.org/?q=Samplepatient")
    span.set_tag("http.query.string", "q=Samplepatient")
    span.set_tag("django.user.name", "ursula")
    try:
        int(MRN)
    except ValueError:
        span.set_exc_info(*sys.exc_info())
    assert MRN in span.get_tag("error.message")

    tracing.scrub_span(span)

    tags = span.get_tags()
    assert tags["http.url"] == "https://hcoint.example.org/"
    assert "http.query.string" not in tags
    assert "django.user.name" not in tags
    assert tags["error.message"] == WITHHELD
    assert MRN not in tags["error.stack"]
    assert "ValueError" in tags["error.stack"]


def test_the_scrubber_keeps_infrastructure_error_messages():
    span = Span("requests.request")
    try:
        raise TimeoutError("redox.test timed out")
    except TimeoutError:
        span.set_exc_info(*sys.exc_info())
    tracing.scrub_span(span)
    assert span.get_tag("error.message") == "redox.test timed out"


TRACED_PROBE = """
import ddtrace.auto  # what ddtrace-run does first
import json, django
django.setup()
from django.core.management import call_command
from django.test import Client
from hcoint import tracing

call_command("migrate", verbosity=0)
with tracing.span("probe.work", partner_id=1) as handle:
    handle.set_tag("outcome", "ok")
response = Client().get("/healthcheck")
print(json.dumps({
    "status": response.status_code,
    "span_active": handle.active,
    "scrubber_installed": tracing._installed,
}))
"""


def closed_local_port():
    """A port on 127.0.0.1 that nothing listens on: bound once by us, then released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_app_works_with_tracing_enabled_and_no_agent(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("DD_") and key not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "hcoint.settings",
            "DEBUG": "false",
            "SECRET_KEY": "tracing-probe-secret-key-0123456789abcdefghijklmnop",
            "ALLOWED_HOSTS": "testserver",
            "SECURE_SSL_REDIRECT": "false",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'traced.sqlite3'}",
            "DD_TRACE_ENABLED": "true",
            "DD_SERVICE": "hcoint",
            "DD_ENV": "test",
            "DD_TRACE_AGENT_URL": f"http://127.0.0.1:{closed_local_port()}",
            "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false",
            "DD_REMOTE_CONFIGURATION_ENABLED": "false",
        }
    )
    # A generous bound: the point is that it finishes instead of hanging on the agent.
    result = run_python(TRACED_PROBE, env=env, timeout=180)
    outcome = json.loads(next(line for line in reversed(result.stdout.splitlines()) if line.startswith('{"status"')))
    assert outcome == {"status": 200, "span_active": True, "scrubber_installed": True}
