"""Every HTTP call HCOINT makes to Redox, and how it authenticates.

Nothing else in the project talks HTTP to Redox. Callers get one of two outcomes:
a `SendResult` (or a blob URI), or a `RedoxError` whose `retryable` says whether a later
try can help. Error messages carry the endpoint, the HTTP status and Redox's own error
texts, never a request body: what we send is patient data.

Authentication follows from the settings present (see `load_auth`):
- OAuth 2.0 client credentials with a signed JWT (Redox's recommended flow):
  REDOX_CLIENT_ID, REDOX_KEY_ID and REDOX_PRIVATE_KEY or REDOX_PRIVATE_KEY_FILE;
- the legacy API key flow: REDOX_API_KEY and REDOX_API_SECRET.

Token cache: one per process, shared by every thread through a lock, reused until
TOKEN_EXPIRY_MARGIN before it expires. We chose not to share tokens across processes:
doing so would put a bearer credential in the database (the only store every process
shares), and the saving is small, since each worker process mints at most one JWT token
per five minutes (legacy tokens live a day).
"""

import email.utils
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# Refresh this long before a token's stated expiry, so a token never expires in flight
# (Redox's JWT tokens live five minutes; Tidepool's client also refreshes one minute early).
TOKEN_EXPIRY_MARGIN = 60
# Lifetime of our signed client assertion; Redox's examples use five minutes.
ASSERTION_LIFETIME = 300
# Used when a legacy token response has no readable `expires`: short, so we re-authenticate soon.
FALLBACK_TOKEN_LIFETIME = 300

# https://docs.redoxengine.com/api-reference/error-handling-and-responses/
# The request itself is wrong; sending it again unchanged cannot succeed.
PERMANENT_STATUSES = frozenset({400, 403, 404, 413})

JWT_SETTINGS = ("REDOX_CLIENT_ID", "REDOX_KEY_ID", "REDOX_PRIVATE_KEY", "REDOX_PRIVATE_KEY_FILE")
API_KEY_SETTINGS = ("REDOX_API_KEY", "REDOX_API_SECRET")


class RedoxError(Exception):
    """A failed Redox call. `retryable` says whether trying again later can help.

    `status` is the HTTP status (None for timeouts and connection errors), `retry_after`
    the seconds Redox asked us to wait (None when it did not say), `redox_errors` the
    `Meta.Errors[].Text` strings Redox returned, for staff to read.
    """

    def __init__(self, message, *, retryable, status=None, retry_after=None, redox_errors=()):
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after
        self.redox_errors = list(redox_errors)


@dataclass(frozen=True)
class SendResult:
    status: int
    log_ids: list = field(default_factory=list)

    @property
    def log_id(self):
        return self.log_ids[0] if self.log_ids else ""


@dataclass(frozen=True)
class Token:
    access_token: str
    expires_at: float  # seconds since the epoch
    refresh_token: str = ""


# --- Configuration ------------------------------------------------------------


@dataclass(frozen=True)
class JwtAuth:
    """OAuth 2.0 client credentials with a signed JWT client assertion."""

    client_id: str
    key_id: str
    private_key: object  # a cryptography private key
    algorithm: str  # RS384 for an RSA key, ES384 for an EC key


@dataclass(frozen=True)
class ApiKeyAuth:
    """The legacy API key + secret flow (Redox no longer issues these keys to new orgs)."""

    api_key: str
    secret: str = field(repr=False)


def _present(conf, name):
    return bool(getattr(conf, name, None))


def load_auth(conf=None):
    """The auth configuration the settings describe, or None when there is none at all.

    Raises ImproperlyConfigured, naming the settings, when the configuration is half
    complete, ambiguous, or the private key cannot be read. Called from
    `RedoxConfig.ready()` so a bad configuration stops the process at startup.
    """
    conf = conf or settings
    jwt_given = [name for name in JWT_SETTINGS if _present(conf, name)]
    key_given = [name for name in API_KEY_SETTINGS if _present(conf, name)]
    if jwt_given and key_given:
        raise ImproperlyConfigured(
            "Redox: set either the JWT settings (REDOX_CLIENT_ID, REDOX_KEY_ID, REDOX_PRIVATE_KEY or "
            "REDOX_PRIVATE_KEY_FILE) or the API key settings (REDOX_API_KEY, REDOX_API_SECRET), not both; "
            f"found {', '.join(jwt_given + key_given)}."
        )
    if key_given:
        missing = [name for name in API_KEY_SETTINGS if name not in key_given]
        if missing:
            raise ImproperlyConfigured(f"Redox API key auth is half configured: set {', '.join(missing)}.")
        return ApiKeyAuth(api_key=conf.REDOX_API_KEY, secret=conf.REDOX_API_SECRET)
    if jwt_given:
        missing = [name for name in ("REDOX_CLIENT_ID", "REDOX_KEY_ID") if name not in jwt_given]
        has_key = _present(conf, "REDOX_PRIVATE_KEY")
        has_key_file = _present(conf, "REDOX_PRIVATE_KEY_FILE")
        if has_key and has_key_file:
            raise ImproperlyConfigured("Redox JWT auth: set REDOX_PRIVATE_KEY or REDOX_PRIVATE_KEY_FILE, not both.")
        if not (has_key or has_key_file):
            missing.append("REDOX_PRIVATE_KEY or REDOX_PRIVATE_KEY_FILE")
        if missing:
            raise ImproperlyConfigured(f"Redox JWT auth is half configured: set {', '.join(missing)}.")
        private_key = _load_private_key(conf)
        algorithm = "ES384" if isinstance(private_key, ec.EllipticCurvePrivateKey) else "RS384"
        return JwtAuth(
            client_id=conf.REDOX_CLIENT_ID, key_id=conf.REDOX_KEY_ID, private_key=private_key, algorithm=algorithm
        )
    return None


