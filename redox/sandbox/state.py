"""What the sandbox remembers: tokens, blobs, the calls it received, and how it is told to misbehave."""

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

FAIL_STATUSES = (429, 500, 502, 503, 504)
DEFAULT_REJECT_TEXT = "Sandbox rejected the message (told to reject)."
KEEP_RECEIVED = 500
# What the Platform API's log says of a message's latest attempt (payload.result.attempts.latest.status).
LOG_STATUSES = ("pending", "succeeded", "failed", "filtered")


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
    log_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    size: int = 0
    body: object = None  # the parsed JSON message; never shown on the page

    def summary(self) -> dict[str, Any]:
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

    def __init__(
        self, *, keep: int = KEEP_RECEIVED, clock: Callable[[], float] = time.time, log_status: str = "pending"
    ) -> None:
        self.lock = threading.Lock()
        self.clock = clock
        self.tokens: dict[str, float] = {}  # access token -> expiry (epoch seconds)
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> api key
        self.blobs: dict[str, bytes] = {}  # URI -> bytes
        self.received: deque[Received] = deque(maxlen=keep)
        self.next_seq = 1
        self.fail_remaining = 0
        self.fail_status = 500
        self.retry_after = 2
        self.reject_remaining = 0  # -1: every message until cleared
        self.reject_text = DEFAULT_REJECT_TEXT
        # Platform API logs: id -> status. A new log starts at log_default ("pending" until told,
        # so a demo can watch "Accepted by Redox" become "Filed" when the page says so).
        self.logs: dict[str, str] = {}
        self.log_default = self._log_status(log_status)

    # Platform API logs
    @staticmethod
    def _log_status(status: str) -> str:
        if status not in LOG_STATUSES:
            raise ValueError(f"status must be one of {LOG_STATUSES}")
        return status

    def add_logs(self, log_ids: list[str]) -> None:
        with self.lock:
            for log_id in log_ids:
                self.logs[log_id] = self.log_default
            while len(self.logs) > KEEP_RECEIVED:
                del self.logs[next(iter(self.logs))]

    def set_log_status(self, log_id: str | None, status: str) -> int:
        """Set one log's status, or every pending log's when `log_id` is None; how many changed."""
        status = self._log_status(status)
        with self.lock:
            if log_id is None:
                pending = [key for key, value in self.logs.items() if value == "pending"]
            else:
                pending = [log_id] if log_id in self.logs else []
            for key in pending:
                self.logs[key] = status
            return len(pending)

    def set_log_default(self, status: str) -> None:
        status = self._log_status(status)
        with self.lock:
            self.log_default = status

    def log_status(self, log_id: str) -> str | None:
        with self.lock:
            return self.logs.get(log_id)

    def log_list(self) -> list[tuple[str, str]]:
        with self.lock:
            return list(self.logs.items())

    # Failure modes
    def fail_next(self, count: int, status: int = 500, retry_after: int = 2) -> None:
        if status not in FAIL_STATUSES:
            raise ValueError(f"status must be one of {FAIL_STATUSES}")
        with self.lock:
            self.fail_remaining = max(0, int(count))
            self.fail_status = status
            self.retry_after = max(0, int(retry_after))

    def reject(self, count: int | None = None, text: str | None = None) -> None:
        """Reject the next `count` messages with 400, or every one until cleared when count is None."""
        with self.lock:
            self.reject_remaining = -1 if count is None else max(0, int(count))
            self.reject_text = (text or "").strip() or DEFAULT_REJECT_TEXT

    def clear(self) -> None:
        with self.lock:
            self.fail_remaining = 0
            self.reject_remaining = 0
            self.reject_text = DEFAULT_REJECT_TEXT

    def forget(self) -> None:
        with self.lock:
            self.received.clear()
            self.blobs.clear()
            self.logs.clear()

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def take_failure(self) -> tuple[int, int] | None:
        with self.lock:
            if self.fail_remaining <= 0:
                return None
            self.fail_remaining -= 1
            return self.fail_status, self.retry_after

    def take_rejection(self) -> str | None:
        with self.lock:
            if self.reject_remaining == 0:
                return None
            if self.reject_remaining > 0:
                self.reject_remaining -= 1
            return self.reject_text

    # Tokens
    def issue_token(self, ttl: float, api_key: str | None = None) -> tuple[str, str]:
        token = "sbx-" + uuid.uuid4().hex
        refresh = "sbx-refresh-" + uuid.uuid4().hex if api_key else ""
        with self.lock:
            self.tokens[token] = self.clock() + ttl
            if api_key:
                self.refresh_tokens[refresh] = api_key
        return token, refresh

    def use_refresh_token(self, refresh_token: str, api_key: str) -> bool:
        with self.lock:
            return self.refresh_tokens.pop(refresh_token, None) == api_key

    def token_valid(self, token: str) -> bool:
        with self.lock:
            return self.tokens.get(token, 0) > self.clock()

    # Records
    def record(self, **values: Any) -> Received:
        with self.lock:
            received = Received(seq=self.next_seq, at=datetime.now(UTC), **values)
            self.next_seq += 1
            self.received.append(received)
            return received

    def add_blob(self, uri: str, content: bytes) -> None:
        with self.lock:
            self.blobs[uri] = content

    def known_blobs(self) -> set[str]:
        with self.lock:
            return set(self.blobs)

    def messages(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def find(self, seq: int) -> Received | None:
        with self.lock:
            return next((r for r in self.received if r.seq == seq), None)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "fail_remaining": self.fail_remaining,
                "fail_status": self.fail_status,
                "retry_after": self.retry_after,
                "reject_remaining": "all" if self.reject_remaining < 0 else self.reject_remaining,
                "reject_text": self.reject_text,
                "received": len(self.received),
                "blobs": len(self.blobs),
                "logs": dict(self.logs),
                "log_default": self.log_default,
            }
