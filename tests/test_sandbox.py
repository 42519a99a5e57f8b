"""The local fake Redox (redox/sandbox/) and the two developer commands around it."""

import copy
import json
import time
from unittest import mock

import jsonschema
import jwt
import pytest
import requests
import responses
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.management import CommandError, call_command

from redox.sandbox.state import SandboxState
from redox.sandbox.validation import load_schema, message_errors, schema_errors

from .conftest import SAMPLES, sample_json
from .sandbox_server import base_url, start_in_thread

VALID = sample_json("results-new-example.json")


@pytest.fixture
def sandbox():
    server = start_in_thread(port=0)
    server.url = base_url(server)
    yield server
    server.shutdown()
    server.server_close()


def legacy_token(sandbox):
    answer = requests.post(f"{sandbox.url}/auth/authenticate", json={"apiKey": "k", "secret": "s"}, timeout=5)
    return answer.json()


def post_message(sandbox, message, token=None):
    token = token or legacy_token(sandbox)["accessToken"]
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    return requests.post(
        f"{sandbox.url}/endpoint",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=5,
    )


def error_texts(answer):
    return [error["Text"] for error in answer.json()["Meta"]["Errors"]]


def control(sandbox, action, **values):
    answer = requests.post(f"{sandbox.url}/_sandbox/{action}", json=values, timeout=5)
    assert answer.status_code == 200
    return answer.json()


# --- Auth ---------------------------------------------------------------------------


def test_legacy_auth_issues_a_token_and_a_single_use_refresh_token(sandbox):
    first = legacy_token(sandbox)
    assert set(first) == {"accessToken", "expires", "refreshToken"}

    refreshed = requests.post(
        f"{sandbox.url}/auth/refreshToken", json={"apiKey": "k", "refreshToken": first["refreshToken"]}, timeout=5
    )
    reused = requests.post(
        f"{sandbox.url}/auth/refreshToken", json={"apiKey": "k", "refreshToken": first["refreshToken"]}, timeout=5
    )

    assert refreshed.status_code == 200
    assert refreshed.json()["accessToken"] != first["accessToken"]
    assert reused.status_code == 401
    assert post_message(sandbox, VALID, token=refreshed.json()["accessToken"]).status_code == 200


def test_legacy_auth_without_a_secret_is_refused(sandbox):
    answer = requests.post(f"{sandbox.url}/auth/authenticate", json={"apiKey": "k"}, timeout=5)

    assert answer.status_code == 401


def assertion(sandbox, *, headers=None, algorithm="RS384", **claims):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    body = {"iss": "c", "sub": "c", "aud": f"{sandbox.url}/v2/auth/token", "iat": now, "exp": now + 300, "jti": "j"}
    signing_key = "a-shared-secret-of-at-least-48-bytes-for-hs384-xxxxxxxx" if algorithm.startswith("HS") else key
    return jwt.encode({**body, **claims}, signing_key, algorithm=algorithm, headers=headers)


def token_request(sandbox, client_assertion):
    return requests.post(
        f"{sandbox.url}/v2/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": client_assertion,
        },
        timeout=5,
    )


def test_jwt_flow_answers_an_access_token_for_a_well_formed_assertion(sandbox):
    answer = token_request(sandbox, assertion(sandbox, headers={"kid": "key-1"}))

    assert answer.status_code == 200
    body = answer.json()
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 300)
    assert post_message(sandbox, VALID, token=body["access_token"]).status_code == 200


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({}, "JWT header kid property is required"),
        ({"headers": {"kid": "k"}, "algorithm": "HS384"}, "JWT header alg must be one of RS384, ES384"),
        ({"headers": {"kid": "k"}, "aud": "https://elsewhere/v2/auth/token"}, "JWT aud must be the token URL"),
        ({"headers": {"kid": "k"}, "sub": "someone-else"}, "JWT iss and sub must both be the client id"),
        ({"headers": {"kid": "k"}, "exp": 1000}, "JWT is expired"),
    ],
)
def test_jwt_flow_refuses_a_malformed_assertion(sandbox, kwargs, text):
    answer = token_request(sandbox, assertion(sandbox, **kwargs))

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    assert text in answer.json()["error_description"]


