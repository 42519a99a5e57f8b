"""New orders are stored and applied in one statement (orders/ingest_statement.py), and every
case that statement does not cover falls back to the general path with the same guarantees.

Transactional tests: outside a transaction, as in production, the statement commits on its
own; a refused statement leaves nothing behind for the general path to trip over.
"""

import json
from unittest import mock

import pytest
from django.db import DataError, connection
from django.test.utils import CaptureQueriesContext

from orders.ingest import message_ingest
from orders.models import InboundMessage, Order
from orders.search import SEARCH_FIELDS, search_fold
from tests.conftest import events, sample_bytes, sample_json

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement path is PostgreSQL's"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def statements(captured):
    return [q["sql"] for q in captured.captured_queries]


def with_log_id(name, log_id, change=None):
    data = sample_json(name)
    data["Meta"]["Logs"][0]["ID"] = log_id
    if change:
        change(data)
    return json.dumps(data).encode()


def test_a_grouped_message_links_each_new_order_to_its_own_row(partner, caplog):
    grouped = sample_json("order-grouped.json")
    with CaptureQueriesContext(connection) as captured:
        result = message_ingest(partner=partner, body=json.dumps(grouped).encode(), headers={})
    assert len(statements(captured)) == 1
    message = InboundMessage.objects.get()
    assert result.message.pk == message.pk
    assert message.status == InboundMessage.Status.PROCESSED
    by_id = {order.ehr_order_id: order for order in Order.objects.all()}
    assert sorted(by_id) == sorted(order["ID"] for order in grouped["Orders"])
    assert sorted(message.orders.values_list("pk", flat=True)) == sorted(order.pk for order in by_id.values())
    # Each order.created names the row of its own order, and search works on both.
    logged = {record.order_id for record in events(caplog, "order.created")}
    assert logged == {order.pk for order in by_id.values()}
    assert all(order.search_text for order in by_id.values())


def test_the_row_matches_what_the_general_path_writes(partner):
    # The general path (orders/ingest.py under a transaction) and the one statement
    # store the same columns for the same message.
    first = message_ingest(partner=partner, body=sample_bytes("order-new.json"), headers={"user-agent": "x"})
    with mock.patch("orders.ingest_statement.applies", return_value=False):
        other = with_log_id("order-new.json", "other-log", lambda data: data["Order"].update(ID="other-order"))
        second = message_ingest(partner=partner, body=other, headers={"user-agent": "x"})
    ignored = {"id", "ehr_order_id", "search_text", "first_received_at", "updated_at"}
    one, two = (
        {k: v for k, v in Order.objects.filter(messages=m.message).values().get().items() if k not in ignored}
        for m in (first, second)
    )
    assert one == two
    # The derived search text too (Order.fill_derived), line for line but the order id's.
    one, two = (Order.objects.get(messages=m.message).search_text.split("\n") for m in (first, second))
    at = SEARCH_FIELDS.index("ehr_order_id")
    assert one[at] == search_fold(first.message.orders.get().ehr_order_id)
    assert two[at] == "other-order"
    del one[at], two[at]
    assert one == two
    assert all(one[SEARCH_FIELDS.index(name)] for name in ("patient_last_name", "patient_mrn"))
    messages = InboundMessage.objects.filter(pk__in=[first.message.pk, second.message.pk])
    columns = {"partner_id", "data_model", "event_type", "event_at", "status", "error", "headers", "times_seen"}
    one, two = ({k: v for k, v in row.items() if k in columns} for row in messages.values())
    assert one == two


def test_a_new_event_for_an_order_we_hold_falls_back_and_updates_it(partner, caplog):
    message_ingest(partner=partner, body=sample_bytes("order-new.json"), headers={})
    resent = with_log_id("order-new.json", "resent-log-id", lambda data: data["Order"].update(Priority="Stat"))
    result = message_ingest(partner=partner, body=resent, headers={})
    assert not result.duplicate
    assert result.message.status == InboundMessage.Status.PROCESSED
    order = Order.objects.get()
    assert order.priority == "Stat"
    assert order.messages.count() == 2
    assert [r.event for r in caplog.records if getattr(r, "event", "").startswith("order.")] == [
        "order.created",
        "order.updated",
    ]


def test_a_redelivery_is_counted_once_without_a_second_message(partner, caplog):
    body = sample_bytes("order-new.json")
    message_ingest(partner=partner, body=body, headers={})
    result = message_ingest(partner=partner, body=body, headers={})
    assert result.duplicate
    message = InboundMessage.objects.get()
    assert message.times_seen == 2
    assert Order.objects.count() == 1
    assert len(events(caplog, "message.duplicate")) == 1


def test_a_statement_the_database_refuses_leaves_the_message_to_the_general_path(partner, caplog):
    body = sample_bytes("order-new.json")
    with mock.patch("orders.ingest_statement._execute", side_effect=DataError("value refused")):
        result = message_ingest(partner=partner, body=body, headers={})
    message = InboundMessage.objects.get()
    assert result.message.pk == message.pk
    assert bytes(message.body) == body
    assert message.status == InboundMessage.Status.PROCESSED
    assert list(message.orders.all()) == [Order.objects.get()]
    assert len(events(caplog, "order.created")) == 1
    (warning,) = events(caplog, "message.one_statement_refused")
    assert warning.error_kind == "DataError"
    assert "value refused" not in caplog.text  # the kind only, never the database's message


def test_an_order_we_hold_falls_back_without_a_warning(partner, caplog):
    message_ingest(partner=partner, body=sample_bytes("order-new.json"), headers={})
    message_ingest(partner=partner, body=with_log_id("order-new.json", "again"), headers={})
    assert InboundMessage.objects.count() == 2
    assert not events(caplog, "message.one_statement_refused")


def test_a_resend_does_not_insert_the_held_order_again_after_the_statement_refused_it(partner):
    # The refused statement already proved the order is held: the general path reads and
    # updates it, without a second INSERT of the order that is certain to fail.
    message_ingest(partner=partner, body=sample_bytes("order-new.json"), headers={})
    resent = with_log_id("order-new.json", "resent-again", lambda data: data["Order"].update(Priority="Stat"))
    with CaptureQueriesContext(connection) as captured:
        result = message_ingest(partner=partner, body=resent, headers={})
    order_inserts = [sql for sql in statements(captured) if 'INSERT INTO "orders_order"' in sql]
    assert len(order_inserts) == 1  # the one statement's, refused
    assert order_inserts[0].startswith("WITH")
    assert result.message.status == InboundMessage.Status.PROCESSED
    assert Order.objects.get().priority == "Stat"
