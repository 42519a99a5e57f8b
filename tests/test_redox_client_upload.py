"""Large PDFs go to Redox's blob store first; the message then carries the returned URI."""

import pytest
import responses
from django.conf import settings

from redox.auth import ApiKeyAuth
from redox.client import RedoxClient, prepare_document
from redox.errors import RedoxError
from redox.messages import Base64File

from .conftest import sample_bytes

BASE = "https://redox.test"
UPLOAD = "https://blob.redox.test/upload"
PDF = sample_bytes("clinical-note.pdf")


def make_client():
    responses.post(f"{BASE}/auth/authenticate", json={"accessToken": "tok", "expires": "2999-01-01T00:00:00Z"})
    return RedoxClient(auth=ApiKeyAuth("k", "s"), api_base_url=BASE, upload_url=UPLOAD)


def upload_calls():
    return [call for call in responses.calls if call.request.url == UPLOAD]


@responses.activate
def test_upload_sends_the_file_as_multipart_field_file_and_returns_the_uri():
    client = make_client()
    responses.post(UPLOAD, status=201, json={"URI": "https://blob.redoxengine.com/abc-123"})

    uri = client.upload_file(PDF, "note.pdf")

    assert uri == "https://blob.redoxengine.com/abc-123"
    [call] = upload_calls()
    assert call.request.headers["Authorization"] == "Bearer tok"
    assert call.request.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    body = call.request.body
    assert b'Content-Disposition: form-data; name="file"; filename="note.pdf"' in body
    assert b"Content-Type: application/pdf" in body
    assert PDF in body
    assert call.request.req_kwargs["timeout"] == (5, 60)


@responses.activate
def test_upload_without_a_uri_in_the_answer_is_retryable():
    client = make_client()
    responses.post(UPLOAD, status=201, json={"ok": True})

    with pytest.raises(RedoxError, match="without a URI") as caught:
        client.upload_file(PDF, "note.pdf")

    assert caught.value.retryable is True


@responses.activate
def test_upload_refused_as_too_large_is_permanent():
    client = make_client()
    responses.post(UPLOAD, status=413, json={"Meta": {"Errors": [{"Text": "File too large"}]}})

    with pytest.raises(RedoxError) as caught:
        client.upload_file(PDF, "note.pdf")

    assert (caught.value.retryable, caught.value.status, caught.value.redox_errors) == (False, 413, ["File too large"])


@responses.activate
def test_upload_re_authenticates_once_on_401():
    responses.post(f"{BASE}/auth/authenticate", json={"accessToken": "stale", "expires": "2999-01-01T00:00:00Z"})
    responses.post(f"{BASE}/auth/authenticate", json={"accessToken": "fresh", "expires": "2999-01-01T00:00:00Z"})
    client = RedoxClient(auth=ApiKeyAuth("k", "s"), api_base_url=BASE, upload_url=UPLOAD)
    responses.post(UPLOAD, status=401)
    responses.post(UPLOAD, status=201, json={"URI": "https://blob.redoxengine.com/x"})

    assert client.upload_file(PDF, "note.pdf") == "https://blob.redoxengine.com/x"
    assert [call.request.headers["Authorization"] for call in upload_calls()] == ["Bearer stale", "Bearer fresh"]
    assert PDF in upload_calls()[1].request.body


@responses.activate
def test_a_pdf_over_the_inline_threshold_is_uploaded_and_referenced_by_uri():
    client = make_client()
    responses.post(UPLOAD, status=201, json={"URI": "https://blob.redoxengine.com/big"})
    large = PDF + b"%" * 300_000

    document = prepare_document(large, "long-note.pdf", client=client, inline_max_bytes=200_000)

    assert (document.value, document.is_uri, document.file_name) == (
        "https://blob.redoxengine.com/big",
        True,
        "long-note.pdf",
    )
    assert large in upload_calls()[0].request.body


@responses.activate
def test_a_pdf_at_the_threshold_travels_inline_without_any_call(settings):
    settings.REDOX_INLINE_MAX_BYTES = len(PDF)

    document = prepare_document(PDF, "note.pdf", client=RedoxClient(auth=None, api_base_url=BASE, upload_url=UPLOAD))

    assert isinstance(document.value, Base64File)
    assert document.value.content is PDF
    assert document.is_uri is False
    assert len(responses.calls) == 0


@responses.activate
def test_a_pdf_over_redox_file_limit_is_refused_for_good_before_any_call():
    too_large = b"%" * (settings.REDOX_FILE_LIMIT_BYTES + 1)

    with pytest.raises(RedoxError, match="Redox accepts files up to 31457280 bytes") as caught:
        prepare_document(too_large, "huge.pdf", client=RedoxClient(auth=None, api_base_url=BASE, upload_url=UPLOAD))

    assert caught.value.retryable is False
    assert len(responses.calls) == 0
