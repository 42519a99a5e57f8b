"""Carrying a note to Redox: queue, attempt, retry, give up, and the staff actions.

The Delivery row is the queue and the source of truth: it is created with its note in one
transaction (orders/notes.py), and `manage.py deliver` (orders/worker.py) claims due rows
and calls `delivery_send_once`. There is no job row that could go missing or disagree with it.

    pending ──claim──▶ sending ──▶ sent
       ▲                  │  └──lease expired (worker died)──▶ claimed again, same delivery id
       │                  ├──transient error──▶ retry scheduled ──(due)──▶ sending …
       │                  │                         └── older than DELIVERY_MAX_AGE_HOURS ──▶ failed
       │                  └──permanent error──▶ failed
       └──── retry now ◀── failed / retry scheduled ──abandon──▶ abandoned

Rules that keep a note from being lost or sent twice at once:
- An attempt claims the row under a lock (`select_for_update(skip_locked=True)`) and commits
  SENDING with a lease before any HTTP call, so a second worker never sends it meanwhile.
  The worker renews the lease while the send lasts (DELIVERY_LEASE_RENEW_SECONDS).
- A SENDING row whose lease ran out lost its worker: the next claim records that attempt as
  lost and sends again. Redox may have accepted the lost attempt, so that is at most one
  extra copy, carrying the same delivery id.
- The outcome is written only if the row is still this attempt's claim (same attempt number
  and start), so a worker whose lease was taken over cannot overwrite the new owner's result.
- A retry is only a `next_attempt_at` on the row, never a sleep in a worker, so one order's
  failing delivery never holds up another's.
- A delivery whose order the partner cancelled is abandoned when it is next claimed, not
  sent: a result for a cancelled order would still be billed. "Retry now" is refused for it.
- Every message carries `hcoint-delivery-<id>`, so a resend after a crash (Redox may have
  accepted the first) can be recognised downstream as the same delivery.
"""

import logging
import random
import time
from contextlib import nullcontext
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from hcoint.events import log_event
from hcoint.tracing import span
from orders.delivery_log import delivery_log
from orders.delivery_message import send_delivery
from orders.models import ClinicalNote, Delivery, DeliveryAttempt, Order
from orders.order_state import order_state_after_abandon, set_order_state
from orders.retention import PATIENT_REMOVED, PDF_REMOVED
from redox.errors import RedoxError

logger = logging.getLogger(__name__)
_log = partial(delivery_log, logger=logger)

# The statuses in which staff may retry a delivery now or abandon it. Neither action applies
# while a send may be in the air (pending or sending): the worker owns the row then.
STAFF_ACTION_STATUSES = (Delivery.Status.FAILED, Delivery.Status.RETRY_SCHEDULED)
CLAIMABLE = (Delivery.Status.PENDING, Delivery.Status.RETRY_SCHEDULED)

# PostgreSQL LISTEN/NOTIFY channel on which a committed delivery wakes idle workers.
NOTIFY_CHANNEL = "hcoint_delivery"

WORKER_LOST_ERROR = (
    "The worker stopped during this attempt, so whether Redox received the note is unknown. "
    "It will be sent again with the same delivery id."
)

ORDER_CANCELLED_REASON = "The partner cancelled the order before the note was sent."
ORDER_CANCELLED_RETRY = "The partner cancelled this order, so its note will not be sent again."


class DeliveryError(Exception):
    """A staff action that the delivery's current state does not allow. The message is for staff."""


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


def delivery_enqueue(*, delivery):
    """Announce a delivery that is due now. Call inside the transaction that made it due.

    The row itself is the queue, so there is nothing to insert; once the transaction commits,
    idle workers are woken (PostgreSQL NOTIFY). Without the wake-up, they still find it at
    their next poll (DELIVERY_IDLE_POLL_SECONDS).
    """
    transaction.on_commit(wake_workers)
    log_event(
        logger,
        "delivery.queued",
        delivery_id=delivery.pk,
        order_id=delivery.order_id,
        attempt=delivery.attempt_count + 1,
    )


def wake_workers():
    """NOTIFY the workers' channel. Never raises: the delivery is committed, and polling finds it."""
    if connection.vendor != "postgresql":
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"NOTIFY {NOTIFY_CHANNEL}")
    except DatabaseError as exc:
        log_event(logger, "delivery.wake_failed", level=logging.WARNING, error_class=type(exc).__name__)


