"""End to end: the real Redox client against the local sandbox over a real socket."""

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from redox.client import get_client, prepare_document
from redox.errors import RedoxError
from redox.messages import build_message, encode_message
from tests.conftest import sample_bytes
from tests.factories import OutboundOrderFactory
from tests.sandbox_server import base_url, start_in_thread

PDF = sample_bytes("clinical-note.pdf")


@pytest.fixture
def sandbox():
    server = start_in_thread(port=0)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def rsa_pem():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture(params=["jwt", "api_key"])
def client(request, sandbox, settings, rsa_pem):
    """The process-wide client, configured for one auth flow and pointed at the sandbox."""
    settings.REDOX_API_BASE_URL = base_url(sandbox)
    settings.REDOX_UPLOAD_URL = f"{base_url(sandbox)}/upload"
    if request.param == "jwt":
        settings.REDOX_CLIENT_ID = "sandbox-client"
        settings.REDOX_KEY_ID = "sandbox-key-1"
        settings.REDOX_PRIVATE_KEY = rsa_pem
    else:
        settings.REDOX_API_KEY = "sandbox-api-key"
        settings.REDOX_API_SECRET = "sandbox-api-secret"
    return get_client()


def message(client, data_model="results", inline_max_bytes=200_000):
    document = prepare_document(PDF, "note.pdf", client=client, inline_max_bytes=inline_max_bytes)
    return build_message(OutboundOrderFactory(delivery_ref="hcoint-delivery-1"), document, data_model=data_model)


@pytest.mark.parametrize("data_model", ["results", "notes"])
def test_a_message_is_accepted_and_the_sandbox_holds_exactly_what_we_built(client, sandbox, data_model):
    sent = message(client, data_model)

    result = client.send(sent)

    [received] = sandbox.state.messages()
    assert (result.status, received.outcome) == (200, "accepted")
    assert result.log_ids == received.log_ids and result.log_id
    assert received.body == json.loads(encode_message(sent))
    assert received.delivery_ref == "hcoint-delivery-1"


def test_a_large_pdf_goes_through_the_blob_upload(client, sandbox):
    sent = message(client, inline_max_bytes=100)

    client.send(sent)

    upload, accepted = sandbox.state.messages()
    assert (upload.outcome, upload.http_status, upload.size) == ("uploaded", 201, len(PDF))
    assert sandbox.state.blobs[upload.delivery_ref] == PDF
    assert accepted.body["Orders"][0]["Results"][0]["Value"] == upload.delivery_ref


def test_told_to_fail_twice_the_client_sees_two_retryable_errors_then_success(client, sandbox):
    sandbox.state.fail_next(2, status=500)
    sent = message(client)

    errors = []
    for _ in range(2):
        with pytest.raises(RedoxError) as caught:
            client.send(sent)
        errors.append(caught.value)
    result = client.send(sent)

    assert [(e.retryable, e.status) for e in errors] == [(True, 500), (True, 500)]
    assert result.status == 200
    assert [r.outcome for r in sandbox.state.messages()] == ["failed", "failed", "accepted"]


def test_rate_limited_the_client_reports_retry_after(client, sandbox):
    sandbox.state.fail_next(1, status=429, retry_after=7)

    with pytest.raises(RedoxError) as caught:
        client.send(message(client))

    assert (caught.value.retryable, caught.value.status, caught.value.retry_after) == (True, 429, 7)


def test_told_to_reject_the_client_gets_a_permanent_error_with_the_text_until_cleared(client, sandbox):
    sandbox.state.reject(None, "Destination is not subscribed to Results")
    sent = message(client)

    for _ in range(2):
        with pytest.raises(RedoxError) as caught:
            client.send(sent)
        assert (caught.value.retryable, caught.value.status) == (False, 400)
        assert caught.value.redox_errors == ["Destination is not subscribed to Results"]
    sandbox.state.clear()

    assert client.send(sent).status == 200


def test_expired_tokens_are_replaced_transparently(client, sandbox):
    client.send(message(client))
    sandbox.state.expire_tokens()

    assert client.send(message(client)).status == 200
    assert [r.outcome for r in sandbox.state.messages()] == ["accepted", "unauthorized", "accepted"]