def test_endpoint_wants_a_token_from_the_auth_flow(sandbox):
    answer = post_message(sandbox, VALID, token="made-up")

    assert answer.status_code == 401
    assert sandbox.state.messages()[0].outcome == "unauthorized"


def test_expired_tokens_are_refused(sandbox):
    token = legacy_token(sandbox)["accessToken"]
    control(sandbox, "expire-tokens")

    assert post_message(sandbox, VALID, token=token).status_code == 401


# --- Validation ---------------------------------------------------------------------


def test_a_valid_message_is_accepted_with_a_log_per_destination_and_kept(sandbox):
    answer = post_message(sandbox, VALID)

    assert answer.status_code == 200
    [log] = answer.json()["Meta"]["Logs"]
    assert set(log) == {"ID", "AttemptID"}
    [summary] = requests.get(f"{sandbox.url}/_sandbox/messages", timeout=5).json()
    assert (summary["outcome"], summary["order_id"], summary["log_ids"]) == ("accepted", "157720311", [log["ID"]])
    assert "body" not in summary
    kept = requests.get(f"{sandbox.url}/_sandbox/messages/{summary['seq']}", timeout=5).json()
    assert kept["body"] == VALID


def without(path):
    """VALID with the field at `path` (a list of keys/indexes) removed."""
    message = copy.deepcopy(VALID)
    target = message
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return message


def with_value(value):
    message = copy.deepcopy(VALID)
    message["Orders"][0]["Results"][0]["Value"] = value
    return message


@pytest.mark.parametrize(
    ("message", "text"),
    [
        (without(["Meta", "Destinations"]), "No subscriptions: Meta.Destinations needs to contain a destination"),
        (without(["Orders", 0, "ID"]), "$.Orders[0].ID is required"),
        (without(["Orders", 0, "Results", 0, "Value"]), "$.Orders[0].Results[0].Value is required"),
        (without(["Orders", 0, "Results", 0, "Status"]), "$.Orders[0].Results[0].Status is required"),
        (without(["Patient", "Identifiers"]), "$.Patient.Identifiers is required"),
        (with_value(""), "Orders[0].Results[0].Value must not be empty"),
        (with_value("not base64!"), "Orders[0].Results[0].Value is neither base64 nor a blob URI"),
        (with_value("aGVsbG8="), "Orders[0].Results[0].Value is not a PDF"),
        (with_value("http://127.0.0.1/blob/unknown"), "Orders[0].Results[0].Value is not a blob URI this source"),
    ],
)
def test_a_message_missing_what_we_promise_is_rejected_with_redox_style_errors(sandbox, message, text):
    answer = post_message(sandbox, message)

    assert answer.status_code == 400
    assert any(error.startswith(text) for error in error_texts(answer)), error_texts(answer)
    assert answer.json()["Meta"]["Errors"][0].keys() == {"ID", "Text", "Type", "Module"}


def test_a_body_that_is_not_json_is_rejected(sandbox):
    answer = post_message(sandbox, b"{not json")

    assert (answer.status_code, error_texts(answer)) == (400, ["Request body is not valid JSON"])


def test_error_texts_name_fields_never_patient_values(sandbox):
    message = copy.deepcopy(VALID)
    message["Patient"]["Demographics"]["LastName"] = 12345
    message["Patient"]["Identifiers"][0]["ID"] = None

    texts = error_texts(post_message(sandbox, message))

    assert texts == [
        "$.Patient.Identifiers[0].ID must be string",
        "$.Patient.Demographics.LastName must be string or null",
    ]


def test_the_schema_check_agrees_with_jsonschema():
    notes = {
        "Meta": {"DataModel": "Notes", "EventType": "New"},
        "Patient": {"Identifiers": []},
        "Note": {"ContentType": "Base64 Encoded", "DocumentType": "x", "DocumentID": "y", "Provider": {"ID": ""}},
    }
    cases = [
        ("Results", VALID),
        ("Results", without(["Orders", 0, "Status"])),
        ("Results", without(["Meta", "EventType"])),
        ("Results", {**VALID, "Orders": {}}),
        ("Results", with_value(None)),
        ("Notes", notes),
        ("Notes", {**notes, "Note": {**notes["Note"], "Provider": {}}}),
        ("Notes", {**notes, "Meta": {**notes["Meta"], "Test": "yes"}}),
    ]
    for data_model, message in cases:
        schema = load_schema(data_model)
        assert (schema_errors(message, schema) == []) == jsonschema.Draft4Validator(schema).is_valid(message)