def delivery_send_once(*, delivery_id=None, now=None, lease_seconds=None, while_sending=None):
    """Claim one due delivery (the most urgent, or `delivery_id`'s) and make one attempt to send it.

    Returns the delivery as it stands afterwards, or None when there was nothing to send (none
    due, or it was claimed by another worker). `while_sending(delivery)` gives a context
    manager held around the HTTP calls (the worker's lease heartbeat); `now` fixes the clock.
    """
    clock = (lambda: now) if now is not None else timezone.now
    lease_seconds = lease_seconds or settings.DELIVERY_LEASE_SECONDS
    delivery = _claim(clock(), lease_seconds, delivery_id=delivery_id)
    if delivery is None:
        return None
    claim = (delivery.attempt_count, delivery.sending_started_at)

    # A custom span per attempt (opaque tags only; a no-op without ddtrace-run).
    with span("delivery.attempt", delivery_id=delivery.pk, order_id=delivery.order_id) as traced:
        started = time.monotonic()
        result = error = None
        with while_sending(delivery) if while_sending else nullcontext():
            try:
                result = send_delivery(delivery)
            except Exception as exc:
                # A RedoxError, or our own bug or bad stored data: _record_outcome tells them
                # apart. A bug is kept as a transient error, so the delivery stays visible and is
                # retried after a fix; by class name only, since its message could carry patient data.
                error = exc
        duration_ms = int((time.monotonic() - started) * 1000)
        current = _record_outcome(delivery, claim, clock(), duration_ms, result=result, error=error)
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
        if removed := _removed_by_retention(locked):
            raise DeliveryError(removed)
        try:
            # The partial unique constraint refuses a second in-flight delivery for the
            # order (a newer note may have been sent since this one failed).
            with transaction.atomic():
                locked.queue_now(now)
        except IntegrityError:
            raise DeliveryError("Another note for this order is already being delivered.") from None
        set_order_state(locked.order_id, Order.State.SENDING, now)
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
        locked.abandon(reason, by=user, now=now)
        set_order_state(locked.order_id, order_state_after_abandon(locked), now)
        _log(locked, "delivery.abandoned")
    delivery.refresh_from_db()
    return delivery


# --- The steps of an attempt ----------------------------------------------------------


def _claim(now, lease_seconds, *, delivery_id=None):
    """Take the most urgent claimable delivery: mark it SENDING with a lease and commit.

    Returns None when nothing is claimable. A candidate that turns out not to be sendable
    (its order was cancelled, or its lost attempt was its last chance) is settled and the
    next one is tried, so one call sends something whenever anything is due.
    """
    while True:
        with transaction.atomic():
            # With the note for _take's retention check; its PDF is read, in pieces, only when it is sent.
            claimable = Delivery.objects.claimable(now).select_related("note").defer("note__content")
            candidates = _lock_deliveries_only(claimable, skip_locked=True)
            if delivery_id is not None:
                candidates = candidates.filter(pk=delivery_id)
            delivery = next(iter(candidates[:1]), None)
            if delivery is None:
                return None
            if _take(delivery, now, lease_seconds):
                return delivery


def _take(delivery, now, lease_seconds):
    """Claim a locked candidate; False when it was settled instead (abandoned or failed)."""
    if delivery.status == Delivery.Status.SENDING:
        # Its lease ran out: the worker sending it died or lost the database for a minute.
        DeliveryAttempt.objects.create(
            delivery=delivery,
            started_at=delivery.sending_started_at,
            outcome=DeliveryAttempt.Outcome.TRANSIENT,
            error=WORKER_LOST_ERROR,
        )
        _log(delivery, "delivery.lease_expired", level=logging.WARNING, attempt=delivery.attempt_count)
        if now >= _deadline(delivery):
            _fail(delivery, now, _gave_up(delivery, WORKER_LOST_ERROR), reason="max_age")
            return False
    # Locked like the webhook's Cancel locks it, so a Cancel either commits before this
    # read (and nothing is sent) or waits until the row is SENDING: a send already in the air.
    locked_order = Order.objects.select_for_update().filter(pk=delivery.order_id)
    order_state, patient_purged_at = locked_order.values_list("state", "patient_purged_at").get()
    if order_state == Order.State.CANCELLED:
        # A result now would be billed for nothing. No staff member decided this, so
        # `abandoned_by` stays empty; the order stays cancelled.
        delivery.abandon(ORDER_CANCELLED_REASON, now=now)
        _log(delivery, "delivery.abandoned", reason="order_cancelled")
        return False
    if removed := _removed_by_retention(delivery, patient_purged=patient_purged_at is not None):
        # Never expected (the purge leaves notes on their way alone), but a retry racing a
        # purge must end as a failure staff can read, not as a send of empty bytes.
        _fail(delivery, now, removed, reason="removed_by_retention")
        return False
    delivery.claim(now, lease_seconds)
    set_order_state(delivery.order_id, Order.State.SENDING, now)
    return True


