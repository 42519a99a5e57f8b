"""Ingesting a Redox message: keep it verbatim, then apply it to orders.

Redox delivers at least once, in order, and pauses the partner's whole feed while we
answer >= 400 (docs/redox.md, Part 1). The raw message and its effect are one
transaction (one commit, the cheapest answer), and applying runs in a savepoint inside
it: nothing that goes wrong while applying can lose the message or turn the answer into
an error, because the savepoint rolls back only the effect and the message is kept,
marked failed with a reason that carries no patient data, for
`reprocess_messages --failed`. If the transaction itself cannot commit, nothing was
stored and we did not answer 200, so Redox delivers the message again. The common case,
new orders from a body that reads cleanly, is first tried as one statement that stores
and applies everything or nothing (orders/ingest_statement.py); whatever it does not
store comes here, to the transaction and its savepoint.

Deduplication rests on the unique (partner, dedupe_key) constraint, not on a prior
read, so two simultaneous deliveries of one message cannot both insert; the loser
only counts the sighting. A duplicate whose bytes differ from every copy we hold (a
Redox retry carries a new `Meta.Logs[0].AttemptID`; a resend may change content) is
kept as a Redelivery in the same transaction as the count, before we answer, and
still changes no order. Applying a message again (reprocessing, or a row an older
release stored but never applied) takes a row lock on it and skips one already
processed, so a retried or concurrent run has exactly one effect; the first apply
needs no lock, as no other transaction can see the row it just inserted.
"""

import hashlib
import logging
from dataclasses import dataclass

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from hcoint.events import log_event
from orders import ingest_statement
from orders.ingest_rows import Arrival, crash_reason, marked, new_message
from orders.models import InboundMessage, Redelivery
from orders.order_apply import OrderExists, apply_orders, fit
from redox import inbound

logger = logging.getLogger(__name__)

FINISHED = (InboundMessage.Status.PROCESSED, InboundMessage.Status.IGNORED)


@dataclass(frozen=True)
class Ingested:
    """What became of one delivery: the stored message, and whether it was one we already had."""

    message: InboundMessage
    duplicate: bool


def message_ingest(*, partner, body, headers, received_at=None, read=None):
    """Store one delivery from `partner` verbatim, then apply it. Never raises for bad content.

    `headers` is any mapping of request headers (only an allow-list is kept);
    `received_at` lets an import keep the original arrival time; `read` is what
    `inbound.read(body)` returned already (`new_orders_ingest`), so a body is read once.
    """
    delivery = Arrival.of(body, headers, received_at, read)
    read, meta, key, stored = delivery.read, delivery.meta, delivery.key, delivery.stored(partner)
    try:
        message, logged = _store_and_apply(meta=meta, key=key, read=read, settled=True, **stored)
    except IntegrityError as exc:
        return _duplicate(exc, key=key, **stored)
    except (DatabaseError, ValueError, OverflowError) as exc:
        # A value read from the body that the database still refused, despite the cleaning
        # in redox/values.py. The bytes matter more than the metadata: store them bare,
        # keyed by their hash, and apply the same reading (applying the same metadata is
        # likely refused again, and then the message is failed, not lost).
        log_event(
            logger,
            "message.metadata_refused",
            level=logging.WARNING,
            partner_id=partner.pk,
            error_kind=type(exc).__name__,
        )
        key = inbound.dedupe_key(delivery.body)
        try:
            message, logged = _store_and_apply(meta=inbound.Meta(), key=key, read=read, settled=False, **stored)
        except IntegrityError as exc:
            return _duplicate(exc, key=key, **stored)
    return _stored(message, logged, partner=partner, meta=meta)


def new_orders_ingest(*, partner, token, body, headers):
    """The webhook's one round trip: store and apply a delivery of new orders for `partner`,
    whom this process found for `token` earlier but has not verified for this delivery.

    Only the one statement stores anything here, and it verifies the token itself: the
    message row gets its partner only if `token` names `partner` now (orders/ingest_statement.py),
    so a token deactivated or rotated away stores nothing. Returns (Ingested, read), or
    (None, read) when nothing was stored: the token no longer names the partner, or the
    delivery is not one the statement takes (another event, an order we hold, a value
    refused). The caller then looks the partner up and calls `message_ingest` with `read`,
    as it does for any delivery. A redelivery is counted as `message_ingest` counts it
    (the statement that met the dedupe key had verified the token).
    """
    delivery = Arrival.of(body, headers, None, None)
    read, meta, key, stored = delivery.read, delivery.meta, delivery.key, delivery.stored(partner)
    if not ingest_statement.applies(read):
        return None, read
    message = new_message(meta=meta, key=key, **marked(read), **stored)
    try:
        done = ingest_statement.store_new_orders(message, read, token=token)
    except ingest_statement.PartnerNotVerified:
        return None, read
    except IntegrityError as exc:
        return _duplicate(exc, key=key, **stored), read
    if done is None:
        return None, read
    return _stored(message, done[1], partner=partner, meta=meta), read


def _stored(message, logged, *, partner, meta):
    """Log what became of a stored delivery, once committed, in the order things happened."""
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
    _log_outcome(message, logged)
    return Ingested(message=message, duplicate=False)