def test_a_notes_message_needs_base64_content():
    message = {
        "Meta": {"DataModel": "Notes", "EventType": "New", "Destinations": [{"ID": "d"}]},
        "Patient": {"Identifiers": []},
        "Orders": [{"ID": "1"}],
        "Note": {"ContentType": "Plain", "DocumentType": "x", "DocumentID": "y", "Provider": {"ID": "p"}},
    }

    assert message_errors(message) == [
        'Note.ContentType must be "Base64 Encoded"',
        "Note.FileContents must hold the file",
    ]


# --- Uploads ------------------------------------------------------------------------


def test_an_uploaded_file_can_be_referenced_by_its_uri(sandbox):
    token = legacy_token(sandbox)["accessToken"]
    pdf = b"%PDF-1.4 uploaded"

    answer = requests.post(
        f"{sandbox.url}/upload",
        files={"file": ("note.pdf", pdf, "application/pdf")},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )

    assert answer.status_code == 201
    uri = answer.json()["URI"]
    assert uri.startswith(f"{sandbox.url}/blob/")
    assert sandbox.state.blobs[uri] == pdf
    assert post_message(sandbox, with_value(uri), token=token).status_code == 200


def test_an_upload_without_a_file_field_is_refused(sandbox):
    token = legacy_token(sandbox)["accessToken"]

    answer = requests.post(
        f"{sandbox.url}/upload",
        files={"other": ("x", b"x")},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )

    assert answer.status_code == 400


# --- Misbehaving on request -----------------------------------------------------------


def test_fail_next_n_fails_that_many_calls_with_retry_after_then_accepts(sandbox):
    token = legacy_token(sandbox)["accessToken"]
    state = control(sandbox, "fail", count=2, status=429, retry_after=5)
    assert (state["fail_remaining"], state["fail_status"]) == (2, 429)

    answers = [post_message(sandbox, VALID, token=token) for _ in range(3)]

    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[0].headers["Retry-After"] == "5"
    assert error_texts(answers[0]) == ["Sandbox: simulated HTTP 429"]


def test_a_500_failure_sends_no_retry_after(sandbox):
    control(sandbox, "fail", count=1, status=500)

    answer = post_message(sandbox, VALID)

    assert answer.status_code == 500
    assert "Retry-After" not in answer.headers


def test_fail_refuses_a_status_it_does_not_simulate(sandbox):
    answer = requests.post(f"{sandbox.url}/_sandbox/fail", json={"count": 1, "status": 418}, timeout=5)

    assert answer.status_code == 400


def test_reject_next_n_rejects_that_many_with_the_chosen_text(sandbox):
    control(sandbox, "reject", count=1, text="Patient not found in destination")

    first, second = post_message(sandbox, VALID), post_message(sandbox, VALID)

    assert (first.status_code, error_texts(first)) == (400, ["Patient not found in destination"])
    assert second.status_code == 200


def test_reject_all_lasts_until_cleared(sandbox):
    state = control(sandbox, "reject", all=True)
    assert state["reject_remaining"] == "all"

    answers = [post_message(sandbox, VALID).status_code for _ in range(3)]
    control(sandbox, "clear")

    assert answers == [400, 400, 400]
    assert post_message(sandbox, VALID).status_code == 200


def test_forget_drops_what_was_received(sandbox):
    post_message(sandbox, VALID)

    assert control(sandbox, "forget")["received"] == 0


