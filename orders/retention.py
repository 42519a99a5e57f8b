"""Retention: remove what HCOINT no longer needs, never what is under a legal hold.

HCOINT is not the system of record (the partner's EHR is), so once an order is done its
patient data is risk without use. Four rules, each a number of days in the settings
(docs/runbook.md, "Retention and legal hold"):

- PDF bytes (RETENTION_PDF_DAYS, 90): after the note was filed (Redox's log said so, at
  `confirmed_at`) or its delivery abandoned (`abandoned_at`); any other note (never sent,
  superseded by a corrected resend, failed downstream, filtered, unconfirmed) after its
  order closed. A note whose delivery is still on its way is never touched.
- Raw payloads (RETENTION_PAYLOAD_DAYS, 365): a message's body and headers, and those of
  its redeliveries, once it was last seen that long ago and every order it touched has
  been closed that long (a message that touched no order: by age alone).
- Patient fields (RETENTION_PATIENT_DAYS, 365): after the order closed. The order keeps its
  ids, dates and states, plus keyed hashes of its identifiers (orders.models.identifier_hash).
- Audit rows (AUDIT_RETENTION_DAYS, six years): by age, through the one deletion the
  append-only trail allows (AuditEventQuerySet.delete_expired).

"Closed" is Order.CLOSED_STATES (filed, cancelled, closed before HCOINT), and the clock runs
from the order's last change (`updated_at`): any later change only makes it keep longer.

A legal hold on an order, or on its partner, keeps the order, its notes, its messages and
its audit rows as they are. The purge works in batches, each its own short transaction
that locks its rows with `FOR UPDATE SKIP LOCKED`, so two workers share the work instead of
waiting on each other; every rule skips rows already purged, so running it again removes
nothing. It logs counts only. A hold set while a batch is running applies from the next
batch (a batch is one short transaction): set holds before the purge reaches the records.
"""

import itertools
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import CharField, Exists, OuterRef, Q
from django.db.models.functions import Cast
from django.utils import timezone

from hcoint.events import log_event
from orders.models import (
    PATIENT_DETAIL_FIELDS,
    AuditEvent,
    ClinicalNote,
    Delivery,
    InboundMessage,
    NoteChunk,
    NotePreview,
    Order,
    Partner,
    Redelivery,
    identifier_hash,
)
from orders.search import order_search_text

logger = logging.getLogger(__name__)

KINDS = ("notes", "messages", "orders", "audit_events")

# What staff are told when an action needs what was removed (safe to show: no patient data).
PDF_REMOVED = (
    "This note's PDF was removed under the retention rules, so it cannot be viewed or sent. "
    "To send a note for this order, upload it again."
)
PATIENT_REMOVED = "This order's patient details were removed under the retention rules, so no note can be sent for it."


@dataclass(frozen=True)
class Cutoffs:
    """What is older than these instants is due (strictly older: a day short is kept)."""

    pdf: object
    payload: object
    patient: object
    audit: object

    @classmethod
    def at(cls, now):
        return cls(
            pdf=now - timedelta(days=settings.RETENTION_PDF_DAYS),
            payload=now - timedelta(days=settings.RETENTION_PAYLOAD_DAYS),
            patient=now - timedelta(days=settings.RETENTION_PATIENT_DAYS),
            audit=now - timedelta(days=settings.AUDIT_RETENTION_DAYS),
        )


def _closed_before(cutoff, prefix=""):
    return Q(**{f"{prefix}state__in": Order.CLOSED_STATES, f"{prefix}updated_at__lt": cutoff})


def _held(prefix=""):
    return Q(**{f"{prefix}legal_hold": True}) | Q(**{f"{prefix}partner__legal_hold": True})


def notes_due(cutoffs):
    filed = Q(delivery__status=Delivery.Status.FILED, delivery__confirmed_at__lt=cutoffs.pdf)
    abandoned = Q(delivery__status=Delivery.Status.ABANDONED, delivery__abandoned_at__lt=cutoffs.pdf)
    in_flight = Delivery.objects.filter(note=OuterRef("pk")).in_flight()
    return (
        ClinicalNote.objects.filter(content_purged_at__isnull=True)
        .filter(filed | abandoned | _closed_before(cutoffs.pdf, "order__"))
        .exclude(_held("order__"))
        .exclude(Exists(in_flight))
    )


def messages_due(cutoffs):
    keeps = Order.objects.filter(messages=OuterRef("pk")).filter(~_closed_before(cutoffs.payload) | _held())
    return (
        InboundMessage.objects.filter(body_purged_at__isnull=True, last_seen_at__lt=cutoffs.payload)
        .exclude(partner__legal_hold=True)
        .exclude(Exists(keeps))
    )


