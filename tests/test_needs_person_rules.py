"""One definition of "needs a person" (orders/reconcile.py NEEDS_PERSON_STATES and the long
retries): the worklist, the digest's counts and the nav's number all read it, so the nav
shows the worklist's two totals added, and an order whose confirmation Redox never gave
(UNCONFIRMED: contact Redox) is on the worklist."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from orders.models import Delivery, Order
from orders.reconcile import attention_count, open_counts
from orders.worklist import worklist_counts
from tests.factories import DeliveryFactory, OrderFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def mixed(partner, uploader):
    now = timezone.now()

    def order(ehr_id, state, delivery_status=None, minutes_old=600, **fields):
        made = OrderFactory(partner=partner, ehr_order_id=ehr_id, state=state)
        if delivery_status:
            DeliveryFactory(
                order=made,
                created_by=uploader,
                status=delivery_status,
                created_at=now - timedelta(minutes=minutes_old),
                **fields,
            )
        return made

    return {
        "awaiting": order("ORD-AWAIT", Order.State.AWAITING_NOTE),
        "failed": order("ORD-FAILED", Order.State.FAILED, Delivery.Status.FAILED),
        "unconfirmed": order(
            "ORD-UNCONF", Order.State.UNCONFIRMED, Delivery.Status.UNCONFIRMED, redox_log_id="log-unconf"
        ),
        "downstream": order("ORD-DOWN", Order.State.FAILED_DOWNSTREAM, Delivery.Status.FAILED_DOWNSTREAM),
        "filtered": order("ORD-FILT", Order.State.FILTERED, Delivery.Status.FILTERED),
        "retry_long": order("ORD-RETRY-LONG", Order.State.SENDING, Delivery.Status.RETRY_SCHEDULED, minutes_old=90),
        "retry_new": order("ORD-RETRY-NEW", Order.State.SENDING, Delivery.Status.RETRY_SCHEDULED, minutes_old=10),
        "accepted": order("ORD-SENT", Order.State.SENT, Delivery.Status.SENT, redox_log_id="log-sent"),
        "filed": order("ORD-FILED", Order.State.FILED, Delivery.Status.FILED),
    }


def test_an_unconfirmed_order_is_on_the_worklist(client, uploader, mixed):
    client.force_login(uploader)
    html = client.get(reverse("home")).content.decode()
    section = html.split('aria-labelledby="deliveries-heading"')[1].split("</section>")[0]
    assert "Deliveries that need a person (5)" in html
    assert reverse("order_detail", args=[mixed["unconfirmed"].pk]) in section
    for fine in ("retry_new", "accepted", "filed"):
        assert reverse("order_detail", args=[mixed[fine].pk]) not in section
    assert worklist_counts().needs_person == 5


def test_the_nav_number_is_the_worklists_two_totals(client, uploader, mixed):
    counts = worklist_counts()
    assert (counts.awaiting, counts.needs_person) == (1, 5)
    assert attention_count() == counts.awaiting + counts.needs_person == 6
    # The counts the order list and the reconcile page compute give the same number.
    assert open_counts().attention == 6
    client.force_login(uploader)
    for page in ("home", "order_list", "reconcile", "usage"):
        html = client.get(reverse(page)).content.decode()
        assert '<span class="nav-count">6</span>' in html, page


def test_the_worklist_page_counts_once(client, uploader, mixed):
    """The worklist's own counts give the nav's number: the processor's query never runs."""
    client.force_login(uploader)
    with CaptureQueriesContext(connection) as captured:
        html = client.get(reverse("home")).content.decode()
    assert '<span class="nav-count">6</span>' in html
    counting = [query["sql"] for query in captured.captured_queries if query["sql"].startswith("SELECT COUNT")]
    # The awaiting count (with the overdue ones) and the needs-a-person count, once each.
    assert len([sql for sql in counting if "'awaiting_note'" in sql]) == 1, counting
    assert len([sql for sql in counting if "'unconfirmed'" in sql]) == 1, counting


@pytest.mark.parametrize("page", ["order_list", "reconcile"])
def test_the_pages_with_group_counts_do_not_count_again_for_the_nav(client, uploader, mixed, page):
    client.force_login(uploader)
    with CaptureQueriesContext(connection) as captured:
        html = client.get(reverse(page)).content.decode()
    assert '<span class="nav-count">6</span>' in html
    counting = [q["sql"] for q in captured.captured_queries if "COUNT(" in q["sql"] and '"orders_order"' in q["sql"]]
    # Per state, the retrying ones among those sending, and those Redox accepted (a count
    # that stops at 1,001 rows): nothing more.
    assert len(counting) == 3, counting
