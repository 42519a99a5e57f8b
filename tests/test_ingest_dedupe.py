"""A message delivered again is counted on the original and changes no order."""

import json

from django.utils import timezone

from orders.ingest import message_ingest
from orders.models import InboundMessage, Order
from tests.conftest import events, sample_bytes, sample_json


def test_a_duplicate_is_counted_on_the_original(partner, caplog):
    body = sample_bytes("order-new.json")
    first = message_ingest(partner=partner, body=body, headers={})
    before = timezone.now()
    second = message_ingest(partner=partner, body=body, headers={})
    assert not first.duplicate
    assert second.duplicate
    assert second.message.pk == first.message.pk
    message = InboundMessage.objects.get()
    assert message.times_seen == 2
    assert message.last_seen_at >= before
    assert message.dedupe_key == "log:0b5f2c1e-6a3d-4e8f-9b7a-1c2d3e4f5a60"
    (record,) = events(caplog, "message.duplicate")
    assert record.message_id == message.pk


def test_a_redelivery_with_the_same_log_id_but_other_content_changes_no_order(partner):
    message_ingest(partner=partner, body=sample_bytes("order-new.json"), headers={})
    data = sample_json("order-new.json")
    data["Order"]["Priority"] = "Stat"
    data["Meta"]["Logs"][0]["AttemptID"] = "another-attempt"
    result = message_ingest(partner=partner, body=json.dumps(data).encode(), headers={})
    assert result.duplicate
    assert Order.objects.get().priority == "Routine"
    assert InboundMessage.objects.count() == 1


def test_without_logs_the_message_id_is_the_key(partner):
    data = sample_json("order-new.json")
    data["Meta"].pop("Logs")
    data["Meta"]["Message"] = {"ID": 5565}
    first = message_ingest(partner=partner, body=json.dumps(data).encode(), headers={})
    data["Meta"]["Transmission"] = {"ID": 1}
    second = message_ingest(partner=partner, body=json.dumps(data).encode(), headers={})
    assert first.message.dedupe_key == "message:5565"
    assert second.duplicate


def test_without_any_id_the_body_hash_is_the_key(partner):
    data = sample_json("order-new.json")
    data["Meta"].pop("Logs")
    body = json.dumps(data).encode()
    assert not message_ingest(partner=partner, body=body, headers={}).duplicate
    assert message_ingest(partner=partner, body=body, headers={}).duplicate
    assert not message_ingest(partner=partner, body=body + b"\n", headers={}).duplicate


def test_an_invalid_body_sent_twice_is_one_failed_message(partner):
    message_ingest(partner=partner, body=b"{broken", headers={})
    result = message_ingest(partner=partner, body=b"{broken", headers={})
    assert result.duplicate
    message = InboundMessage.objects.get()
    assert message.status == InboundMessage.Status.FAILED
    assert message.times_seen == 2


def test_deduplication_is_per_partner(partner, second_partner):
    body = sample_bytes("order-new.json")
    message_ingest(partner=partner, body=body, headers={})
    result = message_ingest(partner=second_partner, body=body, headers={})
    assert not result.duplicate
    assert InboundMessage.objects.count() == 2
    assert Order.objects.count() == 2


def test_a_duplicate_through_the_webhook_is_answered_200(client, partner):
    from tests.conftest import PARTNER_TOKEN

    for _ in range(3):
        response = client.post(
            "/redox/webhook/",
            sample_bytes("order-new.json"),
            content_type="application/json",
            headers={"verification-token": PARTNER_TOKEN},
        )
        assert response.status_code == 200
    assert InboundMessage.objects.get().times_seen == 3
    assert Order.objects.count() == 1
