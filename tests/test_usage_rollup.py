"""The usage rollup (UsageWeek, orders/usage_rollup.py): the page shows the same figures with it as
without it, whatever happened after the rollup ran, and a missing or stale rollup is never
read. Runs on SQLite and on PostgreSQL."""

import json
from datetime import timedelta

import pytest
from django.db import connection

from orders import worker as worker_module
from orders.ingest import message_ingest
from orders.models import Delivery, Order, UsageWeek
from orders.usage import usage_figures
from orders.usage_rollup import refresh_usage_rollup, rolled_up_weeks, settled_weeks
from redox.sample_messages import fresh_copy
from tests.conftest import sample_bytes
from tests.factories import OrderFactory, PartnerFactory, UserFactory
from tests.test_usage_figures import LAST_WEEK, NOW, THIS_WEEK, Seeder, at

pytestmark = pytest.mark.django_db

H = timedelta(hours=1)
WEEK = timedelta(days=7)
ROLLED_AT = NOW  # the worker's pass, before the late changes below
LAST_WEEK_AT = at(10, 7, 9)  # a Wednesday of LAST_WEEK


def figures(usage):
    """Everything the page shows, as plain values."""
    return {
        "weeks": usage.weeks,
        "rows": [
            (
                row.week,
                row.partner_name,
                row.orders_received,
                row.still_awaiting,
                row.notes_sent,
                row.median_to_accept,
                row.p90_to_accept,
                row.deliveries_failed,
            )
            for row in usage.rows
        ],
        "backlog": [(item.partner_name, item.awaiting_note, item.oldest_received_at) for item in usage.backlog],
    }


def assert_same_as_live(weeks=12):
    for include_test in (False, True):
        rolled = usage_figures(weeks=weeks, include_test=include_test, now=NOW)
        live = usage_figures(weeks=weeks, include_test=include_test, now=NOW, rollup=False)
        rolled, live = figures(rolled), figures(live)
        differing = [pair for pair in zip(rolled["rows"], live["rows"], strict=False) if pair[0] != pair[1]]
        assert rolled == live, "\n".join(f"{a}\n{b}" for a, b in differing[:3])


@pytest.fixture
def history(partner, second_partner):
    """Six weeks of two (then three) partners: notes sent in their order's week and in a
    later one, corrections, test orders, failed, abandoned and still retrying deliveries,
    orders still awaiting a note. Saved before the rollup runs."""
    third = PartnerFactory(name="Third Clinic")
    seed = Seeder(UserFactory(username="seeder", role="uploader"))
    made = {}
    for weeks_ago in range(1, 7):
        monday = at(10, 12, 0) - weeks_ago * WEEK
        for number, who in enumerate((partner, second_partner, partner, third)):
            received = monday + timedelta(days=number, hours=9)
            seed.sent_order(who, received, (number + 1) * H)
        seed.sent_order(partner, monday + timedelta(days=2, hours=9), 5 * H, is_correction=False)
        test_order = seed.order(second_partner, monday + timedelta(days=3), is_test=True, state=Order.State.SENT)
        seed.delivery(
            test_order,
            status=Delivery.Status.SENT,
            created_at=monday + 4 * H,
            sent_at=monday + timedelta(days=3, hours=7),
        )
        seed.order(partner, monday + timedelta(days=4, hours=8))  # still awaiting
        failing = seed.order(second_partner, monday + timedelta(days=5), state=Order.State.FAILED)
        seed.delivery(failing, status=Delivery.Status.FAILED, created_at=monday + timedelta(days=5, hours=1))
        made[weeks_ago] = {"awaiting": Order.objects.filter(state=Order.State.AWAITING_NOTE).latest("id")}
    # An order of five weeks ago whose note Redox accepted three weeks ago, and its
    # corrected resend accepted two weeks ago.
    late = seed.order(partner, at(10, 12, 0) - 5 * WEEK + 3 * H, state=Order.State.SENT)
    seed.delivery(late, status=Delivery.Status.SENT, created_at=at(9, 21, 9), sent_at=at(9, 21, 10))
    seed.delivery(
        late, status=Delivery.Status.FILED, created_at=at(9, 28, 9), sent_at=at(9, 28, 11), is_correction=True
    )
    # A delivery of three weeks ago still retrying, and one abandoned.
    retrying = seed.order(third, at(9, 22, 9), state=Order.State.SENDING)
    made["retrying"] = seed.delivery(retrying, status=Delivery.Status.RETRY_SCHEDULED, created_at=at(9, 22, 10))
    abandoned = seed.order(third, at(9, 23, 9), state=Order.State.FAILED)
    seed.delivery(abandoned, status=Delivery.Status.ABANDONED, created_at=at(9, 23, 10))
    # This week (open): an order, its note, one awaiting.
    seed.sent_order(partner, at(10, 12, 9), 2 * H)
    seed.order(second_partner, at(10, 13, 9))
    # Everything above was saved before the worker's pass.
    Order.objects.update(updated_at=ROLLED_AT - 2 * H)
    made["seed"] = seed
    made["partners"] = (partner, second_partner, third)
    return made