def orders_due(cutoffs):
    return Order.objects.filter(patient_purged_at__isnull=True).filter(_closed_before(cutoffs.patient)).exclude(_held())


def audit_events_due(cutoffs):
    held_orders = Order.objects.filter(_held()).annotate(key=Cast("pk", CharField())).values("key")
    held_partners = Partner.objects.filter(legal_hold=True).annotate(key=Cast("pk", CharField())).values("key")
    return (
        AuditEvent.objects.filter(created_at__lt=cutoffs.audit)
        .exclude(_held("order__"))
        .exclude(object_type="order", object_id__in=held_orders)
        .exclude(object_type="partner", object_id__in=held_partners)
    )


DUE = {"notes": notes_due, "messages": messages_due, "orders": orders_due, "audit_events": audit_events_due}


# --- Removing ---------------------------------------------------------------------


def _purge_notes(ids, now):
    NoteChunk.objects.filter(note_id__in=ids).delete()
    ClinicalNote.objects.filter(pk__in=ids).update(content=b"", content_purged_at=now)
    # The page images are pictures of the same PDF.
    NotePreview.objects.filter(note_id__in=ids).delete()


def _purge_messages(ids, now):
    InboundMessage.objects.filter(pk__in=ids).update(body=b"", headers={}, body_purged_at=now)
    Redelivery.objects.filter(message_id__in=ids).update(body=b"", headers={}, body_purged_at=now)


IDENTIFIER_FIELDS = ("patient_mrn", "visit_number", "patient_identifiers", "identifier_hashes")


def order_identifier_hashes(order):
    """The keyed hashes of every identifier the order holds (MRN, each patient identifier, visit
    number), with those kept from an earlier purge of the same order."""
    values = {order.patient_mrn, order.visit_number}
    for identifier in order.patient_identifiers or []:
        if isinstance(identifier, dict) and isinstance(identifier.get("ID"), str):
            values.add(identifier["ID"])
    hashes = {identifier_hash(value) for value in values if value and value.strip()}
    return " ".join(sorted(hashes | set(order.identifier_hashes.split())))


def _purge_orders(ids, now):
    orders = list(Order.objects.filter(pk__in=ids).only("pk", "ehr_order_id", *IDENTIFIER_FIELDS))
    for order in orders:
        order.identifier_hashes = order_identifier_hashes(order)
        # What is left to search by: the EHR order id.
        order.search_text = order_search_text(Order(ehr_order_id=order.ehr_order_id))
    # One UPDATE for what every row loses alike, and a small bulk_update for the two columns
    # that differ per row; neither goes through save(), which would move updated_at (the
    # retention clock) on.
    emptied = {field: Order._meta.get_field(field).get_default() for field in PATIENT_DETAIL_FIELDS}
    Order.objects.filter(pk__in=ids).update(patient_purged_at=now, **emptied)
    Order.objects.bulk_update(orders, ["identifier_hashes", "search_text"])


def _purge_audit_events(ids, now):
    AuditEvent.objects.filter(pk__in=ids).delete_expired(now)


PURGE = {
    "notes": _purge_notes,
    "messages": _purge_messages,
    "orders": _purge_orders,
    "audit_events": _purge_audit_events,
}


def _in_batches(due, purge, now, *, batch_size, max_batches):
    """Purge what `due` selects, `batch_size` rows per transaction; how many rows were purged."""
    total = 0
    for _ in range(max_batches) if max_batches else itertools.count():
        with transaction.atomic():
            # Only this table's rows are locked; rows another worker holds are left to it.
            locked = due.select_for_update(skip_locked=True, of=("self",)).order_by("pk")
            ids = list(locked.values_list("pk", flat=True)[:batch_size])
            if ids:
                purge(ids, now)
        total += len(ids)
        if len(ids) < batch_size:
            break
    return total


def purge_preview(now=None):
    """What a purge now would remove, per kind, without changing anything."""
    cutoffs = Cutoffs.at(now or timezone.now())
    counts = {kind: DUE[kind](cutoffs).count() for kind in KINDS}
    counts["redeliveries"] = Redelivery.objects.filter(
        body_purged_at__isnull=True, message__in=messages_due(cutoffs)
    ).count()
    return counts


def purge(now=None, *, batch_size=None, max_batches=None):
    """Remove what the retention rules say is due; returns the counts removed per kind.

    `max_batches` bounds the work per kind (the worker's pass); None goes on until nothing is due.
    """
    now = now or timezone.now()
    cutoffs = Cutoffs.at(now)
    batch_size = batch_size or settings.RETENTION_BATCH_SIZE
    counts = {
        kind: _in_batches(DUE[kind](cutoffs), PURGE[kind], now, batch_size=batch_size, max_batches=max_batches)
        for kind in KINDS
    }
    log_event(logger, "retention.purged", **counts)
    return counts
