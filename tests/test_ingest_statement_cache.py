"""The one statement's SQL text is built once and reused (orders/ingest_statement.py): each
message still prepares every value through its field, so the body is still encrypted and the
rows are what the compiler, and the general path, write."""

import json
from unittest import mock

import pytest
from django.db import connection
from django.db.models import Value
from django.db.models.functions import Upper

from hcoint.fields import keyring
from orders import ingest_statement
from orders.ingest import message_ingest
from orders.models import InboundMessage, Order
from orders.order_apply import new_order
from redox import inbound
from tests.conftest import sample_json

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement path is PostgreSQL's"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture(autouse=True)
def fresh_text():
    ingest_statement._statement_sql.clear()
    yield
    ingest_statement._statement_sql.clear()


def body(order_id, change=None):
    data = sample_json("order-new.json")
    data["Meta"]["Logs"][0]["ID"] = f"log-{order_id}"
    data["Order"]["ID"] = order_id
    if change:
        change(data)
    return json.dumps(data).encode()


def stored_body(message):
    """The body column as the database holds it, past the ORM's decryption."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT body FROM orders_inboundmessage WHERE id = %s", [message.pk])
        return bytes(cursor.fetchone()[0])


def columns(order_id):
    ignored = {"id", "ehr_order_id", "search_text", "first_received_at", "updated_at", "created_at"}
    order = Order.objects.filter(ehr_order_id=order_id).values().get()
    message = InboundMessage.objects.filter(orders__ehr_order_id=order_id).values().get()
    kept = {"partner_id", "data_model", "event_type", "event_at", "status", "error", "headers", "times_seen"}
    return (
        {k: v for k, v in order.items() if k not in ignored},
        {k: v for k, v in message.items() if k in kept},
    )


def test_a_reused_text_still_encrypts_the_body_and_writes_the_general_path_s_rows(partner):
    message_ingest(partner=partner, body=body("first"), headers={})  # builds the text
    assert ingest_statement._statement_sql
    reused = body("reused")
    with mock.patch.object(ingest_statement, "_compiled_statement", side_effect=AssertionError("compiled again")):
        result = message_ingest(partner=partner, body=reused, headers={"user-agent": "x"})
    assert result.message.status == InboundMessage.Status.PROCESSED
    # Encrypted at rest, each time with its own nonce; the ORM reads the bytes back.
    raw = stored_body(result.message)
    assert raw != reused and b"reused" not in raw
    assert keyring().decrypt(raw) == reused
    assert bytes(InboundMessage.objects.get(pk=result.message.pk).body) == reused
    # The general path writes the same columns for the same message.
    with mock.patch("orders.ingest_statement.applies", return_value=False):
        message_ingest(partner=partner, body=body("general"), headers={"user-agent": "x"})
    assert columns("reused") == columns("general")
    assert Order.objects.get(ehr_order_id="reused").search_text.replace("reused", "general") == (
        Order.objects.get(ehr_order_id="general").search_text
    )


def test_the_reused_text_and_parameters_are_the_compiler_s(partner):
    message_ingest(partner=partner, body=body("first"), headers={})
    result = message_ingest(partner=partner, body=body("second"), headers={})
    order = new_order(result.message, *_parsed_and_info(body("third")))
    order.fill_derived()
    message = InboundMessage(**{f.attname: getattr(result.message, f.attname) for f in InboundMessage._meta.fields})
    message.pk = None
    sql, params = ingest_statement._statement(message, [order])
    compiled_sql, compiled_params = ingest_statement._compiled_statement(message, [order], connection, raw=True)
    assert sql == compiled_sql
    assert len(params) == len(compiled_params)
    for ours, theirs in zip(map(adapted, params), map(adapted, compiled_params), strict=True):
        if isinstance(ours, bytes | bytearray | memoryview) and len(ours):
            # The body: two encryptions of the same bytes (random nonces), one plaintext.
            assert keyring().decrypt(bytes(ours)) == keyring().decrypt(bytes(theirs))
        else:
            assert ours == theirs


def adapted(value):
    """The value inside psycopg2's adapter (Binary for bytes, Json for JSON), which compares by identity."""
    return getattr(value, "adapted", value)


def _parsed_and_info(raw):
    parsed = inbound.read(raw).order_message
    return parsed, parsed.orders[0]


def test_several_orders_or_an_expression_take_the_compiler_and_leave_the_text_alone(partner):
    message_ingest(partner=partner, body=body("first"), headers={})
    (text,) = ingest_statement._statement_sql.values()
    grouped = sample_json("order-grouped.json")
    result = message_ingest(partner=partner, body=json.dumps(grouped).encode(), headers={})
    assert result.message.orders.count() == len(grouped["Orders"]) > 1

    def with_an_expression(*args):
        order = new_order(*args)
        order.comments = Upper(Value("set by the database"))
        return order

    with mock.patch.object(ingest_statement, "new_order", side_effect=with_an_expression):
        message_ingest(partner=partner, body=body("expression"), headers={})
    assert Order.objects.get(ehr_order_id="expression").comments == "SET BY THE DATABASE"
    assert list(ingest_statement._statement_sql.values()) == [text]
    message_ingest(partner=partner, body=body("last"), headers={})
    assert Order.objects.get(ehr_order_id="last").comments == Order.objects.get(ehr_order_id="first").comments
