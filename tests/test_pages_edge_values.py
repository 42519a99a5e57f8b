"""No stored value can break a page: every staff and admin page showing orders or messages
renders whatever the database holds.

The values arrive the way an attacker with a partner's token would send them: through
the webhook. Rows stored before ingest bounded them are simulated in SQL and repaired
by migration 0009's function, as a deployed database would be.
"""

import copy
import importlib
import json
from datetime import UTC, date, datetime, timedelta

import pytest
from django.apps import apps
from django.contrib import admin
from django.db import connection
from django.urls import reverse

from orders.models import Delivery, InboundMessage, Order, Partner, Redelivery
from redox import values
from tests.conftest import PARTNER_TOKEN, sample_json
from tests.factories import DeliveryFactory, InboundMessageFactory, OrderFactory

URL = "/redox/webhook/"
FAR_FUTURE = "9999-12-31T23:59:00-05:00"
FAR_PAST = "0001-01-01T00:00:00+01:00"
NO_SUCH_OFFSET = "2026-10-05T17:04:15+16:00"
LONG = "\u00e9" * 5000
repair_module = importlib.import_module("orders.migrations.0009_order_full_ids_and_sane_dates")


def edge_message(number, order_id, *, event="New", when=FAR_FUTURE, **demographics):
    data = copy.deepcopy(sample_json("order-new.json"))
    data["Meta"]["EventType"] = event
    data["Meta"]["EventDateTime"] = when
    data["Meta"]["Logs"][0]["ID"] = f"edge-{number}"
    data["Order"]["ID"] = order_id
    data["Order"]["TransactionDateTime"] = when
    data["Patient"]["Demographics"].update(demographics)
    return json.dumps(data).encode()


def post(client, body):
    response = client.post(URL, body, content_type="application/json", headers={"verification-token": PARTNER_TOKEN})
    assert response.status_code == 200
    return response


@pytest.fixture
def edge_values(client, partner, admin_user):
    """Orders and messages carrying every edge value, stored through the webhook."""
    bodies = [
        edge_message(1, "EDGE-FUTURE", when=FAR_FUTURE, DOB=FAR_FUTURE, LastName="Future\ud800"),
        edge_message(2, "EDGE-PAST", when=FAR_PAST, DOB=FAR_PAST, FirstName="\udfffPast"),
        edge_message(3, "EDGE-OFFSET", when=NO_SUCH_OFFSET, DOB=NO_SUCH_OFFSET, LastName="Nul\u0000l"),
        edge_message(4, "EDGE-LONG-NAME", when="2026-10-05T17:04:15Z", LastName=LONG, FirstName=LONG),
        edge_message(5, "E" * 500, when=FAR_PAST),
        edge_message(6, "F" * 5000, when=FAR_FUTURE),
        edge_message(7, "EDGE-FUTURE", event="Cancel", when=FAR_PAST),
        edge_message(8, "EDGE-\ud800-ID", when=NO_SUCH_OFFSET, LastName=LONG[:300] + "\ud83d"),
        b'{"Meta": {"DataModel": "Order", "EventType": "New", "Logs": [{"ID": "edge-9\\ud800"}]}, "a": 1e999}',
        b"\xff\xfe not utf-8 \xed\xa0\x80",
        b"[" * 5000,
    ]
    for body in bodies:
        post(client, body)
    # The first message again with other bytes (a retry's new attempt id): a redelivery.
    again = json.loads(bodies[0])
    again["Meta"]["Logs"][0]["AttemptID"] = "\ud800 retry"
    post(client, json.dumps(again).encode())
    order = Order.objects.get(ehr_order_id="EDGE-PAST")
    DeliveryFactory(order=order, created_by=admin_user, status=Delivery.Status.FAILED, created_at=values.EARLIEST_TIME)
    # The worklist's ages and expectations at their extremes: orders received at both ends of
    # the range times are kept in, and a partner expecting notes within 32,767 days (the
    # column's largest value, which the admin form would refuse).
    Order.objects.filter(ehr_order_id="EDGE-LONG-NAME").update(first_received_at=values.EARLIEST_TIME)
    Order.objects.filter(ehr_order_id="EDGE-OFFSET").update(first_received_at=values.LATEST_TIME - timedelta(minutes=1))
    Partner.objects.filter(pk=partner.pk).update(note_due_days=32767)
    return bodies


def admin_pages():
    """The changelist and every change page of each orders model the admin shows."""
    for model in admin.site._registry:
        if model._meta.app_label != "orders":
            continue
        info = (model._meta.app_label, model._meta.model_name)
        yield reverse("admin:{}_{}_changelist".format(*info))
        yield reverse("admin:{}_{}_changelist".format(*info)) + "?q=EDGE"
        for pk in model._default_manager.values_list("pk", flat=True)[:50]:
            yield reverse("admin:{}_{}_change".format(*info), args=[pk])


