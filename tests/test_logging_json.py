"""Production log lines: one JSON object per line with Datadog's standard attributes."""

import io
import json
import logging
import os
import secrets
from pathlib import Path

import pytest

from hcoint import middleware
from hcoint.encryption import generate_key
from hcoint.events import log_event
from hcoint.logging import JsonFormatter, PhiFilter
from tests.processes import run_python

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def json_log():
    """A logger writing through the production formatter and filters; returns (logger, lines())."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(middleware.RequestIdFilter())
    handler.addFilter(PhiFilter())
    logger = logging.getLogger("tests.json_log")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)
    logger.propagate = True


def test_each_record_is_one_object_with_the_standard_fields(json_log):
    logger, lines = json_log
    logger.info("plain message")
    logger.warning("second")
    first, second = lines()
    assert list(first)[:4] == ["timestamp", "level", "message", "logger.name"]
    assert first["level"] == "INFO"
    assert first["message"] == "plain message"
    assert first["logger.name"] == "tests.json_log"
    assert first["timestamp"].endswith("Z") and "T" in first["timestamp"]
    assert second["level"] == "WARNING"


def test_business_events_carry_the_event_name_and_opaque_ids(json_log):
    logger, lines = json_log
    log_event(logger, "delivery.sent", delivery_id=42, order_id=7, partner_id=3)
    (line,) = lines()
    assert line["message"] == "delivery.sent"
    assert line["event"] == "delivery.sent"
    assert (line["delivery_id"], line["order_id"], line["partner_id"]) == (42, 7, 3)


def test_trace_correlation_comes_from_the_attributes_ddtrace_injects(json_log):
    logger, lines = json_log
    injected = {
        "dd.trace_id": "6750b0f70000000012345678abcdef01",
        "dd.span_id": "1234567890",
        "dd.service": "hcoint",
        "dd.env": "staging",
        "dd.version": "abc123",
    }
    logger.info("traced", extra=injected)
    (line,) = lines()
    for key, value in injected.items():
        assert line[key] == value


def test_service_env_and_version_fall_back_to_the_environment(json_log, monkeypatch):
    monkeypatch.setenv("DD_SERVICE", "hcoint")
    monkeypatch.setenv("DD_ENV", "production")
    monkeypatch.setenv("DD_VERSION", "0f1e2d3")
    logger, lines = json_log
    logger.info("untraced")
    (line,) = lines()
    assert (line["dd.service"], line["dd.env"], line["dd.version"]) == ("hcoint", "production", "0f1e2d3")
    assert line["dd.trace_id"] == "0"
    assert line["dd.span_id"] == "0"


def test_exceptions_become_error_kind_message_and_stack(json_log):
    logger, lines = json_log
    try:
        raise ConnectionError("redox.test:443 refused the connection")
    except ConnectionError:
        logger.exception("delivery.attempted")
    (line,) = lines()
    assert line["level"] == "ERROR"
    assert line["error.kind"] == "ConnectionError"
    assert line["error.message"] == "redox.test:443 refused the connection"
    assert line["error.stack"].startswith("Traceback (most recent call last):")
    assert "test_exceptions_become_error_kind_message_and_stack" in line["error.stack"]
    assert "exc_info" not in line


def test_the_request_id_of_the_current_request_is_on_every_line(json_log):
    logger, lines = json_log
    token = middleware._request_id.set("req-0123456789")
    try:
        logger.info("inside a request")
    finally:
        middleware._request_id.reset(token)
    logger.info("outside")
    inside, outside = lines()
    assert inside["request_id"] == "req-0123456789"
    assert outside["request_id"] == ""


PRODUCTION_PROBE = """
import django, logging
django.setup()
from hcoint.events import log_event
logger = logging.getLogger("orders.probe")
log_event(logger, "order.created", order_id=1, partner_id=2)
try:
    {}["missing"]
except KeyError:
    logger.exception("message.failed")
from django.core.management import call_command
from django.test import Client
# The webhook counts wrong tokens per address in the database (hcoint/throttle.py).
call_command("migrate", "orders", verbosity=0)
Client(HTTP_HOST="hcoint.example.org").post("/redox/webhook/", b"{}", content_type="application/json",
                                            HTTP_X_FORWARDED_PROTO="https")
"""


def test_production_settings_print_only_json_lines_on_stdout(tmp_path):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DJANGO_SETTINGS_MODULE": "hcoint.settings",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "FIELD_ENCRYPTION_KEYS": generate_key(),
        "ALLOWED_HOSTS": "hcoint.example.org",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'probe.sqlite3'}",
        "REDOX_API_KEY": "prod-like-api-key",
        "REDOX_API_SECRET": "prod-like-api-secret",
        "DD_SERVICE": "hcoint",
        "DD_ENV": "production",
        "DD_VERSION": "abc123",
        "DD_TRACE_ENABLED": "false",
        "DD_DOGSTATSD_DISABLE": "true",
    }
    result = run_python(PRODUCTION_PROBE, env=env)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    # Python warnings are log lines too (no collectstatic here: WhiteNoise warns of it).
    lines = [line for line in lines if line["logger.name"] != "py.warnings"]
    assert [line["message"] for line in lines] == ["order.created", "message.failed", "webhook.auth_failed"]
    for line in lines:
        assert {"timestamp", "level", "message", "logger.name", "request_id"} <= set(line)
        assert line["dd.service"] == "hcoint"
        assert line["dd.env"] == "production"
        assert line["dd.version"] == "abc123"
    assert lines[1]["error.kind"] == "KeyError"
    assert "Traceback" in lines[1]["error.stack"]
