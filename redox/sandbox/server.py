"""The sandbox's HTTP server: routing and one handler per Redox endpoint or control action."""

import json
import uuid
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.conf import settings

from redox.sandbox.page import render_page
from redox.sandbox.payloads import (
    json_object,
    message_ids,
    multipart_file,
    nonempty_str,
    platform_log_body,
    redox_errors,
)
from redox.sandbox.state import SandboxState
from redox.sandbox.validation import jwt_errors, message_errors

# Redox's limits: 40 MB per API request; the uploaded-file limit is settings.REDOX_FILE_LIMIT_BYTES
# (30 MB, quotas-and-constraints).
MAX_REQUEST_BYTES = 40 * 1024 * 1024
JWT_TOKEN_TTL = 300  # Redox's OAuth tokens live five minutes
LEGACY_TOKEN_TTL = 24 * 3600  # legacy tokens live a day


class SandboxServer(ThreadingHTTPServer):
    """A threading HTTP server that holds the sandbox's state for its handlers."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], *, state: SandboxState, quiet: bool) -> None:
        super().__init__(address, SandboxHandler)
        self.state = state
        self.quiet = quiet

    def origin(self) -> str:
        """http://host:port of this server, as bound."""
        host, port = self.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}"


class SandboxHandler(BaseHTTPRequestHandler):
    server_version = "RedoxSandbox/1"
    # HTTP/1.1 so the client's session can keep its connection; every answer sets Content-Length.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without this, Nagle's algorithm meets the
    # client's delayed ACK and every answer waits ~40 ms.
    disable_nagle_algorithm = True

    @property
    def sandbox(self) -> SandboxServer:
        if not isinstance(self.server, SandboxServer):
            raise TypeError("SandboxHandler serves only a SandboxServer (see make_server)")
        return self.server

    @property
    def state(self) -> SandboxState:
        return self.sandbox.state

    def log_message(self, format: str, *args: Any) -> None:
        if not self.sandbox.quiet:
            super().log_message(format, *args)

    # Plumbing
    def _send(
        self,
        status: int,
        body: bytes | str | dict[str, Any] | list[Any] = b"",
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        if isinstance(body, dict | list):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _read_body(self, limit: int) -> bytes | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > limit:
            # Too large to keep; the connection is closed rather than drained.
            self.close_connection = True
            return None
        return self.rfile.read(length) if length else b""

    def _bearer(self) -> str | None:
        value = self.headers.get("Authorization", "")
        scheme, _, token = value.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and self.state.token_valid(token.strip()) else None

    def _origin(self) -> str:
        """This server as the client addressed it (the JWT audience and blob URIs use it)."""
        host = self.headers.get("Host")
        return f"http://{host}" if host else self.sandbox.origin()

    def _form_or_json(self, body: bytes) -> dict[str, Any]:
        if self.headers.get("Content-Type", "").startswith("application/json"):
            data = json.loads(body or b"{}")
            return data if isinstance(data, dict) else {}
        return {key: values[-1] for key, values in parse_qs(body.decode()).items()}

    def _done(self, is_form: bool) -> None:
        if is_form:
            self._send(HTTPStatus.SEE_OTHER, headers={"Location": "/"})
        else:
            self._send(HTTPStatus.OK, self.state.snapshot())

    # Routing
    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/":
            self._send(HTTPStatus.OK, render_page(self.state), "text/html; charset=utf-8")
        elif path == "/_sandbox/state":
            self._send(HTTPStatus.OK, self.state.snapshot())
        elif path == "/_sandbox/messages":
            self._send(HTTPStatus.OK, [r.summary() for r in self.state.messages()])
        elif path.startswith("/platform/"):
            self.platform_log(path)
        elif path.startswith("/_sandbox/messages/") and path.rsplit("/", 1)[1].isdigit():
            received = self.state.find(int(path.rsplit("/", 1)[1]))
            if received is None:
                self._send(HTTPStatus.NOT_FOUND, {"error": "no such message"})
            else:
                self._send(HTTPStatus.OK, {**received.summary(), "body": received.body})
        else:
            self._send(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        routes = {
            "/auth/authenticate": self.auth_authenticate,
            "/auth/refreshToken": self.auth_refresh,
            "/v2/auth/token": self.auth_token,
            "/endpoint": self.endpoint,
            "/upload": self.upload,
            "/_sandbox/fail": self.control_fail,
            "/_sandbox/reject": self.control_reject,
            "/_sandbox/clear": self.control_clear,
            "/_sandbox/forget": self.control_forget,
            "/_sandbox/expire-tokens": self.control_expire_tokens,
            "/_sandbox/log": self.control_log,
            "/_sandbox/log-default": self.control_log_default,
        }
        handler = routes.get(path)
        limit = settings.REDOX_FILE_LIMIT_BYTES + 1024 * 1024 if path == "/upload" else MAX_REQUEST_BYTES
        body = self._read_body(limit)
        if body is None:
            self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, redox_errors(["Request body is too large"]))
        elif handler is None:
            self._send(HTTPStatus.NOT_FOUND, {"error": "not found"})
        else:
            handler(body)

    # Legacy API key auth: developer.redoxengine.com/getting-started/authenticating-a-source/
    def auth_authenticate(self, body: bytes) -> None:
        data = json_object(body)
        if not (nonempty_str(data.get("apiKey")) and nonempty_str(data.get("secret"))):
            self._send(HTTPStatus.UNAUTHORIZED, redox_errors(["Invalid request: apiKey and secret are required"]))
            return
        self._legacy_tokens(data["apiKey"])

    def auth_refresh(self, body: bytes) -> None:
        data = json_object(body)
        api_key, refresh = data.get("apiKey"), data.get("refreshToken")
        if not (nonempty_str(api_key) and nonempty_str(refresh) and self.state.use_refresh_token(refresh, api_key)):
            self._send(HTTPStatus.UNAUTHORIZED, redox_errors(["Invalid refresh token"]))
            return
        self._legacy_tokens(api_key)

    def _legacy_tokens(self, api_key: str) -> None:
        token, refresh = self.state.issue_token(LEGACY_TOKEN_TTL, api_key=api_key)
        expires = datetime.fromtimestamp(self.state.clock() + LEGACY_TOKEN_TTL, UTC)
        self._send(
            HTTPStatus.OK,
            {"accessToken": token, "expires": expires.isoformat().replace("+00:00", "Z"), "refreshToken": refresh},
        )

    # OAuth 2.0 + signed JWT: docs.redoxengine.com/how-to/send-and-manage-requests/authenticate-with-jwt
    def auth_token(self, body: bytes) -> None:
        form = {key: values[-1] for key, values in parse_qs(body.decode(errors="replace")).items()}
        errors = []
        if form.get("grant_type") != "client_credentials":
            errors.append("grant_type must be client_credentials")
        if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            errors.append("client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        errors += jwt_errors(
            form.get("client_assertion", ""), token_url=f"{self._origin()}/v2/auth/token", now=self.state.clock()
        )
        if errors:
            self._send(HTTPStatus.BAD_REQUEST, {"error": "invalid_request", "error_description": "; ".join(errors)})
            return
        token, _ = self.state.issue_token(JWT_TOKEN_TTL)
        self._send(
            HTTPStatus.OK,
            {"access_token": token, "token_type": "Bearer", "expires_in": JWT_TOKEN_TTL, "scope": "sandbox"},
        )

    # Data: developer.redoxengine.com/redox-json-api/initiating-requests/send/
    def endpoint(self, body: bytes) -> None:
        if not self._bearer():
            self.state.record(path="/endpoint", http_status=401, outcome="unauthorized", size=len(body))
            self._send(HTTPStatus.UNAUTHORIZED, redox_errors(["Invalid or expired access token"]))
            return
        if self._simulated_failure("/endpoint", body):
            return
        try:
            message = json.loads(body)
        except ValueError:
            message = None
        meta = message.get("Meta") if isinstance(message, dict) else None
        if not isinstance(meta, dict):
            meta = {}
        data_model, event_type = meta.get("DataModel"), meta.get("EventType")
        ids = message_ids(message)
        if message is None:
            errors = ["Request body is not valid JSON"]
        else:
            rejection = self.state.take_rejection()
            errors = [rejection] if rejection else message_errors(message, known_blobs=self.state.known_blobs())
        if errors:
            self.state.record(
                path="/endpoint",
                http_status=400,
                outcome="rejected",
                data_model=str(data_model or ""),
                errors=errors,
                size=len(body),
                body=message,
                **ids,
            )
            self._send(HTTPStatus.BAD_REQUEST, redox_errors(errors, data_model, event_type))
            return
        logs = [{"ID": str(uuid.uuid4()), "AttemptID": str(uuid.uuid4())} for _ in meta["Destinations"]]
        self.state.add_logs([log["ID"] for log in logs])
        received = self.state.record(
            path="/endpoint",
            http_status=200,
            outcome="accepted",
            data_model=data_model,
            log_ids=[log["ID"] for log in logs],
            size=len(body),
            body=message,
            **ids,
        )
        self._send(
            HTTPStatus.OK,
            {"Meta": {"DataModel": data_model, "EventType": event_type, "Message": {"ID": received.seq}, "Logs": logs}},
        )

    # Platform API, Get log by id (the same token flow as the data API):
    # docs.redoxengine.com/api-reference/platform-api/platform-api-reference/logs/get-log-by-id
    def platform_log(self, path: str) -> None:
        parts = path.strip("/").split("/")
        # platform / v1 / organizations / {organizationId} / logs / {logId}
        if len(parts) != 6 or parts[1:3] != ["v1", "organizations"] or parts[4] != "logs" or not parts[3]:
            self._send(HTTPStatus.NOT_FOUND, {"error": "not found"})
            return
        if not self._bearer():
            self._send(HTTPStatus.UNAUTHORIZED, {"error": "Invalid or expired access token"})
            return
        log_id = parts[5]
        status = self.state.log_status(log_id)
        if status is None:
            self._send(HTTPStatus.NOT_FOUND, {"error": "log not found"})
            return
        self._send(HTTPStatus.OK, platform_log_body(log_id, status))

    # Blob upload: developer.redoxengine.com/data-exchange/sending-files-through-redox/
    def upload(self, body: bytes) -> None:
        if not self._bearer():
            self.state.record(path="/upload", http_status=401, outcome="unauthorized", size=len(body))
            self._send(HTTPStatus.UNAUTHORIZED, redox_errors(["Invalid or expired access token"]))
            return
        if self._simulated_failure("/upload", body):
            return
        content = multipart_file(self.headers.get("Content-Type", ""), body)
        if content is None:
            self.state.record(path="/upload", http_status=400, outcome="rejected", errors=["No file field"])
            self._send(HTTPStatus.BAD_REQUEST, redox_errors(["multipart/form-data with a file field is required"]))
            return
        if len(content) > settings.REDOX_FILE_LIMIT_BYTES:
            self.state.record(path="/upload", http_status=413, outcome="rejected", errors=["File too large"])
            self._send(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                redox_errors([f"File is larger than {settings.REDOX_FILE_LIMIT_BYTES // (1024 * 1024)} MB"]),
            )
            return
        uri = f"{self._origin()}/blob/{uuid.uuid4()}"
        self.state.add_blob(uri, content)
        self.state.record(path="/upload", http_status=201, outcome="uploaded", delivery_ref=uri, size=len(content))
        self._send(HTTPStatus.CREATED, {"URI": uri})

    def _simulated_failure(self, path: str, body: bytes) -> bool:
        failure = self.state.take_failure()
        if failure is None:
            return False
        status, retry_after = failure
        self.state.record(path=path, http_status=status, outcome="failed", size=len(body))
        headers = {"Retry-After": str(retry_after)} if status in (429, 503) else {}
        self._send(status, redox_errors([f"Sandbox: simulated HTTP {status}"]), headers=headers)
        return True

    # Control surface
    def control_fail(self, body: bytes) -> None:
        is_form, data = self._control_input(body)
        try:
            self.state.fail_next(
                int(data.get("count", 1)),
                status=int(data.get("status", 500)),
                retry_after=int(data.get("retry_after", 2)),
            )
        except (TypeError, ValueError) as exc:
            self._send(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        self._done(is_form)

    def control_reject(self, body: bytes) -> None:
        is_form, data = self._control_input(body)
        every = str(data.get("all", "")).lower() in ("1", "true", "on", "yes")
        try:
            count = None if every or data.get("count") in (None, "") else int(data["count"])
        except (TypeError, ValueError):
            self._send(HTTPStatus.BAD_REQUEST, {"error": "count must be a whole number"})
            return
        self.state.reject(count, data.get("text"))
        self._done(is_form)

    def control_clear(self, body: bytes) -> None:
        is_form, _ = self._control_input(body)
        self.state.clear()
        self._done(is_form)

    def control_forget(self, body: bytes) -> None:
        is_form, _ = self._control_input(body)
        self.state.forget()
        self._done(is_form)

    def control_expire_tokens(self, body: bytes) -> None:
        is_form, _ = self._control_input(body)
        self.state.expire_tokens()
        self._done(is_form)

    def control_log(self, body: bytes) -> None:
        """Set a log's status (`log_id`), or every pending log's when `log_id` is empty."""
        is_form, data = self._control_input(body)
        log_id = str(data.get("log_id") or "").strip() or None
        try:
            self.state.set_log_status(log_id, str(data.get("status", "")))
        except ValueError as exc:
            self._send(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        self._done(is_form)

    def control_log_default(self, body: bytes) -> None:
        is_form, data = self._control_input(body)
        try:
            self.state.set_log_default(str(data.get("status", "")))
        except ValueError as exc:
            self._send(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        self._done(is_form)

    def _control_input(self, body: bytes) -> tuple[bool, dict[str, Any]]:
        is_form = not self.headers.get("Content-Type", "").startswith("application/json")
        try:
            return is_form, self._form_or_json(body)
        except ValueError:
            return is_form, {}


def make_server(
    host: str = "127.0.0.1", port: int = 8001, state: SandboxState | None = None, *, quiet: bool = False
) -> SandboxServer:
    """A sandbox server bound to host:port (port 0 picks a free one); call serve_forever()."""
    return SandboxServer((host, port), state=state or SandboxState(), quiet=quiet)