def _load_private_key(conf):
    if _present(conf, "REDOX_PRIVATE_KEY"):
        pem = conf.REDOX_PRIVATE_KEY
        source = "REDOX_PRIVATE_KEY"
        # A PEM pasted into a single-line environment variable usually arrives with literal "\n".
        if "\n" not in pem and "\\n" in pem:
            pem = pem.replace("\\n", "\n")
        pem = pem.encode()
    else:
        source = "REDOX_PRIVATE_KEY_FILE"
        try:
            pem = Path(conf.REDOX_PRIVATE_KEY_FILE).read_bytes()
        except OSError as exc:
            raise ImproperlyConfigured(f"{source}: cannot read the file ({exc.strerror}).") from None
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        # The message names the setting only: the key text must never reach a log.
        raise ImproperlyConfigured(f"{source} is not an unencrypted PEM private key.") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ImproperlyConfigured(f"{source} must be an RSA key (RS384) or an EC key (ES384).")
    return key


# --- Errors -------------------------------------------------------------------


def _retry_after_seconds(response):
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return int(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0, round(when.timestamp() - time.time()))


def _json_object(response):
    """The response body when it is a JSON object, else None."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _redox_error_texts(response):
    """`Meta.Errors[].Text` from a Redox error body; empty when the body is not Redox JSON."""
    try:
        errors = response.json()["Meta"]["Errors"]
    except (ValueError, KeyError, TypeError):
        return []
    if not isinstance(errors, list):
        return []
    return [str(error["Text"]) for error in errors if isinstance(error, dict) and error.get("Text")]


def _oauth_error_text(response):
    """`error` / `error_description` from an OAuth token error (RFC 6749 section 5.2)."""
    body = _json_object(response) or {}
    text = ": ".join(str(body[key]) for key in ("error", "error_description") if body.get(key))
    return [text] if text else []


def error_from_response(response, what):
    """The RedoxError for a non-success `response` to the call described by `what`."""
    status = response.status_code
    # 401 (after our one re-authentication), 408, 429 and 5xx pass with time; any other
    # 4xx says the request is wrong and will stay wrong.
    transient_4xx = status in (401, 408, 429)
    retryable = status not in PERMANENT_STATUSES and (transient_4xx or not 400 <= status < 500)
    return _http_error(response, what, _redox_error_texts(response), retryable=retryable)


def _http_error(response, what, texts, *, retryable):
    """A RedoxError naming the call and the HTTP status, with the error texts Redox gave."""
    message = f"{what}: HTTP {response.status_code}"
    if texts:
        message += ": " + "; ".join(texts)
    return RedoxError(
        message,
        retryable=retryable,
        status=response.status_code,
        retry_after=_retry_after_seconds(response),
        redox_errors=texts,
    )


# --- The client ---------------------------------------------------------------


class RedoxClient:
    """One configured connection to Redox. Use `get_client()` for the process-wide one."""

    def __init__(
        self,
        *,
        auth,
        api_base_url,
        upload_url,
        connect_timeout=5,
        read_timeout=60,
        clock=time.time,
        session=None,
    ):
        self.auth = auth
        self.api_base_url = api_base_url.rstrip("/")
        self.upload_url = upload_url
        self.timeout = (connect_timeout, read_timeout)
        self.clock = clock
        self.session = session or requests.Session()
        self._token = None
        self._token_lock = threading.Lock()

    @classmethod
    def from_settings(cls, conf=None):
        conf = conf or settings
        return cls(
            auth=load_auth(conf),
            api_base_url=conf.REDOX_API_BASE_URL,
            upload_url=conf.REDOX_UPLOAD_URL,
            connect_timeout=conf.REDOX_CONNECT_TIMEOUT,
            read_timeout=conf.REDOX_READ_TIMEOUT,
        )

    @property
    def token_url(self):
        return f"{self.api_base_url}/v2/auth/token"

    # Data calls -------------------------------------------------------------

    def send(self, message):
        """POST a data-model message to /endpoint. Returns SendResult or raises RedoxError.

        `message` is a dict (it may hold `outbound.Base64File` values, encoded straight
        into the body) or an already encoded JSON body as bytes.
        """
        # https://docs.redoxengine.com/basics/requests/asynchronous-requests
        # 200 means "accepted by Redox"; Meta.Logs holds one log id per destination.
        # Imported here because redox.outbound imports RedoxError from this module.
        from redox.outbound import encode_message

        body = message if isinstance(message, bytes | bytearray) else encode_message(message)
        response = self._authorized(
            "Redox /endpoint",
            "POST",
            f"{self.api_base_url}/endpoint",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        return SendResult(status=response.status_code, log_ids=_log_ids(response))

    def upload_file(self, content, file_name, content_type="application/pdf"):
        """Upload a file to the blob endpoint; returns the URI to reference in a message."""
        # https://developer.redoxengine.com/data-exchange/sending-files-through-redox/
        # multipart/form-data, field "file", Bearer token; 201 Created with {"URI": ...}.
        response = self._authorized(
            "Redox blob upload",
            "POST",
            self.upload_url,
            files={"file": (file_name, content, content_type)},
        )
        try:
            uri = response.json()["URI"]
        except (ValueError, KeyError, TypeError):
            uri = None
        if not isinstance(uri, str) or not uri:
            status = response.status_code
            raise RedoxError(f"Redox blob upload: HTTP {status} without a URI", retryable=True, status=status)
        return uri

    def _authorized(self, what, method, url, *, headers=None, **kwargs):
        """Make a call with our Bearer token; on 401, re-authenticate once and try again."""
        token = self._access_token()
        response = self._request(what, method, url, token, headers, **kwargs)
        if response.status_code == 401:
            self._forget_token(token)
            token = self._access_token()
            response = self._request(what, method, url, token, headers, **kwargs)
        if not 200 <= response.status_code < 300:
            raise error_from_response(response, what)
        return response

    def _request(self, what, method, url, token, headers, **kwargs):
        headers = {**(headers or {}), "Authorization": f"Bearer {token}"}
        return self._http(what, method, url, headers=headers, **kwargs)

    def _http(self, what, method, url, **kwargs):
        """One HTTP call with our timeouts; network failures become retryable RedoxErrors."""
        try:
            # No redirects: requests would replay a POST as a GET elsewhere; a 3xx is an error.
            return self.session.request(method, url, timeout=self.timeout, allow_redirects=False, **kwargs)
        except requests.ConnectTimeout as exc:
            raise RedoxError(f"{what}: connection timed out", retryable=True) from exc
        except requests.Timeout as exc:
            # Redox may have accepted the message before the read timed out; the delivery
            # reference in the message lets a duplicate be recognised downstream.
            raise RedoxError(f"{what}: no response in time", retryable=True) from exc
        except requests.ConnectionError as exc:
            raise RedoxError(f"{what}: connection failed", retryable=True) from exc
        except requests.RequestException as exc:
            raise RedoxError(f"{what}: request failed ({type(exc).__name__})", retryable=True) from exc

    # Tokens -------------------------------------------------------------------

    def _access_token(self):
        """A token valid for at least TOKEN_EXPIRY_MARGIN more seconds, fetched at most once at a time."""
        with self._token_lock:
            now = self.clock()
            if self._token and self._token.expires_at - TOKEN_EXPIRY_MARGIN > now:
                return self._token.access_token
            if self.auth is None:
                # Retryable: a delivery waits for the configuration rather than failing for good.
                raise RedoxError(
                    "Redox is not configured: set REDOX_CLIENT_ID, REDOX_KEY_ID and REDOX_PRIVATE_KEY "
                    "(or REDOX_PRIVATE_KEY_FILE), or REDOX_API_KEY and REDOX_API_SECRET",
                    retryable=True,
                )
            if isinstance(self.auth, JwtAuth):
                self._token = self._jwt_token()
            else:
                self._token = self._api_key_token(self._token)
            return self._token.access_token

    def _forget_token(self, rejected):
        """Drop the cached token if it is the one Redox refused (another thread may have replaced it)."""
        with self._token_lock:
            if self._token and self._token.access_token == rejected:
                self._token = None

    def client_assertion(self):
        """The signed JWT that identifies us to the token endpoint."""
        # https://docs.redoxengine.com/troubleshooting/jwt-authentication-errors
        # Redox finds our public key by `iss` + the `kid` header, which is required.
        now = int(self.clock())
        claims = {
            "iss": self.auth.client_id,
            "sub": self.auth.client_id,
            "aud": self.token_url,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
            "jti": secrets.token_urlsafe(24),
        }
        return jwt.encode(
            claims,
            self.auth.private_key,
            algorithm=self.auth.algorithm,
            headers={"kid": self.auth.key_id, "typ": "JWT"},
        )

    def _jwt_token(self):
        # https://docs.redoxengine.com/how-to/send-and-manage-requests/authenticate-with-jwt
        # Form-encoded client-credentials grant; the answer has access_token and expires_in.
        what = "Redox token request"
        response = self._http(
            what,
            "POST",
            self.token_url,
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": self.client_assertion(),
            },
        )
        body = self._auth_body(what, response)
        try:
            return Token(access_token=body["access_token"], expires_at=self.clock() + float(body["expires_in"]))
        except (KeyError, TypeError, ValueError):
            raise RedoxError(f"{what}: answer without access_token/expires_in", retryable=True) from None

    def _api_key_token(self, previous):
        """Refresh the legacy token when we hold a refresh token, else authenticate afresh."""
        if previous and previous.refresh_token:
            try:
                return self._legacy_call(
                    "Redox token refresh",
                    "/auth/refreshToken",
                    {"apiKey": self.auth.api_key, "refreshToken": previous.refresh_token},
                )
            except RedoxError as exc:
                if exc.status is None or exc.status >= 500 or exc.status == 429:
                    raise
                # The refresh token itself was refused: authenticating with the secret still works.
        return self._legacy_call(
            "Redox authentication",
            "/auth/authenticate",
            {"apiKey": self.auth.api_key, "secret": self.auth.secret},
        )

    def _legacy_call(self, what, path, payload):
        # https://developer.redoxengine.com/getting-started/authenticating-a-source/
        # JSON in; {"accessToken", "expires" (ISO 8601), "refreshToken"} out.
        response = self._http(what, "POST", f"{self.api_base_url}{path}", json=payload)
        body = self._auth_body(what, response)
        access_token = body.get("accessToken")
        if not isinstance(access_token, str) or not access_token:
            raise RedoxError(f"{what}: answer without accessToken", retryable=True)
        return Token(
            access_token=access_token,
            expires_at=self._legacy_expiry(body.get("expires")),
            refresh_token=body.get("refreshToken") or "",
        )

    def _legacy_expiry(self, value):
        try:
            return datetime.fromisoformat(value).timestamp()
        except (TypeError, ValueError):
            return self.clock() + FALLBACK_TOKEN_LIFETIME

    def _auth_body(self, what, response):
        """The JSON of a successful token answer, else a RedoxError.

        Every failure to get a token is retryable: a refused credential is an operations
        problem, and a delivery should wait for the fix rather than fail for good.
        """
        if not 200 <= response.status_code < 300:
            texts = _oauth_error_text(response) or _redox_error_texts(response)
            raise _http_error(response, what, texts, retryable=True)
        body = _json_object(response)
        if body is None:
            raise RedoxError(f"{what}: answer is not a JSON object", retryable=True, status=response.status_code)
        return body


def _log_ids(response):
    """Redox's `Meta.Logs[].ID` (older responses: `MessageID`) from a successful send."""
    body = _json_object(response) or {}
    meta = body.get("Meta") if isinstance(body.get("Meta"), dict) else {}
    logs = meta.get("Logs") if isinstance(meta.get("Logs"), list) else []
    ids = [str(log["ID"]) for log in logs if isinstance(log, dict) and log.get("ID")]
    if not ids and body.get("MessageID"):
        ids = [str(body["MessageID"])]
    return ids


# --- The process-wide client --------------------------------------------------

_client = None
_client_pid = None
_client_lock = threading.Lock()


def get_client():
    """The process-wide client configured from settings.

    Built on first use and rebuilt after a fork (a requests session must not be shared
    across processes) or when a REDOX_* setting changes (tests use override_settings).
    """
    global _client, _client_pid
    with _client_lock:
        if _client is None or _client_pid != os.getpid():
            _client = RedoxClient.from_settings()
            _client_pid = os.getpid()
        return _client


def reset_client(**kwargs):
    """Forget the process-wide client; connected to Django's setting_changed signal."""
    global _client
    setting = kwargs.get("setting", "")
    if setting and not setting.startswith("REDOX_"):
        return
    with _client_lock:
        _client = None
