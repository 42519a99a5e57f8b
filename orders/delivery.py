"""Carrying a note to Redox: queue, attempt, retry, give up, and recover.

A Delivery row is created with its note in one transaction (orders/notes.py) and is the
source of truth; the background job (`orders.tasks.deliver`) only carries its id.

    pending ──claim──▶ sending ──▶ sent
       ▲                  │
       │                  ├──transient error──▶ retry scheduled ──(due)──▶ sending …
       │                  │                         └── older than DELIVERY_MAX_AGE_HOURS ──▶ failed
       │                  └──permanent error──▶ failed
       └──── retry now ◀── failed / retry scheduled ──abandon──▶ abandoned

Rules that keep a note from being lost or sent twice at once:
- An attempt first claims the row under a lock (`select_for_update(skip_locked=True)`) and
  commits SENDING before any HTTP call, so a second worker never sends the same delivery.
- The outcome is written only if the row is still this attempt's claim (same
  `sending_started_at`), so a late finisher cannot overwrite a newer attempt.
- Retries are new jobs with `run_after`, never sleeps in a worker, so one order's failing
  delivery never holds up another's.
- `delivery_sweep` (run by the worker every DELIVERY_SWEEP_INTERVAL_SECONDS) re-queues due
  deliveries whose job vanished and reclaims SENDING rows whose worker died.
- A delivery whose order the partner cancelled is abandoned when it is next claimed, not
  sent: a result for a cancelled order would still be billed. "Retry now" is refused for it.
- Every message carries `hcoint-delivery-<id>`, so a resend after a crash (Redox may have
  accepted the first) can be recognised downstream as the same delivery.
"""

import logging
import random
import time
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django_tasks_db.backend import DatabaseBackend
from django_tasks_db.models import DBTaskResult
from django_tasks_db.utils import exclusive_transaction

from hcoint.events import log_event
from hcoint.tracing import span
from orders.models import ClinicalNote, Delivery, DeliveryAttempt, Order
from orders.tasks import deliver
from redox import client as redox_client
from redox import messages
from redox.errors import RedoxError

logger = logging.getLogger(__name__)

# The statuses in which staff may retry a delivery now or abandon it. Neither action applies
# while a send may be in the air (pending or sending): the worker owns the row then.
STAFF_ACTIONABLE = (Delivery.Status.FAILED, Delivery.Status.RETRY_SCHEDULED)
CLAIMABLE = (Delivery.Status.PENDING, Delivery.Status.RETRY_SCHEDULED)

# A first attempt goes ahead of a backlog of retries (the queue runs higher priority first).
FIRST_ATTEMPT_PRIORITY = 0
RETRY_PRIORITY = -10

WORKER_LOST_ERROR = (
    "The worker stopped during this attempt, so whether Redox received the note is unknown. "
    "It will be sent again with the same delivery id."
)

ORDER_CANCELLED_REASON = "The partner cancelled the order before the note was sent."
ORDER_CANCELLED_RETRY = "The partner cancelled this order, so its note will not be sent again."


class DeliveryError(Exception):
    """A staff action that the delivery's current state does not allow. The message is for staff."""


def delivery_ref(delivery):
    """The stable identifier of a delivery that travels in every message sent for it."""
    return f"hcoint-delivery-{delivery.pk}"


def retry_delay_seconds(attempt, *, retry_after=None, rand=random.random):
    """Seconds to wait after failed attempt number `attempt` (1 is the first attempt).

    Exponential backoff with "equal jitter": the ceiling doubles from
    DELIVERY_RETRY_BASE_SECONDS up to DELIVERY_RETRY_MAX_SECONDS and the wait is a random
    point in its upper half, so retries spread out but still grow. A Retry-After from Redox
    is a floor. https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/
    """
    base = settings.DELIVERY_RETRY_BASE_SECONDS
    cap = settings.DELIVERY_RETRY_MAX_SECONDS
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    delay = ceiling / 2 + rand() * ceiling / 2
    if retry_after:
        delay = max(delay, float(retry_after))
    return delay


