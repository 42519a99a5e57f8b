"""Sending a message to Redox's /endpoint: the exact request, the log ids, and one re-auth on 401."""

import json

import pytest
import responses

from redox.auth import ApiKeyAuth
from redox.client import RedoxClient, SendResult
from redox.errors import RedoxError
from redox.messages import Base64File

BASE = "https://redox.test"
ENDPOINT = f"{BASE}/endpoint"
AUTHENTICATE = f"{BASE}/auth/authenticate"
MESSAGE = {
    "Meta": {"DataModel": "Results", "EventType": "New", "Destinations": [{"ID": "d1"}, {"ID": "d2"}]},
    "Patient": {"Identifiers": [{"ID": "MRN0048213", "IDType": "MR"}], "Demographics": {"LastName": "Ñandú"}},
    "Orders": [{"ID": "157720311", "Results": [{"Value": "JVBERi0="}]}],
}


def make_client(**kwargs):
    return RedoxClient(
        auth=ApiKeyAuth("api-key-1", "secret-1"),
        api_base_url=BASE,
        upload_url="https://blob.redox.test/upload",
        connect_timeout=3,
        read_timeout=45,
        **kwargs,
    )


def authenticates(*tokens):
    for token in tokens:
        responses.post(AUTHENTICATE, json={"accessToken": token, "expires": "2999-01-01T00:00:00.000Z"})


def endpoint_calls():
    return [call for call in responses.calls if call.request.url == ENDPOINT]


@responses.activate
def test_send_posts_the_message_as_json_with_our_bearer_token_and_timeouts():
    authenticates("tok-1")
    responses.post(
        ENDPOINT,
        json={"Meta": {"DataModel": "Results", "Logs": [{"ID": "log-1", "AttemptID": "a1"}, {"ID": "log-2"}]}},
    )

    result = make_client().send(MESSAGE)

    assert result == SendResult(status=200, log_ids=["log-1", "log-2"])
    assert result.log_id == "log-1"
    [call] = endpoint_calls()
    assert json.loads(call.request.body) == MESSAGE
    assert call.request.headers["Content-Type"] == "application/json"
    assert call.request.headers["Authorization"] == "Bearer tok-1"
    assert call.request.req_kwargs["timeout"] == (3, 45)
    assert responses.calls[0].request.req_kwargs["timeout"] == (3, 45)


@responses.activate
def test_send_encodes_an_inline_file_into_the_body():
    authenticates("tok-1")
    responses.post(ENDPOINT, json={"Meta": {"Logs": [{"ID": "log-1"}]}})

    make_client().send({"Value": Base64File(b"%PDF-1.4 tiny")})

    assert json.loads(bytes(endpoint_calls()[0].request.body)) == {"Value": "JVBERi0xLjQgdGlueQ=="}


@responses.activate
def test_send_passes_an_already_encoded_body_through_unchanged():
    authenticates("tok-1")
    responses.post(ENDPOINT, json={"Meta": {"Logs": [{"ID": "log-1"}]}})
    body = b'{"Meta":{"DataModel":"Results"}}'

    make_client().send(body)

    assert endpoint_calls()[0].request.body == body


@responses.activate
def test_an_older_style_answer_yields_its_message_id():
    authenticates("tok-1")
    responses.post(ENDPOINT, json={"MessageID": 123456, "TransmissionID": 789})

    assert make_client().send(MESSAGE).log_ids == ["123456"]


@responses.activate
def test_an_accepted_answer_without_a_body_still_counts_as_sent():
    authenticates("tok-1")
    responses.post(ENDPOINT, body="")

    assert make_client().send(MESSAGE) == SendResult(status=200, log_ids=[])


@responses.activate
def test_401_re_authenticates_once_and_the_retry_succeeds():
    authenticates("stale", "fresh")
    responses.post(ENDPOINT, status=401, json={"Meta": {"Errors": [{"Text": "Invalid token"}]}})
    responses.post(ENDPOINT, json={"Meta": {"Logs": [{"ID": "log-9"}]}})

    result = make_client().send(MESSAGE)

    assert result.log_id == "log-9"
    assert [call.request.url for call in responses.calls] == [AUTHENTICATE, ENDPOINT, AUTHENTICATE, ENDPOINT]
    bearers = [call.request.headers["Authorization"] for call in endpoint_calls()]
    assert bearers == ["Bearer stale", "Bearer fresh"]
    assert json.loads(endpoint_calls()[1].request.body) == MESSAGE


@responses.activate
def test_a_second_401_is_a_retryable_error_after_exactly_one_re_authentication():
    authenticates("stale", "fresh")
    responses.post(ENDPOINT, status=401, json={"Meta": {"Errors": [{"Text": "Invalid token"}]}})

    with pytest.raises(RedoxError) as caught:
        make_client().send(MESSAGE)

    assert caught.value.retryable is True
    assert caught.value.status == 401
    assert len(endpoint_calls()) == 2
    assert len(responses.calls) == 4


@responses.activate
def test_the_fresh_token_after_a_401_is_kept_for_later_sends():
    authenticates("stale", "fresh")
    responses.post(ENDPOINT, status=401)
    responses.post(ENDPOINT, json={"Meta": {"Logs": [{"ID": "log-1"}]}})
    client = make_client()

    client.send(MESSAGE)
    client.send(MESSAGE)

    assert [call.request.headers["Authorization"] for call in endpoint_calls()][-1] == "Bearer fresh"
    assert len([call for call in responses.calls if call.request.url == AUTHENTICATE]) == 2
