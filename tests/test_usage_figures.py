"""Usage figures per ISO week and partner, checked against hand-computed answers.

Runs on SQLite (percentiles interpolated in Python) and on PostgreSQL (percentile_cont);
both must give the same numbers.
"""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from orders.history import orders_close_before
from orders.models import Delivery, Order
from orders.usage import awaiting_backlog, usage_figures
from orders.usage_rollup import refresh_usage_rollup
from orders.usage_weeks import percentile_cont
from tests.factories import DeliveryFactory, OrderFactory, UserFactory

LA = ZoneInfo("America/Los_Angeles")
NOW = datetime(2026, 10, 14, 12, 0, tzinfo=LA)  # a Wednesday; this week starts Monday Oct 12
THIS_WEEK = NOW.date() - timedelta(days=2)
LAST_WEEK = THIS_WEEK - timedelta(days=7)
H = timedelta(hours=1)


def at(month, day, hour, minute=0):
    return datetime(2026, month, day, hour, minute, tzinfo=LA)


class Seeder:
    def __init__(self, user):
        self.user = user
        self.count = 0

    def order(self, partner, received_at, *, state=Order.State.AWAITING_NOTE, is_test=False):
        self.count += 1
        return OrderFactory(
            partner=partner,
            ehr_order_id=f"EHR-{self.count}",
            first_received_at=received_at,
            state=state,
            is_test=is_test,
        )

    def delivery(self, order, *, status, created_at, sent_at=None, is_correction=False):
        return DeliveryFactory(
            order=order,
            status=status,
            created_by=self.user,
            created_at=created_at,
            sent_at=sent_at,
            is_correction=is_correction,
        )

    def sent_order(self, partner, received_at, after, **delivery):
        order = self.order(partner, received_at, state=Order.State.SENT)
        self.delivery(
            order, status=Delivery.Status.SENT, created_at=received_at, sent_at=received_at + after, **delivery
        )
        return order


@pytest.fixture
def seeded(partner, second_partner):
    seed = Seeder(UserFactory(username="seeder", role="uploader"))
    # Last week, partner A: five notes accepted 1, 2, 3, 4 and 10 hours after the order
    # arrived, and one order still waiting.
    first_a = seed.sent_order(partner, at(10, 6, 9), 1 * H)
    for hours in (2, 3, 4, 10):
        seed.sent_order(partner, at(10, 6, 9), hours * H)
    seed.order(partner, at(10, 7, 9))
    # Last week, partner B: one note accepted after 30 minutes, one delivery that failed.
    seed.sent_order(second_partner, at(10, 8, 9), timedelta(minutes=30))
    failing = seed.order(second_partner, at(10, 8, 10), state=Order.State.FAILED)
    seed.delivery(failing, status=Delivery.Status.FAILED, created_at=at(10, 8, 11))
    # This week, partner A: a corrected resend for last week's order, a new order
    # waiting, and a test order waiting.
    seed.delivery(
        first_a, status=Delivery.Status.SENT, created_at=at(10, 13, 8), sent_at=at(10, 13, 9), is_correction=True
    )
    seed.order(partner, at(10, 13, 9))
    seed.order(partner, at(10, 13, 10), is_test=True)
    # Long before the weeks shown: an order still waiting, the oldest of partner A's.
    seed.order(partner, at(6, 1, 9))
    return partner, second_partner


def rows_of(usage, monday):
    return {row.partner_name: row for row in usage.by_week[monday]}


def test_percentile_cont_interpolates_like_postgresql():
    assert percentile_cont([1, 2, 3, 4, 10], 0.5) == 3
    assert percentile_cont([1, 2, 3, 4, 10], 0.9) == pytest.approx(7.6)
    assert percentile_cont([1, 2, 3, 4], 0.5) == 2.5
    assert percentile_cont([5], 0.9) == 5
    assert percentile_cont([], 0.5) is None
    assert percentile_cont([H, 3 * H], 0.5) == 2 * H