def test_rollup_backed_figures_equal_the_live_computation(history):
    assert refresh_usage_rollup(ROLLED_AT) == 2 * len(settled_weeks(ROLLED_AT))
    # The closed weeks are read from the rollup; only this week is computed live.
    rolled = rolled_up_weeks(usage_figures(now=NOW).weeks, include_test=False)
    assert THIS_WEEK not in rolled
    assert LAST_WEEK in rolled and (LAST_WEEK - 5 * WEEK) in rolled
    assert_same_as_live()
    assert_same_as_live(weeks=3)
    assert_same_as_live(weeks=52)


def test_the_rollup_holds_the_weeks_figures(history):
    refresh_usage_rollup(ROLLED_AT)
    partner, second, third = history["partners"]
    week = LAST_WEEK - 2 * WEEK  # Sept 21: the late note's week
    saved = {row.partner_id: row for row in UsageWeek.objects.filter(week=week, include_test=False)}
    # Four orders (one still awaiting): three notes of the week and the late one.
    assert saved[partner.pk].orders_received == 4 and saved[partner.pk].notes_sent == 4
    assert saved[None].orders_received == 0  # the all-partners row only marks the week
    with_test = {row.partner_id: row for row in UsageWeek.objects.filter(week=week, include_test=True)}
    assert with_test[second.pk].orders_received == saved[second.pk].orders_received + 1


def test_late_changes_after_the_rollup_are_shown(history, uploader):
    refresh_usage_rollup(ROLLED_AT)
    partner, second, third = history["partners"]
    seed = history["seed"]
    # An order of four weeks ago gets its note, accepted now (this week).
    old = history[4]["awaiting"]
    Order.objects.filter(pk=old.pk).update(state=Order.State.SENT)
    seed.delivery(old, status=Delivery.Status.SENT, created_at=NOW - H, sent_at=NOW - H / 2)
    # The retrying delivery of three weeks ago fails for good.
    history["retrying"].mark_failed("HTTP 400")
    # An order of two weeks ago turns out to be a test order (an Update with Meta.Test).
    flipped = Order.objects.filter(
        partner=second, first_received_at__gte=at(9, 28, 0), first_received_at__lt=at(10, 5, 0), is_test=False
    ).first()
    flipped.is_test = True
    flipped.save()
    # The history import brings an order received five weeks ago, its note long sent.
    imported = OrderFactory(
        partner=third, ehr_order_id="IMPORTED", first_received_at=at(9, 9, 9), state=Order.State.SENT
    )
    seed.delivery(imported, status=Delivery.Status.SENT, created_at=at(9, 9, 10), sent_at=at(9, 16, 10))
    assert_same_as_live()

    # The next pass rolls the changed weeks up again; then they are read from the rollup.
    changed = {at(9, 28, 0).date(), at(9, 7, 0).date(), at(9, 14, 0).date()}
    assert not changed & set(rolled_up_weeks(sorted(changed), include_test=False))
    Order.objects.filter(updated_at__gt=ROLLED_AT).update(updated_at=ROLLED_AT + H)
    assert refresh_usage_rollup(ROLLED_AT + 3 * H) == 2 * len(changed)
    assert changed <= set(rolled_up_weeks(sorted(changed), include_test=False))
    assert_same_as_live()


def test_a_missing_or_partial_rollup_is_computed_live(history):
    assert_same_as_live()  # nothing rolled up yet
    refresh_usage_rollup(ROLLED_AT)
    UsageWeek.objects.filter(week=LAST_WEEK - 2 * WEEK, partner=None).delete()  # a week half gone
    UsageWeek.objects.filter(week=LAST_WEEK - WEEK).delete()
    assert LAST_WEEK - 2 * WEEK not in rolled_up_weeks([LAST_WEEK - 2 * WEEK], include_test=False)
    assert_same_as_live()
    # The next pass fills in exactly the missing weeks, without duplicating a row.
    assert refresh_usage_rollup(ROLLED_AT) == 2 + 2
    rows = list(UsageWeek.objects.values_list("week", "include_test", "partner_id"))
    assert len(rows) == len(set(rows))
    assert_same_as_live()