def crawl(client):
    orders = reverse("order_list")
    pages = ["/", orders, f"{orders}?q=Future", f"{orders}?q=EDGE", f"{orders}?state=cancelled", "/usage/"]
    pages += ["/reconcile/", reverse("admin:index")]
    pages += [f"/orders/{pk}/" for pk in Order.objects.values_list("pk", flat=True)]
    pages += list(admin_pages())
    broken = []
    for page in pages:
        status = client.get(page).status_code
        if status != 200:
            broken.append((page, status))
    assert not broken
    return pages


def test_every_page_renders_the_edge_values_the_webhook_stored(client, admin_user, edge_values):
    # Every body is kept, verbatim: as a message or, for the retry, a redelivery.
    held = [bytes(m.body) for m in InboundMessage.objects.all()] + [bytes(r.body) for r in Redelivery.objects.all()]
    assert all(body in held for body in edge_values)
    assert Redelivery.objects.count() == 1
    # What ingest kept of them: no time outside the sane range, ids whole or refused.
    orders = {order.ehr_order_id: order for order in Order.objects.all()}
    for order in orders.values():
        for value in (order.transaction_at, order.last_event_at, order.cancelled_at):
            assert value is None or values.EARLIEST_TIME <= value < values.LATEST_TIME
    # (Its Cancel carried the sample's date of birth, which then filled the blank.)
    assert orders["EDGE-FUTURE"].transaction_at is None
    assert (orders["EDGE-PAST"].transaction_at, orders["EDGE-PAST"].patient_dob) == (None, None)
    assert (orders["EDGE-OFFSET"].transaction_at, orders["EDGE-OFFSET"].last_event_at) == (None, None)
    assert orders["EDGE-\ufffd-ID"].patient_last_name == LONG[:200]
    assert "E" * 500 in orders
    assert not Order.objects.filter(ehr_order_id__startswith="FFF").exists()
    assert Order.objects.get(ehr_order_id="EDGE-FUTURE").state == Order.State.CANCELLED
    assert Order.objects.get(ehr_order_id="EDGE-LONG-NAME").patient_last_name == LONG[:200]

    client.force_login(admin_user)
    pages = crawl(client)
    # The worklist (an admin's home) showed the orders at both ends of time, one overdue.
    worklist = client.get("/").content.decode()
    assert "EDGE-LONG-NAME" in worklist and "EDGE-OFFSET" in worklist and "Overdue" in worklist
    change_pages = {"order", "inboundmessage", "delivery"}
    assert all(
        any(f"/admin/orders/{name}/" in page and page.endswith("/change/") for page in pages) for name in change_pages
    )


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="needs PostgreSQL: the broken rows are timestamps only PostgreSQL stores and psycopg2 cannot read",
)
def test_rows_stored_before_the_bounds_are_repaired_by_the_migration(client, partner, admin_user):
    broken = OrderFactory(partner=partner, ehr_order_id="OLD-BROKEN")
    fine = OrderFactory(partner=partner, ehr_order_id="OLD-FINE", transaction_at=datetime(2026, 1, 2, tzinfo=UTC))
    message = InboundMessageFactory(partner=partner, dedupe_key="old", body=b"{}")
    message.orders.add(broken)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE orders_order SET transaction_at = %s, last_event_at = %s, cancelled_at = %s, patient_dob = %s,"
            " state = 'cancelled' WHERE id = %s",
            [FAR_FUTURE, FAR_PAST, "294276-01-01T00:00:00Z", "0001-01-01", broken.pk],
        )
        cursor.execute("UPDATE orders_inboundmessage SET event_at = %s WHERE id = %s", [FAR_FUTURE, message.pk])
    # What a deployed database held: a row Python cannot even read.
    with pytest.raises(ValueError, match="out of range"):
        list(Order.objects.values_list("transaction_at", flat=True))

    with connection.schema_editor() as editor:
        repair_module.repair_out_of_range_dates(apps, editor)

    broken.refresh_from_db()
    assert (broken.transaction_at, broken.last_event_at, broken.cancelled_at, broken.patient_dob) == (None,) * 4
    assert InboundMessage.objects.get(pk=message.pk).event_at is None
    fine.refresh_from_db()
    assert fine.transaction_at == datetime(2026, 1, 2, tzinfo=UTC)
    assert fine.patient_dob == date(1948, 2, 29)
    client.force_login(admin_user)
    crawl(client)
