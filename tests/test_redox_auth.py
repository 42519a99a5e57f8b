"""How the Redox client authenticates: signed-JWT client credentials, legacy API key, the
token cache, and the configuration that chooses between them (redox/auth.py)."""

import json
import threading
import time
from types import SimpleNamespace
from urllib.parse import parse_qs

import jwt
import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured

from redox import auth as redox_auth
from redox import client as redox_client
from redox.apps import check_redox_credentials
from redox.auth import ApiKeyAuth, JwtAuth, load_auth
from redox.client import RedoxClient
from redox.errors import RedoxError

BASE = "https://redox.test"
TOKEN_URL = f"{BASE}/v2/auth/token"
MESSAGE = {"Meta": {"DataModel": "Results", "EventType": "New"}}
ACCEPTED = {"Meta": {"Logs": [{"ID": "log-1", "AttemptID": "attempt-1"}]}}


class Clock:
    """A clock the test moves by hand; starts at the real time so JWT libraries agree on `exp`."""

    def __init__(self):
        self.now = float(int(time.time()))

    def __call__(self):
        return self.now


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key):
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def make_client(auth, clock):
    return RedoxClient(auth=auth, api_base_url=BASE, upload_url="https://blob.redox.test/upload", clock=clock)


def assertion(client):
    """A client assertion as `client` would sign it now."""
    return redox_auth.client_assertion(client.auth, token_url=client.tokens.token_url, now=client.tokens.clock())


def conf(**values):
    names = (*redox_auth.JWT_SETTINGS, *redox_auth.API_KEY_SETTINGS)
    return SimpleNamespace(**{**dict.fromkeys(names), **values})


def token_calls():
    return [call for call in responses.calls if call.request.url == TOKEN_URL]


@responses.activate
def test_jwt_token_request_is_a_form_with_an_rs384_assertion_signed_by_our_key(rsa_key):
    clock = Clock()
    client = make_client(JwtAuth("client-123", "key-7", rsa_key, "RS384"), clock)
    responses.post(TOKEN_URL, json={"access_token": "tok-1", "token_type": "Bearer", "expires_in": 300})
    responses.post(f"{BASE}/endpoint", json=ACCEPTED)

    client.send(MESSAGE)

    token_request = responses.calls[0].request
    assert token_request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = {key: values[0] for key, values in parse_qs(token_request.body).items()}
    assert set(form) == {"grant_type", "client_assertion_type", "client_assertion"}
    assert form["grant_type"] == "client_credentials"
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assertion = form["client_assertion"]
    assert jwt.get_unverified_header(assertion) == {"alg": "RS384", "kid": "key-7", "typ": "JWT"}
    claims = jwt.decode(assertion, rsa_key.public_key(), algorithms=["RS384"], audience=TOKEN_URL)
    assert claims["iss"] == claims["sub"] == "client-123"
    assert claims["aud"] == TOKEN_URL
    assert claims["iat"] == int(clock.now)
    assert claims["exp"] == int(clock.now) + 300
    assert len(claims["jti"]) >= 16
    assert responses.calls[1].request.headers["Authorization"] == "Bearer tok-1"


def test_jwt_signed_by_another_key_does_not_verify(rsa_key):
    client = make_client(JwtAuth("client-123", "key-7", rsa_key, "RS384"), Clock())
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(assertion(client), other.public_key(), algorithms=["RS384"], audience=TOKEN_URL)


def test_each_assertion_has_a_fresh_jti(rsa_key):
    client = make_client(JwtAuth("client-123", "key-7", rsa_key, "RS384"), Clock())

    first, second = (jwt.decode(assertion(client), options={"verify_signature": False}) for _ in "ab")

    assert first["jti"] != second["jti"]


@responses.activate
def test_jwt_token_is_reused_until_a_minute_before_expiry_then_minted_again(rsa_key):
    clock = Clock()
    client = make_client(JwtAuth("client-123", "key-7", rsa_key, "RS384"), clock)
    responses.post(TOKEN_URL, json={"access_token": "tok-1", "expires_in": 300})
    responses.post(TOKEN_URL, json={"access_token": "tok-2", "expires_in": 300})
    responses.post(f"{BASE}/endpoint", json=ACCEPTED)

    client.send(MESSAGE)
    clock.now += 239
    client.send(MESSAGE)
    assert len(token_calls()) == 1

    clock.now += 2
    client.send(MESSAGE)

    assert len(token_calls()) == 2
    bearers = [
        call.request.headers["Authorization"] for call in responses.calls if call.request.url.endswith("/endpoint")
    ]
    assert bearers == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]
    first, second = (parse_qs(call.request.body)["client_assertion"][0] for call in token_calls())
    assert first != second