def _record_outcome(delivery, claim, now, duration_ms, *, result, error):
    if result is not None:
        outcome, http_status, log_id, error_text = DeliveryAttempt.Outcome.SENT, result.status, result.log_id, ""
    elif isinstance(error, RedoxError):
        outcome = DeliveryAttempt.Outcome.TRANSIENT if error.retryable else DeliveryAttempt.Outcome.PERMANENT
        http_status, log_id, error_text = error.status, "", _redox_error_text(error)
    else:
        outcome, http_status, log_id = DeliveryAttempt.Outcome.TRANSIENT, None, ""
        error_text = f"Internal error ({type(error).__name__}); the delivery will be retried."

    with transaction.atomic():
        current = _lock_deliveries_only(Delivery.objects.select_related("order")).get(pk=delivery.pk)
        DeliveryAttempt.objects.create(
            delivery=current,
            started_at=claim[1],
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

        if not current.is_held_by(*claim):
            # Our lease ran out and another attempt took the row. If Redox accepted this
            # attempt and the row is only waiting for its next try, that try is not needed.
            if outcome == DeliveryAttempt.Outcome.SENT and current.status in CLAIMABLE:
                _sent(current, now, log_id)
            return current

        if outcome == DeliveryAttempt.Outcome.SENT:
            _sent(current, now, log_id)
        elif earlier := current.attempts.filter(outcome=DeliveryAttempt.Outcome.SENT).order_by("-id").first():
            # An attempt that lost its lease was accepted after all: the note is delivered.
            _sent(current, now, earlier.redox_log_id)
        elif outcome == DeliveryAttempt.Outcome.PERMANENT:
            _fail(current, now, error_text, reason="permanent")
        else:
            # None for our own errors, which carry no Retry-After.
            retry_after = getattr(error, "retry_after", None)
            delay = retry_delay_seconds(current.attempt_count, retry_after=retry_after)
            _after_transient(current, now, delay=delay, retry_after=retry_after, error_text=error_text)
    return current


def _deadline(delivery):
    return delivery.created_at + timedelta(hours=settings.DELIVERY_MAX_AGE_HOURS)


def _gave_up(delivery, error_text):
    hours, attempts = settings.DELIVERY_MAX_AGE_HOURS, delivery.attempt_count
    return (
        f"{error_text.rstrip('.')}. Gave up after {attempts} attempt{'s' if attempts != 1 else ''} "
        f"over {hours} hour{'s' if hours != 1 else ''}."
    )


def _after_transient(delivery, now, *, delay, error_text, retry_after=None):
    """Schedule the next try, or fail the delivery once it is older than DELIVERY_MAX_AGE_HOURS."""
    deadline = _deadline(delivery)
    if now >= deadline:
        _fail(delivery, now, _gave_up(delivery, error_text), reason="max_age")
        return
    next_at = now + timedelta(seconds=delay)
    if next_at > deadline:
        # The last try happens at the deadline rather than not at all, unless Redox asked
        # us to wait longer than that; a failure then ends it.
        next_at = max(deadline, now + timedelta(seconds=retry_after or 0))
    delivery.schedule_retry(next_at, error_text)
    # age_minutes lets a monitor spot a delivery still retrying an hour after it was queued.
    age_minutes = int((now - delivery.created_at).total_seconds() // 60)
    _log(
        delivery,
        "delivery.retry_scheduled",
        attempt=delivery.attempt_count,
        reason="transient",
        age_minutes=age_minutes,
    )


def _sent(delivery, now, log_id):
    delivery.mark_sent(now, log_id)
    set_order_state(delivery.order_id, Order.State.SENT, now)
    _log(delivery, "delivery.sent", attempt=delivery.attempt_count)


def _fail(delivery, now, error_text, *, reason):
    delivery.mark_failed(error_text)
    set_order_state(delivery.order_id, Order.State.FAILED, now)
    _log(delivery, "delivery.failed", level=logging.ERROR, attempt=delivery.attempt_count, reason=reason)


# --- Small helpers ----------------------------------------------------------------------


def _redox_error_text(error):
    """Redox's own words (Meta.Errors[].Text) when it gave any, else the client's summary."""
    return "; ".join(error.redox_errors) or str(error)


def _removed_by_retention(delivery, *, patient_purged=None):
    """Why the delivery can no longer be sent because retention removed what it needs, or "".
    Asks only for what the caller has not read: a note not loaded, `patient_purged` if None."""
    if Delivery.note.is_cached(delivery):
        note_purged = delivery.note.content_purged_at is not None
    else:
        note_purged = ClinicalNote.objects.filter(pk=delivery.note_id, content_purged_at__isnull=False).exists()
    if note_purged:
        return PDF_REMOVED
    if patient_purged is None:
        patient_purged = Order.objects.filter(pk=delivery.order_id, patient_purged_at__isnull=False).exists()
    return PATIENT_REMOVED if patient_purged else ""


def _lock_deliveries_only(deliveries, **options):
    """`deliveries` locked FOR UPDATE OF their own rows, not those select_related joins (the
    order is locked on its own, as the webhook locks it). SQLite ignores row locks."""
    if connection.features.has_select_for_update_of:
        options["of"] = ("self",)
    return deliveries.select_for_update(**options)


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
    if locked.status not in STAFF_ACTION_STATUSES:
        raise DeliveryError(f"A delivery that is {locked.get_status_display().lower()} cannot be {done}.")
    return locked
