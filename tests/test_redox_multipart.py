"""The Redox blob upload streams its multipart body (redox/multipart.py): the same bytes
requests' `files=` would send, with a Content-Length, the file's pieces pulled as sent."""

import pytest
import responses
from urllib3.filepost import encode_multipart_formdata

from redox.auth import ApiKeyAuth
from redox.client import RedoxClient
from redox.multipart import FileSource, MultipartBody
from tests.conftest import sample_bytes

PDF = sample_bytes("clinical-note.pdf")
BASE = "https://redox.test"
UPLOAD = "https://blob.redox.test/upload"


def in_pieces(data, size, opened=None):
    """A FileSource over `data` in pieces of `size`, counting how often it is opened and what it gave."""

    def open_():
        if opened is not None:
            opened.append([])
        for start in range(0, len(data), size):
            if opened is not None:
                opened[-1].append(start)
            yield data[start : start + size]

    return FileSource(size=len(data), open=open_)


def read_all(body, block=7):
    out = b""
    while piece := body.read(block):
        out += piece
    return out


@pytest.mark.parametrize("file_name", ["note.pdf", 'Nguyễn note "1".pdf'])
def test_the_body_is_what_urllib3_would_build_for_the_same_field(file_name):
    body = MultipartBody("file", file_name, "application/pdf", in_pieces(PDF, 100))
    expected, content_type = encode_multipart_formdata(
        {"file": (file_name, PDF, "application/pdf")}, boundary=body.boundary
    )
    assert read_all(body) == expected
    assert (len(body), body.content_type) == (len(expected), content_type)
    assert body.read(10) == b""  # and then it is at its end


def test_pieces_are_pulled_only_as_the_body_is_read_and_again_after_a_rewind():
    opened = []
    body = MultipartBody("file", "n.pdf", "application/pdf", in_pieces(PDF, 100, opened))
    body.read(len(PDF) // 2)
    assert len(opened) == 1 and max(opened[0]) < len(PDF) // 2  # not the whole file
    first = body.tell()
    assert body.seek(0) == 0 and body.tell() == 0
    whole = read_all(body, block=4096)
    assert len(opened) == 2 and len(whole) == len(body) and first < len(whole)
    with pytest.raises(OSError, match="rewound to its start"):
        body.seek(5)


@pytest.mark.parametrize("claimed", [len(PDF) - 1, len(PDF) + 1])
def test_a_source_that_does_not_hold_its_size_never_completes_the_body(claimed):
    source = FileSource(size=claimed, open=lambda: iter([PDF]))
    body = MultipartBody("file", "n.pdf", "application/pdf", source)
    with pytest.raises(ValueError, match="said to hold"):
        read_all(body)


def test_read_all_builds_the_file_and_checks_its_length():
    assert in_pieces(PDF, 64).read_all() == PDF
    with pytest.raises(ValueError, match="said to hold"):
        FileSource(size=len(PDF) + 1, open=lambda: iter([PDF])).read_all()


@responses.activate
def test_the_upload_has_a_content_length_and_resends_the_whole_file_after_a_401():
    responses.post(f"{BASE}/auth/authenticate", json={"accessToken": "stale", "expires": "2999-01-01T00:00:00Z"})
    responses.post(f"{BASE}/auth/authenticate", json={"accessToken": "fresh", "expires": "2999-01-01T00:00:00Z"})
    responses.post(UPLOAD, status=401)
    responses.post(UPLOAD, status=201, json={"URI": "https://blob.redoxengine.com/x"})
    client = RedoxClient(auth=ApiKeyAuth("k", "s"), api_base_url=BASE, upload_url=UPLOAD)
    opened = []

    assert client.upload_file(in_pieces(PDF, 100, opened), "note.pdf") == "https://blob.redoxengine.com/x"

    calls = [call for call in responses.calls if call.request.url == UPLOAD]
    assert [call.request.headers["Authorization"] for call in calls] == ["Bearer stale", "Bearer fresh"]
    last = calls[1].request
    assert "Transfer-Encoding" not in last.headers
    assert last.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert int(last.headers["Content-Length"]) == len(last.body) and PDF in last.body
    assert len(opened) == 2 and all(len(starts) == -(-len(PDF) // 100) for starts in opened)
