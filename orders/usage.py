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
database with aggregates grouped by (week, partner), so the cost grows with the weeks
shown, not with the years stored; the range filters use the order and delivery indexes.

Percentiles: PostgreSQL computes them with `percentile_cont(f) WITHIN GROUP (ORDER BY
interval)`, the standard interpolated percentile. SQLite (development only) has no such
aggregate, so there the durations come back from one query, ordered, and
`percentile_cont` below interpolates them in Python the same way.
"""

import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, Q
from django.db.models.functions import TruncWeek
from django.utils import timezone

from hcoint import metrics
from hcoint.events import log_event
from orders.models import Delivery, Order, Partner

logger = logging.getLogger(__name__)

DEFAULT_WEEKS = 12
MAX_WEEKS = 260
FAILED_STATUSES = (Delivery.Status.FAILED, Delivery.Status.ABANDONED)


def percentile_cont(sorted_values, fraction):
    """The interpolated percentile of already sorted values, as PostgreSQL's percentile_cont."""
    if not sorted_values:
        return None
    position = (len(sorted_values) - 1) * fraction
    lower = math.floor(position)
    upper = math.ceil(position)
    low_value = sorted_values[lower]
    return low_value + (sorted_values[upper] - low_value) * (position - lower)


@dataclass
class WeekFigures:
    week: date  # the Monday
    partner_id: int | None  # None: all partners together
    partner_name: str
    orders_received: int = 0
    still_awaiting: int = 0
    notes_sent: int = 0
    median_to_accept: timedelta | None = None
    p90_to_accept: timedelta | None = None
    deliveries_failed: int = 0

    @property
    def iso_week(self):
        year, week, _ = self.week.isocalendar()
        return f"{year}-W{week:02d}"

    @property
    def median_text(self):
        return humanize_duration(self.median_to_accept)

    @property
    def p90_text(self):
        return humanize_duration(self.p90_to_accept)


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


def week_start(moment):
    """The local Monday 00:00 of the ISO week holding `moment`."""
    local = timezone.localtime(moment)
    monday = local.date() - timedelta(days=local.weekday())
    return timezone.make_aware(datetime.combine(monday, datetime.min.time()))


def _week_date(value):
    """TruncWeek's value (an aware datetime; a date on some backends) as the local Monday."""
    if isinstance(value, datetime):
        return timezone.localtime(value).date() if timezone.is_aware(value) else value.date()
    return value


def usage_figures(*, weeks=DEFAULT_WEEKS, include_test=False, now=None):
    """The figures for the `weeks` most recent ISO weeks, this one included."""
    weeks = max(1, min(int(weeks), MAX_WEEKS))
    now = now or timezone.now()
    since = week_start(now) - timedelta(weeks=weeks - 1)
    mondays = [(since + timedelta(weeks=offset)).date() for offset in range(weeks)][::-1]

    orders = Order.objects.all() if include_test else Order.objects.filter(is_test=False)
    deliveries = Delivery.objects.all() if include_test else Delivery.objects.filter(order__is_test=False)

    figures = {}

    def row(week, partner_id):
        key = (_week_date(week), partner_id)
        if key not in figures:
            figures[key] = WeekFigures(week=key[0], partner_id=partner_id, partner_name="")
        return figures[key]

    received = (
        orders.filter(first_received_at__gte=since)
        .annotate(week=TruncWeek("first_received_at"))
        .values("week", "partner_id")
        .annotate(received=Count("id"), awaiting=Count("id", filter=Q(state=Order.State.AWAITING_NOTE)))
        .order_by()
    )
    for item in received:
        figures_row = row(item["week"], item["partner_id"])
        figures_row.orders_received = item["received"]
        figures_row.still_awaiting = item["awaiting"]

    with _driven_by_the_window():
        if connection.vendor != "postgresql":
            # (PostgreSQL counts them with the times to accept, in one query.)
            sent = deliveries.filter(status__in=Delivery.ACCEPTED_STATUSES, sent_at__gte=since)
            for week, partner_id, count in _count_by_week(sent, "sent_at"):
                row(week, partner_id).notes_sent = count

        failed = deliveries.filter(status__in=FAILED_STATUSES, created_at__gte=since)
        for week, partner_id, count in _count_by_week(failed, "created_at"):
            row(week, partner_id).deliveries_failed = count

        per_partner, overall, sent_counts = _times_to_accept(deliveries, since)
    for (week, partner_id), count in sent_counts.items():
        row(week, partner_id).notes_sent = count
    for (week, partner_id), (median, p90) in per_partner.items():
        figures_row = row(week, partner_id)
        figures_row.median_to_accept, figures_row.p90_to_accept = median, p90

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


