"""The digest email: when orders are waiting, DIGEST_GROUP's members hear of it once per period.

Counts only (orders awaiting a note, how many of them overdue, deliveries that need a
person; orders/worklist.py computes them for the page too) and a link to the worklist:
never a patient's name, identifier or date, nor an order id, so the email is safe in any
inbox. One email per recipient, so nobody sees who else gets it.

A period starts at DIGEST_HOUR o'clock in TIME_ZONE, every day (`daily`) or every Monday
(`weekly`). The worker asks every DIGEST_CHECK_SECONDS (orders/worker.py runs `digest_send_if_due`);
the first ask at or after a period's start decides it: send if anything waits, else nothing.
A worker that was down all period does not send it late in the next one.

Once per period with several workers: the decision holds the digest's `DigestRun` row
(`SELECT … FOR UPDATE SKIP LOCKED`) while it counts and sends, and records the period in the
same transaction. Another worker asking meanwhile skips the locked row and returns; asking
after the commit, it finds the period recorded. If sending fails (SMTP down), the
transaction rolls back and the next ask tries again, logging `digest.failed` each time.
"""

import logging
from datetime import datetime, time, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from hcoint.events import log_event
from orders.models import DigestRun
from orders.worklist import worklist_counts

logger = logging.getLogger(__name__)

DIGEST_NAME = "worklist"


def period_start(now, frequency, hour):
    """The start of the period holding `now`: the latest `hour` o'clock (daily), or Monday at
    `hour` (weekly), in TIME_ZONE, at or before `now`."""
    local = timezone.localtime(now)
    step = timedelta(days=7 if frequency == "weekly" else 1)
    day = local.date() - (timedelta(days=local.weekday()) if frequency == "weekly" else timedelta(0))
    start = timezone.make_aware(datetime.combine(day, time(hour)))
    if start > now:
        start = timezone.make_aware(datetime.combine(day - step, time(hour)))
    return start


def digest_recipients():
    """The addresses of DIGEST_GROUP's active members who have one."""
    users = get_user_model().objects.filter(is_active=True, groups__name=settings.DIGEST_GROUP).exclude(email="")
    return sorted(set(users.values_list("email", flat=True)))


def digest_message(counts, *, period):
    """(subject, body) of the digest for these counts: numbers and a link, nothing else."""
    context = {
        "counts": counts,
        "period": timezone.localtime(period),
        "frequency": settings.DIGEST_FREQUENCY,
        "group": settings.DIGEST_GROUP,
        "worklist_url": settings.SITE_URL + reverse("home"),
    }
    subject = render_to_string("emails/digest_subject.txt", context).strip()
    return " ".join(subject.split()), render_to_string("emails/digest.txt", context)


def digest_send_if_due(*, now=None):
    """Send this period's digest if no worker has decided it yet. Returns how many emails went out."""
    frequency = settings.DIGEST_FREQUENCY
    if frequency == "off":
        return 0
    now = now or timezone.now()
    period = period_start(now, frequency, settings.DIGEST_HOUR)
    # The one row, created on first use (ON CONFLICT DO NOTHING: two workers may race here).
    DigestRun.objects.bulk_create([DigestRun(name=DIGEST_NAME)], ignore_conflicts=True)
    with transaction.atomic():
        run = DigestRun.objects.select_for_update(skip_locked=True).filter(name=DIGEST_NAME).first()
        if run is None or (run.period_start is not None and run.period_start >= period):
            return 0  # another worker is deciding it now, or has decided it
        counts = worklist_counts(now)
        recipients = digest_recipients() if counts.anything else []
        sent = _send(counts, period, recipients) if recipients else 0
        run.period_start = period
        run.recipients = sent
        if sent:
            run.sent_at = now
        run.save()
    if not counts.anything:
        log_event(logger, "digest.nothing_waiting", period_start=period.isoformat())
    elif not recipients:
        log_event(
            logger,
            "digest.no_recipients",
            level=logging.WARNING,
            period_start=period.isoformat(),
            group=settings.DIGEST_GROUP,
        )
    else:
        log_event(
            logger,
            "digest.sent",
            period_start=period.isoformat(),
            recipients=sent,
            awaiting_note=counts.awaiting,
            overdue=counts.overdue,
            needs_person=counts.needs_person,
        )
    return sent


def _send(counts, period, recipients):
    subject, body = digest_message(counts, period=period)
    messages = [EmailMessage(subject=subject, body=body, to=[address]) for address in recipients]
    with get_connection() as connection:
        return connection.send_messages(messages) or 0
