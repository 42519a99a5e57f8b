"""A fake Redox on localhost, for development, demos and end-to-end tests.

    python manage.py redox_sandbox [--port 8001] [--host 127.0.0.1]

Standard library only, no database: it keeps what it received in memory. It serves
- both auth flows: `/auth/authenticate` + `/auth/refreshToken` (legacy API key) and
  `/v2/auth/token` (OAuth 2.0 client credentials with a signed JWT). Any well-formed
  credentials are accepted; a JWT's header must name `kid` and an RS384/ES384 `alg`, and
  its claims must look right, but its signature is not checked (there is no key).
- `/endpoint`, which wants a Bearer token from those flows, checks the message against
  `redox/schemas/` and the fields HCOINT promises (docs/redox.md Part 1), and answers
  400 with Redox-style `Meta.Errors`, or 200 with `Meta.Logs[{ID, AttemptID}]`;
- `/upload`, the blob upload (multipart field `file`), answering 201 `{"URI": ...}`.

A person (or a test) can make it misbehave from the page at `/` (plain forms) or with
JSON under `/_sandbox/`: fail the next N calls with 500/429/502/503/504, reject the next
N (or all) messages with 400 and a chosen text, expire every token, clear, list.
Failures apply to `/endpoint` and `/upload`, never to the auth calls, so "fail 3" means
three visibly failed deliveries.
"""

import base64
import binascii
import email.parser
import email.policy
import html
import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
SCHEMAS = {"Results": "results/new.json", "Notes": "notes/new.json"}
# Redox's limits: 40 MB per API request, 30 MB per uploaded file (quotas-and-constraints).
MAX_REQUEST_BYTES = 40 * 1024 * 1024
MAX_UPLOAD_BYTES = 30 * 1024 * 1024
JWT_TOKEN_TTL = 300  # Redox's OAuth tokens live five minutes
LEGACY_TOKEN_TTL = 24 * 3600  # legacy tokens live a day
JWT_ALGORITHMS = ("RS384", "ES384")
FAIL_STATUSES = (429, 500, 502, 503, 504)
DEFAULT_REJECT_TEXT = "Sandbox rejected the message (told to reject)."
KEEP_RECEIVED = 500


# --- Validation -----------------------------------------------------------------

_JSON_TYPES = {
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}


def schema_errors(instance, schema, path="$"):
    """Errors of `instance` against a Redox schema, as paths (never values: they are PHI).

    Redox's published draft-04 schemas use only `type`, `properties`, `items` and
    `required`, which is all this checks; the tests hold it to the `jsonschema` package.
    """
    types = schema.get("type")
    if types:
        allowed = [types] if isinstance(types, str) else types
        if not any(_JSON_TYPES[name](instance) for name in allowed):
            return [f"{path} must be {' or '.join(allowed)}"]
    errors = []
    if isinstance(instance, dict):
        for name in schema.get("required", ()):
            if name not in instance:
                errors.append(f"{path}.{name} is required")
        for name, subschema in schema.get("properties", {}).items():
            if name in instance:
                errors.extend(schema_errors(instance[name], subschema, f"{path}.{name}"))
    if isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(instance):
            errors.extend(schema_errors(item, schema["items"], f"{path}[{index}]"))
    return errors


_schema_cache = {}


def load_schema(data_model):
    if data_model not in _schema_cache:
        _schema_cache[data_model] = json.loads((SCHEMA_DIR / SCHEMAS[data_model]).read_text())
    return _schema_cache[data_model]


