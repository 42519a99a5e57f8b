"""The worklist, the home page of those who upload notes: orders awaiting a note, oldest
first, each with its age and its partner's expectation (overdue ones marked), then the
deliveries that need a person; the order list one click away at /orders/."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from orders import worklist as worklist_module
from orders.models import AuditEvent, Delivery, Order
from orders.reconcile import group_filter, needs_person, open_orders
from orders.worklist import worklist, worklist_counts
from tests.factories import DeliveryFactory, OrderFactory, PartnerFactory, partner_form

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def days_ago(days, **extra):
    return NOW - timedelta(days=days, **extra)


def awaiting(partner, ehr_order_id, days):
    return OrderFactory(partner=partner, ehr_order_id=ehr_order_id, first_received_at=days_ago(days))


def rows(html, part="awaiting"):
    """The body rows of one part of the worklist ("awaiting" or "deliveries"), as text."""
    section = html.split(f'aria-labelledby="{part}-heading"')[1].split("</section>")[0]
    return section.split("<tbody>")[1].split("</tbody>")[0].split("<tr")[1:]


@pytest.fixture
def slow_partner(db):
    return PartnerFactory(name="Slow Valley", note_due_days=30)


def test_an_uploader_lands_on_the_worklist_oldest_first_with_age_and_overdue_marked(
    client, uploader, partner, slow_partner
):
    awaiting(partner, "ORD-NEW", 2)
    awaiting(partner, "ORD-LATE", 20)  # Cascade expects notes within 14 days (the default)
    awaiting(slow_partner, "ORD-SLOW", 25)  # Slow Valley within 30: not overdue
    for state in (Order.State.FILED, Order.State.CANCELLED, Order.State.CLOSED, Order.State.SENT):
        OrderFactory(partner=partner, ehr_order_id=f"ORD-{state}", state=state, first_received_at=days_ago(40))
    client.force_login(uploader)

    response = client.get("/")

    assert response.status_code == 200
    assert response.templates[0].name == "orders/worklist.html"
    html = response.content.decode()
    assert "Orders awaiting a note (3, " in html and "1 overdue" in html
    order_rows = rows(html)
    assert [row.split('class="ehr-id">')[1].split("<")[0] for row in order_rows] == ["ORD-SLOW", "ORD-LATE", "ORD-NEW"]
    slow, late, new = order_rows
    assert late.startswith(' class="overdue"') and "Overdue by 6 days" in late and "20 days" in late
    assert "overdue" not in slow.lower() and "25 days" in slow and "30 days" in slow
    assert "overdue" not in new.lower() and "2 days" in new and "14 days" in new
    assert "Samplepatient, Testy" in late and "Upload note" in late
    # The full list, one click away.
    assert f'href="{reverse("order_list")}"' in html


def test_deliveries_that_need_a_person(client, uploader, partner):
    def problem(ehr_order_id, order_state, **delivery):
        order = OrderFactory(partner=partner, ehr_order_id=ehr_order_id, state=order_state)
        return DeliveryFactory(order=order, created_by=uploader, **delivery)

    problem("ORD-FAILED", Order.State.FAILED, failed=True)
    problem("ORD-DOWNSTREAM", Order.State.FAILED_DOWNSTREAM, sent=True, status=Delivery.Status.FAILED_DOWNSTREAM)
    problem("ORD-FILTERED", Order.State.FILTERED, sent=True, status=Delivery.Status.FILTERED)
    problem("ORD-RETRY-LONG", Order.State.SENDING, retry_scheduled=True, created_at=NOW - timedelta(minutes=90))
    problem("ORD-RETRY-NEW", Order.State.SENDING, retry_scheduled=True, created_at=NOW - timedelta(minutes=10))
    problem("ORD-PENDING", Order.State.SENDING)
    problem("ORD-ACCEPTED", Order.State.SENT, sent=True)
    client.force_login(uploader)

    html = client.get("/").content.decode()

    assert "Deliveries that need a person (4)" in html
    shown = "".join(rows(html, "deliveries"))
    for needed in ("ORD-FAILED", "ORD-DOWNSTREAM", "ORD-FILTERED", "ORD-RETRY-LONG"):
        assert needed in shown
    for fine in ("ORD-RETRY-NEW", "ORD-PENDING", "ORD-ACCEPTED"):
        assert fine not in shown
    assert "Meta.Destinations needs to contain" in shown  # the failed delivery's last error
    assert worklist_counts().needs_person == 4
    # The reconcile page's groups, less the young retry: one rule, not two.
    grouped = open_orders().filter(
        group_filter("delivery_problem") | group_filter("failed_downstream") | group_filter("filtered")
    )
    grouped_ids = set(grouped.values_list("ehr_order_id", flat=True))
    assert grouped_ids - set(needs_person(NOW).values_list("ehr_order_id", flat=True)) == {"ORD-RETRY-NEW"}


def test_counts_follow_each_partners_expectation(partner, slow_partner):
    awaiting(partner, "A", 15)
    awaiting(partner, "B", 13)
    awaiting(slow_partner, "C", 31)
    awaiting(slow_partner, "D", 29)
    counts = worklist_counts(NOW)
    assert (counts.awaiting, counts.overdue, counts.needs_person) == (4, 2, 0)
    assert counts.anything
    assert not worklist_counts(NOW - timedelta(days=60)).overdue


def test_lists_are_capped_with_how_many_more(client, uploader, partner, monkeypatch):
    for number in range(5):
        awaiting(partner, f"ORD-{number}", 20 - number)
    monkeypatch.setattr(worklist_module, "WORKLIST_ROWS", 2)
    client.force_login(uploader)
    html = client.get("/").content.decode()
    assert len(rows(html)) == 2
    assert "3 more</a> awaiting a note" in html
    assert f'href="{reverse("order_list")}?state=awaiting_note"' in html
    # The deliveries that need a person are capped the same way, pointing to To reconcile.
    for _ in range(3):
        DeliveryFactory(order=OrderFactory(partner=partner, state=Order.State.FAILED), created_by=uploader, failed=True)
    html = client.get("/").content.decode()
    assert f'<a href="{reverse("reconcile")}">1 more</a> on the To reconcile page.' in html


def test_the_nav_number_is_the_pages_own_count_not_a_second_query(client, uploader, partner, monkeypatch):
    from orders import context_processors

    awaiting(partner, "ORD-NAV", 3)
    DeliveryFactory(order=OrderFactory(partner=partner, state=Order.State.FAILED), created_by=uploader, failed=True)

    def not_asked():
        raise AssertionError("the nav's own count ran on the worklist")

    monkeypatch.setattr(context_processors, "attention_count", not_asked)
    client.force_login(uploader)
    html = client.get("/").content.decode()
    assert worklist_counts().awaiting + worklist_counts().needs_person == 2
    assert 'To reconcile <span class="nav-count">2</span>' in html


def test_the_number_of_queries_does_not_grow_with_the_rows(client, uploader, partner, second_partner):
    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/").status_code == 200
        return len(captured)

    client.force_login(uploader)
    awaiting(partner, "ORD-ONE", 3)
    DeliveryFactory(order=OrderFactory(partner=partner, state=Order.State.FAILED), created_by=uploader, failed=True)
    few = queries()
    for number in range(15):
        awaiting(second_partner if number % 2 else partner, f"ORD-MANY-{number}", number)
        DeliveryFactory(order=OrderFactory(partner=partner, state=Order.State.FAILED), created_by=uploader, failed=True)
    assert queries() == few
    assert len(worklist().awaiting) == 16


def test_viewers_and_old_bookmarks_go_on_to_the_order_list(client, viewer, uploader):
    client.force_login(viewer)
    response = client.get("/")
    assert (response.status_code, response["Location"]) == (302, reverse("order_list"))
    client.force_login(uploader)
    response = client.get("/?q=Samplepatient&state=awaiting_note")
    assert (response.status_code, response["Location"]) == (
        302,
        reverse("order_list") + "?q=Samplepatient&state=awaiting_note",
    )


def test_the_nav_shows_the_worklist_to_uploaders_only(client, viewer, uploader):
    client.force_login(uploader)
    assert ">Worklist</a>" in client.get(reverse("order_list")).content.decode()
    client.force_login(viewer)
    assert ">Worklist</a>" not in client.get(reverse("order_list")).content.decode()


def test_sign_in_lands_on_home(client, uploader):
    response = client.post(reverse("login"), {"username": uploader.username, "password": "correct-horse-battery"})
    assert response["Location"] == reverse("home")


def test_the_order_list_and_the_reconcile_page_show_the_ehr_order_id(client, uploader, partner):
    OrderFactory(partner=partner, ehr_order_id="EHR-SHOWN-1")
    client.force_login(uploader)
    for url in (reverse("order_list"), reverse("reconcile")):
        html = client.get(url).content.decode()
        assert "EHR order id</th>" in html and '<td data-label="EHR order id" class="ehr-id">EHR-SHOWN-1</td>' in html


def test_an_orders_views_are_one_timeline_line(client, viewer, uploader, partner):
    order = OrderFactory(partner=partner)
    for user in (viewer, uploader, viewer):
        client.force_login(user)
        for _ in range(3):
            response = client.get(reverse("order_detail", args=[order.pk]), REMOTE_ADDR="10.1.2.3")

    assert AuditEvent.objects.filter(action=AuditEvent.Action.VIEW_ORDER).count() == 9
    timeline = response.context["timeline"]
    (line,) = [entry for entry in timeline if entry["kind"] == "views"]
    assert not [entry for entry in timeline if entry["kind"] == "audit"]
    assert (line["summary"].count, line["summary"].people, line["obj"].actor_username) == (9, 2, viewer.username)
    html = response.content.decode()
    assert html.count("Viewed order") == 1
    assert "Viewed order 9 times by 2 people," in html and f"last by {viewer.username} from 10.1.2.3" in html

    # A PDF view is a line of its own, beside the order's views.
    AuditEvent.objects.create(actor=uploader, actor_username=uploader.username, action="view_pdf", order=order)
    html = client.get(reverse("order_detail", args=[order.pk])).content.decode()
    assert "Viewed order 10 times by 2 people," in html and html.count("Viewed PDF") == 1


def test_an_admin_sets_each_partners_expectation(admin_client, partner):
    url = reverse("admin:orders_partner_change", args=[partner.pk])
    refused = admin_client.post(url, partner_form(name=partner.name, new_verification_token="", note_due_days="0"))
    assert refused.status_code == 200 and "note_due_days" in refused.context["adminform"].form.errors
    saved = admin_client.post(url, partner_form(name=partner.name, new_verification_token="", note_due_days="30"))
    assert saved.status_code == 302
    partner.refresh_from_db()
    assert partner.note_due_days == 30
