"""Every sample Redox payload, posted with the right token, gives 200 and the order state it describes."""

import json
from datetime import UTC, date, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orders.models import InboundMessage, Order
from tests.conftest import PARTNER_TOKEN, SAMPLES, sample_bytes, sample_json

URL = "/redox/webhook/"
ORDER_ID = "157720311"


def post(client, body, token=PARTNER_TOKEN):
    return client.post(URL, body, content_type="application/json", headers={"verification-token": token})


def post_sample(client, name):
    body = sample_bytes(name)
    if name == "challenge-post.json":
        data = json.loads(body)
        data["verification-token"] = PARTNER_TOKEN
        body = json.dumps(data).encode()
    response = post(client, body)
    assert response.status_code == 200, name
    return response


def test_every_sample_file_is_answered_200(client, partner):
    names = sorted(p.name for p in SAMPLES.glob("*.json"))
    assert "order-new.json" in names
    for name in names:
        post_sample(client, name)


def test_order_new_creates_an_order_awaiting_its_note(client, partner):
    post_sample(client, "order-new.json")
    order = Order.objects.get()
    assert order.partner == partner
    assert order.ehr_order_id == ORDER_ID
    assert order.state == Order.State.AWAITING_NOTE
    assert order.patient_mrn == "MRN0048213"
    assert order.identifiers_text == "MRN0048213 EPI77120"
    assert order.patient_identifiers == sample_json("order-new.json")["Patient"]["Identifiers"]
    assert (order.patient_first_name, order.patient_middle_name, order.patient_last_name) == (
        "Testy",
        "Q",
        "Samplepatient",
    )
    assert order.patient_dob == date(1948, 2, 29)
    assert order.patient_sex == "Male"
    assert order.patient_demographics["Address"]["City"] == "Tacoma"
    assert order.visit_number == "VIS-2026-000731"
    assert (order.procedure_code, order.procedure_description) == ("DOC1042", "Request for outside clinical notes")
    assert order.provider_name == "Exampledoc, Alex"
    assert order.provider_npi == "1999999984"
    assert order.provider["Credentials"] == ["MD"]
    assert order.priority == "Routine"
    assert order.comments == "Discharge summary and visit notes for waiver billing."
    assert order.diagnoses[0]["Code"] == "I50.9"
    assert order.redox_status == "New"
    assert order.transaction_at == datetime(2026, 10, 5, 17, 4, 12, tzinfo=UTC)
    assert order.last_event_at == datetime(2026, 10, 5, 17, 4, 15, 120000, tzinfo=UTC)
    assert order.is_test is True
    message = InboundMessage.objects.get()
    assert message.status == InboundMessage.Status.PROCESSED
    assert bytes(message.body) == sample_bytes("order-new.json")
    assert list(message.orders.all()) == [order]


def test_order_update_changes_priority_and_comments(client, partner):
    post_sample(client, "order-new.json")
    post_sample(client, "order-update.json")
    order = Order.objects.get()
    assert order.priority == "Stat"
    assert order.comments == "Please include the home visit note from 10/02."
    assert order.redox_status == "Update"
    assert order.state == Order.State.AWAITING_NOTE
    assert order.last_event_at == datetime(2026, 10, 6, 9, 30, tzinfo=UTC)
    assert order.messages.count() == 2


def test_order_cancel_marks_the_order_cancelled_and_deletes_nothing(client, partner):
    for name in ("order-new.json", "order-update.json", "order-cancel.json"):
        post_sample(client, name)
    order = Order.objects.get()
    assert order.state == Order.State.CANCELLED
    assert order.cancelled_at == datetime(2026, 10, 7, 11, 0, tzinfo=UTC)
    assert order.redox_status == "Canceled"
    assert order.patient_mrn == "MRN0048213"
    assert order.messages.count() == 3
    assert InboundMessage.objects.count() == 3


def test_grouped_orders_create_each_order(client, partner):
    post_sample(client, "order-grouped.json")
    orders = {o.ehr_order_id: o for o in Order.objects.all()}
    assert set(orders) == {"157720313", "157720312"}
    assert orders["157720312"].procedure_code == "DOC1043"
    assert all(o.state == Order.State.AWAITING_NOTE for o in orders.values())
    message = InboundMessage.objects.get()
    assert message.orders.count() == 2


def test_a_results_message_is_kept_and_ignored(client, partner):
    post_sample(client, "results-new-example.json")
    message = InboundMessage.objects.get()
    assert message.status == InboundMessage.Status.IGNORED
    assert message.data_model == "Results"
    assert Order.objects.count() == 0


def test_the_challenge_sample_is_answered_and_not_stored(client, partner):
    response = post_sample(client, "challenge-post.json")
    assert response.content == b"3c9a1f0e-77d2-4b55-a0e4-0f6b1c2d3e4f"
    assert InboundMessage.objects.count() == 0