def _store_and_apply(*, meta, key, read, settled, **stored):
    """Insert the message and apply `read` to it, in one transaction. Returns (message, logged).

    The insert is the transaction's first statement, so a duplicate key or a refused value
    (raised from here) leaves nothing behind to roll back.

    `settled`: `meta` is what `read` says, so the row is inserted already marked as applying
    will leave it (processed, ignored, or failed with the reading's reason) and a successful
    apply writes nothing more to it; an apply that fails marks it failed, before the commit.
    Otherwise (the metadata was refused) it is inserted as received, and applying writes
    the metadata and the status, as reprocessing does.
    """
    marks = marked(read) if settled else {}
    one_statement_tried = settled and ingest_statement.applies(read)
    if one_statement_tried:
        # The common case, new orders: one statement (orders/ingest_statement.py), or
        # None, having stored nothing, for the general path below.
        message = new_message(meta=meta, key=key, **marks, **stored)
        done = ingest_statement.store_new_orders(message, read)
        if done is not None:
            return message, done[1]
    with transaction.atomic():
        message = new_message(meta=meta, key=key, **marks, **stored)
        message.save(force_insert=True)
        # After the statement was refused (as a rule: an order we hold already), inserting
        # the orders first again is certain to fail too: read and update them straight away.
        return message, _apply_fresh(message, read, settled=settled, insert_first=not one_statement_tried)


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


def _apply_fresh(message, read, *, settled, insert_first=True):
    """Apply `read` to `message`, which this transaction has just inserted; returns the events to log.

    In a savepoint: if applying fails, only its effect rolls back and the message is kept,
    failed, in the same transaction. No row lock and no re-read: no other transaction can
    see the row yet. `settled`: the row was inserted already marked (`_store_and_apply`).
    `insert_first`: a New event's orders are inserted without a read first
    (orders/order_apply.py); False when the one-statement path has just found that they
    cannot be, so the general way is taken at once.
    """
    if isinstance(read, Exception) or read.error is not None:
        crash = read if isinstance(read, Exception) else None
        reason = crash_reason(read) if crash else read.error
        if settled:
            return [_failed_event(message, reason, crash)]
        return _mark_failed(message, reason, crash=crash)
    if settled and read.ignored:
        return [("message.ignored", {"message_id": message.pk, "partner_id": message.partner_id})]
    try:
        try:
            with transaction.atomic():
                return _apply_message(message, read, fresh=insert_first, settled=settled)
        except OrderExists:
            # The savepoint undid the attempt (the order insert was its first statement).
            with transaction.atomic():
                return _apply_message(message, read, settled=settled)
    except Exception as exc:
        # Unconditionally: a settled row already says processed, and only its effect was undone.
        return _mark_failed(message, crash_reason(exc), crash=exc, fresh=True)


def _process(message):
    """Apply a stored `message` (again) under a row lock, reading its stored body."""
    logged = []
    try:
        with transaction.atomic():
            locked = InboundMessage.objects.select_for_update().get(pk=message.pk)
            if locked.status in FINISHED:
                return locked
            read = inbound.read(locked.body)
            if read.error is None:
                logged = _apply_message(locked, read)
    except Exception as exc:
        return _fail(message, crash_reason(exc), crash=exc)
    if read.error is not None:
        return _fail(message, read.error)
    _log_outcome(locked, logged)
    return locked


def _fail(message, reason, crash=None):
    """Mark a stored message failed, unless it was finished meanwhile, and log it."""
    with transaction.atomic():
        logged = _mark_failed(message, reason, crash=crash)
    _log_outcome(message, logged)
    return message


def _mark_failed(message, reason, crash=None, *, fresh=False):
    """Mark `message` failed (one UPDATE) unless finished meanwhile, or in any case when
    `fresh` (this transaction inserted it); returns the event to log once committed."""
    now = timezone.now()
    rows = InboundMessage.objects.filter(pk=message.pk)
    if not fresh:
        rows = rows.exclude(status__in=FINISHED)
    rows.update(status=InboundMessage.Status.FAILED, error=reason, processed_at=now)
    message.status, message.error, message.processed_at = InboundMessage.Status.FAILED, reason, now
    return [_failed_event(message, reason, crash)]


def _failed_event(message, reason, crash=None):
    extra = {"error_kind": type(crash).__name__} if crash is not None else {}
    return ("message.failed", {"message_id": message.pk, "partner_id": message.partner_id, "reason": reason, **extra})


def _log_outcome(message, logged):
    for event, fields in logged:
        level = logging.ERROR if event == "message.failed" else logging.INFO
        log_event(logger, event, level=level, **fields)


def _apply_message(message, read, *, fresh=False, settled=False):
    """Apply what the body said to orders and mark the message. Returns the events to log after commit.

    `fresh`: the message arrived just now, in this transaction (see `orders/order_apply.py`).
    `settled`: its row already holds the metadata and status this sets (`_store_and_apply`).
    """
    if not settled:
        meta = read.meta
        message.data_model = fit(InboundMessage, "data_model", meta.data_model)
        message.event_type = fit(InboundMessage, "event_type", meta.event_type)
        message.event_at = meta.event_at
        message.error = ""
        message.processed_at = timezone.now()
    fields = ["data_model", "event_type", "event_at", "error", "processed_at", "status"]
    ids = {"message_id": message.pk, "partner_id": message.partner_id}

    if read.ignored:
        if not settled:
            message.status = InboundMessage.Status.IGNORED
            message.save(update_fields=fields)
        return [("message.ignored", ids)]

    orders, logged = apply_orders(message, read.order_message, fresh=fresh)
    # One INSERT for every link (Django's add() would first read the links that exist).
    links = [message.orders.through(inboundmessage_id=message.pk, order_id=order.pk) for order in orders]
    message.orders.through.objects.bulk_create(links, ignore_conflicts=True)
    if not settled:
        message.status = InboundMessage.Status.PROCESSED
        message.save(update_fields=fields)
    return logged
