"""How HCOINT proves who it is to Redox: the configuration, the private key, and both token flows.

The flow follows from the settings present (see `load_auth`):
- OAuth 2.0 client credentials with a signed JWT (Redox's recommended flow):
  REDOX_CLIENT_ID, REDOX_KEY_ID and REDOX_PRIVATE_KEY or REDOX_PRIVATE_KEY_FILE;
- the legacy API key flow: REDOX_API_KEY and REDOX_API_SECRET.

`TokenCache` fetches and keeps the Bearer token. It makes its HTTP calls through the
client's transport (`Http`), so every call has the client's timeouts and error mapping,
and this module never imports the client.

One cache per client, and so per process, shared by every thread through a lock, reused
until TOKEN_EXPIRY_MARGIN before it expires. We chose not to share tokens across
processes: doing so would put a bearer credential in the database (the only store every
process shares), and the saving is small, since each worker process mints at most one
JWT token per five minutes (legacy tokens live a day).
"""

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from redox.errors import RedoxError, http_error, json_object, oauth_error_texts, redox_error_texts

# Refresh this long before a token's stated expiry, so a token never expires in flight
# (Redox's JWT tokens live five minutes; Tidepool's client also refreshes one minute early).
TOKEN_EXPIRY_MARGIN = 60
# Lifetime of our signed client assertion; Redox's examples use five minutes.
ASSERTION_LIFETIME = 300
# Used when a legacy token response has no readable `expires`: short, so we re-authenticate soon.
FALLBACK_TOKEN_LIFETIME = 300

JWT_SETTINGS = ("REDOX_CLIENT_ID", "REDOX_KEY_ID", "REDOX_PRIVATE_KEY", "REDOX_PRIVATE_KEY_FILE")
# The Platform API's user-level key: the same signed-JWT flow with a key of its own.
PLATFORM_JWT_SETTINGS = (
    "REDOX_PLATFORM_CLIENT_ID",
    "REDOX_PLATFORM_KEY_ID",
    "REDOX_PLATFORM_PRIVATE_KEY",
    "REDOX_PLATFORM_PRIVATE_KEY_FILE",
)
API_KEY_SETTINGS = ("REDOX_API_KEY", "REDOX_API_SECRET")

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class JwtAuth:
    """OAuth 2.0 client credentials with a signed JWT client assertion."""

    client_id: str
    key_id: str
    private_key: PrivateKey
    algorithm: str  # RS384 for an RSA key, ES384 for an EC key


@dataclass(frozen=True)
class ApiKeyAuth:
    """The legacy API key + secret flow (Redox no longer issues these keys to new orgs)."""

    api_key: str
    secret: str = field(repr=False)


Auth = JwtAuth | ApiKeyAuth


@dataclass(frozen=True)
class Token:
    access_token: str
    expires_at: float  # seconds since the epoch
    refresh_token: str = ""


# --- Configuration ------------------------------------------------------------


def _setting(conf: object, name: str) -> str:
    """A REDOX_* setting as text; "" when it is absent or empty."""
    value = getattr(conf, name, None)
    return str(value) if value else ""


def load_auth(conf: object = None) -> Auth | None:
    """The auth configuration the settings describe, or None when there is none at all.

    `conf` is Django's settings (the default) or any object with the same attributes.
    Raises ImproperlyConfigured, naming the settings, when the configuration is half
    complete, ambiguous, or the private key cannot be read. Called from
    `RedoxConfig.ready()` so a bad configuration stops the process at startup.
    """
    conf = conf or settings
    jwt_given = [name for name in JWT_SETTINGS if _setting(conf, name)]
    key_given = [name for name in API_KEY_SETTINGS if _setting(conf, name)]
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
        return ApiKeyAuth(api_key=_setting(conf, "REDOX_API_KEY"), secret=_setting(conf, "REDOX_API_SECRET"))
    if jwt_given:
        return _jwt_auth(conf, JWT_SETTINGS, "Redox JWT auth")
    return None


def load_platform_auth(conf: object = None) -> JwtAuth | None:
    """The Platform API's user-level key (REDOX_PLATFORM_*, REDOX_ORGANIZATION_ID), or None when unset.

    Optional: without it nothing asks Redox what became of a sent message. Half a
    configuration raises ImproperlyConfigured, like `load_auth`.
    """
    conf = conf or settings
    given = [name for name in (*PLATFORM_JWT_SETTINGS, "REDOX_ORGANIZATION_ID") if _setting(conf, name)]
    if not given:
        return None
    if not _setting(conf, "REDOX_ORGANIZATION_ID"):
        raise ImproperlyConfigured("Redox Platform API auth is half configured: set REDOX_ORGANIZATION_ID.")
    return _jwt_auth(conf, PLATFORM_JWT_SETTINGS, "Redox Platform API auth")


def _jwt_auth(conf: object, names: tuple[str, str, str, str], what: str) -> JwtAuth:
    """The signed-JWT configuration from the settings `names` (client id, key id, key, key file)."""
    client_id, key_id, key, key_file = names
    missing = [name for name in (client_id, key_id) if not _setting(conf, name)]
    has_key = bool(_setting(conf, key))
    has_key_file = bool(_setting(conf, key_file))
    if has_key and has_key_file:
        raise ImproperlyConfigured(f"{what}: set {key} or {key_file}, not both.")
    if not (has_key or has_key_file):
        missing.append(f"{key} or {key_file}")
    if missing:
        raise ImproperlyConfigured(f"{what} is half configured: set {', '.join(missing)}.")
    private_key = _load_private_key(conf, key, key_file)
    algorithm = "ES384" if isinstance(private_key, ec.EllipticCurvePrivateKey) else "RS384"
    return JwtAuth(
        client_id=_setting(conf, client_id),
        key_id=_setting(conf, key_id),
        private_key=private_key,
        algorithm=algorithm,
    )