def message_errors(message, *, known_blobs=()):
    """Why Redox (as HCOINT uses it) would refuse `message`; empty when it is acceptable."""
    if not isinstance(message, dict):
        return ["The body must be a JSON object"]
    meta = message.get("Meta") if isinstance(message.get("Meta"), dict) else {}
    data_model = meta.get("DataModel")
    if data_model not in SCHEMAS:
        return [f"Meta.DataModel must be one of {', '.join(SCHEMAS)}"]
    if meta.get("EventType") != "New":
        return ["Meta.EventType must be New"]
    errors = schema_errors(message, load_schema(data_model))
    if errors:
        return errors
    destinations = meta.get("Destinations") or []
    if not destinations or not all(isinstance(d, dict) and d.get("ID") for d in destinations):
        errors.append("No subscriptions: Meta.Destinations needs to contain a destination from existing subscriptions")
    orders = message.get("Orders") or []
    if not orders or not isinstance(orders[0], dict) or not orders[0].get("ID"):
        errors.append("Orders[0].ID (the EHR order id) is required")
    if data_model == "Results" and orders and isinstance(orders[0], dict):
        results = orders[0].get("Results") or []
        if not results:
            errors.append("Orders[0].Results must hold the note")
        for index, result in enumerate(results):
            where = f"Orders[0].Results[{index}]"
            for name in ("Code", "Value", "ValueType", "Status"):
                if not result.get(name):
                    errors.append(f"{where}.{name} must not be empty")
            if result.get("ValueType") == "Encapsulated Data":
                if not result.get("FileType"):
                    errors.append(f"{where}.FileType is required for Encapsulated Data")
                errors.extend(_file_errors(result.get("Value"), f"{where}.Value", known_blobs))
    if data_model == "Notes":
        note = message.get("Note") or {}
        if note.get("ContentType") != "Base64 Encoded":
            errors.append('Note.ContentType must be "Base64 Encoded"')
        errors.extend(_file_errors(note.get("FileContents"), "Note.FileContents", known_blobs))
    return errors


def _file_errors(value, where, known_blobs):
    if not value:
        return [f"{where} must hold the file"]
    if value.startswith(("http://", "https://")):
        if value not in known_blobs:
            return [f"{where} is not a blob URI this source uploaded"]
        return []
    try:
        content = binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        return [f"{where} is neither base64 nor a blob URI"]
    if not content.startswith(b"%PDF-"):
        return [f"{where} is not a PDF"]
    return []


def jwt_errors(assertion, *, token_url, now):
    """Why a client assertion is malformed (the signature is not checked: no key here)."""
    try:
        header_part, claims_part, signature = assertion.split(".")
        header = json.loads(_b64url(header_part))
        claims = json.loads(_b64url(claims_part))
    except (ValueError, binascii.Error):
        return ["client_assertion is not a JWT"]
    if not isinstance(header, dict) or not isinstance(claims, dict) or not signature:
        return ["client_assertion is not a signed JWT"]
    errors = []
    if not header.get("kid"):
        errors.append("JWT header kid property is required")
    if header.get("alg") not in JWT_ALGORITHMS:
        errors.append(f"JWT header alg must be one of {', '.join(JWT_ALGORITHMS)}")
    if not claims.get("iss") or claims.get("iss") != claims.get("sub"):
        errors.append("JWT iss and sub must both be the client id")
    if claims.get("aud") != token_url:
        errors.append("JWT aud must be the token URL")
    if not isinstance(claims.get("exp"), int | float) or claims["exp"] <= now:
        errors.append("JWT is expired")
    if not isinstance(claims.get("iat"), int | float) or not claims.get("jti"):
        errors.append("JWT iat and jti are required")
    return errors


def _b64url(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


# --- State ----------------------------------------------------------------------


@dataclass
class Received:
    """One call to /endpoint or /upload, as the sandbox saw it."""

    seq: int
    at: datetime
    path: str
    http_status: int
    outcome: str  # accepted, rejected, failed, unauthorized, uploaded
    data_model: str = ""
    order_id: str = ""
    delivery_ref: str = ""
    log_ids: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    size: int = 0
    body: object = None  # the parsed JSON message; never shown on the page

    def summary(self):
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "path": self.path,
            "http_status": self.http_status,
            "outcome": self.outcome,
            "data_model": self.data_model,
            "order_id": self.order_id,
            "delivery_ref": self.delivery_ref,
            "log_ids": list(self.log_ids),
            "errors": list(self.errors),
            "size": self.size,
        }