@contextmanager
def _driven_by_the_window():
    """On PostgreSQL, join the window's deliveries to their orders one primary-key probe each.

    The delivery aggregates join the deliveries of the window (found through
    delivery_status_sent / delivery_created) to their orders for the partner, the test flag
    and the time received. Left to its costs (random_page_cost 4), the planner hashes every
    non-test order ever received to serve a few thousand deliveries: a sequential scan of
    the whole order table, the cost growing with history (docs/performance.md has the
    EXPLAIN ANALYZE). With hash and merge joins off for these queries only, it probes
    orders_order_pkey per delivery: the cost follows the window. The settings are
    transaction-local and restored afterwards, even inside an outer transaction.
    """
    if connection.vendor != "postgresql":
        yield
        return
    if not connection.in_atomic_block:
        # Our own transaction: its end discards the settings.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off")
            yield
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('enable_hashjoin'), current_setting('enable_mergejoin'),"
            " set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)"
        )
        hashjoin, mergejoin, _, _ = cursor.fetchone()
        try:
            yield
        finally:
            cursor.execute(
                "SELECT set_config('enable_hashjoin', %s, true), set_config('enable_mergejoin', %s, true)",
                [hashjoin, mergejoin],
            )


def _count_by_week(deliveries, date_field):
    """(week, partner id, how many) of `deliveries`, grouped by the week of `date_field`."""
    return (
        deliveries.annotate(week=TruncWeek(date_field))
        .values_list("week", "order__partner_id")
        .annotate(count=Count("id"))
        .order_by()
    )


def _times_to_accept(deliveries, since):
    """{(monday, partner_id): (median, p90)} and {monday: (median, p90)} for all partners,
    and on PostgreSQL {(monday, partner_id): notes sent} from the same query (else {})."""
    sent = deliveries.filter(status__in=Delivery.ACCEPTED_STATUSES, sent_at__gte=since).annotate(
        week=TruncWeek("sent_at"),
        to_accept=ExpressionWrapper(F("sent_at") - F("order__first_received_at"), output_field=DurationField()),
    )
    first_notes = sent.filter(is_correction=False)
    per_partner = {}
    overall = {}
    if connection.vendor == "postgresql":
        return _times_to_accept_postgresql(sent)

    grouped = {}
    everyone = {}
    for week, partner_id, duration in first_notes.values_list("week", "order__partner_id", "to_accept").order_by(
        "to_accept"
    ):
        monday = _week_date(week)
        grouped.setdefault((monday, partner_id), []).append(duration)
        everyone.setdefault(monday, []).append(duration)
    for key, durations in grouped.items():
        per_partner[key] = (percentile_cont(durations, 0.5), percentile_cont(durations, 0.9))
    for monday, durations in everyone.items():
        overall[monday] = (percentile_cont(durations, 0.5), percentile_cont(durations, 0.9))
    return per_partner, overall, {}


def _times_to_accept_postgresql(sent):
    """_times_to_accept in one pass over the window's sent deliveries: GROUPING SETS gives
    the per-partner rows and the all-partners row (partner NULL) from the same join."""
    columns = sent.values("week", "order__partner_id", "to_accept", "is_correction").order_by()
    inner, params = columns.query.sql_with_params()
    # `inner` is the ORM's own SQL for the queryset, its values still in `params`.
    query = (
        "SELECT week, order__partner_id, count(*),"  # noqa: S608
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY to_accept) FILTER (WHERE NOT is_correction),"
        " percentile_cont(0.9) WITHIN GROUP (ORDER BY to_accept) FILTER (WHERE NOT is_correction)"
        f" FROM ({inner}) AS sent GROUP BY GROUPING SETS ((week, order__partner_id), (week))"
    )
    per_partner, overall, counts = {}, {}, {}
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        for week, partner_id, count, median, p90 in cursor.fetchall():
            monday = _week_date(week)
            if partner_id is None:
                if median is not None:
                    overall[monday] = (median, p90)
                continue
            counts[(monday, partner_id)] = count
            if median is not None:
                per_partner[(monday, partner_id)] = (median, p90)
    return per_partner, overall, counts


def awaiting_backlog(*, include_test=False, names=None, now=None):
    """Per partner: how many orders await a note now, and when the oldest arrived."""
    now = now or timezone.now()
    orders = Order.objects.awaiting_note()
    if not include_test:
        orders = orders.filter(is_test=False)
    names = names if names is not None else dict(Partner.objects.values_list("pk", "name"))
    found = (
        orders.values("partner_id")
        .annotate(awaiting=Count("id"), oldest=Min("first_received_at"))
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


def humanize_duration(value):
    """`2 d 4 h`, `3 h 20 min`, `45 min`, `30 s`: enough precision to compare weeks."""
    if value is None:
        return "—"
    seconds = int(value.total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)} s"
    minutes, _ = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"


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
