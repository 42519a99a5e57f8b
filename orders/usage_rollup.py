"""The usage rollup: closed weeks' figures kept per (week, partner) in UsageWeek.

orders/usage.py reads it for the Usage page and the report; the figures themselves are
computed by orders/usage_weeks.py (`weekly_figures`), the same code for a rolled-up week as
for a live one.

Orders received, notes sent and the times to accept of a closed week no longer change: they
are kept per (week, partner) in UsageWeek by the worker (`refresh_usage_rollup`, hourly), so
the page aggregates only the open week (and any week not rolled up) and reads the rest. What
can still change for an old week is read live for every week shown, from small indexed sets:
"still awaiting" (orders awaiting a note, `order_awaiting`) and "deliveries failed" (a
delivery retried or abandoned late, `delivery_status_created`). A rolled-up week is ignored
(computed live, as before) when an order it counts, or an order whose note it counts as
sent, was saved since the week was rolled up (`Order.updated_at`, `order_updated`): a late
import, a test flag corrected. An order whose arrival moves to an earlier week (an import of
older history) drops its old week's rollup as it moves (`forget_week_of`, called from
orders/order_apply.py): that week's orders no longer name it. The next pass of the worker
rolls such weeks up again, and moves the weeks it found unchanged on to its own time.
Delivery rows need no such check: `sent_at` is set once, when Redox accepts the
note, and an accepted delivery stays accepted.
"""

from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Max
from django.db.models.functions import TruncWeek
from django.utils import timezone

from orders.models import Delivery, Order, UsageWeek
from orders.usage_weeks import MAX_WEEKS, WeekFigures, driven_by_the_window, week_date, week_start, weekly_figures

# A week is rolled up only this long after it ended: a note accepted at 23:59 on Sunday is
# committed well within it, so nothing can still land in a settled week's `sent_at` range.
ROLLUP_GRACE = timedelta(days=1)
# A rollup row's `computed_at` is its snapshot's time less this: an order saved (updated_at)
# by a transaction that committed after the snapshot is then always seen as a change.
ROLLUP_MARGIN = timedelta(hours=1)
# Past this many orders saved since the last pass, the page stops looking for the weeks they
# touch and computes every week live (as without a rollup) until the next pass.
CHANGES_LIMIT = 1000


def add_rolled_up(figures, overall, rolled):
    """Put the rollup's rows ({monday: [UsageWeek]}) into `figures` and `overall`, as
    `weekly_figures` would have computed them."""
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


def _locked():
    """Take the rollup's lock for this transaction if it is free (PostgreSQL). Not waiting: a
    worker that would wait stops delivering notes meanwhile, for work the other does."""
    with connection.cursor() as cursor:
        # The key predates this module (orders/usage.py held the rollup): kept, so workers
        # running either version still exclude each other.
        cursor.execute("SELECT pg_try_advisory_xact_lock(hashtext('orders.usage.rollup'))")
        return cursor.fetchone()[0]


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
        yield week_date(item["week"]), item["last"]


def forget_week_of(moment):
    """Drop the rolled-up figures of the week `moment` falls in, so the page computes it live
    and the next pass rolls it up again. For a change the weeks' change detection cannot see:
    an order whose arrival moves out of a week (`_changes_since` finds only the week it
    arrived in now)."""
    UsageWeek.objects.filter(week=week_start(moment).date()).delete()


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

    Each week is computed by the page's own live code (`weekly_figures`, orders/usage_weeks.py)
    and replaced in one transaction, so a week is never half written or counted twice; a lock
    keeps two workers from rolling up at once.
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
        # The weeks found unchanged were checked against every order saved up to now: they
        # hold as of `computed_at`, so the next pass looks only at what is saved after it
        # (otherwise the oldest pass's time would stay the start of every check, and the
        # changes since it would pile up to CHANGES_LIMIT).
        UsageWeek.objects.filter(include_test=include_test, week__in=list(current)).update(computed_at=computed_at)
        stale = [monday for monday in mondays if monday not in current]
        if not stale:
            continue
        orders = Order.objects.all() if include_test else Order.objects.filter(is_test=False)
        deliveries = Delivery.objects.all() if include_test else Delivery.objects.filter(order__is_test=False)
        with transaction.atomic():
            if connection.vendor == "postgresql" and not _locked():
                return done  # another worker is rolling up; it does these weeks
            with driven_by_the_window():
                figures, overall = weekly_figures(orders, deliveries, stale)
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
