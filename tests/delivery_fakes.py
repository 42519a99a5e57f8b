"""Test support for the delivery tests: stored orders with notes, and a fake Redox.

FakeRedox stands in for `redox.client.get_client()` with an autospec'd RedoxClient, so a
call with the wrong signature fails the test; each call answers with the next scripted
outcome (a SendResult, a RedoxError to raise, or a callable) and is remembered.
"""

import threading
from collections import Counter
from datetime import UTC, datetime
from unittest import mock

from django.db import transaction

from orders.delivery import delivery_enqueue
from orders.models import ClinicalNote, Delivery, Order
from redox.client import RedoxClient, SendResult
from redox.errors import RedoxError
from tests.conftest import sample_bytes

PDF = sample_bytes("clinical-note.pdf")
PATIENT_LAST_NAME = "Samplepatient"
T0 = datetime(2026, 10, 6, 12, 0, tzinfo=UTC)


def make_order(partner, ehr_order_id="157720311", **fields):
    values = {
        "patient_identifiers": [{"ID": "MRN0048213", "IDType": "MR"}],
        "patient_demographics": {"FirstName": "Testy", "LastName": PATIENT_LAST_NAME, "DOB": "1948-02-29"},
        "patient_mrn": "MRN0048213",
        "patient_first_name": "Testy",
        "patient_last_name": PATIENT_LAST_NAME,
        "visit_number": "VIS-2026-000731",
        "procedure_code": "DOC1042",
        "procedure_description": "Request for outside clinical notes",
        "provider": {"NPI": "1999999984", "ID": "1999999984", "IDType": "NPI", "LastName": "Exampledoc"},
        "is_test": True,
        "state": Order.State.SENDING,
    }
    values.update(fields)
    return Order.objects.create(partner=partner, ehr_order_id=ehr_order_id, **values)


def make_delivery(order, user, *, content=PDF, created_at=T0, enqueue=True, **fields):
    """A note and its pending delivery, queued the way the staff pages do: one transaction."""
    with transaction.atomic():
        note = ClinicalNote.objects.create(
            order=order,
            file_name="note.pdf",
            content=content,
            size=len(content),
            sha256="0" * 64,
            page_count=1,
            uploaded_by=user,
            uploaded_at=created_at,
        )
        delivery = Delivery.objects.create(order=order, note=note, created_by=user, created_at=created_at, **fields)
        if enqueue:
            delivery_enqueue(delivery=delivery)
    return delivery


def accepted(log_id="log-1"):
    return SendResult(status=200, log_ids=[log_id])


def transient(status=503, retry_after=None, message="Redox /endpoint: HTTP 503"):
    return RedoxError(message, retryable=True, status=status, retry_after=retry_after)


def permanent(texts=("Meta.Destinations needs to contain a destination from existing subscriptions",), status=400):
    return RedoxError(
        f"Redox /endpoint: HTTP {status}: " + "; ".join(texts), retryable=False, status=status, redox_errors=texts
    )


def delivery_ref_of(message):
    """Our delivery's id as it travels in a message (Results or Notes)."""
    if "Note" in message:
        return message["Note"]["DocumentID"]
    return message["Orders"][0]["ApplicationOrderID"]


class FakeRedox:
    def __init__(self, *outcomes, default=None):
        self.outcomes = list(outcomes)
        self.default = default if default is not None else accepted()
        self.messages = []
        self.uploads = []
        self.sends_per_delivery = Counter()
        self.lock = threading.Lock()
        self.client = mock.create_autospec(RedoxClient, instance=True)
        self.client.send.side_effect = self._send
        self.client.upload_file.side_effect = self._upload

    def _next(self):
        with self.lock:
            return self.outcomes.pop(0) if self.outcomes else self.default

    def _send(self, message):
        with self.lock:
            self.messages.append(message)
            self.sends_per_delivery[delivery_ref_of(message)] += 1
        outcome = self._next()
        if callable(outcome) and not isinstance(outcome, BaseException):
            outcome = outcome(message)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def _upload(self, content, file_name, content_type="application/pdf"):
        with self.lock:
            self.uploads.append((bytes(content), file_name))
            return f"https://blob.redox.test/{len(self.uploads)}"

    def patch(self):
        return mock.patch("redox.client.get_client", autospec=True, return_value=self.client)
