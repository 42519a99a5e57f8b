"""Test support for the delivery tests: a fake Redox and the outcomes it can answer with.
(Orders, notes and deliveries come from tests/factories.py.)

FakeRedox stands in for `redox.client.get_client()` with an autospec'd RedoxClient, so a
call with the wrong signature fails the test; each call answers with the next scripted
outcome (a SendResult, a RedoxError to raise, or a callable) and is remembered.
"""

import threading
from collections import Counter
from datetime import UTC, datetime
from unittest import mock

from redox.client import RedoxClient, SendResult
from redox.errors import RedoxError
from redox.multipart import FileSource

T0 = datetime(2026, 10, 6, 12, 0, tzinfo=UTC)


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
            self.uploads.append((bytes(content.read_all() if isinstance(content, FileSource) else content), file_name))
            return f"https://blob.redox.test/{len(self.uploads)}"

    def patch(self):
        return mock.patch("redox.client.get_client", autospec=True, return_value=self.client)
