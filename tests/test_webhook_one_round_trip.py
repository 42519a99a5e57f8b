"""Under a token this process verified lately, a delivery of new orders is stored in one
round trip whose statement verifies the token itself (orders/webhook.py,
_new_orders_in_one_round_trip; orders/ingest.py, new_orders_ingest): a token that no longer
names its partner stores nothing and is answered as any wrong token, and every other
delivery goes the usual way.

Changes "in another process" are made with QuerySet.update(), which sends no post_save,
so this process keeps its guess (orders/partner_lookup.py) as another process would.
"""

import json
import logging

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orders import partner_lookup
from orders.models import InboundMessage, Order, Partner, hash_token
from tests.conftest import PARTNER_TOKEN, SECOND_PARTNER_TOKEN, end_this_connection, events, sample_json

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement path is PostgreSQL's"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

URL = "/redox/webhook/"


def body(order_id, sample="order-new.json", log_id=None):
    data = sample_json(sample)
    data["Meta"]["Logs"][0]["ID"] = log_id or f"log-{order_id}"
    data["Order"]["ID"] = order_id
    return json.dumps(data).encode()


def post(client, raw, token=PARTNER_TOKEN):
    return client.post(URL, raw, content_type="application/json", headers={"verification-token": token})


def sent(client, raw, token=PARTNER_TOKEN):
    """(the answer, the statements it took)."""
    with CaptureQueriesContext(connection) as captured:
        answer = post(client, raw, token)
    return answer, [query["sql"] for query in captured.captured_queries]


def columns(order_id):
    ignored = {"id", "ehr_order_id", "search_text", "first_received_at", "updated_at", "created_at"}
    order = Order.objects.filter(ehr_order_id=order_id).values().get()
    message = InboundMessage.objects.filter(orders__ehr_order_id=order_id).values().get()
    kept = {"partner_id", "data_model", "event_type", "event_at", "status", "error", "headers", "times_seen"}
    return {k: v for k, v in order.items() if k not in ignored}, {k: v for k, v in message.items() if k in kept}


@pytest.fixture
def verified(client, partner):
    """The partner's token, verified by a first delivery (the usual way: lookup, then store)."""
    answer, statements = sent(client, body("first"))
    assert answer.status_code == 200 and len(statements) == 2
    assert partner_lookup.remembered(PARTNER_TOKEN) == partner
    return partner


def test_a_later_delivery_is_one_statement_and_writes_what_the_usual_way_writes(client, verified):
    answer, statements = sent(client, body("later"))
    assert answer.status_code == 200
    (statement,) = statements
    assert statement.startswith("WITH message AS (INSERT INTO") and 'FROM "orders_partner"' in statement
    assert PARTNER_TOKEN not in statement  # only its hash, as a parameter
    assert columns("later") == columns("first")  # same length: same content-length
    message = InboundMessage.objects.get(orders__ehr_order_id="later")
    assert message.partner == verified and message.status == InboundMessage.Status.PROCESSED
    assert bytes(message.body) == body("later")


def test_a_token_rotated_away_elsewhere_stores_nothing_and_is_refused(client, verified, caplog):
    Partner.objects.filter(pk=verified.pk).update(token_hash=hash_token("the-next-token-0123456789"))
    with caplog.at_level(logging.WARNING):
        answer = post(client, body("after-rotation"))
    assert answer.status_code == 401
    assert not InboundMessage.objects.filter(orders__ehr_order_id="after-rotation").exists()
    assert not Order.objects.filter(ehr_order_id="after-rotation").exists()
    assert InboundMessage.objects.count() == 1
    assert len(events(caplog, "webhook.auth_failed")) == 1
    # Forgotten: the next caller with that token is looked up before its body is read.
    assert partner_lookup.remembered(PARTNER_TOKEN) is None
    answer, statements = sent(client, body("again"))
    assert answer.status_code == 401 and statements[0].startswith('SELECT "orders_partner"')
    assert not any("orders_inboundmessage" in sql for sql in statements)