def delivery_enqueue(*, delivery, run_after=None):
    """Queue the background job that sends `delivery`. Call inside the transaction that created it.

    With the database backend the job is a row INSERTed through the ORM, so it commits or
    rolls back together with the delivery. Any other backend might run the job at once, before
    the delivery is committed (or after it rolled back), so the job is queued on commit instead.
    """
    job = deliver.using(
        run_after=run_after,
        priority=RETRY_PRIORITY if run_after is not None else FIRST_ATTEMPT_PRIORITY,
    )
    if isinstance(job.get_backend(), DatabaseBackend):
        job.enqueue(delivery_id=delivery.pk)
    else:
        transaction.on_commit(lambda: job.enqueue(delivery_id=delivery.pk))
    log_event(
        logger,
        "delivery.queued",
        delivery_id=delivery.pk,
        order_id=delivery.order_id,
        attempt=delivery.attempt_count + 1,
    )


def delivery_attempt(*, delivery_id, now=None):
    """Make one attempt to send a delivery, if it is due and nobody else holds it.

    Returns the delivery as it stands afterwards, or None when there was nothing to do (sent,
    not yet due, abandoned, or claimed by another worker). `now` fixes the clock for tests.
    """
    clock = (lambda: now) if now is not None else timezone.now
    delivery = _claim(delivery_id, clock())
    if delivery is None:
        return None
    claimed_at = delivery.sending_started_at

    # A custom span per attempt (opaque tags only; a no-op without ddtrace-run).
    with span("delivery.attempt", delivery_id=delivery.pk, order_id=delivery.order_id) as traced:
        started = time.monotonic()
        result = error = None
        try:
            result = _send(delivery)
        except Exception as exc:
            # A RedoxError, or our own bug or bad stored data: _record_outcome tells them
            # apart. A bug is kept as a transient error, so the delivery stays visible and is
            # retried after a fix; by class name only, since its message could carry patient data.
            error = exc
        duration_ms = int((time.monotonic() - started) * 1000)
        current = _record_outcome(delivery, claimed_at, clock(), duration_ms, result=result, error=error)
        traced.set_tags(
            attempt=delivery.attempt_count,
            outcome=current.status,
            error_class=type(error).__name__ if error is not None else None,
        )
        traced.set_tag("http.status_code", result.status if result is not None else getattr(error, "status", None))
    return current


def delivery_retry_now(*, delivery, user, now=None):
    """Staff: send a failed (or waiting) delivery again now. The caller writes the audit record."""
    _require_manage_permission(user)
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock_for_staff(delivery, "retried", refuse_if_cancelled=True)
        locked.status = Delivery.Status.PENDING
        locked.next_attempt_at = now
        try:
            # The partial unique constraint refuses a second in-flight delivery for the
            # order (a newer note may have been sent since this one failed).
            with transaction.atomic():
                locked.save(update_fields=["status", "next_attempt_at"])
        except IntegrityError:
            raise DeliveryError("Another note for this order is already being delivered.") from None
        _set_order_state(locked.order_id, Order.State.SENDING, now)
        delivery_enqueue(delivery=locked)
    delivery.refresh_from_db()
    return delivery


def delivery_abandon(*, delivery, user, reason, now=None):
    """Staff: stop trying to deliver, with a reason. The caller writes the audit record."""
    _require_manage_permission(user)
    reason = (reason or "").strip()
    if not reason:
        raise DeliveryError("Say why the delivery is being abandoned.")
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock_for_staff(delivery, "abandoned")
        locked.status = Delivery.Status.ABANDONED
        locked.abandoned_reason = reason
        locked.abandoned_by = user
        locked.next_attempt_at = None
        locked.save(update_fields=["status", "abandoned_reason", "abandoned_by", "next_attempt_at"])
        _set_order_state(locked.order_id, _order_state_after_abandon(locked), now)
        _log(locked, "delivery.abandoned")
    delivery.refresh_from_db()
    return delivery


