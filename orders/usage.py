"""Usage figures: is this workflow used, and how fast do notes reach the partner's chart?

Per ISO week (Monday to Sunday in TIME_ZONE) and per partner, plus all partners together:

- orders received: orders whose `first_received_at` falls in the week;
- still awaiting a note: of those, how many are still in the "awaiting note" state;
- notes sent: deliveries that reached SENT, counted in the week of `sent_at`
  (a corrected resend is a note sent too);
- time to accept: median and 90th percentile of `Delivery.sent_at` (Redox accepted
  the note) minus `Order.first_received_at`, over the first notes sent that week
  (corrected resends are left out: they measure the correction, not the turnaround);
- deliveries failed: deliveries that ended failed or abandoned, counted in the week
  the delivery was queued (`created_at`; a delivery has no failure timestamp).

And now, per partner: orders awaiting a note and when the oldest of them arrived.

Test orders (`Meta.Test`) are left out unless asked for. Everything is computed by the
database with aggregates grouped by (week, partner); the range filters use the order and
delivery indexes.

This module holds what the Usage page and the report use (`usage_figures`, the backlog,
`usage_report`) and the figures always read live (still awaiting, deliveries failed).
The per-week queries, the week arithmetic and the percentiles are in
orders/usage_weeks.py; the rollup of closed weeks (UsageWeek, kept by the worker, and when
a rolled-up week is not read) is in orders/usage_rollup.py.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Min
from django.db.models.functions import TruncWeek
from django.utils import timezone

from hcoint import metrics
from hcoint.events import log_event
from orders.models import Delivery, Order, Partner
from orders.usage_rollup import add_rolled_up, rolled_up_weeks
from orders.usage_weeks import (
    MAX_WEEKS,
    WeekFigures,
    count_by_week,
    driven_by_the_window,
    figures_row,
    humanize_duration,
    week_start,
    weekly_figures,
)

logger = logging.getLogger(__name__)

DEFAULT_WEEKS = 12
FAILED_STATUSES = (Delivery.Status.FAILED, Delivery.Status.ABANDONED)


@dataclass
class Backlog:
    partner_id: int
    partner_name: str
    awaiting_note: int
    oldest_received_at: datetime | None
    oldest_age: timedelta | None = None

    @property
    def oldest_age_text(self):
        return humanize_duration(self.oldest_age)


@dataclass
class Usage:
    weeks: list  # Mondays, newest first
    by_week: dict  # {monday: [WeekFigures for all partners, then one per active partner]}
    backlog: list  # Backlog per partner with orders awaiting a note
    since: datetime
    now: datetime
    include_test: bool

    @property
    def rows(self):
        """Every week's rows in one list, newest week first."""
        return [row for week_rows in self.by_week.values() for row in week_rows]


def usage_figures(*, weeks=DEFAULT_WEEKS, include_test=False, now=None, rollup=True):
    """The figures for the `weeks` most recent ISO weeks, this one included.

    With `rollup` (the default) settled weeks come from UsageWeek where it holds them and
    nothing they count changed since; `rollup=False` computes every week live.
    """
    weeks = max(1, min(int(weeks), MAX_WEEKS))
    now = now or timezone.now()
    since = week_start(now) - timedelta(weeks=weeks - 1)
    mondays = [(since + timedelta(weeks=offset)).date() for offset in range(weeks)][::-1]

    orders = Order.objects.all() if include_test else Order.objects.filter(is_test=False)
    deliveries = Delivery.objects.all() if include_test else Delivery.objects.filter(order__is_test=False)

    with driven_by_the_window():
        rolled = rolled_up_weeks(mondays, include_test=include_test) if rollup else {}
        live = [monday for monday in mondays if monday not in rolled]
        figures, overall = weekly_figures(orders, deliveries, live)
        add_rolled_up(figures, overall, rolled)
        _add_live_figures(figures, orders, deliveries, since)

    names = dict(Partner.objects.values_list("pk", "name"))
    by_week = {}
    for monday in mondays:
        partner_rows = sorted(
            (item for (week, _), item in figures.items() if week == monday),
            key=lambda item: names.get(item.partner_id, ""),
        )
        total = WeekFigures(week=monday, partner_id=None, partner_name="All partners")
        for item in partner_rows:
            item.partner_name = names.get(item.partner_id, f"Partner {item.partner_id}")
            total.orders_received += item.orders_received
            total.still_awaiting += item.still_awaiting
            total.notes_sent += item.notes_sent
            total.deliveries_failed += item.deliveries_failed
        total.median_to_accept, total.p90_to_accept = overall.get(monday, (None, None))
        by_week[monday] = [total, *partner_rows]

    return Usage(
        weeks=mondays,
        by_week=by_week,
        backlog=awaiting_backlog(include_test=include_test, names=names, now=now),
        since=since,
        now=now,
        include_test=include_test,
    )