def test_a_partner_deactivated_elsewhere_stores_nothing_and_is_refused(client, verified):
    Partner.objects.filter(pk=verified.pk).update(is_active=False)
    assert post(client, body("deactivated")).status_code == 401
    assert InboundMessage.objects.count() == 1 and Order.objects.count() == 1


def test_a_token_now_naming_another_partner_stores_for_that_partner(client, verified, second_partner):
    # Not a thing an admin can do (tokens are unique by hash), but the statement checks the
    # partner, not just the token: the usual way then finds whom the token names now.
    Partner.objects.filter(pk=verified.pk).update(token_hash=hash_token("moved-away-0123456789"))
    Partner.objects.filter(pk=second_partner.pk).update(token_hash=hash_token(PARTNER_TOKEN))
    assert post(client, body("moved")).status_code == 200
    assert InboundMessage.objects.get(orders__ehr_order_id="moved").partner == second_partner
    assert Order.objects.get(ehr_order_id="moved").partner == second_partner


def test_a_redelivery_is_counted_once(client, verified, caplog):
    again = body("first")  # the fixture's delivery, byte for byte
    assert post(client, again).status_code == 200
    message = InboundMessage.objects.get()
    assert message.times_seen == 2
    assert Order.objects.count() == 1
    assert len(events(caplog, "message.duplicate")) == 1


def test_other_deliveries_go_the_usual_way_and_are_read_once(client, verified, monkeypatch):
    from redox import inbound

    reads = []
    real_read = inbound.read
    monkeypatch.setattr(inbound, "read", lambda raw: reads.append(raw) or real_read(raw))
    update = body("first", sample="order-update.json", log_id="an-update")
    assert post(client, update).status_code == 200
    assert len(reads) == 1
    assert InboundMessage.objects.get(redox_log_id="an-update").status == InboundMessage.Status.PROCESSED
    # A New for an order we hold: the statement is refused, the usual way updates it.
    resent = body("first", log_id="resent")
    assert post(client, resent).status_code == 200
    assert Order.objects.count() == 1 and Order.objects.get().messages.count() == 3


def test_a_challenge_under_a_verified_token_is_answered_the_usual_way(client, verified):
    challenge = sample_json("challenge-post.json")
    challenge["verification-token"] = PARTNER_TOKEN
    answer = post(client, json.dumps(challenge).encode())
    assert answer.status_code == 200 and answer.content.decode() == challenge["challenge"]
    assert InboundMessage.objects.count() == 1


def test_another_partner_s_token_is_not_taken_for_a_remembered_one(client, verified, second_partner):
    answer, statements = sent(client, body("second-partner"), token=SECOND_PARTNER_TOKEN)
    assert answer.status_code == 200 and statements[0].startswith("SELECT")  # looked up first
    assert InboundMessage.objects.get(orders__ehr_order_id="second-partner").partner == second_partner


def test_a_change_to_a_partner_in_this_process_drops_every_guess(verified):
    verified.is_production = not verified.is_production
    verified.save()
    assert partner_lookup.remembered(PARTNER_TOKEN) is None


def test_a_guess_expires(verified, monkeypatch):
    found_at, values = partner_lookup._remembered[hash_token(PARTNER_TOKEN)]
    partner_lookup._remembered[hash_token(PARTNER_TOKEN)] = (found_at - partner_lookup.REMEMBER_SECONDS - 1, values)
    assert partner_lookup.remembered(PARTNER_TOKEN) is None


def test_a_connection_the_server_dropped_still_stores_the_delivery(client, verified):
    # The one statement is the request's first query: it fails on the dead connection,
    # having stored nothing, and the usual way's lookup reconnects (orders/webhook.py).
    pid = end_this_connection()
    assert post(client, body("after-restart")).status_code == 200
    assert connection.connection.info.backend_pid != pid
    message = InboundMessage.objects.get(orders__ehr_order_id="after-restart")
    assert message.status == InboundMessage.Status.PROCESSED and message.partner == verified