class SandboxState:
    """Everything the sandbox remembers; every method is safe to call from any thread."""

    def __init__(self, *, keep=KEEP_RECEIVED, clock=time.time):
        self.lock = threading.Lock()
        self.clock = clock
        self.tokens = {}  # access token -> expiry (epoch seconds)
        self.refresh_tokens = {}  # refresh token -> api key
        self.blobs = {}  # URI -> bytes
        self.received = deque(maxlen=keep)
        self.next_seq = 1
        self.fail_remaining = 0
        self.fail_status = 500
        self.retry_after = 2
        self.reject_remaining = 0  # -1: every message until cleared
        self.reject_text = DEFAULT_REJECT_TEXT

    # Failure modes
    def fail_next(self, count, status=500, retry_after=2):
        if status not in FAIL_STATUSES:
            raise ValueError(f"status must be one of {FAIL_STATUSES}")
        with self.lock:
            self.fail_remaining = max(0, int(count))
            self.fail_status = status
            self.retry_after = max(0, int(retry_after))

    def reject(self, count=None, text=None):
        """Reject the next `count` messages with 400, or every one until cleared when count is None."""
        with self.lock:
            self.reject_remaining = -1 if count is None else max(0, int(count))
            self.reject_text = (text or "").strip() or DEFAULT_REJECT_TEXT

    def clear(self):
        with self.lock:
            self.fail_remaining = 0
            self.reject_remaining = 0
            self.reject_text = DEFAULT_REJECT_TEXT

    def forget(self):
        with self.lock:
            self.received.clear()
            self.blobs.clear()

    def expire_tokens(self):
        with self.lock:
            self.tokens.clear()

    def take_failure(self):
        with self.lock:
            if self.fail_remaining <= 0:
                return None
            self.fail_remaining -= 1
            return self.fail_status, self.retry_after

    def take_rejection(self):
        with self.lock:
            if self.reject_remaining == 0:
                return None
            if self.reject_remaining > 0:
                self.reject_remaining -= 1
            return self.reject_text

    # Tokens
    def issue_token(self, ttl, api_key=None):
        token = "sbx-" + uuid.uuid4().hex
        refresh = "sbx-refresh-" + uuid.uuid4().hex if api_key else ""
        with self.lock:
            self.tokens[token] = self.clock() + ttl
            if refresh:
                self.refresh_tokens[refresh] = api_key
        return token, refresh

    def use_refresh_token(self, refresh_token, api_key):
        with self.lock:
            return self.refresh_tokens.pop(refresh_token, None) == api_key

    def token_valid(self, token):
        with self.lock:
            return self.tokens.get(token, 0) > self.clock()

    # Records
    def record(self, **values):
        with self.lock:
            received = Received(seq=self.next_seq, at=datetime.now(UTC), **values)
            self.next_seq += 1
            self.received.append(received)
            return received

    def add_blob(self, uri, content):
        with self.lock:
            self.blobs[uri] = content

    def known_blobs(self):
        with self.lock:
            return set(self.blobs)

    def messages(self):
        with self.lock:
            return list(self.received)

    def find(self, seq):
        with self.lock:
            return next((r for r in self.received if r.seq == seq), None)

    def snapshot(self):
        with self.lock:
            return {
                "fail_remaining": self.fail_remaining,
                "fail_status": self.fail_status,
                "retry_after": self.retry_after,
                "reject_remaining": "all" if self.reject_remaining < 0 else self.reject_remaining,
                "reject_text": self.reject_text,
                "received": len(self.received),
                "blobs": len(self.blobs),
            }


# --- HTTP -----------------------------------------------------------------------


def _redox_errors(texts, data_model=None, event_type=None):
    """An error body shaped like Redox's: Meta.Errors[{ID, Text, Type, Module}]."""
    return {
        "Meta": {
            "DataModel": data_model,
            "EventType": event_type,
            "Errors": [
                {"ID": index, "Text": text, "Type": "message", "Module": "Sandbox"}
                for index, text in enumerate(texts, start=1)
            ],
        }
    }