def _add_live_figures(figures, orders, deliveries, since):
    """Still awaiting and deliveries failed, for every week from `since`: an old week's
    figures change whenever an order gets its note or a delivery fails, is retried or
    abandoned late, so these are never rolled up. Both are small sets read through
    indexes (`order_awaiting`, `delivery_status_created`)."""

    awaiting = (
        orders.awaiting_note()
        .filter(first_received_at__gte=since)
        .annotate(week=TruncWeek("first_received_at"))
        .values_list("week", "partner_id")
        .annotate(count=Count("*"))
        .order_by()
    )
    for week, partner_id, count in awaiting:
        figures_row(figures, week, partner_id).still_awaiting = count
    failed = deliveries.filter(status__in=FAILED_STATUSES, created_at__gte=since)
    for week, partner_id, count in count_by_week(failed, "created_at"):
        figures_row(figures, week, partner_id).deliveries_failed = count


def awaiting_backlog(*, include_test=False, names=None, now=None):
    """Per partner: how many orders await a note now, and when the oldest arrived."""
    now = now or timezone.now()
    orders = Order.objects.awaiting_note()
    if not include_test:
        orders = orders.filter(is_test=False)
    names = names if names is not None else dict(Partner.objects.values_list("pk", "name"))
    found = (
        orders.values("partner_id")
        .annotate(awaiting=Count("*"), oldest=Min("first_received_at"))
        .order_by("oldest", "partner_id")
    )
    return [
        Backlog(
            partner_id=item["partner_id"],
            partner_name=names.get(item["partner_id"], f"Partner {item['partner_id']}"),
            awaiting_note=item["awaiting"],
            oldest_received_at=item["oldest"],
            oldest_age=now - item["oldest"] if item["oldest"] else None,
        )
        for item in found
    ]


def usage_report(*, weeks=2, include_test=False, now=None):
    """Emit the figures as `usage.weekly` / `usage.backlog` log events and DogStatsD gauges.

    The log events are what the Datadog dashboard and the "orders awaiting a note"
    monitor read (`@oldest_awaiting_days`); run it at least hourly (`manage.py
    report_usage`). Gauges go out only where an agent is configured (hcoint.metrics):
    the current week so far (`period:this_week`), the last complete week
    (`period:last_week`), and the backlog now. Returns the Usage it reported.
    """
    usage = usage_figures(weeks=max(weeks, 2), include_test=include_test, now=now)
    for monday in usage.weeks[:weeks]:
        for item in usage.by_week[monday]:
            log_event(
                logger,
                "usage.weekly",
                week=item.iso_week,
                week_start=monday.isoformat(),
                partner_id=item.partner_id if item.partner_id is not None else "all",
                orders_received=item.orders_received,
                still_awaiting=item.still_awaiting,
                notes_sent=item.notes_sent,
                median_to_accept_seconds=_seconds(item.median_to_accept),
                p90_to_accept_seconds=_seconds(item.p90_to_accept),
                deliveries_failed=item.deliveries_failed,
            )
    for period, monday in (("this_week", usage.weeks[0]), ("last_week", usage.weeks[1])):
        for item in usage.by_week[monday]:
            tags = {"period": period, "partner_id": item.partner_id if item.partner_id is not None else "all"}
            metrics.gauge("usage.orders_received", item.orders_received, **tags)
            metrics.gauge("usage.notes_sent", item.notes_sent, **tags)
            metrics.gauge("usage.deliveries_failed", item.deliveries_failed, **tags)
            metrics.gauge("usage.median_to_accept_seconds", _seconds(item.median_to_accept), **tags)
            metrics.gauge("usage.p90_to_accept_seconds", _seconds(item.p90_to_accept), **tags)
    for item in usage.backlog:
        age = _seconds(item.oldest_age)
        log_event(
            logger,
            "usage.backlog",
            partner_id=item.partner_id,
            awaiting_note=item.awaiting_note,
            oldest_awaiting_seconds=age,
            oldest_awaiting_days=round(age / 86400, 2) if age is not None else None,
        )
        metrics.gauge("orders.awaiting_note", item.awaiting_note, partner_id=item.partner_id)
        metrics.gauge("orders.oldest_awaiting_seconds", age, partner_id=item.partner_id)
    metrics.flush()
    return usage


def _seconds(value):
    return round(value.total_seconds()) if value is not None else None
