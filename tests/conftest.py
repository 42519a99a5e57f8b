"""Shared fixtures: partners, sample Redox payloads, staff users in each role, and fakes
for queueing a delivery and for the tracer."""

import json
import signal
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

import pytest
from django.contrib.auth.models import Group, User

from hcoint import tracing
from orders.models import Partner
from redox.messages import OutboundOrder

SAMPLES = Path(__file__).resolve().parent.parent / "redox" / "samples"
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


def sample_bytes(name):
    return (SAMPLES / name).read_bytes()


def sample_json(name):
    return json.loads(sample_bytes(name))


def sample_outbound_order(**changes):
    """The OutboundOrder the delivery code would make from order-new.json."""
    payload = sample_json("order-new.json")
    order = OutboundOrder(
        ehr_order_id=payload["Order"]["ID"],
        patient_identifiers=payload["Patient"]["Identifiers"],
        patient_demographics=payload["Patient"]["Demographics"],
        visit_number=payload["Visit"]["VisitNumber"],
        procedure=payload["Order"]["Procedure"],
        provider=payload["Order"]["Provider"],
        is_test=payload["Meta"]["Test"],
        destination_id="5c1e8a90-2f47-4b6d-9e13-7a0c4d2b8f61",
        destination_name="Cascade Health Epic (Staging)",
        delivery_ref="hcoint-delivery-42",
        corrected=False,
        completed_at=datetime(2026, 10, 6, 18, 22, 41, tzinfo=UTC),
    )
    return replace(order, **changes)


@pytest.fixture
def partner(db):
    partner = Partner(
        name="Cascade Health",
        destination_id="5c1e8a90-2f47-4b6d-9e13-7a0c4d2b8f61",
        destination_name="Cascade Health Epic (Staging)",
    )
    partner.set_tokens(PARTNER_TOKEN)
    partner.save()
    return partner


@pytest.fixture
def second_partner(db):
    partner = Partner(name="Second Hospital", destination_id="dest-2", destination_name="Second Epic")
    partner.set_tokens(SECOND_PARTNER_TOKEN)
    partner.save()
    return partner


def make_user(username, role=None, **extra):
    user = User.objects.create_user(username=username, password="correct-horse-battery", **extra)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def viewer(db):
    return make_user("vera", "viewer")


@pytest.fixture
def uploader(db):
    return make_user("ursula", "uploader")


@pytest.fixture
def admin_user(db):
    return make_user("ada", "admin", is_staff=True)


@pytest.fixture
def enqueue():
    """The note workflows' `delivery_enqueue` (which wakes the workers after commit), replaced by a
    fake that records which deliveries they queued."""
    with mock.patch("orders.notes.delivery_enqueue", autospec=True) as fake:
        yield fake


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
    """hcoint.tracing spans go to a RecordingTracer, as if ddtrace-run were tracing."""
    tracer = RecordingTracer()
    monkeypatch.setattr(tracing, "_active_tracer", lambda: tracer)
    return tracer
