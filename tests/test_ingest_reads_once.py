"""One delivery's body is decoded once and its Meta read once, whatever becomes of it.

The webhook's store step and apply step share one `inbound.read` result, and its check for
a verification challenge (redox/verification.py) does not decode a delivery a second time;
reprocessing a stored message reads its stored body through the same one call.
"""

import json
from unittest import mock

import pytest

from orders.ingest import message_ingest, message_process
from orders.models import InboundMessage, Order
from redox import inbound, verification
from tests.conftest import PARTNER_TOKEN, sample_bytes, sample_json


@pytest.fixture
def counted():
    """Counts of the JSON decodes and Meta reads in redox/inbound.py (the real ones run)."""
    with (
        # redox/inbound.py's own `json`, so Django's JSON fields do not count.
        mock.patch.object(inbound, "json", wraps=json) as inbound_json,
        mock.patch.object(inbound, "_read_meta", wraps=inbound._read_meta) as read_meta,
    ):
        yield inbound_json.loads, read_meta


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (sample_bytes("order-new.json"), InboundMessage.Status.PROCESSED),
        (json.dumps({"Meta": {"DataModel": "Scheduling", "EventType": "New"}}).encode(), InboundMessage.Status.IGNORED),
        (json.dumps({"Meta": {"DataModel": "Order", "EventType": "New"}}).encode(), InboundMessage.Status.FAILED),
        (b"{not json", InboundMessage.Status.FAILED),
    ],
    ids=["order", "another data model", "order without an id", "not JSON"],
)
def test_a_delivery_is_decoded_once_and_its_meta_read_at_most_once(partner, counted, body, status):
    loads, read_meta = counted

    result = message_ingest(partner=partner, body=body, headers={})

    assert result.message.status == status
    assert loads.call_count == 1
    assert read_meta.call_count == (0 if body == b"{not json" else 1)


def test_reprocessing_reads_the_stored_body_once(partner, counted):
    data = sample_json("order-new.json")
    del data["Order"]["ID"]
    failed = message_ingest(partner=partner, body=json.dumps(data).encode(), headers={}).message
    assert failed.status == InboundMessage.Status.FAILED
    loads, read_meta = counted
    loads.reset_mock()
    read_meta.reset_mock()

    again = message_process(message=failed)

    assert again.status == InboundMessage.Status.FAILED
    assert again.error == "Order.ID is missing."
    assert (loads.call_count, read_meta.call_count) == (1, 1)
    assert Order.objects.count() == 0


@pytest.fixture
def webhook_decodes():
    """How many times the JSON decoders the webhook can reach ran: ingest's (redox/inbound.py)
    plus the challenge check's (redox/verification.py)."""
    with (
        mock.patch.object(inbound, "json", wraps=json) as inbound_json,
        mock.patch.object(verification, "json", wraps=json) as verification_json,
    ):
        yield lambda: inbound_json.loads.call_count + verification_json.loads.call_count


def small_order():
    """order-new.json, as small as a challenge may be: the webhook could take it for one."""
    body = sample_bytes("order-new.json")
    assert len(body) <= verification.CHALLENGE_BODY_MAX_BYTES
    return body


def big_order():
    """order-new.json grown past the size of a challenge (verification.CHALLENGE_BODY_MAX_BYTES)."""
    data = sample_json("order-new.json")
    data["Order"]["Diagnoses"] = [{"Code": f"R{i}", "Codeset": "ICD-10", "Name": "x" * 40} for i in range(60)]
    body = json.dumps(data).encode()
    assert len(body) > verification.CHALLENGE_BODY_MAX_BYTES
    return body


@pytest.mark.parametrize(
    "body",
    [small_order(), big_order()],
    ids=["small enough to be a challenge", "larger than any challenge"],
)
def test_a_delivery_posted_to_the_webhook_is_decoded_once(client, partner, webhook_decodes, body):
    response = client.post(
        "/redox/webhook/", body, content_type="application/json", headers={"verification-token": PARTNER_TOKEN}
    )
    assert response.status_code == 200
    assert InboundMessage.objects.get().status == InboundMessage.Status.PROCESSED
    assert webhook_decodes() == 1


def test_a_challenge_posted_to_the_webhook_is_decoded_once(client, partner, webhook_decodes):
    challenge = sample_json("challenge-post.json")
    challenge["verification-token"] = PARTNER_TOKEN
    response = client.post(
        "/redox/webhook/",
        json.dumps(challenge),
        content_type="application/json",
        headers={"verification-token": PARTNER_TOKEN},
    )
    assert response.status_code == 200
    assert response.content.decode() == challenge["challenge"]
    assert not InboundMessage.objects.exists()
    assert webhook_decodes() == 1