class SandboxHandler(BaseHTTPRequestHandler):
    server_version = "RedoxSandbox/1"
    # HTTP/1.1 so the client's session can keep its connection; every answer sets Content-Length.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without this, Nagle's algorithm meets the
    # client's delayed ACK and every answer waits ~40 ms.
    disable_nagle_algorithm = True

    @property
    def state(self):
        return self.server.state

    def log_message(self, format, *args):
        if not getattr(self.server, "quiet", False):
            super().log_message(format, *args)

    # Plumbing
    def _send(self, status, body=b"", content_type="application/json", headers=None):
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

    def _read_body(self, limit):
        length = int(self.headers.get("Content-Length") or 0)
        if length > limit:
            # Too large to keep; the connection is closed rather than drained.
            self.close_connection = True
            return None
        return self.rfile.read(length) if length else b""

    def _bearer(self):
        value = self.headers.get("Authorization", "")
        scheme, _, token = value.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and self.state.token_valid(token.strip()) else None

    def _origin(self):
        """This server as the client addressed it (the JWT audience and blob URIs use it)."""
        host, port = self.server.server_address[:2]
        return "http://" + (self.headers.get("Host") or f"{host}:{port}")

    def _form_or_json(self, body):
        if self.headers.get("Content-Type", "").startswith("application/json"):
            data = json.loads(body or b"{}")
            return data if isinstance(data, dict) else {}
        return {key: values[-1] for key, values in parse_qs(body.decode()).items()}

    def _done(self, is_form):
        if is_form:
            self._send(HTTPStatus.SEE_OTHER, headers={"Location": "/"})
        else:
            self._send(HTTPStatus.OK, self.state.snapshot())

    # Routing
    def do_GET(self):
        path = urlsplit(self.path).path
        if path == "/":
            self._send(HTTPStatus.OK, render_page(self.state), "text/html; charset=utf-8")
        elif path == "/_sandbox/state":
            self._send(HTTPStatus.OK, self.state.snapshot())
        elif path == "/_sandbox/messages":
            self._send(HTTPStatus.OK, [r.summary() for r in self.state.messages()])
        elif path.startswith("/_sandbox/messages/") and path.rsplit("/", 1)[1].isdigit():
            received = self.state.find(int(path.rsplit("/", 1)[1]))
            if received is None:
                self._send(HTTPStatus.NOT_FOUND, {"error": "no such message"})
            else:
                self._send(HTTPStatus.OK, {**received.summary(), "body": received.body})
        else:
            self._send(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def do_POST(self):
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
        }
        handler = routes.get(path)
        limit = MAX_UPLOAD_BYTES + 1024 * 1024 if path == "/upload" else MAX_REQUEST_BYTES
        body = self._read_body(limit)
        if body is None:
            self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _redox_errors(["Request body is too large"]))
        elif handler is None:
            self._send(HTTPStatus.NOT_FOUND, {"error": "not found"})
        else:
            handler(body)

    # Legacy API key auth: developer.redoxengine.com/getting-started/authenticating-a-source/
    def auth_authenticate(self, body):
        data = _json_object(body)
        if not (_nonempty_str(data.get("apiKey")) and _nonempty_str(data.get("secret"))):
            self._send(HTTPStatus.UNAUTHORIZED, _redox_errors(["Invalid request: apiKey and secret are required"]))
            return
        self._legacy_tokens(data["apiKey"])

    def auth_refresh(self, body):
        data = _json_object(body)
        api_key, refresh = data.get("apiKey"), data.get("refreshToken")
        if not (_nonempty_str(api_key) and _nonempty_str(refresh) and self.state.use_refresh_token(refresh, api_key)):
            self._send(HTTPStatus.UNAUTHORIZED, _redox_errors(["Invalid refresh token"]))
            return
        self._legacy_tokens(api_key)

    def _legacy_tokens(self, api_key):
        token, refresh = self.state.issue_token(LEGACY_TOKEN_TTL, api_key=api_key)
        expires = datetime.fromtimestamp(self.state.clock() + LEGACY_TOKEN_TTL, UTC)
        self._send(
            HTTPStatus.OK,
            {"accessToken": token, "expires": expires.isoformat().replace("+00:00", "Z"), "refreshToken": refresh},
        )

    # OAuth 2.0 + signed JWT: docs.redoxengine.com/how-to/send-and-manage-requests/authenticate-with-jwt
    def auth_token(self, body):
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
    def endpoint(self, body):
        if not self._bearer():
            self.state.record(path="/endpoint", http_status=401, outcome="unauthorized", size=len(body))
            self._send(HTTPStatus.UNAUTHORIZED, _redox_errors(["Invalid or expired access token"]))
            return
        if self._simulated_failure("/endpoint", body):
            return
        try:
            message = json.loads(body)
        except ValueError:
            message = None
        meta = message.get("Meta") if isinstance(message, dict) and isinstance(message.get("Meta"), dict) else {}
        data_model, event_type = meta.get("DataModel"), meta.get("EventType")
        ids = _message_ids(message)
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
            self._send(HTTPStatus.BAD_REQUEST, _redox_errors(errors, data_model, event_type))
            return
        logs = [{"ID": str(uuid.uuid4()), "AttemptID": str(uuid.uuid4())} for _ in meta["Destinations"]]
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

    # Blob upload: developer.redoxengine.com/data-exchange/sending-files-through-redox/
    def upload(self, body):
        if not self._bearer():
            self.state.record(path="/upload", http_status=401, outcome="unauthorized", size=len(body))
            self._send(HTTPStatus.UNAUTHORIZED, _redox_errors(["Invalid or expired access token"]))
            return
        if self._simulated_failure("/upload", body):
            return
        content = _multipart_file(self.headers.get("Content-Type", ""), body)
        if content is None:
            self.state.record(path="/upload", http_status=400, outcome="rejected", errors=["No file field"])
            self._send(HTTPStatus.BAD_REQUEST, _redox_errors(["multipart/form-data with a file field is required"]))
            return
        if len(content) > MAX_UPLOAD_BYTES:
            self.state.record(path="/upload", http_status=413, outcome="rejected", errors=["File too large"])
            self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _redox_errors(["File is larger than 30 MB"]))
            return
        uri = f"{self._origin()}/blob/{uuid.uuid4()}"
        self.state.add_blob(uri, content)
        self.state.record(path="/upload", http_status=201, outcome="uploaded", delivery_ref=uri, size=len(content))
        self._send(HTTPStatus.CREATED, {"URI": uri})

    def _simulated_failure(self, path, body):
        failure = self.state.take_failure()
        if failure is None:
            return False
        status, retry_after = failure
        self.state.record(path=path, http_status=status, outcome="failed", size=len(body))
        headers = {"Retry-After": str(retry_after)} if status in (429, 503) else {}
        self._send(status, _redox_errors([f"Sandbox: simulated HTTP {status}"]), headers=headers)
        return True

    # Control surface
    def control_fail(self, body):
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

    def control_reject(self, body):
        is_form, data = self._control_input(body)
        every = str(data.get("all", "")).lower() in ("1", "true", "on", "yes")
        try:
            count = None if every or data.get("count") in (None, "") else int(data["count"])
        except (TypeError, ValueError):
            self._send(HTTPStatus.BAD_REQUEST, {"error": "count must be a whole number"})
            return
        self.state.reject(count, data.get("text"))
        self._done(is_form)

    def control_clear(self, body):
        is_form, _ = self._control_input(body)
        self.state.clear()
        self._done(is_form)

    def control_forget(self, body):
        is_form, _ = self._control_input(body)
        self.state.forget()
        self._done(is_form)

    def control_expire_tokens(self, body):
        is_form, _ = self._control_input(body)
        self.state.expire_tokens()
        self._done(is_form)

    def _control_input(self, body):
        is_form = not self.headers.get("Content-Type", "").startswith("application/json")
        try:
            return is_form, self._form_or_json(body)
        except ValueError:
            return is_form, {}


