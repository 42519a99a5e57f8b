"""Every HTTP call HCOINT makes to Redox: one method per endpoint, each with our timeouts.

Nothing else in the project talks HTTP to Redox (the token endpoints are called from
`redox/auth.py` through this client's transport). Callers get one of two outcomes: a
`SendResult` (or a blob URI), or a `RedoxError` (`redox/errors.py`) whose `retryable`
says whether a later try can help.

Also here: `prepare_document`, which decides whether a PDF travels inline or through the
blob store and uploads it when needed, and the process-wide client built from settings
(`get_client`).
"""

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests
from django.conf import settings

from redox.auth import Auth, TokenCache, load_auth, load_platform_auth
from redox.errors import Outcome, RedoxError, classify, error_from_response, json_object, network_error
from redox.messages import Base64File, Document, JsonObject, encode_message
from redox.multipart import FileSource, MultipartBody


@dataclass(frozen=True)
class SendResult:
    status: int
    log_ids: list[str] = field(default_factory=list)

    @property
    def log_id(self) -> str:
        return self.log_ids[0] if self.log_ids else ""


class RedoxClient:
    """One configured connection to Redox. Use `get_client()` for the process-wide one."""

    def __init__(
        self,
        *,
        auth: Auth | None,
        api_base_url: str,
        upload_url: str,
        connect_timeout: float = 5,
        read_timeout: float = 60,
        clock: Callable[[], float] = time.time,
        session: requests.Session | None = None,
    ) -> None:
        self.auth = auth
        self.api_base_url = api_base_url.rstrip("/")
        self.upload_url = upload_url
        self.timeout = (connect_timeout, read_timeout)
        self.session = session or requests.Session()
        self.tokens = TokenCache(auth, api_base_url=self.api_base_url, http=self._http, clock=clock)

    @classmethod
    def from_settings(cls, conf: Any = None) -> "RedoxClient":
        """The client Django's settings (or `conf`, an object with the same attributes) describe."""
        conf = conf or settings
        return cls(
            auth=load_auth(conf),
            api_base_url=conf.REDOX_API_BASE_URL,
            upload_url=conf.REDOX_UPLOAD_URL,
            connect_timeout=conf.REDOX_CONNECT_TIMEOUT,
            read_timeout=conf.REDOX_READ_TIMEOUT,
        )

    # Endpoints ----------------------------------------------------------------

    def send(self, message: JsonObject | bytes | bytearray) -> SendResult:
        """POST a data-model message to /endpoint. Returns SendResult or raises RedoxError.

        `message` is a dict (it may hold `messages.Base64File` values, encoded straight
        into the body) or an already encoded JSON body as bytes.
        """
        # https://docs.redoxengine.com/basics/requests/asynchronous-requests
        # 200 means "accepted by Redox"; Meta.Logs holds one log id per destination.
        body = message if isinstance(message, bytes | bytearray) else encode_message(message)
        response = self._authorized(
            "Redox /endpoint",
            "POST",
            f"{self.api_base_url}/endpoint",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        return SendResult(status=response.status_code, log_ids=_log_ids(response))

    def upload_file(self, content: bytes | FileSource, file_name: str, content_type: str = "application/pdf") -> str:
        """Upload a file to the blob endpoint; returns the URI to reference in a message.

        `content` is the file's bytes, or a FileSource whose pieces are read as they are sent
        (redox/multipart.py), so the file is never whole in memory.
        """
        # https://developer.redoxengine.com/data-exchange/sending-files-through-redox/
        # multipart/form-data, field "file", Bearer token; 201 Created with {"URI": ...}.
        source = content if isinstance(content, FileSource) else FileSource.from_bytes(content)
        body = MultipartBody("file", file_name, content_type, source)
        response = self._authorized(
            "Redox blob upload",
            "POST",
            self.upload_url,
            data=body,
            headers={"Content-Type": body.content_type},
        )
        uri = (json_object(response) or {}).get("URI")
        if not isinstance(uri, str) or not uri:
            status = response.status_code
            raise RedoxError(f"Redox blob upload: HTTP {status} without a URI", retryable=True, status=status)
        return uri

    # Plumbing -----------------------------------------------------------------

    def _authorized(
        self, what: str, method: str, url: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> requests.Response:
        """Make a call with our Bearer token; on 401, re-authenticate once and try again."""
        token = self.tokens.access_token()
        response = self._with_token(what, method, url, token, headers, **kwargs)
        if classify(response.status_code) is Outcome.REAUTH:
            self.tokens.forget(token)
            if hasattr(kwargs.get("data"), "seek"):
                kwargs["data"].seek(0)  # a streamed body (an upload) is sent again from its start
            token = self.tokens.access_token()
            response = self._with_token(what, method, url, token, headers, **kwargs)
        if classify(response.status_code) is not Outcome.OK:
            raise error_from_response(response, what)
        return response

    def _with_token(
        self, what: str, method: str, url: str, token: str, headers: dict[str, str] | None, **kwargs: Any
    ) -> requests.Response:
        headers = {**(headers or {}), "Authorization": f"Bearer {token}"}
        return self._http(what, method, url, headers=headers, **kwargs)

    def _http(self, what: str, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One HTTP call with our timeouts; network failures become retryable RedoxErrors."""
        try:
            # No redirects: requests would replay a POST as a GET elsewhere; a 3xx is an error.
            return self.session.request(method, url, timeout=self.timeout, allow_redirects=False, **kwargs)
        except requests.RequestException as exc:
            raise network_error(what, exc) from exc


# What Redox's log says of a message's latest delivery attempt to the destination.
LOG_STATUSES = ("succeeded", "failed", "filtered", "pending")
FINAL_LOG_STATUSES = ("succeeded", "failed", "filtered")


@dataclass(frozen=True)
class LogStatus:
    """`payload.result.attempts` of a Redox log: the latest attempt's status and how many attempts."""

    status: str  # one of LOG_STATUSES
    attempts: int = 0
    attempt_at: str = ""

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_LOG_STATUSES


class PlatformClient(RedoxClient):
    """The Redox Platform API, with a user-level API key: what became of a message Redox accepted.

    A RedoxClient of its own (its own key, so its own token), sharing the plumbing: the token
    comes from `/v2/auth/token` under REDOX_API_BASE_URL through the same signed-JWT flow.
    Use `get_platform_client()`, which is None when the Platform API is not configured.
    """

    def __init__(self, *, platform_base_url: str, organization_id: str, **kwargs: Any) -> None:
        super().__init__(upload_url="", **kwargs)
        self.platform_base_url = platform_base_url.rstrip("/")
        self.organization_id = organization_id

    @classmethod
    def from_platform_settings(cls, conf: Any = None) -> "PlatformClient | None":
        conf = conf or settings
        auth = load_platform_auth(conf)
        if auth is None:
            return None
        return cls(
            auth=auth,
            api_base_url=conf.REDOX_API_BASE_URL,
            platform_base_url=conf.REDOX_PLATFORM_BASE_URL,
            organization_id=conf.REDOX_ORGANIZATION_ID,
            connect_timeout=conf.REDOX_CONNECT_TIMEOUT,
            read_timeout=conf.REDOX_READ_TIMEOUT,
        )

    def log_status(self, log_id: str) -> LogStatus:
        """GET one log; its latest attempt's status. Raises RedoxError (a 404 is retryable: not indexed yet)."""
        # https://docs.redoxengine.com/api-reference/platform-api/platform-api-reference/logs/get-log-by-id
        # payload.result.attempts.latest.status: succeeded | failed | filtered | pending.
        what = "Redox Platform log"
        organization, log = quote(self.organization_id, safe=""), quote(log_id, safe="")
        url = f"{self.platform_base_url}/v1/organizations/{organization}/logs/{log}"
        try:
            response = self._authorized(what, "GET", url, headers={"Accept": "application/json"})
        except RedoxError as exc:
            if exc.status == 404:
                # A log Redox has not indexed yet, or one of another organization: ask again later.
                raise RedoxError(str(exc), retryable=True, status=404) from None
            raise
        body = json_object(response) or {}
        attempts = _path(body, "payload", "result", "attempts")
        latest = attempts.get("latest") if isinstance(attempts, dict) else None
        status = latest.get("status") if isinstance(latest, dict) else None
        if status not in LOG_STATUSES:
            raise RedoxError(f"{what}: answer without a known attempts.latest.status", retryable=True, status=200)
        total = attempts.get("total") if isinstance(attempts, dict) else 0
        attempt_at = latest.get("attemptAt") if isinstance(latest, dict) else ""
        return LogStatus(
            status=str(status),
            attempts=total if isinstance(total, int) else 0,
            attempt_at=attempt_at if isinstance(attempt_at, str) else "",
        )


def _path(body: dict[str, Any], *keys: str) -> Any:
    value: Any = body
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _log_ids(response: requests.Response) -> list[str]:
    """Redox's `Meta.Logs[].ID` (older responses: `MessageID`) from a successful send."""
    body = json_object(response) or {}
    meta = body.get("Meta")
    logs = meta.get("Logs") if isinstance(meta, dict) else None
    if not isinstance(logs, list):
        logs = []
    ids = [str(log["ID"]) for log in logs if isinstance(log, dict) and log.get("ID")]
    if not ids and body.get("MessageID"):
        ids = [str(body["MessageID"])]
    return ids


def prepare_document(
    content: bytes | FileSource,
    file_name: str,
    *,
    client: RedoxClient | None = None,
    inline_max_bytes: int | None = None,
) -> Document:
    """The Document for a PDF: inline at or under the threshold, else uploaded to Redox's blob store.

    `content` is the PDF's bytes or a FileSource (streamed to the blob store, read whole
    only when small enough to embed). `inline_max_bytes` defaults to
    settings.REDOX_INLINE_MAX_BYTES (Redox advises against embedding more than ~200 KB).
    Raises RedoxError, permanent, for a file over Redox's 30 MB limit, and whatever
    `client.upload_file` raises.
    """
    source = content if isinstance(content, FileSource) else FileSource.from_bytes(content)
    limit = settings.REDOX_FILE_LIMIT_BYTES  # Redox's uploaded-file limit; docs/redox.md
    if source.size > limit:
        raise RedoxError(
            f"The PDF is {source.size} bytes; Redox accepts files up to {limit} bytes.",
            retryable=False,
        )
    if inline_max_bytes is None:
        inline_max_bytes = int(settings.REDOX_INLINE_MAX_BYTES)
    if source.size <= inline_max_bytes:
        data = source.read_all() if isinstance(content, FileSource) else content
        return Document(file_name=file_name, value=Base64File(data))
    client = client or get_client()
    return Document(file_name=file_name, value=client.upload_file(source, file_name), is_uri=True)


# --- The process-wide client --------------------------------------------------

_client: RedoxClient | None = None
_client_pid: int | None = None
_client_lock = threading.Lock()


def get_client() -> RedoxClient:
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


_platform_client: PlatformClient | None = None
_platform_pid: int | None = None


def get_platform_client() -> PlatformClient | None:
    """The process-wide Platform API client (one token, shared by every thread), or None when not configured."""
    global _platform_client, _platform_pid
    with _client_lock:
        if _platform_pid != os.getpid():
            _platform_client = PlatformClient.from_platform_settings()
            _platform_pid = os.getpid()
        return _platform_client


def reset_client(**kwargs: Any) -> None:
    """Forget the process-wide clients; connected to Django's setting_changed signal."""
    global _client, _platform_pid
    setting = kwargs.get("setting", "")
    if setting and not str(setting).startswith("REDOX_"):
        return
    with _client_lock:
        _client = None
        _platform_pid = None
