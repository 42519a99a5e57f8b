"""A delivery before anything is stored: its bytes, what they say, and the message row to insert.

Shared by the general ingest (orders/ingest.py) and the one-statement path
(orders/ingest_statement.py, through ingest.py): both store the same row for the same
delivery. Reading never raises for content; a bug in reading is kept as the exception, so
the message is still stored and then marked failed.
"""

import hashlib
from dataclasses import dataclass

from django.utils import timezone

from orders.models import InboundMessage
from orders.order_apply import fit
from redox import inbound
from redox.values import clean_text

# Headers worth keeping for triage. An allow-list, so the verification token (and
# anything else secret a proxy may add) is never stored with the message.
KEPT_HEADERS = ("content-type", "content-length", "user-agent", "application-name", "x-request-id")
HEADER_MAX_CHARS = 500


@dataclass(frozen=True)
class Arrival:
    """One delivery from Redox: its bytes and what is known of it before anything is stored."""

    body: bytes
    body_sha256: str
    arrived: object
    headers: dict
    read: object
    meta: inbound.Meta
    key: str

    @classmethod
    def of(cls, body, headers, received_at, read):
        body = bytes(body)
        read = read_body(body) if read is None else read
        meta = read.meta if isinstance(read, inbound.Inbound) else inbound.Meta()
        return cls(
            body=body,
            body_sha256=hashlib.sha256(body).hexdigest(),
            arrived=received_at or timezone.now(),
            headers=kept_headers(headers),
            read=read,
            meta=meta,
            key=inbound.dedupe_key(body, meta),
        )

    def stored(self, partner):
        return dict(
            partner=partner,
            body=self.body,
            body_sha256=self.body_sha256,
            headers=self.headers,
            received_at=self.arrived,
        )


def marked(read):
    """The status columns of a message whose reading is `read`, as applying it will leave them."""
    now = timezone.now()
    if isinstance(read, Exception):
        return {"status": InboundMessage.Status.FAILED, "error": crash_reason(read), "processed_at": now}
    if read.error is not None:
        return {"status": InboundMessage.Status.FAILED, "error": read.error, "processed_at": now}
    status = InboundMessage.Status.IGNORED if read.ignored else InboundMessage.Status.PROCESSED
    return {"status": status, "processed_at": now}


def read_body(body):
    """What `body` says (`inbound.read`, which never raises for content), or the exception a
    bug in reading raised: not the partner's problem, so the message is still stored, and
    processing marks it failed."""
    try:
        return inbound.read(body)
    except Exception as exc:
        return exc


def new_message(*, partner, meta, key, body, body_sha256, headers, received_at, **marked):
    """The message row to insert (unsaved)."""
    return InboundMessage(
        partner=partner,
        dedupe_key=key,
        redox_log_id=fit(InboundMessage, "redox_log_id", meta.log_id),
        data_model=fit(InboundMessage, "data_model", meta.data_model),
        event_type=fit(InboundMessage, "event_type", meta.event_type),
        event_at=meta.event_at,
        body=body,
        body_sha256=body_sha256,
        headers=headers,
        received_at=received_at,
        last_seen_at=received_at,
        **marked,
    )


def kept_headers(headers):
    kept = {}
    for name, value in (headers or {}).items():
        lowered = str(name).lower()
        if lowered in KEPT_HEADERS:
            kept[lowered] = clean_text(str(value)[:HEADER_MAX_CHARS])
    return kept


def crash_reason(exc):
    # Our problem, not the partner's: keep the message for reprocessing and answer 200.
    # The exception text is not kept or logged, because database errors quote the
    # values they choked on.
    return f"HCOINT could not apply this message ({type(exc).__name__})."
