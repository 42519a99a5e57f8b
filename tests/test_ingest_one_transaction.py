"""A delivery is stored and applied in one transaction; applying runs in a savepoint, so a
failure to apply still commits the raw body, and a New for an order we hold still applies."""

import json
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orders.ingest import message_ingest
from orders.models import InboundMessage, Order
from tests.conftest import sample_bytes, sample_json


def commits(captured):
    return [q["sql"] for q in captured.captured_queries if q["sql"].upper().startswith("COMMIT")]


def new_with(log_id, change=None):
    data = sample_json("order-new.json")
    data["Meta"]["Logs"][0]["ID"] = log_id
    if change:
        change(data)
    return json.dumps(data).encode()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement path is PostgreSQL's")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_new_order_is_stored_and_applied_in_one_statement(partner, caplog):
    body = sample_bytes("order-new.json")
    with CaptureQueriesContext(connection) as captured:
        result = message_ingest(partner=partner, body=body, headers={})
    # One statement in autocommit (orders/ingest_statement.py): no BEGIN, savepoint or COMMIT.
    (statement,) = [q["sql"] for q in captured.captured_queries]
    assert statement.startswith("WITH message AS (INSERT INTO")
    message = InboundMessage.objects.get()
    assert result.message.pk == message.pk
    assert bytes(message.body) == body
    assert message.status == InboundMessage.Status.PROCESSED
    order = Order.objects.get()
    assert list(message.orders.all()) == [order]
    assert [(r.event, r.order_id) for r in caplog.records if getattr(r, "event", "") == "order.created"] == [
        ("order.created", order.pk)
    ]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_crash_while_applying_still_commits_the_body_once(partner):
    body = sample_bytes("order-new.json")
    with (
        # Building the order crashes: the one-statement path stores nothing and the general path keeps the body.
        mock.patch("orders.order_apply._fill", side_effect=RuntimeError("boom")),
        CaptureQueriesContext(connection) as captured,
    ):
        message_ingest(partner=partner, body=body, headers={})
    assert len(commits(captured)) == 1
    message = InboundMessage.objects.get()
    assert bytes(message.body) == body
    assert message.status == InboundMessage.Status.FAILED
    assert message.orders.count() == 0
    assert Order.objects.count() == 0


def test_a_new_event_for_an_order_we_hold_updates_it(partner, caplog):
    message_ingest(partner=partner, body=sample_bytes("order-new.json"), headers={})
    # The EHR sends the order as New again, under another log id, with a new priority.
    resent = new_with("resent-log-id", lambda data: data["Order"].update(Priority="Stat"))
    result = message_ingest(partner=partner, body=resent, headers={})

    assert not result.duplicate
    assert result.message.status == InboundMessage.Status.PROCESSED
    order = Order.objects.get()
    assert order.priority == "Stat"
    assert sorted(order.messages.values_list("pk", flat=True)) == sorted(
        InboundMessage.objects.values_list("pk", flat=True)
    )
    assert [r.event for r in caplog.records if getattr(r, "event", "").startswith("order.")] == [
        "order.created",
        "order.updated",
    ]


def test_a_grouped_message_with_one_order_we_hold_creates_only_the_other(partner):
    grouped = sample_json("order-grouped.json")
    held, new = (order["ID"] for order in grouped["Orders"])
    single = new_with("single-log-id", lambda data: data["Order"].update(ID=held))
    message_ingest(partner=partner, body=single, headers={})

    result = message_ingest(partner=partner, body=json.dumps(grouped).encode(), headers={})

    assert result.message.status == InboundMessage.Status.PROCESSED
    assert sorted(Order.objects.values_list("ehr_order_id", flat=True)) == sorted([held, new])
    assert sorted(result.message.orders.values_list("ehr_order_id", flat=True)) == sorted([held, new])
