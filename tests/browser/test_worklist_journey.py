"""An uploader's visit in a real browser: they land on the worklist, see the overdue order
marked, reach the full order list in one click, and the usage page draws its charts above a
table that fits at 1280 px."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from orders.models import Delivery, Order
from tests.browser.conftest import sign_in
from tests.factories import DeliveryFactory, OrderFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_an_uploader_lands_on_the_worklist_and_reaches_the_order_list_in_one_click(page, partner):
    now = timezone.now()
    OrderFactory(partner=partner, ehr_order_id="ORD-OVERDUE", first_received_at=now - timedelta(days=20))
    OrderFactory(partner=partner, ehr_order_id="ORD-FRESH", first_received_at=now - timedelta(days=1))
    UserFactory(username="ursula", role="uploader")

    sign_in(page, "ursula")

    expect(page.get_by_role("heading", level=1)).to_have_text("Worklist")
    overdue = page.locator("table.worklist tbody tr", has_text="ORD-OVERDUE")
    expect(overdue).to_have_class("overdue")
    expect(overdue.locator(".tag-overdue")).to_have_text("Overdue by 6 days")
    assert overdue.evaluate("row => getComputedStyle(row).backgroundColor") not in ("rgba(0, 0, 0, 0)", "transparent")
    fresh = page.locator("table.worklist tbody tr", has_text="ORD-FRESH")
    expect(fresh).not_to_have_class("overdue")
    expect(page.locator("#awaiting-heading")).to_have_text("Orders awaiting a note (2, 1 overdue)")

    page.get_by_role("link", name="All orders").click()
    page.wait_for_url("**/orders/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Orders")
    expect(page.locator("table.orders tbody tr")).to_have_count(2)
    expect(page.locator("table.orders")).to_contain_text("ORD-OVERDUE")
    assert not page.problems, page.problems


def test_the_usage_chart_renders_above_a_table_that_fits(page, partner):
    uploader = UserFactory(username="ursula", role="uploader")
    now = timezone.now()
    for weeks_ago, hours in ((0, 3), (1, 30), (3, 70)):
        received = now - timedelta(weeks=weeks_ago, hours=hours + 1)
        order = OrderFactory(partner=partner, first_received_at=received, state=Order.State.SENT, is_test=False)
        DeliveryFactory(
            order=order, created_by=uploader, status=Delivery.Status.SENT, sent_at=received + timedelta(hours=hours)
        )
    sign_in(page, "ursula")
    page.goto("/usage/")

    for key in ("counts", "turnaround"):
        chart = page.locator(f"svg.chart-{key}")
        expect(chart).to_be_visible()
        box = chart.bounding_box()
        assert box["width"] > 300 and box["height"] > 100, box
        expect(chart.locator("title").first).to_have_text(
            "Orders received and notes accepted per week"
            if key == "counts"
            else "Time to accept: median and 90th percentile"
        )
    expect(page.locator("svg.chart-counts rect.bar").first).to_be_attached()
    expect(page.locator("svg.chart-turnaround circle.point").first).to_be_visible()
    table = page.locator("table.usage")
    expect(table).to_be_visible()
    wrap_width = table.evaluate("table => table.parentElement.clientWidth")
    assert table.evaluate("table => table.scrollWidth") <= wrap_width
    assert page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth") <= 0
    assert not page.problems, page.problems
