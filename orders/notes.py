"""Taking a clinical note in and sending it: the two staff workflows.

    note = note_upload(order=order, file_name=..., content=..., page_count=..., user=user, request=request)
    delivery = note_send(note=note, user=user, request=request)                            # the first result
    delivery = note_send(note=note, user=user, request=request, correction_reason="...")   # a corrected resend

Each workflow runs in one transaction with its audit record, so an upload or a send
can never happen without the trail saying who did it. A refusal raises `NoteRefused`,
whose message is safe to show (it names no patient data), and is audited as a failure.

One billable result per order: while a delivery for the order is pending, sending,
retry-scheduled or sent, a plain send is refused; a corrected resend, with a reason,
is the only way to send another note, and even that waits until nothing is in flight.
The database backs this up with a partial unique constraint (one in-flight delivery
per order), which catches two sends racing past these checks.
"""

import logging
from pathlib import PurePath

from django.db import IntegrityError, transaction

from hcoint.events import log_event
from orders import note_content
from orders.audit import audit_record
from orders.delivery import delivery_enqueue
from orders.models import AuditEvent, ClinicalNote, Delivery, Order
from orders.retention import PATIENT_REMOVED, PDF_REMOVED

logger = logging.getLogger(__name__)

CANCELLED = "This order was cancelled, so it takes no new notes."
IN_FLIGHT_REFUSAL = (
    "A note for this order is already on its way to the partner. Wait until it is sent, "
    "or abandon that delivery, before sending another."
)
ALREADY_SENT = (
    "A note for this order has already been sent. To send another, make a corrected resend and say why; "
    "the partner will receive it as a correction."
)
NOTE_ALREADY_SENT = "This note has already been sent. To send a different one, upload it as a new note."
REASON_REQUIRED = "A corrected resend needs a reason."


class NoteRefused(Exception):
    """A note that may not be uploaded or sent. `message` is for staff; `reason` for the log."""

    def __init__(self, message, reason):
        super().__init__(message)
        self.message = message
        self.reason = reason


def note_upload(*, order, file_name, content, page_count, user, request=None, original_sha256=""):
    """Store a checked PDF for `order`. The PDF checks themselves live in the upload form:
    `content` is the clean copy rebuilt from the upload (bytes, or a binary file read from
    its current position, stored a piece at a time), `original_sha256` the upload's hash."""
    size, sha256 = note_content.measure(content)
    try:
        with transaction.atomic():
            order = Order.objects.select_for_update().get(pk=order.pk)
            if order.is_cancelled:
                raise NoteRefused(CANCELLED, "order_cancelled")
            note = ClinicalNote.objects.create(
                order=order,
                file_name=clean_file_name(file_name),
                size=size,
                sha256=sha256,
                original_sha256=original_sha256,
                page_count=page_count,
                uploaded_by=user,
            )
            note_content.store(note, content)
            audit_record(request=request, user=user, action=AuditEvent.Action.UPLOAD_NOTE, obj=note, order=order)
    except NoteRefused as refused:
        note_upload_rejected(order=order, user=user, request=request, reason=refused.reason)
        raise
    log_event(logger, "note.uploaded", note_id=note.pk, order_id=order.pk, size=note.size, pages=page_count)
    return note


def note_upload_rejected(*, order, user, request=None, reason):
    """Record an upload that was refused (a failed PDF check, or a cancelled order)."""
    audit_record(
        request=request,
        user=user,
        action=AuditEvent.Action.UPLOAD_NOTE,
        obj=order,
        order=order,
        outcome=AuditEvent.Outcome.FAILURE,
    )
    log_event(logger, "note.rejected", order_id=order.pk, reason=reason)


def note_send(*, note, user, request=None, correction_reason=None):
    """Create the note's delivery and queue it. A `correction_reason` makes it a corrected resend."""
    is_correction = correction_reason is not None
    action = AuditEvent.Action.RESEND_NOTE if is_correction else AuditEvent.Action.SEND_NOTE
    try:
        with transaction.atomic():
            # Locking the order serialises sends for it; the constraint is the backstop.
            order = Order.objects.select_for_update().get(pk=note.order_id)
            _refuse_send(order=order, note=note, is_correction=is_correction, reason=correction_reason)
            try:
                with transaction.atomic():
                    delivery = Delivery.objects.create(
                        order=order,
                        note=note,
                        is_correction=is_correction,
                        correction_reason=correction_reason.strip() if is_correction else "",
                        created_by=user,
                    )
            except IntegrityError:
                raise NoteRefused(IN_FLIGHT_REFUSAL, "in_flight") from None
            order.state = Order.State.SENDING
            order.save(update_fields=["state", "updated_at"])
            # The committed row is the queue; this only wakes idle workers once it commits.
            delivery_enqueue(delivery=delivery)
            audit_record(request=request, user=user, action=action, obj=delivery, order=order)
    except NoteRefused as refused:
        audit_record(
            request=request, user=user, action=action, obj=note, order=note.order, outcome=AuditEvent.Outcome.FAILURE
        )
        log_event(logger, "note.rejected", note_id=note.pk, order_id=note.order_id, reason=refused.reason)
        raise
    return delivery


# note_send_blocker's default: no delivery given, so it asks the database.
_ASK = object()


def note_send_blocker(*, note, delivery=_ASK):
    """Why `note` cannot be sent plainly right now, as (message, reason), or None.

    The review page uses this to decide between a Send button, a corrected-resend
    form and an explanation; `note_send` applies the same rules under a lock.
    `delivery`: the note's delivery (None if it has none) when the caller has already
    fetched it (the review page shows it); by default it is looked up here.
    """
    order = note.order
    if not order.is_cancelled and order.patient_purged_at is None:
        # A result carries the PDF: it cannot be sent once the bytes are removed.
        if note.content_purged_at is not None:
            return PDF_REMOVED, "pdf_removed"
        sent = Delivery.objects.filter(note=note).exists() if delivery is _ASK else delivery is not None
        if sent:
            return NOTE_ALREADY_SENT, "note_already_sent"
    return order_send_blocker(order=order)


def order_send_blocker(*, order):
    """Why no new note may be sent plainly for `order` right now, as (message, reason), or None.

    `note_send_blocker` adds the note's own rules to these; `note_send` applies both under
    the order's lock, for a single upload and for each row of a bulk upload alike.
    """
    if order.is_cancelled:
        return CANCELLED, "order_cancelled"
    # A result echoes the patient back: it cannot be sent once the patient's details are removed.
    if order.patient_purged_at is not None:
        return PATIENT_REMOVED, "patient_removed"
    deliveries = Delivery.objects.filter(order=order)
    if deliveries.in_flight().exists():
        return IN_FLIGHT_REFUSAL, "in_flight"
    if deliveries.accepted().exists():
        return ALREADY_SENT, "already_sent"
    return None


def _refuse_send(*, order, note, is_correction, reason):
    if is_correction and not (reason or "").strip():
        raise NoteRefused(REASON_REQUIRED, "reason_missing")
    note.order = order
    blocker = note_send_blocker(note=note)
    if blocker is None:
        return
    message, code = blocker
    if code == "already_sent" and is_correction:
        return
    raise NoteRefused(message, code)


def clean_file_name(name):
    """The base name only (browsers may send a path), trimmed to fit the column."""
    base = PurePath((name or "").replace("\\", "/")).name.strip()
    return (base or "note.pdf")[:255]
