"""The reconciliation page lists every order not yet Filed in one group by why, oldest first, with the
next action; the orders page and the nav show the counts to those who can act on them."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from orders.models import Delivery, Order
from orders.reconcile import group_counts
from tests.delivery_fakes import T0
from tests.factories import DeliveryFactory, OrderFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def orders(partner, uploader):
    now = timezone.now()

    def order(ehr_id, state, days_old, delivery_status=None, **delivery_fields):
        made = OrderFactory(
            partner=partner, ehr_order_id=ehr_id, state=state, first_received_at=now - timedelta(days=days_old)
        )
        if delivery_status:
            DeliveryFactory(order=made, created_by=uploader, created_at=T0, status=delivery_status, **delivery_fields)
        return made

    return {
        "awaiting_new": order("A1", Order.State.AWAITING_NOTE, 1),
        "awaiting_old": order("A2", Order.State.AWAITING_NOTE, 30),
        "failed": order("F1", Order.State.FAILED, 3, Delivery.Status.FAILED),
        "retrying": order("R1", Order.State.SENDING, 2, Delivery.Status.RETRY_SCHEDULED),
        "sending": order("S1", Order.State.SENDING, 2, Delivery.Status.PENDING),
        "accepted": order("C1", Order.State.SENT, 4, Delivery.Status.SENT, redox_log_id="log-c1"),
        "unconfirmed": order("U1", Order.State.UNCONFIRMED, 9, Delivery.Status.UNCONFIRMED, redox_log_id="log-u1"),
        "downstream": order("D1", Order.State.FAILED_DOWNSTREAM, 5, Delivery.Status.FAILED_DOWNSTREAM),
        "filtered": order("T1", Order.State.FILTERED, 6, Delivery.Status.FILTERED),
        "filed": order("OK1", Order.State.FILED, 7, Delivery.Status.FILED),
        "cancelled": order("X1", Order.State.CANCELLED, 8),
        "closed": order("Z1", Order.State.CLOSED, 40),
    }


def test_each_open_order_is_in_one_group_and_done_ones_in_none(orders):
    assert group_counts() == {
        "awaiting_note": 2,
        "delivery_problem": 2,  # failed, and retrying; a first send still pending is not a problem
        "unconfirmed": 2,
        "failed_downstream": 1,
        "filtered": 1,
    }


def test_the_page_groups_orders_oldest_first_with_the_next_action(client, uploader, orders, monkeypatch):
    monkeypatch.setattr("orders.views.confirmer_configured", lambda: True)
    client.force_login(uploader)
    response = client.get(reverse("reconcile"))
    assert response.status_code == 200
    groups = {item["group"].key: [order.pk for order in item["orders"]] for item in response.context["groups"]}
    assert groups == {
        "awaiting_note": [orders["awaiting_old"].pk, orders["awaiting_new"].pk],
        "delivery_problem": [orders["failed"].pk, orders["retrying"].pk],
        "unconfirmed": [orders["unconfirmed"].pk, orders["accepted"].pk],
        "failed_downstream": [orders["downstream"].pk],
        "filtered": [orders["filtered"].pk],
    }
    html = response.content.decode()
    assert reverse("upload_note", args=[orders["awaiting_old"].pk]) in html
    assert "Resend corrected" in html and "Contact Redox" in html and "Wait for confirmation" in html
    assert "30 days" in html
    for done in ("filed", "cancelled", "closed"):
        assert reverse("order_detail", args=[orders[done].pk]) not in html


def test_a_filed_order_leaves_the_page(client, uploader, orders):
    client.force_login(uploader)
    Order.objects.filter(pk=orders["accepted"].pk).update(state=Order.State.FILED)
    html = client.get(reverse("reconcile")).content.decode()
    assert reverse("order_detail", args=[orders["accepted"].pk]) not in html


def test_uploaders_see_the_counts_on_the_orders_page_and_in_the_nav(client, uploader, orders):
    client.force_login(uploader)
    html = client.get(reverse("order_list")).content.decode()
    assert "Awaiting a note: <strong>2</strong>" in html
    assert "Failed downstream: <strong>1</strong>" in html
    # The nav counts what needs a person: all eight open orders but the one Redox accepted
    # and is still being asked about.
    assert '<span class="nav-count">7</span>' in html


def test_viewers_see_neither_counts_nor_the_link(client, viewer, orders):
    client.force_login(viewer)
    html = client.get(reverse("order_list")).content.decode()
    assert reverse("reconcile") not in html
    assert "nav-count" not in html


def test_without_confirmation_accepted_orders_point_to_redox_s_dashboard(client, uploader, orders):
    client.force_login(uploader)
    html = client.get(reverse("reconcile")).content.decode()
    assert "Confirmation is not configured" in html
    assert "Check Redox's dashboard" in html
    assert "Wait for confirmation" not in html


def test_the_nav_count_does_not_grow_with_accepted_notes(client, uploader, orders):
    """Every page shows it: notes Redox accepted pile up over the years (for good, with
    confirmation off), so the nav asks only for the states that need a person."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(uploader)
    for number in range(5):
        DeliveryFactory(
            order=OrderFactory(partner=orders["accepted"].partner, state=Order.State.SENT),
            created_by=uploader,
            status=Delivery.Status.SENT,
            redox_log_id=f"log-more-{number}",
        )
    with CaptureQueriesContext(connection) as queries:
        html = client.get(reverse("usage")).content.decode()
    assert '<span class="nav-count">7</span>' in html
    counting = [q["sql"] for q in queries.captured_queries if "COUNT(*)" in q["sql"] and '"orders_order"' in q["sql"]]
    assert counting and all("'sent'" not in sql and "NOT (" not in sql for sql in counting), counting


def test_the_accepted_count_stops_at_its_limit(client, uploader, orders, monkeypatch):
    """With confirmation off every note ever sent stays "Accepted by Redox": the orders page
    and the reconcile page count those only up to a limit, then say "1,000+" (here 3+)."""
    from orders import reconcile

    monkeypatch.setattr(reconcile, "ACCEPTED_COUNT_LIMIT", 3)
    for number in range(3):
        OrderFactory(partner=orders["accepted"].partner, ehr_order_id=f"MORE{number}", state=Order.State.SENT)
    counts = reconcile.open_counts()
    assert counts.groups["unconfirmed"] == 4  # at least 3 accepted, plus the one unconfirmed
    assert str(counts.groups["unconfirmed"]) == "4+"
    assert counts.attention == 7  # exact: the accepted ones are not in it
    client.force_login(uploader)
    html = client.get(reverse("order_list")).content.decode()
    assert "Accepted by Redox, not confirmed: <strong>4+</strong>" in html
    assert "Accepted by Redox, not confirmed (4+)" in client.get(reverse("reconcile")).content.decode()
    # Below the limit the count is exact.
    Order.objects.filter(ehr_order_id__startswith="MORE").update(state=Order.State.FILED)
    assert str(reconcile.open_counts().groups["unconfirmed"]) == "2"
