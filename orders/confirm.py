"""Confirming that a note Redox accepted reached the partner's chart: the confirmer.

Redox's 200 to our POST means only that it queued the message ("accepted by Redox"); its
log for the message (`Meta.Logs[].ID`, kept as `Delivery.redox_log_id`) later says what
happened downstream. The worker's loop (orders/worker.py) calls `confirm_due` every
REDOX_CONFIRM_POLL_SECONDS, which asks Redox's Platform API about each due log:

    sent ("Accepted by Redox") ──succeeded──▶ filed
         │                    ──failed─────▶ failed downstream   (alert: resend corrected / contact Redox)
         │                    ──filtered───▶ filtered            (alert: Redox's configuration; contact Redox)
         └─pending, or Redox could not be asked─▶ asked again later; past the window ──▶ unconfirmed (alert)

- The schedule: first REDOX_CONFIRM_FIRST_CHECK_SECONDS after Redox accepted, then 5 min,
  15 min, then every REDOX_CONFIRM_MAX_WAIT_SECONDS (hourly), the last check at the end
  of REDOX_CONFIRM_WINDOW_DAYS. An error (authentication, the API) is a check that learned
  nothing: it is logged as `delivery.confirm_failed` and the next check follows the schedule.
- The Delivery row is the queue, as for sending: due rows are claimed with
  `SELECT … FOR UPDATE SKIP LOCKED` and their next check pushed CLAIM_SECONDS on before any
  HTTP call, so two workers never ask about the same log at once.
- The answer is written only if the row is still the one asked about (still accepted, same
  Redox log id, same attempt count): a delivery retried or resent meanwhile is left alone.
- Requests are counted per minute in the database (ThrottleCount), across every worker, and
  stop at REDOX_CONFIRM_MAX_PER_MINUTE; every request shares one token per process.
- Without Platform API credentials (`redox.client.get_platform_client()` is None) nothing
  is asked and deliveries stay "Accepted by Redox".
"""

import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from hcoint.events import log_event
from orders.delivery_log import delivery_log
from orders.models import Delivery, ThrottleCount
from orders.order_state import order_follows_delivery
from redox.client import get_platform_client
from redox.errors import RedoxError

logger = logging.getLogger(__name__)
_log = partial(delivery_log, logger=logger)

# Redox's final statuses -> ours, with the event each logs and its level. The problems have
# monitors of their own (ops/datadog/monitors/k-, l-), so they are WARNING, not ERROR: the
# "ERROR logged" monitor is for bugs, and would otherwise page twice for one note.
OUTCOMES = {
    "succeeded": (Delivery.Status.FILED, "delivery.filed", logging.INFO),
    "failed": (Delivery.Status.FAILED_DOWNSTREAM, "delivery.failed_downstream", logging.WARNING),
    "filtered": (Delivery.Status.FILTERED, "delivery.filtered", logging.WARNING),
}
# The waits after the first check: 5 min, 15 min, then REDOX_CONFIRM_MAX_WAIT_SECONDS each time.
LATER_WAITS = (300, 900)
# A claimed row is not due again for this long, so no other worker asks about it meanwhile;
# if this worker dies, the row is simply due again afterwards.
CLAIM_SECONDS = 120
BATCH = 20  # rows claimed at once; the rate limit usually bounds it first
RATE_SCOPE = "redox_confirm"


@dataclass(frozen=True)
class Claimed:
    """What a claimed delivery looked like when its log was asked about (the guard compares these)."""

    pk: int
    log_id: str
    attempt_count: int


@dataclass
class ConfirmRun:
    asked: int = 0
    changed: int = 0
    failed: int = 0
    skipped: int = 0


def confirmer_configured():
    return get_platform_client() is not None


def wait_after(checks_done):
    """Seconds until the next check after `checks_done` checks (1 = the first check)."""
    cap = settings.REDOX_CONFIRM_MAX_WAIT_SECONDS
    if checks_done <= len(LATER_WAITS):
        return min(LATER_WAITS[checks_done - 1], cap)
    return cap


def give_up_at(delivery):
    return delivery.sent_at + timedelta(days=settings.REDOX_CONFIRM_WINDOW_DAYS)


def confirm_due(*, now=None, client=None, limit=BATCH):
    """Ask Redox about due accepted deliveries, within this minute's request budget. Returns a ConfirmRun.

    Does nothing without Platform API credentials. Never asks about more than `limit`, nor
    past REDOX_CONFIRM_MAX_PER_MINUTE requests in a minute across every worker.
    """
    client = client or get_platform_client()
    run = ConfirmRun()
    if client is None:
        return run
    # Each answer is recorded at the time it came (a batch can take a while), unless `now` fixes the clock.
    clock = (lambda: now) if now is not None else timezone.now
    claimed = _claim(clock(), limit)
    for item in claimed:
        run.asked += 1
        try:
            status = client.log_status(item.log_id).status
        except RedoxError as exc:
            run.failed += 1
            _log_failure(item, exc)
            _apply(item, clock(), None, run)
            if exc.status in (None, 401, 403, 429) or exc.status >= 500:
                # Redox, our credentials or our rate are the problem: the rest of this batch would
                # fail the same way. They stay claimed, so they are due again after CLAIM_SECONDS.
                break
            continue
        _apply(item, clock(), status, run)
    return run


