"""Redox's destination verification: both forms answer the bare challenge for a right token only."""

import json
from unittest import mock

from django.db import connection
from django.test.utils import CaptureQueriesContext

from orders.models import InboundMessage
from tests.conftest import PARTNER_TOKEN, sample_bytes, sample_json

URL = "/redox/webhook/"
CHALLENGE = "3c9a1f0e-77d2-4b55-a0e4-0f6b1c2d3e4f"


def challenge_body(token):
    body = sample_json("challenge-post.json")
    body["verification-token"] = token
    return json.dumps(body)


def assert_bare_challenge(response):
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response.content == CHALLENGE.encode()


def test_post_challenge_with_the_right_token_answers_the_bare_challenge(client, partner):
    response = client.post(URL, challenge_body(PARTNER_TOKEN), content_type="application/json")
    assert_bare_challenge(response)
    assert InboundMessage.objects.count() == 0


def test_post_challenge_with_a_wrong_token_is_refused(client, partner):
    response = client.post(URL, challenge_body("not-the-token"), content_type="application/json")
    assert response.status_code == 401
    assert CHALLENGE.encode() not in response.content


def test_post_challenge_accepts_the_token_from_the_header(client, partner):
    body = json.dumps({"challenge": CHALLENGE})
    response = client.post(URL, body, content_type="application/json", headers={"verification-token": PARTNER_TOKEN})
    assert_bare_challenge(response)


def test_get_challenge_with_the_token_in_the_query_answers_the_bare_challenge(client, partner):
    response = client.get(URL, {"challenge": CHALLENGE, "verification-token": PARTNER_TOKEN})
    assert_bare_challenge(response)


def test_get_challenge_with_the_token_in_the_header_answers_the_bare_challenge(client, partner):
    response = client.get(URL, {"challenge": CHALLENGE}, headers={"verification-token": PARTNER_TOKEN})
    assert_bare_challenge(response)


def test_get_challenge_with_a_wrong_or_missing_token_is_refused(client, partner):
    assert client.get(URL, {"challenge": CHALLENGE, "verification-token": "nope"}).status_code == 401
    assert client.get(URL, {"challenge": CHALLENGE}).status_code == 401


def test_challenge_answers_for_the_second_token_during_a_rotation(client, partner):
    partner.set_tokens(PARTNER_TOKEN, second_token="the-next-token-0123456789")
    partner.save()
    response = client.get(URL, {"challenge": CHALLENGE, "verification-token": "the-next-token-0123456789"})
    assert_bare_challenge(response)


def test_a_small_delivery_is_not_decoded_as_a_possible_challenge(client, partner):
    # A message without the `"challenge"` key is decoded once, by ingest, not also here.
    with mock.patch("redox.verification.json", wraps=json) as decoder:
        response = client.post(
            URL,
            sample_bytes("order-new.json"),
            content_type="application/json",
            headers={"verification-token": PARTNER_TOKEN},
        )
        assert response.status_code == 200
        assert InboundMessage.objects.get().status == InboundMessage.Status.PROCESSED
        assert decoder.loads.call_count == 0
        assert_bare_challenge(client.post(URL, challenge_body(PARTNER_TOKEN), content_type="application/json"))
        assert decoder.loads.call_count == 1


def partner_lookups(captured):
    return [q["sql"] for q in captured.captured_queries if 'FROM "orders_partner"' in q["sql"]]


def test_a_challenge_whose_token_is_the_headers_looks_the_partner_up_once(client, partner):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(URL, {"challenge": CHALLENGE}, headers={"verification-token": PARTNER_TOKEN})
    assert_bare_challenge(response)
    assert len(partner_lookups(captured)) == 1
    # A challenge naming another token than the header's is still checked by its own.
    with CaptureQueriesContext(connection) as captured:
        response = client.get(
            URL, {"challenge": CHALLENGE, "verification-token": "nope"}, headers={"verification-token": PARTNER_TOKEN}
        )
    assert response.status_code == 401
    assert len(partner_lookups(captured)) == 2
