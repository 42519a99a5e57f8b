"""Every way a Redox call can fail becomes one RedoxError that says whether retrying can help."""

import email.utils
import time

import pytest
import requests
import responses

from redox.auth import ApiKeyAuth
from redox.client import RedoxClient
from redox.errors import RedoxError

BASE = "https://redox.test"
ENDPOINT = f"{BASE}/endpoint"
PATIENT_NAME = "Testy Samplepatient"
MESSAGE = {
    "Meta": {"DataModel": "Results", "EventType": "New"},
    "Patient": {"Demographics": {"FirstName": "Testy", "LastName": "Samplepatient"}, "Name": PATIENT_NAME},
}


def send_and_catch():
    responses.post(f"{BASE}/auth/authenticate", json={"accessToken": "tok", "expires": "2999-01-01T00:00:00Z"})
    client = RedoxClient(auth=ApiKeyAuth("k", "s"), api_base_url=BASE, upload_url=f"{BASE}/upload")
    with pytest.raises(RedoxError) as caught:
        client.send(MESSAGE)
    error = caught.value
    # Whatever happened, the message we sent (patient data) is not in the error.
    assert PATIENT_NAME not in str(error) and "Samplepatient" not in repr(error)
    return error


def redox_errors(*texts):
    return {
        "Meta": {
            "Errors": [{"ID": i, "Text": text, "Type": "message", "Module": "Send"} for i, text in enumerate(texts)]
        }
    }


@pytest.mark.parametrize("status", [400, 403, 404, 413])
@responses.activate
def test_a_refused_request_is_permanent_and_keeps_redox_error_texts(status):
    responses.post(ENDPOINT, status=status, json=redox_errors("Patient.Identifiers is required", "Second problem"))

    error = send_and_catch()

    assert error.retryable is False
    assert error.status == status
    assert error.redox_errors == ["Patient.Identifiers is required", "Second problem"]
    assert str(error) == f"Redox /endpoint: HTTP {status}: Patient.Identifiers is required; Second problem"


@responses.activate
def test_the_no_subscriptions_error_reaches_staff_verbatim():
    text = "No subscriptions... Meta.Destinations needs to contain a destination from existing subscriptions"
    responses.post(ENDPOINT, status=400, json=redox_errors(text))

    assert send_and_catch().redox_errors == [text]


@responses.activate
def test_another_client_error_is_permanent_too():
    responses.post(ENDPOINT, status=422, body="<html>nope</html>")

    error = send_and_catch()

    assert (error.retryable, error.status, error.redox_errors, str(error)) == (
        False,
        422,
        [],
        "Redox /endpoint: HTTP 422",
    )


@responses.activate
def test_rate_limiting_is_retryable_and_honours_retry_after_seconds():
    responses.post(ENDPOINT, status=429, headers={"Retry-After": "120"}, json=redox_errors("Rate limit exceeded"))

    error = send_and_catch()

    assert (error.retryable, error.status, error.retry_after) == (True, 429, 120)


@responses.activate
def test_retry_after_may_be_an_http_date():
    when = email.utils.formatdate(time.time() + 600, usegmt=True)
    responses.post(ENDPOINT, status=429, headers={"Retry-After": when})

    error = send_and_catch()

    assert 590 <= error.retry_after <= 600


@responses.activate
def test_a_missing_or_unreadable_retry_after_is_none():
    responses.post(ENDPOINT, status=503, headers={"Retry-After": "soon"})

    assert send_and_catch().retry_after is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@responses.activate
def test_a_redox_server_error_is_retryable(status):
    responses.post(ENDPOINT, status=status, body="Bad Gateway")

    error = send_and_catch()

    assert (error.retryable, error.status, error.retry_after) == (True, status, None)
    assert str(error) == f"Redox /endpoint: HTTP {status}"


@pytest.mark.parametrize(
    ("failure", "text"),
    [
        (requests.ConnectTimeout("timed out"), "Redox /endpoint: connection timed out"),
        (requests.ReadTimeout("read timed out"), "Redox /endpoint: no response in time"),
        (requests.ConnectionError("refused"), "Redox /endpoint: connection failed"),
    ],
)
@responses.activate
def test_network_failures_are_retryable_without_a_status(failure, text):
    responses.post(ENDPOINT, body=failure)

    error = send_and_catch()

    assert (error.retryable, error.status, str(error)) == (True, None, text)


@responses.activate
def test_an_unreachable_token_endpoint_is_retryable():
    responses.post(f"{BASE}/auth/authenticate", body=requests.ConnectionError("refused"))
    client = RedoxClient(auth=ApiKeyAuth("k", "s"), api_base_url=BASE, upload_url=f"{BASE}/upload")

    with pytest.raises(RedoxError) as caught:
        client.send(MESSAGE)

    assert (caught.value.retryable, str(caught.value)) == (True, "Redox authentication: connection failed")


@responses.activate
def test_a_redirect_is_not_followed_and_is_reported_as_retryable():
    responses.post(ENDPOINT, status=302, headers={"Location": "https://elsewhere.test/endpoint"})

    error = send_and_catch()

    assert (error.retryable, error.status) == (True, 302)
    assert [call.request.url for call in responses.calls][-1] == ENDPOINT