def test_a_second_pass_changes_nothing(history):
    refresh_usage_rollup(ROLLED_AT)
    count = UsageWeek.objects.count()
    assert refresh_usage_rollup(ROLLED_AT + H) == 0
    assert UsageWeek.objects.count() == count


def test_a_week_is_rolled_up_a_day_after_it_ends():
    monday = at(10, 12, 0)
    assert settled_weeks(monday + 10 * H, weeks=3) == [(monday - 2 * WEEK).date()]
    assert settled_weeks(monday + 25 * H, weeks=3) == [(monday - WEEK).date(), (monday - 2 * WEEK).date()]


def test_the_figures_do_not_depend_on_the_rollup_on_an_empty_database():
    assert refresh_usage_rollup(NOW) == 2 * len(settled_weeks(NOW))
    usage = usage_figures(now=NOW)
    assert all(row.orders_received == 0 for row in usage.rows)


def test_the_worker_rolls_up_usage():
    jobs = [periodic.job for periodic in worker_module.Worker(report_seconds=60).periodic]
    assert refresh_usage_rollup in jobs


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the plan is PostgreSQL's")
def test_the_page_reads_only_the_open_week_live(history, django_assert_max_num_queries):
    from django.test.utils import CaptureQueriesContext

    refresh_usage_rollup(ROLLED_AT)
    with CaptureQueriesContext(connection) as captured:
        usage_figures(now=NOW)
    received = [q["sql"] for q in captured.captured_queries if "first_received_at" in q["sql"] and "COUNT(" in q["sql"]]
    # Orders received: one range, the open week's.
    assert any(THIS_WEEK.isoformat() in sql and (LAST_WEEK.isoformat() not in sql) for sql in received), received


def test_after_a_bulk_change_every_week_is_computed_live(history, monkeypatch):
    from orders import usage_rollup

    refresh_usage_rollup(ROLLED_AT)
    monkeypatch.setattr(usage_rollup, "CHANGES_LIMIT", 3)
    Order.objects.filter(pk__in=Order.objects.order_by("pk").values("pk")[:4]).update(updated_at=ROLLED_AT + H)
    assert rolled_up_weeks([LAST_WEEK], include_test=False) == {}
    assert_same_as_live()
    Order.objects.filter(updated_at=ROLLED_AT + H).update(updated_at=ROLLED_AT - H)
    assert LAST_WEEK in rolled_up_weeks([LAST_WEEK], include_test=False)


def test_an_order_whose_arrival_moves_to_an_earlier_week_leaves_its_old_week_too(history):
    """An import of older history: a later message for an order we hold says it first arrived
    weeks earlier. Both its old week and its new one must show it where it is now."""
    partner = history["partners"][0]
    body = json.dumps(fresh_copy(json.loads(sample_bytes("order-new.json")), new_order_id=True)).encode()
    message_ingest(partner=partner, body=body, headers={}, received_at=LAST_WEEK_AT)
    refresh_usage_rollup(ROLLED_AT)
    assert_same_as_live()
    update = json.loads(sample_bytes("order-update.json"))
    update["Order"]["ID"] = json.loads(body)["Order"]["ID"]
    update = json.dumps(fresh_copy(update, new_order_id=False)).encode()
    message_ingest(partner=partner, body=update, headers={}, received_at=LAST_WEEK_AT - 3 * WEEK)
    assert Order.objects.get(ehr_order_id=json.loads(body)["Order"]["ID"]).first_received_at == LAST_WEEK_AT - 3 * WEEK
    assert LAST_WEEK not in rolled_up_weeks([LAST_WEEK], include_test=False)
    assert_same_as_live()


def test_a_pass_moves_the_checked_weeks_on_so_old_changes_are_not_counted_again(history, monkeypatch):
    from orders import usage_rollup

    refresh_usage_rollup(ROLLED_AT)
    # Saves after the first pass that touch only the open week: not changes of a closed week.
    Order.objects.filter(first_received_at__gte=at(10, 12, 0)).update(updated_at=ROLLED_AT + H)
    refresh_usage_rollup(ROLLED_AT + 3 * H)
    passed_at = ROLLED_AT + 3 * H - usage_rollup.ROLLUP_MARGIN
    assert set(UsageWeek.objects.values_list("computed_at", flat=True)) == {passed_at}
    # So a bulk change is counted from the latest pass, not from the first one.
    monkeypatch.setattr(usage_rollup, "CHANGES_LIMIT", 1)
    assert LAST_WEEK in rolled_up_weeks([LAST_WEEK], include_test=False)