def _json_object(body):
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _nonempty_str(value):
    return isinstance(value, str) and bool(value.strip())


def _message_ids(message):
    """Order id and our delivery reference, to list without showing the body."""
    if not isinstance(message, dict):
        return {}
    orders = message.get("Orders") if isinstance(message.get("Orders"), list) else []
    first = orders[0] if orders and isinstance(orders[0], dict) else {}
    note = message.get("Note") if isinstance(message.get("Note"), dict) else {}
    return {
        "order_id": str(first.get("ID") or ""),
        "delivery_ref": str(first.get("ApplicationOrderID") or note.get("DocumentID") or ""),
    }


def _multipart_file(content_type, body):
    """The bytes of the `file` field of a multipart/form-data body, or None."""
    if not content_type.startswith("multipart/form-data"):
        return None
    parser = email.parser.BytesParser(policy=email.policy.HTTP)
    message = parser.parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    if not message.is_multipart():
        return None
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            return part.get_payload(decode=True)
    return None


# --- The page -----------------------------------------------------------------------

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Redox sandbox</title>
<style>
body {{ font: 15px/1.4 system-ui, sans-serif; margin: 2rem; max-width: 70rem; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border-bottom: 1px solid #ccc; padding: .3rem; text-align: left; }}
form {{ display: inline-block; margin: 0 1.5rem 1rem 0; vertical-align: top; }} fieldset {{ border: 1px solid #ccc; }}
.accepted, .uploaded {{ color: #070; }} .rejected, .failed, .unauthorized {{ color: #a00; }}
</style></head><body>
<h1>Redox sandbox</h1>
<p>A fake Redox for development. Now: {mode}. <a href="/">Refresh</a></p>
<form method="post" action="/_sandbox/fail"><fieldset><legend>Fail the next calls</legend>
<label for="fail-count">Calls</label> <input id="fail-count" name="count" type="number" min="1" value="3">
<label for="fail-status">with</label> <select id="fail-status" name="status">{status_options}</select>
<label for="fail-retry">Retry-After (s)</label>
<input id="fail-retry" name="retry_after" type="number" min="0" value="2">
<button>Fail</button></fieldset></form>
<form method="post" action="/_sandbox/reject"><fieldset><legend>Reject messages with 400</legend>
<label for="reject-count">Next</label> <input id="reject-count" name="count" type="number" min="1" value="1">
<label><input name="all" type="checkbox" value="true"> all, until cleared</label><br>
<label for="reject-text">Error text</label> <input id="reject-text" name="text" size="40" value="{reject_text}">
<button>Reject</button></fieldset></form>
<form method="post" action="/_sandbox/clear"><button>Clear failure modes</button></form>
<form method="post" action="/_sandbox/expire-tokens"><button>Expire all tokens</button></form>
<form method="post" action="/_sandbox/forget"><button>Forget received messages</button></form>
<h2>Received ({count}, newest first)</h2>
<table><thead><tr><th>#</th><th>Time (UTC)</th><th>Path</th><th>Outcome</th><th>Model</th><th>Order ID</th>
<th>Delivery ref / blob</th><th>Redox log id</th><th>Errors</th></tr></thead><tbody>
{rows}
</tbody></table>
<p>JSON: <a href="/_sandbox/state">/_sandbox/state</a>, <a href="/_sandbox/messages">/_sandbox/messages</a>.</p>
</body></html>
"""


def render_page(state):
    snapshot = state.snapshot()
    modes = []
    if snapshot["fail_remaining"]:
        modes.append(f"failing the next {snapshot['fail_remaining']} calls with HTTP {snapshot['fail_status']}")
    if snapshot["reject_remaining"]:
        count = snapshot["reject_remaining"]
        plural = "" if count == 1 else "s"
        modes.append(f"rejecting {'every message' if count == 'all' else f'the next {count} message{plural}'}")
    rows = []
    for r in reversed(state.messages()):
        cells = [
            r.seq,
            r.at.strftime("%H:%M:%S"),
            r.path,
            f"{r.outcome} ({r.http_status})",
            r.data_model,
            r.order_id,
            r.delivery_ref,
            ", ".join(r.log_ids),
            "; ".join(r.errors),
        ]
        tds = "".join(f"<td>{html.escape(str(cell))}</td>" for cell in cells)
        rows.append(f'<tr class="{html.escape(r.outcome)}">{tds}</tr>')
    return PAGE.format(
        mode=html.escape("; ".join(modes) or "accepting everything"),
        status_options="".join(f'<option value="{s}">HTTP {s}</option>' for s in FAIL_STATUSES),
        reject_text=html.escape(snapshot["reject_text"]),
        count=snapshot["received"],
        rows="\n".join(rows) or '<tr><td colspan="9">Nothing yet.</td></tr>',
    )


# --- Running it -------------------------------------------------------------------------


def make_server(host="127.0.0.1", port=8001, state=None, *, quiet=False):
    """A sandbox server bound to host:port (port 0 picks a free one); call serve_forever()."""
    server = ThreadingHTTPServer((host, port), SandboxHandler)
    server.daemon_threads = True
    server.state = state or SandboxState()
    server.quiet = quiet
    return server


def start_in_thread(host="127.0.0.1", port=0, state=None, *, quiet=True):
    """Start a sandbox in a daemon thread (for tests); returns the server. Stop it with
    server.shutdown() and server.server_close()."""
    server = make_server(host, port, state, quiet=quiet)
    # A short poll interval so shutdown() returns promptly between tests.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server


def base_url(server):
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"