def test_weekly_figures_per_partner(seeded):
    usage = usage_figures(weeks=2, now=NOW)
    assert usage.weeks == [THIS_WEEK, LAST_WEEK]

    last = rows_of(usage, LAST_WEEK)
    a, b = last["Cascade Health"], last["Second Hospital"]
    assert (a.orders_received, a.still_awaiting, a.notes_sent, a.deliveries_failed) == (6, 1, 5, 0)
    assert a.median_to_accept == 3 * H
    assert a.p90_to_accept == timedelta(hours=7, minutes=36)  # 4 h + 0.6 × (10 h − 4 h)
    assert (b.orders_received, b.still_awaiting, b.notes_sent, b.deliveries_failed) == (2, 0, 1, 1)
    assert b.median_to_accept == b.p90_to_accept == timedelta(minutes=30)


def test_all_partners_row_adds_counts_and_takes_percentiles_over_every_note(seeded):
    usage = usage_figures(weeks=2, now=NOW)
    total = rows_of(usage, LAST_WEEK)["All partners"]
    assert (total.orders_received, total.still_awaiting, total.notes_sent, total.deliveries_failed) == (8, 1, 6, 1)
    # Durations 0.5, 1, 2, 3, 4, 10 h: the median lies between 2 and 3 h, the 90th
    # percentile half way from 4 h to 10 h.
    assert total.median_to_accept == timedelta(hours=2, minutes=30)
    assert total.p90_to_accept == 7 * H
    assert usage.by_week[LAST_WEEK][0] is total


def test_a_corrected_resend_counts_as_sent_but_not_in_the_time_to_accept(seeded):
    this = rows_of(usage_figures(weeks=2, now=NOW), THIS_WEEK)["Cascade Health"]
    assert this.notes_sent == 1
    assert this.median_to_accept is None
    assert this.p90_to_accept is None
    assert this.orders_received == 1  # the test order is left out


def test_test_orders_are_counted_only_when_asked(seeded):
    this = rows_of(usage_figures(weeks=2, now=NOW, include_test=True), THIS_WEEK)["Cascade Health"]
    assert this.orders_received == 2
    assert this.still_awaiting == 2


def test_weeks_without_activity_still_have_an_all_partners_row(seeded):
    usage = usage_figures(weeks=4, now=NOW)
    assert len(usage.weeks) == 4
    quiet = usage.by_week[usage.weeks[-1]]
    assert [row.partner_name for row in quiet] == ["All partners"]
    assert quiet[0].orders_received == 0
    assert quiet[0].median_to_accept is None


def test_backlog_counts_orders_awaiting_a_note_and_finds_the_oldest(seeded):
    partner, _ = seeded
    (backlog,) = awaiting_backlog(now=NOW)
    assert backlog.partner_id == partner.pk
    assert backlog.awaiting_note == 3
    assert backlog.oldest_received_at == at(6, 1, 9)
    assert backlog.oldest_age == NOW - at(6, 1, 9)


def test_orders_closed_before_hcoint_are_not_backlog(seeded):
    partner, _ = seeded
    assert orders_close_before(partner=partner, before=at(10, 10, 0)) == 2
    (backlog,) = awaiting_backlog(now=NOW)
    assert (backlog.awaiting_note, backlog.oldest_received_at) == (1, at(10, 13, 9))
    last = rows_of(usage_figures(weeks=2, now=NOW), LAST_WEEK)["Cascade Health"]
    assert (last.orders_received, last.still_awaiting) == (6, 0)


def test_the_number_of_queries_does_not_grow_with_the_data(seeded, django_assert_max_num_queries):
    # One aggregate query per figure, however many orders, weeks or partners: the rollup's
    # weeks (and, when it holds any, how many orders changed since and their weeks), then orders received, notes
    # sent (on PostgreSQL with the times to accept), still awaiting, failed, the partners'
    # names and the backlog. On PostgreSQL two more set and restore the join settings that
    # keep the delivery aggregates to the window (inside this test's transaction).
    limit = 10 if connection.vendor == "postgresql" else 9
    with django_assert_max_num_queries(limit):
        usage_figures(weeks=52, now=NOW)
    refresh_usage_rollup(NOW)
    with django_assert_max_num_queries(limit + 2):
        usage_figures(weeks=52, now=NOW)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the join settings are PostgreSQL's")
def test_the_join_settings_are_restored_after_the_figures(seeded):
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_mergejoin = off")
        usage_figures(weeks=2, now=NOW)
        cursor.execute("SELECT current_setting('enable_hashjoin'), current_setting('enable_mergejoin')")
        assert cursor.fetchone() == ("on", "off")