def delivery_sweep(*, now=None):
    """Pick up deliveries that would otherwise wait forever.

    - A due pending / retry-scheduled delivery with no queued job (the job row was lost,
      or its worker died after taking the job but before claiming the delivery) is
      queued again.
    - A delivery SENDING for longer than DELIVERY_SENDING_TIMEOUT_SECONDS lost its worker
      mid-send: the attempt is recorded as such and the delivery is retried at once (or
      fails, when it is past DELIVERY_MAX_AGE_HOURS).
    Both steps claim rows with `skip_locked`, so the sweep never waits for, nor doubles, a
    live attempt. Returns the ids it acted on: {"requeued": [...], "reclaimed": [...]}.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.DELIVERY_SENDING_TIMEOUT_SECONDS)

    reclaimed = []
    stuck = Delivery.objects.filter(status=Delivery.Status.SENDING, sending_started_at__lt=cutoff)
    for delivery_id in stuck.values_list("pk", flat=True):
        with transaction.atomic():
            delivery = (
                Delivery.objects.select_for_update(skip_locked=True)
                .filter(pk=delivery_id, status=Delivery.Status.SENDING, sending_started_at__lt=cutoff)
                .first()
            )
            if delivery is None:
                continue
            DeliveryAttempt.objects.create(
                delivery=delivery,
                started_at=delivery.sending_started_at,
                outcome=DeliveryAttempt.Outcome.TRANSIENT,
                error=WORKER_LOST_ERROR,
            )
            _after_transient(delivery, now, delay=0, error_text=WORKER_LOST_ERROR, reason="worker_lost")
            reclaimed.append(delivery.pk)

    requeued = []
    due = Delivery.objects.filter(status__in=CLAIMABLE).filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )
    due_ids = set(due.values_list("pk", flat=True)) - set(reclaimed)
    if due_ids:
        due_ids -= _delivery_ids_with_live_jobs(cutoff)
    for delivery_id in sorted(due_ids):
        with transaction.atomic():
            delivery = (
                Delivery.objects.select_for_update(skip_locked=True)
                .filter(pk=delivery_id, status__in=CLAIMABLE)
                .first()
            )
            if delivery is None:
                continue
            delivery_enqueue(delivery=delivery)
            requeued.append(delivery.pk)
    return {"requeued": requeued, "reclaimed": reclaimed}


# --- The steps of an attempt ----------------------------------------------------------


def _claim(delivery_id, now):
    """Mark the delivery SENDING and commit, or return None if it is not ours to send now."""
    # On SQLite (local development) select_for_update is a no-op, so take the database's
    # write lock up front instead; on PostgreSQL this is a plain transaction.
    with exclusive_transaction():
        delivery = (
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(pk=delivery_id, status__in=CLAIMABLE)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .first()
        )
        if delivery is None:
            return None
        # Locked like the webhook's Cancel locks it, so a Cancel either commits before this
        # read (and nothing is sent) or waits until the row is SENDING: a send already in the air.
        order_state = Order.objects.select_for_update().filter(pk=delivery.order_id).values_list("state", flat=True)
        if order_state.get() == Order.State.CANCELLED:
            _abandon_for_cancelled_order(delivery)
            return None
        delivery.status = Delivery.Status.SENDING
        delivery.sending_started_at = now
        delivery.next_attempt_at = None
        delivery.attempt_count += 1
        delivery.save(update_fields=["status", "sending_started_at", "next_attempt_at", "attempt_count"])
        _set_order_state(delivery.order_id, Order.State.SENDING, now)
    return delivery


def _abandon_for_cancelled_order(delivery):
    """The partner cancelled the order after Send was pressed: a result now would be billed for nothing.

    No staff member decided this, so `abandoned_by` stays empty; the order stays cancelled.
    """
    delivery.status = Delivery.Status.ABANDONED
    delivery.abandoned_reason = ORDER_CANCELLED_REASON
    delivery.next_attempt_at = None
    delivery.save(update_fields=["status", "abandoned_reason", "next_attempt_at"])
    _log(delivery, "delivery.abandoned", reason="order_cancelled")


def _send(delivery):
    """Build the message from the stored order, partner and note, and send it."""
    order = Order.objects.select_related("partner").get(pk=delivery.order_id)
    note = ClinicalNote.objects.get(pk=delivery.note_id)
    client = redox_client.get_client()
    # Inline base64 up to REDOX_INLINE_MAX_BYTES, else uploaded to the blob store first and
    # referenced by URI (Redox advises against embedding files over ~200 KB).
    ids = {"partner_id": order.partner_id, "delivery_id": delivery.pk, "data_model": order.partner.outbound_model}
    with span("redox.prepare_document", **ids):
        document = redox_client.prepare_document(bytes(note.content), note.file_name, client=client)
    message = messages.build_message(
        _outbound_order(delivery, order, note),
        document,
        data_model=order.partner.outbound_model,
        source_id=settings.REDOX_SOURCE_ID,
    )
    with span("redox.send", resource=order.partner.outbound_model, **ids) as traced:
        try:
            result = client.send(message)
        except RedoxError as exc:
            traced.set_tag("http.status_code", exc.status)
            traced.set_tag("outcome", "retryable" if exc.retryable else "permanent")
            raise
        traced.set_tag("http.status_code", result.status)
        traced.set_tag("outcome", "accepted")
    return result


def _outbound_order(delivery, order, note):
    return messages.OutboundOrder(
        ehr_order_id=order.ehr_order_id,
        patient_identifiers=order.patient_identifiers,
        patient_demographics=order.patient_demographics,
        visit_number=order.visit_number,
        procedure={
            "Code": order.procedure_code,
            "Codeset": order.procedure_codeset,
            "Description": order.procedure_description,
        },
        provider=order.provider,
        is_test=order.is_test,
        destination_id=order.partner.destination_id,
        destination_name=order.partner.destination_name,
        delivery_ref=delivery_ref(delivery),
        corrected=delivery.is_correction,
        completed_at=note.uploaded_at,
    )


def _record_outcome(delivery, claimed_at, now, duration_ms, *, result, error):
    if result is not None:
        outcome, http_status, log_id, error_text = DeliveryAttempt.Outcome.SENT, result.status, result.log_id, ""
    elif isinstance(error, RedoxError):
        outcome = DeliveryAttempt.Outcome.TRANSIENT if error.retryable else DeliveryAttempt.Outcome.PERMANENT
        http_status, log_id, error_text = error.status, "", _redox_error_text(error)
    else:
        outcome, http_status, log_id = DeliveryAttempt.Outcome.TRANSIENT, None, ""
        error_text = f"Internal error ({type(error).__name__}); the delivery will be retried."

    with transaction.atomic():
        current = Delivery.objects.select_for_update().get(pk=delivery.pk)
        DeliveryAttempt.objects.create(
            delivery=current,
            started_at=claimed_at,
            duration_ms=duration_ms,
            outcome=outcome,
            http_status=http_status,
            redox_log_id=log_id or "",
            error=error_text,
        )
        _log(
            current,
            "delivery.attempted",
            level=logging.INFO if error is None else logging.WARNING,
            attempt=delivery.attempt_count,
            http_status=http_status,
            duration_ms=duration_ms,
            **({"error_class": type(error).__name__} if error is not None else {}),
        )

        still_ours = current.status == Delivery.Status.SENDING and current.sending_started_at == claimed_at
        if not still_ours:
            # The sweep decided this worker was lost and took the row back. If Redox accepted
            # this attempt and the row is only waiting for its next try, that try is not needed.
            if outcome == DeliveryAttempt.Outcome.SENT and current.status in CLAIMABLE:
                _mark_sent(current, now, log_id)
            return current

        if outcome == DeliveryAttempt.Outcome.SENT:
            _mark_sent(current, now, log_id)
        elif outcome == DeliveryAttempt.Outcome.PERMANENT:
            _mark_failed(current, now, error_text, reason="permanent")
        else:
            # None for our own errors, which carry no Retry-After.
            retry_after = getattr(error, "retry_after", None)
            delay = retry_delay_seconds(current.attempt_count, retry_after=retry_after)
            _after_transient(
                current, now, delay=delay, retry_after=retry_after, error_text=error_text, reason="transient"
            )
    return current


def _after_transient(delivery, now, *, delay, error_text, reason, retry_after=None):
    """Schedule the next try, or fail the delivery once it is older than DELIVERY_MAX_AGE_HOURS."""
    deadline = delivery.created_at + timedelta(hours=settings.DELIVERY_MAX_AGE_HOURS)
    if now >= deadline:
        hours = settings.DELIVERY_MAX_AGE_HOURS
        attempts = delivery.attempt_count
        _mark_failed(
            delivery,
            now,
            f"{error_text.rstrip('.')}. Gave up after {attempts} attempt{'s' if attempts != 1 else ''} "
            f"over {hours} hour{'s' if hours != 1 else ''}.",
            reason="max_age",
        )
        return
    next_at = now + timedelta(seconds=delay)
    if next_at > deadline:
        # The last try happens at the deadline rather than not at all, unless Redox asked
        # us to wait longer than that; a failure then ends it.
        next_at = max(deadline, now + timedelta(seconds=retry_after or 0))
    delivery.status = Delivery.Status.RETRY_SCHEDULED
    delivery.next_attempt_at = next_at
    delivery.last_error = error_text
    delivery.save(update_fields=["status", "next_attempt_at", "last_error"])
    delivery_enqueue(delivery=delivery, run_after=next_at)
    # age_minutes lets a monitor spot a delivery still retrying an hour after it was queued.
    age_minutes = int((now - delivery.created_at).total_seconds() // 60)
    _log(delivery, "delivery.retry_scheduled", attempt=delivery.attempt_count, reason=reason, age_minutes=age_minutes)


def _mark_sent(delivery, now, log_id):
    delivery.status = Delivery.Status.SENT
    delivery.sent_at = now
    delivery.redox_log_id = log_id or ""
    delivery.next_attempt_at = None
    delivery.last_error = ""
    delivery.save(update_fields=["status", "sent_at", "redox_log_id", "next_attempt_at", "last_error"])
    _set_order_state(delivery.order_id, Order.State.SENT, now)
    _log(delivery, "delivery.sent", attempt=delivery.attempt_count)


def _mark_failed(delivery, now, error_text, *, reason):
    delivery.status = Delivery.Status.FAILED
    delivery.next_attempt_at = None
    delivery.last_error = error_text
    delivery.save(update_fields=["status", "next_attempt_at", "last_error"])
    _set_order_state(delivery.order_id, Order.State.FAILED, now)
    _log(delivery, "delivery.failed", level=logging.ERROR, attempt=delivery.attempt_count, reason=reason)


# --- Small helpers ----------------------------------------------------------------------


def _set_order_state(order_id, state, now):
    """Keep Order.state in step with its delivery. A cancelled order stays cancelled.

    A single-column UPDATE, so it cannot overwrite what the webhook changed meanwhile.
    """
    Order.objects.filter(pk=order_id).exclude(state=Order.State.CANCELLED).update(state=state, updated_at=now)


def _order_state_after_abandon(delivery):
    others = Delivery.objects.filter(order_id=delivery.order_id).exclude(pk=delivery.pk)
    if others.in_flight().exists():
        return Order.State.SENDING
    if others.filter(status=Delivery.Status.SENT).exists():
        return Order.State.SENT
    return Order.State.AWAITING_NOTE


def _delivery_ids_with_live_jobs(stale_before):
    """Deliveries that already have a queued job, or one a worker took recently."""
    jobs = DBTaskResult.objects.filter(task_path=deliver.module_path).filter(
        Q(status="READY") | Q(status="RUNNING", started_at__gte=stale_before)
    )
    # delivery_enqueue, the one place that queues this task, passes the id by keyword.
    return {args_kwargs["kwargs"].get("delivery_id") for args_kwargs in jobs.values_list("args_kwargs", flat=True)}


def _redox_error_text(error):
    """Redox's own words (Meta.Errors[].Text) when it gave any, else the client's summary."""
    return "; ".join(error.redox_errors) or str(error)


def _require_manage_permission(user):
    if not user.has_perm("orders.manage_delivery"):
        raise PermissionDenied


def _lock_for_staff(delivery, done, *, refuse_if_cancelled=False):
    """The delivery locked for a staff action, or DeliveryError if its status does not allow it.

    With `refuse_if_cancelled`, the order's cancellation is checked first, under the same
    order lock the webhook's Cancel takes, because it is the real reason nothing can be sent.
    """
    locked = Delivery.objects.select_for_update().get(pk=delivery.pk)
    if refuse_if_cancelled and Order.objects.select_for_update().get(pk=locked.order_id).is_cancelled:
        raise DeliveryError(ORDER_CANCELLED_RETRY)
    if locked.status not in STAFF_ACTIONABLE:
        raise DeliveryError(f"A delivery that is {locked.get_status_display().lower()} cannot be {done}.")
    return locked


def _log(delivery, event, *, level=logging.INFO, **fields):
    partner_id = Order.objects.filter(pk=delivery.order_id).values_list("partner_id", flat=True).first()
    log_event(
        logger, event, level=level, delivery_id=delivery.pk, order_id=delivery.order_id, partner_id=partner_id, **fields
    )
