"""Ingesting a Redox message: keep it verbatim, then apply it to orders.

Redox delivers at least once, in order, and pauses the partner's whole feed while we
answer >= 400 (docs/redox.md, Part 1). So the two steps are separate transactions:
the raw message is committed first, and nothing that goes wrong while applying it
can lose it or turn the answer into an error. A message we cannot apply is marked
failed, with a reason that carries no patient data, for `reprocess_messages --failed`.

Deduplication rests on the unique (partner, dedupe_key) constraint, not on a prior
read, so two simultaneous deliveries of one message cannot both insert; the loser
only counts the sighting. A duplicate whose bytes differ from every copy we hold (a
Redox retry carries a new `Meta.Logs[0].AttemptID`; a resend may change content) is
kept as a Redelivery in the same transaction as the count, before we answer, and
still changes no order. Applying takes a row lock on the message and skips one
already processed, so a retried or concurrent run has exactly one effect.
"""

import hashlib
import logging
from dataclasses import dataclass

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from hcoint.events import log_event
from orders.models import InboundMessage, Order, Redelivery
from redox import inbound
from redox.values import clean_text

logger = logging.getLogger(__name__)

# Headers worth keeping for triage. An allow-list, so the verification token (and
# anything else secret a proxy may add) is never stored with the message.
KEPT_HEADERS = ("content-type", "content-length", "user-agent", "application-name", "x-request-id")
HEADER_MAX_CHARS = 500
FINISHED = (InboundMessage.Status.PROCESSED, InboundMessage.Status.IGNORED)


@dataclass(frozen=True)
class Ingested:
    """What became of one delivery: the stored message, and whether it was one we already had."""

    message: InboundMessage
    duplicate: bool


def message_ingest(*, partner, body, headers, received_at=None):
    """Store one delivery from `partner` verbatim, then apply it. Never raises for bad content.

    `headers` is any mapping of request headers (only an allow-list is kept);
    `received_at` lets an import keep the original arrival time.
    """
    body = bytes(body)
    body_sha256 = hashlib.sha256(body).hexdigest()
    arrived = received_at or timezone.now()
    kept_headers = _kept_headers(headers)
    read = _read(body)
    meta = read.meta if isinstance(read, inbound.Inbound) else inbound.Meta()
    key = inbound.dedupe_key(body, meta)
    stored = dict(partner=partner, body=body, body_sha256=body_sha256, headers=kept_headers, received_at=arrived)
    try:
        message = _store(meta=meta, key=key, **stored)
    except IntegrityError as exc:
        return _duplicate(exc, key=key, **stored)
    except (DatabaseError, ValueError, OverflowError) as exc:
        # A value read from the body that the database still refused, despite the cleaning
        # in redox/values.py. The bytes matter more than the metadata: store them bare,
        # keyed by their hash, and let processing mark the message (applying the same
        # metadata is likely refused again, and then the message is failed, not lost).
        log_event(
            logger,
            "message.metadata_refused",
            level=logging.WARNING,
            partner_id=partner.pk,
            error_kind=type(exc).__name__,
        )
        key = inbound.dedupe_key(body)
        try:
            message = _store(meta=inbound.Meta(), key=key, **stored)
        except IntegrityError as exc:
            return _duplicate(exc, key=key, **stored)

    log_event(logger, "message.received", message_id=message.pk, partner_id=partner.pk)
    if partner.environment_mismatch(meta.is_test):
        # Meta.Test disagrees with the partner's is_production: Redox or the partner is
        # wired to the wrong environment. Stored and applied all the same; this alerts.
        log_event(
            logger,
            "message.environment_mismatch",
            level=logging.WARNING,
            message_id=message.pk,
            partner_id=partner.pk,
            message_is_test=meta.is_test,
            partner_is_production=partner.is_production,
        )
    return Ingested(message=_process(message, read), duplicate=False)


def _read(body):
    """What `body` says (`inbound.read`, which never raises for content), or the exception a
    bug in reading raised: not the partner's problem, so the message is still stored, and
    processing marks it failed."""
    try:
        return inbound.read(body)
    except Exception as exc:
        return exc


def _store(*, partner, meta, key, body, body_sha256, headers, received_at):
    with transaction.atomic():
        return InboundMessage.objects.create(
            partner=partner,
            dedupe_key=key,
            redox_log_id=_fit(InboundMessage, "redox_log_id", meta.log_id),
            data_model=_fit(InboundMessage, "data_model", meta.data_model),
            event_type=_fit(InboundMessage, "event_type", meta.event_type),
            event_at=meta.event_at,
            body=body,
            body_sha256=body_sha256,
            headers=headers,
            received_at=received_at,
            last_seen_at=received_at,
        )


