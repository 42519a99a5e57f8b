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

The rollup. Orders received, notes sent and the times to accept of a closed week no longer
change: they are kept per (week, partner) in UsageWeek by the worker (`refresh_usage_rollup`,
hourly), so the page aggregates only the open week (and any week not rolled up) and reads
the rest. What can still change for an old week is read live for every week shown, from
small indexed sets: "still awaiting" (orders awaiting a note, `order_awaiting`) and
"deliveries failed" (a delivery retried or abandoned late, `delivery_status_created`). A
rolled-up week is ignored (computed live, as before) when an order it counts, or an order
whose note it counts as sent, was saved since the week was rolled up (`Order.updated_at`,
`order_updated`): a late import, a test flag or arrival time corrected. The next pass of
the worker rolls such weeks up again. Delivery rows need no such check: `sent_at` is set
once, when Redox accepts the note, and an accepted delivery stays accepted.

Percentiles: PostgreSQL computes them with `percentile_cont(f) WITHIN GROUP (ORDER BY
interval)`, the standard interpolated percentile. SQLite (development only) has no such
aggregate, so there the durations come back from one query, ordered, and
`percentile_cont` below interpolates them in Python the same way.
"""

import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import reduce
from operator import or_

from django.db import connection, transaction
from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, Min, Q
from django.db.models.functions import TruncWeek
from django.utils import timezone

from hcoint import metrics
from hcoint.events import log_event
from orders.models import Delivery, Order, Partner, UsageWeek

logger = logging.getLogger(__name__)

DEFAULT_WEEKS = 12
MAX_WEEKS = 260
FAILED_STATUSES = (Delivery.Status.FAILED, Delivery.Status.ABANDONED)
# A week is rolled up only this long after it ended: a note accepted at 23:59 on Sunday is
# committed well within it, so nothing can still land in a settled week's `sent_at` range.
ROLLUP_GRACE = timedelta(days=1)
# A rollup row's `computed_at` is its snapshot's time less this: an order saved (updated_at)
# by a transaction that committed after the snapshot is then always seen as a change.
ROLLUP_MARGIN = timedelta(hours=1)
# Past this many orders saved since the last pass, the page stops looking for the weeks they
# touch and computes every week live (as without a rollup) until the next pass.
CHANGES_LIMIT = 1000


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

    with _driven_by_the_window():
        rolled = rolled_up_weeks(mondays, include_test=include_test) if rollup else {}
        live = [monday for monday in mondays if monday not in rolled]
        figures, overall = _weekly_figures(orders, deliveries, live)
        _add_rolled_up(figures, overall, rolled)
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


def _add_rolled_up(figures, overall, rolled):
    """Put the rollup's rows ({monday: [UsageWeek]}) into `figures` and `overall`, as
    `_weekly_figures` would have computed them."""
    for rows in rolled.values():
        for saved in rows:
            if saved.partner_id is None:
                if saved.median_to_accept is not None:
                    overall[saved.week] = (saved.median_to_accept, saved.p90_to_accept)
                continue
            figures[(saved.week, saved.partner_id)] = WeekFigures(
                week=saved.week,
                partner_id=saved.partner_id,
                partner_name="",
                orders_received=saved.orders_received,
                notes_sent=saved.notes_sent,
                median_to_accept=saved.median_to_accept,
                p90_to_accept=saved.p90_to_accept,
            )


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


def _weekly_figures(orders, deliveries, mondays):
    """The figures a closed week keeps, computed live for the weeks `mondays`:
    ({(monday, partner_id): WeekFigures with orders received, notes sent and the times to
    accept}, {monday: (median, p90) over all partners}). What the rollup stores."""
    figures, overall = {}, {}
    if not mondays:
        return figures, overall

    def row(week, partner_id):
        key = (_week_date(week), partner_id)
        if key not in figures:
            figures[key] = WeekFigures(week=key[0], partner_id=partner_id, partner_name="")
        return figures[key]

    received = (
        orders.filter(_in_weeks("first_received_at", mondays))
        .annotate(week=TruncWeek("first_received_at"))
        .values("week", "partner_id")
        .annotate(received=Count("id"))
        .order_by()
    )
    for item in received:
        row(item["week"], item["partner_id"]).orders_received = item["received"]

    # (Run inside _driven_by_the_window, as every delivery aggregate here.)
    sent = deliveries.filter(status__in=Delivery.ACCEPTED_STATUSES).filter(_in_weeks("sent_at", mondays))
    if connection.vendor != "postgresql":
        # (PostgreSQL counts them with the times to accept, in one query.)
        for week, partner_id, count in _count_by_week(sent, "sent_at"):
            row(week, partner_id).notes_sent = count
    per_partner, overall, sent_counts = _times_to_accept(sent)
    for (week, partner_id), count in sent_counts.items():
        row(week, partner_id).notes_sent = count
    for (week, partner_id), (median, p90) in per_partner.items():
        figures_row = row(week, partner_id)
        figures_row.median_to_accept, figures_row.p90_to_accept = median, p90
    wanted = set(mondays)
    # A range's edge falls on a local Monday 00:00, so no row lands outside `mondays`.
    return (
        {key: item for key, item in figures.items() if key[0] in wanted},
        {monday: value for monday, value in overall.items() if monday in wanted},
    )


def _add_live_figures(figures, orders, deliveries, since):
    """Still awaiting and deliveries failed, for every week from `since`: an old week's
    figures change whenever an order gets its note or a delivery fails, is retried or
    abandoned late, so these are never rolled up. Both are small sets read through
    indexes (`order_awaiting`, `delivery_status_created`)."""

    def row(week, partner_id):
        key = (_week_date(week), partner_id)
        if key not in figures:
            figures[key] = WeekFigures(week=key[0], partner_id=partner_id, partner_name="")
        return figures[key]

    awaiting = (
        orders.awaiting_note()
        .filter(first_received_at__gte=since)
        .annotate(week=TruncWeek("first_received_at"))
        .values_list("week", "partner_id")
        .annotate(count=Count("*"))
        .order_by()
    )
    for week, partner_id, count in awaiting:
        row(week, partner_id).still_awaiting = count
    failed = deliveries.filter(status__in=FAILED_STATUSES, created_at__gte=since)
    for week, partner_id, count in _count_by_week(failed, "created_at"):
        row(week, partner_id).deliveries_failed = count


def rolled_up_weeks(mondays, *, include_test):
    """{monday: [UsageWeek rows]} for the weeks of `mondays` the rollup holds and nothing
    they count changed since: an order saved after the week's `computed_at` whose arrival,
    or whose accepted note, falls in the week. Three small queries (one when nothing is
    rolled up); none of the rolled-up weeks past CHANGES_LIMIT changed orders."""
    rows = {}
    for saved in UsageWeek.objects.filter(include_test=include_test, week__in=mondays):
        rows.setdefault(saved.week, []).append(saved)
    computed = {week: saved.computed_at for week, found in rows.items() for saved in found if saved.partner_id is None}
    if not computed:
        return {}
    since = min(computed.values())
    if Order.objects.filter(updated_at__gt=since).order_by()[: CHANGES_LIMIT + 1].count() > CHANGES_LIMIT:
        # A bulk change (an import, a correction of many orders) since the last pass: every
        # week is computed live until the worker rolls them up again, rather than sorting
        # the changed orders into weeks on every view.
        return {}
    for week, changed_at in _changes_since(since):
        if week in computed and changed_at > computed[week]:
            del computed[week]
    return {week: rows[week] for week in computed}


def _changes_since(moment):
    """(monday, last updated_at) for each week an order saved after `moment` counts in: the
    weeks they arrived in and the weeks their notes were sent in. One query, grouped by
    week in the database (a bulk change, a history import, touches many orders at once);
    `order_updated` finds the orders, their deliveries come by their order."""
    changed = Order.objects.filter(updated_at__gt=moment)
    arrived = (
        changed.annotate(week=TruncWeek("first_received_at")).values("week").annotate(last=Max("updated_at")).order_by()
    )
    sent = (
        Delivery.objects.filter(order__updated_at__gt=moment, sent_at__isnull=False)
        .annotate(week=TruncWeek("sent_at"))
        .values("week")
        .annotate(last=Max("order__updated_at"))
        .order_by()
    )
    for item in arrived.union(sent, all=True):
        yield _week_date(item["week"]), item["last"]


def settled_weeks(now, weeks=MAX_WEEKS):
    """The Mondays of the closed weeks among the `weeks` most recent, settled (ended
    ROLLUP_GRACE ago) and so rolled up, newest first."""
    first = (week_start(now) - timedelta(weeks=weeks - 1)).date()
    last = week_start(now - ROLLUP_GRACE).date()  # the first week not settled
    count = (last - first).days // 7
    return [first + timedelta(weeks=offset) for offset in range(count)][::-1]


def refresh_usage_rollup(now=None, *, weeks=MAX_WEEKS):
    """Roll up the settled weeks (of the `weeks` most recent) that the rollup lacks or that
    changed since they were rolled up, with and without test orders; the worker runs it
    hourly and bench/seed.py once. Returns the number of weeks (re)computed.

    Each week is computed by the page's own live code (`_weekly_figures`) and replaced in
    one transaction, so a week is never half written or counted twice; a lock keeps two
    workers from rolling up at once.
    """
    now = now or timezone.now()
    mondays = settled_weeks(now, weeks)
    if not mondays:
        return 0
    # Taken before the snapshot, less the margin (ROLLUP_MARGIN): what an order saved
    # before this instant changed is in the snapshot, anything later is seen as a change.
    computed_at = now - ROLLUP_MARGIN
    done = 0
    for include_test in (False, True):
        current = rolled_up_weeks(mondays, include_test=include_test)
        stale = [monday for monday in mondays if monday not in current]
        if not stale:
            continue
        orders = Order.objects.all() if include_test else Order.objects.filter(is_test=False)
        deliveries = Delivery.objects.all() if include_test else Delivery.objects.filter(order__is_test=False)
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_xact_lock(hashtext('orders.usage.rollup'))")
            with _driven_by_the_window():
                figures, overall = _weekly_figures(orders, deliveries, stale)
            UsageWeek.objects.filter(include_test=include_test, week__in=stale).delete()
            rows = [
                UsageWeek(
                    week=monday,
                    include_test=include_test,
                    partner=None,
                    median_to_accept=overall.get(monday, (None, None))[0],
                    p90_to_accept=overall.get(monday, (None, None))[1],
                    computed_at=computed_at,
                )
                for monday in stale
            ]
            rows += [
                UsageWeek(
                    week=item.week,
                    include_test=include_test,
                    partner_id=item.partner_id,
                    orders_received=item.orders_received,
                    notes_sent=item.notes_sent,
                    median_to_accept=item.median_to_accept,
                    p90_to_accept=item.p90_to_accept,
                    computed_at=computed_at,
                )
                for item in figures.values()
            ]
            UsageWeek.objects.bulk_create(rows, batch_size=1000)
        done += len(stale)
    return done


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
