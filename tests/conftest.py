"""Shared fixtures: partners, sample Redox payloads, staff users in each role (built with
tests/factories.py), and a fake tracer."""

import json
import runpy
import signal
from pathlib import Path

import pytest

from tests.factories import (
    PARTNER_DESTINATION_ID,
    PARTNER_DESTINATION_NAME,
    SAMPLES,
    PartnerFactory,
    UserFactory,
)

PARTNER_TOKEN = "partner-token-0123456789abcdef"
SECOND_PARTNER_TOKEN = "second-partner-token-fedcba9876543210"


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _plain_static_storage(settings):
    # Tests run with DEBUG off but without collectstatic, so the manifest storage would
    # fail on every {% static %}; templates only need a URL here.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _second_factor_not_enforced(settings):
    # Most tests sign in with force_login, which passes no second factor; the tests of
    # MFA itself (test_mfa_*.py, tests/browser/test_sign_in_mfa.py) turn it back on.
    settings.MFA_REQUIRED = False


@pytest.fixture
def restore_signal_handlers():
    """The worker installs SIGINT/SIGTERM handlers for a graceful stop; give the test runner its own back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def events(caplog, name):
    """The log records of one business event (hcoint.events.log_event sets `event`)."""
    return [record for record in caplog.records if getattr(record, "event", None) == name]


def settings_defaults(monkeypatch, *names):
    """{name: value} of hcoint/settings.py evaluated afresh with `names` unset in the environment:
    what a deployment that does not set them gets."""
    for name in names:
        monkeypatch.delenv(name, raising=False)
    module = runpy.run_path(str(Path(__file__).resolve().parent.parent / "hcoint" / "settings.py"))
    return {name: module[name] for name in names}


def end_this_connection():
    """End the server side of Django's connection from another session, as a PostgreSQL
    restart or an idle timeout would; returns the ended backend's pid."""
    from django.db import connection

    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    other = connection.copy()
    with other.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    other.close()
    return pid


def sample_bytes(name):
    return (SAMPLES / name).read_bytes()


def sample_json(name):
    return json.loads(sample_bytes(name))


@pytest.fixture
def partner(db):
    return PartnerFactory(
        name="Cascade Health",
        destination_id=PARTNER_DESTINATION_ID,
        destination_name=PARTNER_DESTINATION_NAME,
        token=PARTNER_TOKEN,
    )


@pytest.fixture
def second_partner(db):
    return PartnerFactory(
        name="Second Hospital", destination_id="dest-2", destination_name="Second Epic", token=SECOND_PARTNER_TOKEN
    )


@pytest.fixture
def viewer(db):
    return UserFactory(username="vera", viewer=True)


@pytest.fixture
def uploader(db):
    return UserFactory(username="ursula", uploader=True)


@pytest.fixture
def admin_user(db):
    return UserFactory(username="ada", admin=True)


class RecordingTracer:
    """Stands in for ddtrace's tracer: hands out real Span objects and keeps them."""

    enabled = True

    def __init__(self):
        self.spans = []

    def trace(self, name, resource=None):
        # Imported here so that only the tests that trace load ddtrace.
        from ddtrace.trace import Span

        span = Span(name, resource=resource)
        self.spans.append(span)
        return span

    def named(self, name):
        return [span for span in self.spans if span.name == name]


@pytest.fixture
def recording_tracer(monkeypatch):
    """hcoint.tracing spans go to a RecordingTracer, installed where ddtrace-run puts its global
    tracer (ddtrace.trace.tracer). Imported here so that only the tests that trace load ddtrace."""
    import ddtrace.trace

    tracer = RecordingTracer()
    monkeypatch.setattr(ddtrace.trace, "tracer", tracer)
    return tracer