def _duplicate(integrity_error, *, partner, key, body, body_sha256, headers, received_at):
    """The insert hit the unique (partner, dedupe_key): count the sighting. Re-raises
    `integrity_error` when no message holds that key (the insert failed on something else)."""
    original = _count_duplicate(
        partner=partner,
        dedupe_key=key,
        body=body,
        body_sha256=body_sha256,
        headers=headers,
        received_at=received_at,
    )
    if original is None:
        raise integrity_error
    return Ingested(message=original, duplicate=True)


def message_process(*, message):
    """Apply a stored message (again): after a fix, or after processing was interrupted.

    A message already processed or ignored is left as it is. Returns the message with
    its new status.
    """
    return _process(message)


def _kept_headers(headers):
    kept = {}
    for name, value in (headers or {}).items():
        lowered = str(name).lower()
        if lowered in KEPT_HEADERS:
            kept[lowered] = clean_text(str(value)[:HEADER_MAX_CHARS])
    return kept


def _fit(model, field_name, value):
    """Cut display text to the column's length, so an over-long value cannot fail the whole message.

    Never for an id we match on (Order.ehr_order_id): redox/inbound.py refuses an id too long to store.
    """
    if isinstance(value, str):
        return value[: model._meta.get_field(field_name).max_length]
    return value


def _count_duplicate(*, partner, dedupe_key, body, body_sha256, headers, received_at):
    """Count another sighting of a message we already hold, keeping its bytes when they differ.

    Returns the original message, or None if there is none (another integrity error).
    The count's row lock on the original serialises simultaneous redeliveries, so the
    same differing bytes are kept once.
    """
    now = timezone.now()
    with transaction.atomic():
        counted = InboundMessage.objects.filter(partner=partner, dedupe_key=dedupe_key).update(
            times_seen=F("times_seen") + 1, last_seen_at=now
        )
        if not counted:
            return None
        original = InboundMessage.objects.defer("body").get(partner=partner, dedupe_key=dedupe_key)
        body_differs = _stored_sha256(original) != body_sha256
        if body_differs and not original.redeliveries.filter(body_sha256=body_sha256).exists():
            Redelivery.objects.create(
                message=original, received_at=received_at, body=body, body_sha256=body_sha256, headers=headers
            )
    log_event(logger, "message.duplicate", message_id=original.pk, partner_id=partner.pk, body_differs=body_differs)
    if original.status == InboundMessage.Status.RECEIVED:
        # Stored but never applied: the request that stored it died before applying it,
        # which is why Redox is retrying. Apply it now (the row lock keeps this single).
        original = _process(original)
    return original


def _stored_sha256(message):
    """The SHA-256 of `message`'s body: stored at ingest, or (for a row the previous release
    wrote before migration 0006 filled it) computed from the body once and stored."""
    if not message.body_sha256:
        body = InboundMessage.objects.filter(pk=message.pk).values_list("body", flat=True).get()
        message.body_sha256 = hashlib.sha256(bytes(body)).hexdigest()
        InboundMessage.objects.filter(pk=message.pk).update(body_sha256=message.body_sha256)
    return message.body_sha256


def _process(message, read=None):
    """Apply `message` under a row lock.

    `read` is what ingest already read from the body (an `inbound.Inbound`, or the exception
    reading raised); without it (reprocessing, a stalled message) the stored body is read
    here, with the same one call.
    """
    logged = []
    try:
        with transaction.atomic():
            rows = InboundMessage.objects.select_for_update()
            if read is not None:
                rows = rows.defer("body")
            locked = rows.get(pk=message.pk)
            if locked.status in FINISHED:
                return locked
            if read is None:
                read = inbound.read(locked.body)
            if isinstance(read, Exception):
                raise read
            if read.error is None:
                logged = _apply_message(locked, read)
    except Exception as exc:
        # Our problem, not the partner's: keep the message for reprocessing and answer
        # 200. The exception text is not kept or logged, because database errors quote
        # the values they choked on.
        return _fail(message, f"HCOINT could not apply this message ({type(exc).__name__}).", crash=exc)
    if read.error is not None:
        return _fail(message, read.error)
    for event, ids in logged:
        log_event(logger, event, **ids)
    return locked


def _fail(message, reason, crash=None):
    now = timezone.now()
    InboundMessage.objects.filter(pk=message.pk).exclude(status__in=FINISHED).update(
        status=InboundMessage.Status.FAILED, error=reason, processed_at=now
    )
    message.status, message.error, message.processed_at = InboundMessage.Status.FAILED, reason, now
    extra = {"error_kind": type(crash).__name__} if crash is not None else {}
    log_event(
        logger,
        "message.failed",
        level=logging.ERROR,
        message_id=message.pk,
        partner_id=message.partner_id,
        reason=reason,
        **extra,
    )
    return message