def confirm_one(delivery, *, now=None, client=None):
    """Ask about one accepted delivery now, whatever its schedule (`manage.py reconcile --refresh`).

    Returns Redox's status, or None when it could not be asked; the row changes as a check would.
    """
    client = client or get_platform_client()
    if client is None or delivery.status != Delivery.Status.SENT or not delivery.redox_log_id:
        return None
    now = now or timezone.now()
    item = Claimed(delivery.pk, delivery.redox_log_id, delivery.attempt_count)
    try:
        status = client.log_status(item.log_id).status
    except RedoxError as exc:
        _log_failure(item, exc)
        status = None
    _apply(item, now, status, ConfirmRun())
    return status


def take_request_budget(now, wanted):
    """Reserve up to `wanted` Platform API requests in this minute; how many may be made (0 .. wanted).

    One counter row per minute, shared by every worker (an atomic upsert), so the limit holds
    across processes and containers. Rows older than an hour are removed as it goes.
    """
    limit = settings.REDOX_CONFIRM_MAX_PER_MINUTE
    window_start = now.replace(second=0, microsecond=0)
    table = connection.ops.quote_name(ThrottleCount._meta.db_table)
    with transaction.atomic():
        ThrottleCount.objects.filter(scope=RATE_SCOPE, window_start__lt=window_start - timedelta(hours=1)).delete()
        with connection.cursor() as cursor:
            cursor.execute(
                f'INSERT INTO {table} (scope, "key", window_start, count) VALUES (%s, %s, %s, %s) '  # noqa: S608 - our table name
                f'ON CONFLICT (scope, "key", window_start) DO UPDATE SET count = {table}.count + EXCLUDED.count '
                "RETURNING count",
                [RATE_SCOPE, "platform", window_start, wanted],
            )
            total = cursor.fetchone()[0]
    return max(0, min(wanted, limit - (total - wanted)))


def _claim(now, count):
    """Take up to `count` due deliveries, as many as this minute's budget allows: push each one's
    next check on, commit, and return what was seen. Nothing due spends no budget."""
    first_wait = timedelta(seconds=settings.REDOX_CONFIRM_FIRST_CHECK_SECONDS)
    with transaction.atomic():
        rows = list(Delivery.objects.confirmable(now, first_wait).select_for_update(skip_locked=True)[:count])
        if not rows:
            return []
        rows = rows[: take_request_budget(now, len(rows))]
        ids = [row.pk for row in rows]
        Delivery.objects.filter(pk__in=ids).update(next_check_at=now + timedelta(seconds=CLAIM_SECONDS))
    return [Claimed(row.pk, row.redox_log_id, row.attempt_count) for row in rows]


def _apply(item, now, redox_status, run):
    """Record one check's answer (`redox_status`, None when Redox could not be asked) if the row is unchanged."""
    with transaction.atomic():
        current = Delivery.objects.select_for_update().get(pk=item.pk)
        if not (
            current.status == Delivery.Status.SENT
            and current.redox_log_id == item.log_id
            and current.attempt_count == item.attempt_count
        ):
            # Retried, resent, abandoned or already confirmed while we asked: not ours to change.
            run.skipped += 1
            _log(current, "delivery.confirm_skipped")
            return
        if redox_status in OUTCOMES:
            status, event, level = OUTCOMES[redox_status]
            _settle(current, now, status, event, level)
            run.changed += 1
        elif now >= give_up_at(current):
            _settle(current, now, Delivery.Status.UNCONFIRMED, "delivery.unconfirmed", logging.WARNING)
            run.changed += 1
        else:
            next_at = min(now + timedelta(seconds=wait_after(current.confirm_checks + 1)), give_up_at(current))
            current.schedule_check(now, next_at)
            _log(current, "delivery.confirm_pending", checks=current.confirm_checks)


def _settle(delivery, now, status, event, level):
    delivery.record_confirmation(status, now)
    order_follows_delivery(delivery, now)
    _log(
        delivery,
        event,
        level=level,
        checks=delivery.confirm_checks,
        hours_since_sent=int((now - delivery.sent_at).total_seconds() // 3600),
    )


def _log_failure(item, exc):
    log_event(
        logger,
        "delivery.confirm_failed",
        level=logging.WARNING,
        delivery_id=item.pk,
        http_status=exc.status,
        error_class=type(exc).__name__,
    )