@responses.activate
def test_legacy_flow_authenticates_with_key_and_secret_then_refreshes(settings):
    clock = Clock()
    client = make_client(ApiKeyAuth("api-key-1", "secret-1"), clock)
    expires = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(clock.now + 24 * 3600))
    responses.post(
        f"{BASE}/auth/authenticate", json={"accessToken": "legacy-1", "expires": expires, "refreshToken": "refresh-1"}
    )
    later = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(clock.now + 48 * 3600))
    responses.post(
        f"{BASE}/auth/refreshToken", json={"accessToken": "legacy-2", "expires": later, "refreshToken": "refresh-2"}
    )
    responses.post(f"{BASE}/endpoint", json=ACCEPTED)

    client.send(MESSAGE)
    clock.now += 23 * 3600
    client.send(MESSAGE)
    clock.now += 3600 - 30
    client.send(MESSAGE)

    paths = [call.request.url.removeprefix(BASE) for call in responses.calls]
    assert paths == ["/auth/authenticate", "/endpoint", "/endpoint", "/auth/refreshToken", "/endpoint"]
    assert json.loads(responses.calls[0].request.body) == {"apiKey": "api-key-1", "secret": "secret-1"}
    assert responses.calls[0].request.headers["Content-Type"] == "application/json"
    assert json.loads(responses.calls[3].request.body) == {"apiKey": "api-key-1", "refreshToken": "refresh-1"}
    assert responses.calls[4].request.headers["Authorization"] == "Bearer legacy-2"


@responses.activate
def test_legacy_refused_refresh_token_falls_back_to_authenticating():
    clock = Clock()
    client = make_client(ApiKeyAuth("api-key-1", "secret-1"), clock)
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock.now + 120))
    responses.post(f"{BASE}/auth/authenticate", json={"accessToken": "a", "expires": soon, "refreshToken": "r"})
    responses.post(f"{BASE}/auth/refreshToken", status=401, json={"Meta": {"Errors": [{"Text": "Invalid"}]}})
    responses.post(f"{BASE}/auth/authenticate", json={"accessToken": "b", "expires": soon, "refreshToken": "r2"})
    responses.post(f"{BASE}/endpoint", json=ACCEPTED)

    client.send(MESSAGE)
    clock.now += 61
    client.send(MESSAGE)

    paths = [call.request.url.removeprefix(BASE) for call in responses.calls]
    assert paths == ["/auth/authenticate", "/endpoint", "/auth/refreshToken", "/auth/authenticate", "/endpoint"]
    assert responses.calls[4].request.headers["Authorization"] == "Bearer b"


@responses.activate
def test_a_refused_credential_is_a_retryable_error_with_the_oauth_error_text(rsa_key):
    client = make_client(JwtAuth("client-123", "key-7", rsa_key, "RS384"), Clock())
    responses.post(
        TOKEN_URL, status=401, json={"error": "invalid_client", "error_description": "JWT signature is invalid"}
    )

    with pytest.raises(RedoxError) as caught:
        client.send(MESSAGE)

    assert caught.value.retryable is True
    assert caught.value.status == 401
    assert str(caught.value) == "Redox token request: HTTP 401: invalid_client: JWT signature is invalid"
    assert len(responses.calls) == 1


@responses.activate
def test_a_token_answer_without_a_token_is_a_retryable_error(rsa_key):
    client = make_client(JwtAuth("client-123", "key-7", rsa_key, "RS384"), Clock())
    responses.post(TOKEN_URL, json={"token_type": "Bearer"})

    with pytest.raises(RedoxError, match="without access_token") as caught:
        client.send(MESSAGE)

    assert caught.value.retryable is True


# --- Configuration -----------------------------------------------------------------


def test_no_redox_settings_at_all_is_allowed():
    assert load_auth(conf()) is None


def test_api_key_settings_choose_the_legacy_flow():
    auth = load_auth(conf(REDOX_API_KEY="k", REDOX_API_SECRET="s"))

    assert auth == ApiKeyAuth("k", "s")


def test_jwt_settings_choose_the_jwt_flow_with_rs384(rsa_key):
    auth = load_auth(conf(REDOX_CLIENT_ID="c", REDOX_KEY_ID="k", REDOX_PRIVATE_KEY=pem(rsa_key)))

    assert isinstance(auth, JwtAuth)
    assert (auth.client_id, auth.key_id, auth.algorithm) == ("c", "k", "RS384")


def test_a_pem_pasted_with_escaped_newlines_is_accepted(rsa_key):
    one_line = pem(rsa_key).replace("\n", "\\n")

    auth = load_auth(conf(REDOX_CLIENT_ID="c", REDOX_KEY_ID="k", REDOX_PRIVATE_KEY=one_line))

    assert auth.private_key.private_numbers() == rsa_key.private_numbers()


