"""report_usage: the usage figures as log events (and gauges where an agent is configured)."""

import logging
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from tests.conftest import events
from tests.factories import OrderFactory


@pytest.fixture
def waiting_orders(partner):
    now = timezone.now()
    OrderFactory(partner=partner, ehr_order_id="1", is_test=False, first_received_at=now - timedelta(days=3, hours=12))
    OrderFactory(partner=partner, ehr_order_id="2", is_test=False, first_received_at=now - timedelta(hours=1))
    return partner


def test_backlog_event_says_how_long_the_oldest_order_has_waited(waiting_orders, caplog):
    with caplog.at_level(logging.INFO, logger="orders.usage"):
        call_command("report_usage")
    (backlog,) = events(caplog, "usage.backlog")
    assert backlog.partner_id == waiting_orders.pk
    assert backlog.awaiting_note == 2
    assert backlog.oldest_awaiting_days == pytest.approx(3.5, abs=0.01)
    assert backlog.oldest_awaiting_seconds == pytest.approx(3.5 * 86400, abs=60)


def test_weekly_events_cover_each_week_and_all_partners(waiting_orders, caplog):
    with caplog.at_level(logging.INFO, logger="orders.usage"):
        call_command("report_usage", "--weeks", "2")
    weekly = events(caplog, "usage.weekly")
    totals = [record for record in weekly if record.partner_id == "all"]
    assert len(totals) == 2
    assert sum(record.orders_received for record in weekly if record.partner_id == "all") == 2
    assert all(record.week.count("-W") == 1 for record in weekly)


def test_nothing_waiting_means_no_backlog_event(partner, caplog):
    with caplog.at_level(logging.INFO, logger="orders.usage"):
        call_command("report_usage")
    assert events(caplog, "usage.backlog") == []