def _apply_message(message, read):
    """Apply what the body said to orders and mark the message. Returns the events to log after commit."""
    meta = read.meta
    message.data_model = _fit(InboundMessage, "data_model", meta.data_model)
    message.event_type = _fit(InboundMessage, "event_type", meta.event_type)
    message.event_at = meta.event_at
    message.error = ""
    message.processed_at = timezone.now()
    fields = ["data_model", "event_type", "event_at", "error", "processed_at", "status"]
    ids = {"message_id": message.pk, "partner_id": message.partner_id}

    if read.ignored:
        message.status = InboundMessage.Status.IGNORED
        message.save(update_fields=fields)
        return [("message.ignored", ids)]

    orders, logged = _apply_orders(message, read.order_message)
    message.orders.add(*orders)
    message.status = InboundMessage.Status.PROCESSED
    message.save(update_fields=fields)
    return logged


def _apply_orders(message, parsed):
    wanted = [info.ehr_order_id for info in parsed.orders]
    existing = {
        order.ehr_order_id: order
        for order in Order.objects.select_for_update().filter(partner_id=message.partner_id, ehr_order_id__in=wanted)
    }
    orders, logged = [], []
    for info in parsed.orders:
        order, events = _apply_order(message, parsed, info, existing.get(info.ehr_order_id))
        orders.append(order)
        ids = {"order_id": order.pk, "partner_id": message.partner_id, "message_id": message.pk}
        logged.extend((event, ids) for event in events)
    return orders, logged


def _apply_order(message, parsed, info, order):
    """Create the order, or update `order` when we already hold it; returns (order, events)."""
    if order is None:
        order = _create_order(message, parsed, info)
        if order is not None:
            return order, ["order.created", "order.cancelled"] if order.is_cancelled else ["order.created"]
        # Another message created it between our read and our insert.
        order = Order.objects.select_for_update().get(partner_id=message.partner_id, ehr_order_id=info.ehr_order_id)
    return order, _update_order(order, message, parsed, info)


def _create_order(message, parsed, info):
    """Insert a new order, or return None when another transaction inserted it first."""
    order = Order(
        partner_id=message.partner_id,
        ehr_order_id=info.ehr_order_id,
        first_received_at=message.received_at,
        last_event_at=parsed.meta.event_at,
        is_test=bool(parsed.meta.is_test),
    )
    _fill(order, parsed, info, replace_blanks=True)
    if parsed.is_cancel:
        order.cancel(when=parsed.meta.event_at)
    try:
        with transaction.atomic():
            order.save()
    except IntegrityError:
        return None
    return order


def _update_order(order, message, parsed, info):
    """Apply an event to a known order; returns the events it caused.

    An event older than the one already applied does not overwrite the newer data
    (the message is still linked, as history). A Cancel cancels even then: an EHR
    does not reinstate a cancelled order, it places a new one.
    """
    event_at = parsed.meta.event_at
    stale = event_at is not None and order.last_event_at is not None and event_at < order.last_event_at
    events = []
    if not stale:
        if _fill(order, parsed, info, replace_blanks=False):
            events.append("order.updated")
        if event_at is not None:
            order.last_event_at = event_at
    if message.received_at < order.first_received_at:
        # An import of older history: the order was first received earlier than we thought.
        order.first_received_at = message.received_at
    if parsed.is_cancel and not order.is_cancelled:
        order.cancel(when=event_at)
        events.append("order.cancelled")
    order.save()
    return events


def _fill(order, parsed, info, *, replace_blanks):
    """Copy the event's values onto the order; returns whether anything changed.

    On an existing order a value the event leaves out (missing, null or empty) keeps
    what we had: a sparse Cancel must not wipe the patient staff search by.
    """
    patient = parsed.patient
    values = {
        "patient_demographics": patient.demographics,
        "patient_first_name": patient.first_name,
        "patient_middle_name": patient.middle_name,
        "patient_last_name": patient.last_name,
        "patient_dob": patient.dob,
        "patient_sex": patient.sex,
        "visit_number": parsed.visit_number,
        "procedure_code": info.procedure_code,
        "procedure_codeset": info.procedure_codeset,
        "procedure_description": info.procedure_description,
        "provider": info.provider,
        "provider_npi": info.provider_npi,
        "provider_name": info.provider_name,
        "priority": info.priority,
        "comments": info.comments,
        "diagnoses": info.diagnoses,
        "redox_status": info.status,
        "transaction_at": info.transaction_at,
    }
    if patient.identifiers or replace_blanks:
        # The identifiers, their search text and the MRN always change together.
        values["patient_identifiers"] = patient.identifiers
        values["identifiers_text"] = patient.identifiers_text
        values["patient_mrn"] = patient.mrn
    if parsed.meta.is_test is not None:
        values["is_test"] = parsed.meta.is_test
    changed = False
    for name, value in values.items():
        if not replace_blanks and value in (None, "", [], {}):
            continue
        value = _fit(Order, name, value)
        if getattr(order, name) != value:
            setattr(order, name, value)
            changed = True
    return changed