def test_an_ec_key_signs_with_es384_and_can_come_from_a_file(tmp_path):
    key = ec.generate_private_key(ec.SECP384R1())
    key_file = tmp_path / "redox.pem"
    key_file.write_text(pem(key))

    auth = load_auth(conf(REDOX_CLIENT_ID="c", REDOX_KEY_ID="k", REDOX_PRIVATE_KEY_FILE=str(key_file)))
    client = make_client(auth, Clock())

    assert auth.algorithm == "ES384"
    claims = jwt.decode(assertion(client), key.public_key(), algorithms=["ES384"], audience=TOKEN_URL)
    assert claims["iss"] == "c"


@pytest.mark.parametrize(
    ("values", "missing"),
    [
        ({"REDOX_CLIENT_ID": "c"}, "set REDOX_KEY_ID, REDOX_PRIVATE_KEY or REDOX_PRIVATE_KEY_FILE."),
        ({"REDOX_KEY_ID": "k", "REDOX_PRIVATE_KEY_FILE": "/x.pem"}, "set REDOX_CLIENT_ID."),
        ({"REDOX_CLIENT_ID": "c", "REDOX_KEY_ID": "k"}, "set REDOX_PRIVATE_KEY or REDOX_PRIVATE_KEY_FILE."),
        ({"REDOX_API_KEY": "k"}, "set REDOX_API_SECRET."),
        ({"REDOX_API_SECRET": "s"}, "set REDOX_API_KEY."),
    ],
)
def test_a_half_complete_configuration_names_what_is_missing(values, missing):
    with pytest.raises(ImproperlyConfigured) as caught:
        load_auth(conf(**values))

    assert str(caught.value).endswith(missing)


def test_settings_for_both_flows_are_refused():
    with pytest.raises(ImproperlyConfigured, match="not both; found REDOX_CLIENT_ID, REDOX_API_KEY"):
        load_auth(conf(REDOX_CLIENT_ID="c", REDOX_API_KEY="k"))


def test_both_a_key_and_a_key_file_are_refused(rsa_key):
    with pytest.raises(ImproperlyConfigured, match="not both"):
        load_auth(
            conf(REDOX_CLIENT_ID="c", REDOX_KEY_ID="k", REDOX_PRIVATE_KEY=pem(rsa_key), REDOX_PRIVATE_KEY_FILE="/x")
        )


def test_an_unreadable_key_file_is_named(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="REDOX_PRIVATE_KEY_FILE: cannot read the file"):
        load_auth(conf(REDOX_CLIENT_ID="c", REDOX_KEY_ID="k", REDOX_PRIVATE_KEY_FILE=str(tmp_path / "missing.pem")))


def test_a_malformed_key_is_refused_without_echoing_it():
    secret_text = "-----BEGIN PRIVATE KEY-----\nnot-a-real-key-but-secret\n-----END PRIVATE KEY-----\n"

    with pytest.raises(ImproperlyConfigured) as caught:
        load_auth(conf(REDOX_CLIENT_ID="c", REDOX_KEY_ID="k", REDOX_PRIVATE_KEY=secret_text))

    assert str(caught.value) == "REDOX_PRIVATE_KEY is not an unencrypted PEM private key."
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_startup_stops_on_a_half_complete_configuration(settings):
    settings.REDOX_API_KEY = "k"

    with pytest.raises(ImproperlyConfigured, match="REDOX_API_SECRET"):
        apps.get_app_config("redox").ready()


def test_deploy_check_flags_missing_credentials(settings):
    assert [error.id for error in check_redox_credentials()] == ["redox.E001"]

    settings.REDOX_API_KEY, settings.REDOX_API_SECRET = "k", "s"

    assert check_redox_credentials() == []


@responses.activate
def test_an_unconfigured_client_raises_a_retryable_error_without_calling_redox():
    client = redox_client.get_client()

    with pytest.raises(RedoxError, match="Redox is not configured") as caught:
        client.send(MESSAGE)

    assert caught.value.retryable is True
    assert len(responses.calls) == 0


def test_the_process_wide_client_follows_settings_changes(settings):
    first = redox_client.get_client()
    assert redox_client.get_client() is first

    settings.REDOX_API_KEY, settings.REDOX_API_SECRET = "k", "s"
    second = redox_client.get_client()

    assert second is not first
    assert second.auth == ApiKeyAuth("k", "s")
    assert second.api_base_url == BASE
    assert second.timeout == (settings.REDOX_CONNECT_TIMEOUT, settings.REDOX_READ_TIMEOUT)


@responses.activate
def test_threads_sharing_a_client_fetch_one_token_between_them():
    client = make_client(ApiKeyAuth("k", "s"), Clock())
    responses.post(f"{BASE}/auth/authenticate", json={"accessToken": "shared", "expires": "2999-01-01T00:00:00Z"})
    responses.post(f"{BASE}/endpoint", json=ACCEPTED)
    start = threading.Barrier(8)
    results = []

    def send():
        start.wait()
        results.append(client.send(MESSAGE).log_id)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == ["log-1"] * 8
    assert len([call for call in responses.calls if call.request.url.endswith("/auth/authenticate")]) == 1