def test_the_page_lists_ids_but_never_bodies_and_its_forms_work_without_javascript(sandbox):
    post_message(sandbox, VALID)
    form = requests.post(
        f"{sandbox.url}/_sandbox/reject",
        data={"count": "2", "text": "<b>bad</b>"},
        allow_redirects=False,
        timeout=5,
    )

    page = requests.get(f"{sandbox.url}/", timeout=5)

    assert (form.status_code, form.headers["Location"]) == (303, "/")
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "157720311" in page.text
    assert sandbox.state.messages()[0].log_ids[0] in page.text
    assert "Samplepatient" not in page.text
    assert VALID["Orders"][0]["Results"][0]["Value"][:40] not in page.text
    assert "rejecting the next 2 messages" in page.text
    assert "&lt;b&gt;bad&lt;/b&gt;" in page.text and "<b>bad</b>" not in page.text
    assert "<script" not in page.text


def test_the_sandbox_keeps_a_bounded_history():
    state = SandboxState(keep=3)
    for _ in range(5):
        state.record(path="/endpoint", http_status=200, outcome="accepted")

    assert [r.seq for r in state.messages()] == [3, 4, 5]


# --- Commands -------------------------------------------------------------------------


def test_redox_sandbox_command_can_start_in_a_failing_mode():
    server = mock.Mock(server_address=("127.0.0.1", 8301))
    server.serve_forever.side_effect = KeyboardInterrupt
    with mock.patch("redox.management.commands.redox_sandbox.make_server", return_value=server) as make:
        call_command("redox_sandbox", "--port", "8301", "--fail-next", "3", "--fail-status", "429", "--reject")

    host, port, state = make.call_args.args
    assert (host, port) == ("127.0.0.1", 8301)
    assert (state.fail_remaining, state.fail_status, state.reject_remaining) == (3, 429, -1)
    server.server_close.assert_called_once()


WEBHOOK = "http://127.0.0.1:8000/redox/webhook/"


@responses.activate
def test_send_test_order_posts_fresh_orders_as_redox_dev_tools_would(capsys, settings):
    settings.REDOX_TEST_VERIFICATION_TOKEN = settings.DEMO_VERIFICATION_TOKEN
    responses.post(WEBHOOK, body="")

    call_command("redox_send_test_order", "--count", "3")

    sample = sample_json("order-new.json")
    bodies = [json.loads(call.request.body) for call in responses.calls]
    assert len(bodies) == 3
    assert len({b["Meta"]["Logs"][0]["ID"] for b in bodies} | {sample["Meta"]["Logs"][0]["ID"]}) == 4
    assert len({b["Meta"]["Logs"][0]["AttemptID"] for b in bodies}) == 3
    assert len({b["Order"]["ID"] for b in bodies} | {sample["Order"]["ID"]}) == 4
    assert bodies[0]["Patient"] == sample["Patient"]
    headers = responses.calls[0].request.headers
    assert headers["verification-token"] == settings.DEMO_VERIFICATION_TOKEN
    assert headers["application-name"] == "RedoxEngine"
    assert headers["Content-Type"] == "application/json"
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(line.endswith("-> HTTP 200") for line in lines)


@responses.activate
def test_send_test_order_can_keep_the_order_id_and_use_another_file_url_and_token(tmp_path, settings):
    settings.REDOX_TEST_VERIFICATION_TOKEN = "from-the-environment"
    responses.post("http://127.0.0.1:8399/hook/", body="")
    grouped = sample_json("order-grouped.json")

    call_command(
        "redox_send_test_order",
        "--file",
        str(SAMPLES / "order-grouped.json"),
        "--url",
        "http://127.0.0.1:8399/hook/",
        "--keep-order-id",
    )

    [call] = responses.calls
    body = json.loads(call.request.body)
    assert [o["ID"] for o in body["Orders"]] == [o["ID"] for o in grouped["Orders"]]
    assert body["Meta"]["Logs"][0]["ID"] != grouped["Meta"]["Logs"][0]["ID"]
    assert call.request.headers["verification-token"] == "from-the-environment"


@responses.activate
def test_send_test_order_fails_when_the_webhook_refuses(capsys):
    responses.post(WEBHOOK, status=401)

    with pytest.raises(CommandError, match="1 of 1 posts were not accepted"):
        call_command("redox_send_test_order", "--token", "wrong")

    assert capsys.readouterr().out.strip().endswith("-> HTTP 401")