def _load_private_key(conf: object, key_setting: str, file_setting: str) -> PrivateKey:
    if _setting(conf, key_setting):
        text = _setting(conf, key_setting)
        source = key_setting
        # A PEM pasted into a single-line environment variable usually arrives with literal "\n".
        if "\n" not in text and "\\n" in text:
            text = text.replace("\\n", "\n")
        pem = text.encode()
    else:
        source = file_setting
        try:
            pem = Path(_setting(conf, file_setting)).read_bytes()
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


# --- Tokens -------------------------------------------------------------------


class Http(Protocol):
    """The client's transport: one HTTP call with its timeouts; network failures raise RedoxError."""

    def __call__(self, what: str, method: str, url: str, **kwargs: Any) -> requests.Response: ...


def client_assertion(auth: JwtAuth, *, token_url: str, now: float) -> str:
    """The signed JWT that identifies us to the token endpoint."""
    # https://docs.redoxengine.com/troubleshooting/jwt-authentication-errors
    # Redox finds our public key by `iss` + the `kid` header, which is required.
    issued = int(now)
    claims = {
        "iss": auth.client_id,
        "sub": auth.client_id,
        "aud": token_url,
        "iat": issued,
        "exp": issued + ASSERTION_LIFETIME,
        "jti": secrets.token_urlsafe(24),
    }
    return jwt.encode(claims, auth.private_key, algorithm=auth.algorithm, headers={"kid": auth.key_id, "typ": "JWT"})


class TokenCache:
    """The Bearer token of one client: fetched when needed, at most once at a time."""

    def __init__(self, auth: Auth | None, *, api_base_url: str, http: Http, clock: Callable[[], float]) -> None:
        self.auth = auth
        self.api_base_url = api_base_url.rstrip("/")
        self.http = http
        self.clock = clock
        self._token: Token | None = None
        self._lock = threading.Lock()

    @property
    def token_url(self) -> str:
        return f"{self.api_base_url}/v2/auth/token"

    def access_token(self) -> str:
        """A token valid for at least TOKEN_EXPIRY_MARGIN more seconds."""
        with self._lock:
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
                self._token = self._jwt_token(self.auth)
            else:
                self._token = self._api_key_token(self.auth, self._token)
            return self._token.access_token

    def forget(self, rejected: str) -> None:
        """Drop the cached token if it is the one Redox refused (another thread may have replaced it)."""
        with self._lock:
            if self._token and self._token.access_token == rejected:
                self._token = None

    def _jwt_token(self, auth: JwtAuth) -> Token:
        # https://docs.redoxengine.com/how-to/send-and-manage-requests/authenticate-with-jwt
        # Form-encoded client-credentials grant; the answer has access_token and expires_in.
        what = "Redox token request"
        response = self.http(
            what,
            "POST",
            self.token_url,
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": client_assertion(auth, token_url=self.token_url, now=self.clock()),
            },
        )
        body = _token_answer(what, response)
        try:
            return Token(access_token=body["access_token"], expires_at=self.clock() + float(body["expires_in"]))
        except (KeyError, TypeError, ValueError):
            raise RedoxError(f"{what}: answer without access_token/expires_in", retryable=True) from None

    def _api_key_token(self, auth: ApiKeyAuth, previous: Token | None) -> Token:
        """Refresh the legacy token when we hold a refresh token, else authenticate afresh."""
        if previous and previous.refresh_token:
            try:
                return self._legacy_call(
                    "Redox token refresh",
                    "/auth/refreshToken",
                    {"apiKey": auth.api_key, "refreshToken": previous.refresh_token},
                )
            except RedoxError as exc:
                if exc.status is None or exc.status >= 500 or exc.status == 429:
                    raise
                # The refresh token itself was refused: authenticating with the secret still works.
        return self._legacy_call(
            "Redox authentication", "/auth/authenticate", {"apiKey": auth.api_key, "secret": auth.secret}
        )

    def _legacy_call(self, what: str, path: str, payload: dict[str, str]) -> Token:
        # https://developer.redoxengine.com/getting-started/authenticating-a-source/
        # JSON in; {"accessToken", "expires" (ISO 8601), "refreshToken"} out.
        response = self.http(what, "POST", f"{self.api_base_url}{path}", json=payload)
        body = _token_answer(what, response)
        access_token = body.get("accessToken")
        if not isinstance(access_token, str) or not access_token:
            raise RedoxError(f"{what}: answer without accessToken", retryable=True)
        refresh_token = body.get("refreshToken")
        return Token(
            access_token=access_token,
            expires_at=self._legacy_expiry(body.get("expires")),
            refresh_token=refresh_token if isinstance(refresh_token, str) else "",
        )

    def _legacy_expiry(self, value: object) -> float:
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value).timestamp()
            except ValueError:
                pass
        return self.clock() + FALLBACK_TOKEN_LIFETIME


def _token_answer(what: str, response: requests.Response) -> dict[str, Any]:
    """The JSON of a successful token answer, else a RedoxError.

    Every failure to get a token is retryable: a refused credential is an operations
    problem, and a delivery should wait for the fix rather than fail for good.
    """
    if not 200 <= response.status_code < 300:
        texts = oauth_error_texts(response) or redox_error_texts(response)
        raise http_error(response, what, texts, retryable=True)
    body = json_object(response)
    if body is None:
        raise RedoxError(f"{what}: answer is not a JSON object", retryable=True, status=response.status_code)
    return body