def order_snapshot():
    return list(Order.objects.order_by("ehr_order_id").values())


def test_posting_every_sample_again_changes_nothing(client, partner):
    names = (
        "order-new.json",
        "order-update.json",
        "order-cancel.json",
        "order-grouped.json",
        "results-new-example.json",
    )
    for name in names:
        post_sample(client, name)
    before = order_snapshot()
    statuses = dict(InboundMessage.objects.values_list("pk", "status"))
    for name in names:
        post_sample(client, name)
    assert order_snapshot() == before
    assert dict(InboundMessage.objects.values_list("pk", "status")) == statuses
    assert set(InboundMessage.objects.values_list("times_seen", flat=True)) == {2}


def test_an_invalid_json_body_with_the_right_token_is_stored_answered_200_and_failed(client, partner):
    response = post(client, b'{"Meta": {"DataModel": "Order", ')
    assert response.status_code == 200
    message = InboundMessage.objects.get()
    assert message.status == InboundMessage.Status.FAILED
    assert message.error == "The body is not valid JSON."
    assert bytes(message.body) == b'{"Meta": {"DataModel": "Order", '


def test_the_stored_headers_never_include_the_token(client, partner):
    client.post(
        URL,
        sample_bytes("order-new.json"),
        content_type="application/json",
        headers={"verification-token": PARTNER_TOKEN, "user-agent": "Redox", "application-name": "RedoxEngine"},
    )
    message = InboundMessage.objects.get()
    assert message.headers["user-agent"] == "Redox"
    assert message.headers["application-name"] == "RedoxEngine"
    assert message.headers["content-type"] == "application/json"
    assert PARTNER_TOKEN not in json.dumps(message.headers)
    assert "verification-token" not in message.headers


def warm_up_body():
    """A new order of its own, for a first delivery under the partner's token."""
    data = sample_json("order-new.json")
    data["Meta"]["Logs"][0]["ID"] = "warm-up"
    data["Order"]["ID"] = "warm-up-order"
    return json.dumps(data).encode()


def big_order_body(sample="order-new.json"):
    """`sample` with one new order, 50 patient identifiers and 50 diagnoses."""
    data = sample_json(sample)
    data["Meta"]["Logs"][0]["ID"] = "big-one"
    data["Order"]["ID"] = "big-order"
    data["Patient"]["Identifiers"] = [{"ID": f"ID{i}", "IDType": "EHRID"} for i in range(50)]
    data["Order"]["Diagnoses"] = [{"Code": f"R{i}", "Codeset": "ICD-10", "Name": "x"} for i in range(50)]
    return json.dumps(data).encode()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement path is PostgreSQL's")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_answering_a_new_order_takes_two_statements(client, partner):
    # As in production (autocommit, no test transaction around the request):
    # 1. the partner, by its token hash (orders/webhook.py), before the body is read;
    # 2. the message (already marked processed), the order and the link, one INSERT
    #    statement that commits on its own (orders/ingest_statement.py).
    # No BEGIN, SAVEPOINT or COMMIT. A third is a regression (docs/performance.md).
    with CaptureQueriesContext(connection) as captured:
        post_sample(client, "order-new.json")
    partner_lookup, store = (q["sql"] for q in captured.captured_queries)
    assert partner_lookup.startswith('SELECT "orders_partner"')
    assert store.startswith("WITH message AS (INSERT INTO")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement path is PostgreSQL's")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_later_new_order_under_a_verified_token_takes_one_statement(client, partner):
    # The first delivery under a token looks the partner up (above); later ones are stored
    # by the one statement, which verifies the token itself (orders/webhook.py,
    # _new_orders_in_one_round_trip). A second is a regression (docs/performance.md).
    post(client, warm_up_body())
    with CaptureQueriesContext(connection) as captured:
        post_sample(client, "order-new.json")
    (store,) = (q["sql"] for q in captured.captured_queries)
    assert store.startswith("WITH message AS (INSERT INTO")
    assert 'FROM "orders_partner"' in store  # the token, verified in the statement


@pytest.mark.parametrize("sample", ["order-new.json", "order-update.json", "order-cancel.json"])
def test_the_query_count_does_not_grow_with_the_payload(client, partner, sample):
    # Both measured under a token already verified (the first delivery looks the partner up).
    post(client, warm_up_body())
    with CaptureQueriesContext(connection) as small:
        post_sample(client, sample)
    with CaptureQueriesContext(connection) as big:
        # The same event type: a New takes fewer queries than an Update (orders/ingest.py).
        assert post(client, big_order_body(sample)).status_code == 200
    assert len(big.captured_queries) == len(small.captured_queries)
