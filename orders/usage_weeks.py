"""Usage figures computed live, per ISO week and partner: the primitives under the Usage page.

What a week's figures mean is in orders/usage.py, which builds the page and the report from
these; orders/usage_rollup.py keeps closed weeks' figures, computed by `weekly_figures` here.
This module holds the row (WeekFigures), the week arithmetic (local Mondays and their
bounds), the weekly figures query (orders received, notes sent, times to accept), the
planner settings every delivery aggregate runs under (`driven_by_the_window`), and the
counts and percentiles it groups by week.

Percentiles: PostgreSQL computes them with `percentile_cont(f) WITHIN GROUP (ORDER BY
interval)`, the standard interpolated percentile. SQLite (development only) has no such
aggregate, so there the durations come back from one query, ordered, and
`percentile_cont` below interpolates them in Python the same way.
"""

import math
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import reduce
from operator import or_

from django.db import connection, transaction
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q
from django.db.models.functions import TruncWeek
from django.utils import timezone

from orders.models import Delivery

MAX_WEEKS = 260


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


def week_start(moment):
    """The local Monday 00:00 of the ISO week holding `moment`."""
    local = timezone.localtime(moment)
    monday = local.date() - timedelta(days=local.weekday())
    return timezone.make_aware(datetime.combine(monday, datetime.min.time()))


def week_date(value):
    """TruncWeek's value (an aware datetime; a date on some backends) as the local Monday."""
    if isinstance(value, datetime):
        return timezone.localtime(value).date() if timezone.is_aware(value) else value.date()
    return value


def _week_bounds(monday):
    """The aware start and end (the next Monday 00:00) of the local week starting `monday`."""
    start = timezone.make_aware(datetime.combine(monday, time.min))
    return start, timezone.make_aware(datetime.combine(monday + timedelta(days=7), time.min))


def _in_weeks(field, mondays):
    """Q: `field` within one of the weeks `mondays` (consecutive weeks merged into one range)."""
    ranges = []
    for monday in sorted(mondays):
        start, end = _week_bounds(monday)
        if ranges and ranges[-1][1] == start:
            ranges[-1][1] = end
        else:
            ranges.append([start, end])
    return reduce(or_, (Q(**{f"{field}__gte": start, f"{field}__lt": end}) for start, end in ranges))


def figures_row(figures, week, partner_id):
    """The WeekFigures of (week, partner) in `figures`, {(monday, partner id): WeekFigures},
    added empty the first time it is asked for."""
    key = (week_date(week), partner_id)
    if key not in figures:
        figures[key] = WeekFigures(week=key[0], partner_id=partner_id, partner_name="")
    return figures[key]


def weekly_figures(orders, deliveries, mondays):
    """The figures a closed week keeps, computed live for the weeks `mondays`:
    ({(monday, partner_id): WeekFigures with orders received, notes sent and the times to
    accept}, {monday: (median, p90) over all partners}). What the rollup stores."""
    figures, overall = {}, {}
    if not mondays:
        return figures, overall

    received = (
        orders.filter(_in_weeks("first_received_at", mondays))
        .annotate(week=TruncWeek("first_received_at"))
        .values("week", "partner_id")
        .annotate(received=Count("id"))
        .order_by()
    )
    for item in received:
        figures_row(figures, item["week"], item["partner_id"]).orders_received = item["received"]

    # (Run inside driven_by_the_window, as every delivery aggregate here.)
    sent = deliveries.filter(status__in=Delivery.ACCEPTED_STATUSES).filter(_in_weeks("sent_at", mondays))
    if connection.vendor != "postgresql":
        # (PostgreSQL counts them with the times to accept, in one query.)
        for week, partner_id, count in count_by_week(sent, "sent_at"):
            figures_row(figures, week, partner_id).notes_sent = count
    per_partner, overall, sent_counts = _times_to_accept(sent)
    for (week, partner_id), count in sent_counts.items():
        figures_row(figures, week, partner_id).notes_sent = count
    for (week, partner_id), (median, p90) in per_partner.items():
        target = figures_row(figures, week, partner_id)
        target.median_to_accept, target.p90_to_accept = median, p90
    wanted = set(mondays)
    # A range's edge falls on a local Monday 00:00, so no row lands outside `mondays`.
    return (
        {key: item for key, item in figures.items() if key[0] in wanted},
        {monday: value for monday, value in overall.items() if monday in wanted},
    )


@contextmanager
def driven_by_the_window():
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


def count_by_week(deliveries, date_field):
    """(week, partner id, how many) of `deliveries`, grouped by the week of `date_field`."""
    return (
        deliveries.annotate(week=TruncWeek(date_field))
        .values_list("week", "order__partner_id")
        .annotate(count=Count("id"))
        .order_by()
    )


def _times_to_accept(sent):
    """{(monday, partner_id): (median, p90)} and {monday: (median, p90)} for all partners,
    over the accepted deliveries `sent`, and on PostgreSQL {(monday, partner_id): notes
    sent} from the same query (else {})."""
    sent = sent.annotate(
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
        monday = week_date(week)
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
            monday = week_date(week)
            if partner_id is None:
                if median is not None:
                    overall[monday] = (median, p90)
                continue
            counts[(monday, partner_id)] = count
            if median is not None:
                per_partner[(monday, partner_id)] = (median, p90)
    return per_partner, overall, counts
