"""What a Redox answer means: success, our token refused, worth retrying, or wrong for good.

Every failed call becomes a `RedoxError`, whose `retryable` says whether a later try can
help. Its message carries the call, the HTTP status and Redox's own error texts, never a
request body: what we send is patient data.

Status classes follow https://docs.redoxengine.com/api-reference/error-handling-and-responses/
"""

import email.utils
import time
from collections.abc import Iterable
from enum import Enum
from typing import Any

import requests

# The request itself is wrong; sending it again unchanged cannot succeed.
PERMANENT_STATUSES = frozenset({400, 403, 404, 413})
# Client errors that pass with time: a request timeout and rate limiting.
TRANSIENT_CLIENT_STATUSES = frozenset({408, 429})
REAUTH_STATUS = 401


class Outcome(Enum):
    """The four things an HTTP status can tell a caller."""

    OK = "ok"
    REAUTH = "reauth"  # our token was refused: get a new one and try once more
    TRANSIENT = "transient"  # try again later: 408, 429, 5xx, and a 3xx we do not follow
    PERMANENT = "permanent"  # any other 4xx: the request is wrong and will stay wrong


def classify(status: int) -> Outcome:
    if 200 <= status < 300:
        return Outcome.OK
    if status == REAUTH_STATUS:
        return Outcome.REAUTH
    if status in PERMANENT_STATUSES:
        return Outcome.PERMANENT
    if status in TRANSIENT_CLIENT_STATUSES or not 400 <= status < 500:
        return Outcome.TRANSIENT
    return Outcome.PERMANENT


class RedoxError(Exception):
    """A failed Redox call. `retryable` says whether trying again later can help.

    `status` is the HTTP status (None for timeouts and connection errors), `retry_after`
    the seconds Redox asked us to wait (None when it did not say), `redox_errors` the
    `Meta.Errors[].Text` strings Redox returned, for staff to read.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after: int | None = None,
        redox_errors: Iterable[str] = (),
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after
        self.redox_errors = list(redox_errors)


def error_from_response(response: requests.Response, what: str) -> RedoxError:
    """The RedoxError for a non-success `response` to the call described by `what`.

    A 401 reaching this point came after our one re-authentication: retryable, like any
    other credential problem, so a delivery waits for the fix instead of failing for good.
    """
    retryable = classify(response.status_code) is not Outcome.PERMANENT
    return http_error(response, what, redox_error_texts(response), retryable=retryable)


def http_error(response: requests.Response, what: str, texts: list[str], *, retryable: bool) -> RedoxError:
    """A RedoxError naming the call and the HTTP status, with the error texts Redox gave."""
    message = f"{what}: HTTP {response.status_code}"
    if texts:
        message += ": " + "; ".join(texts)
    return RedoxError(
        message,
        retryable=retryable,
        status=response.status_code,
        retry_after=retry_after_seconds(response),
        redox_errors=texts,
    )


def network_error(what: str, exc: requests.RequestException) -> RedoxError:
    """The RedoxError for a call that got no HTTP answer at all; always retryable."""
    if isinstance(exc, requests.ConnectTimeout):
        return RedoxError(f"{what}: connection timed out", retryable=True)
    if isinstance(exc, requests.Timeout):
        # Redox may have accepted the message before the read timed out; the delivery
        # reference in the message lets a duplicate be recognised downstream.
        return RedoxError(f"{what}: no response in time", retryable=True)
    if isinstance(exc, requests.ConnectionError):
        return RedoxError(f"{what}: connection failed", retryable=True)
    return RedoxError(f"{what}: request failed ({type(exc).__name__})", retryable=True)


def retry_after_seconds(response: requests.Response) -> int | None:
    """The `Retry-After` header in seconds (it may be a number or an HTTP date), or None."""
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


def json_object(response: requests.Response) -> dict[str, Any] | None:
    """The response body when it is a JSON object, else None."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def redox_error_texts(response: requests.Response) -> list[str]:
    """`Meta.Errors[].Text` from a Redox error body; empty when the body is not Redox JSON."""
    meta = (json_object(response) or {}).get("Meta")
    errors = meta.get("Errors") if isinstance(meta, dict) else None
    if not isinstance(errors, list):
        return []
    return [str(error["Text"]) for error in errors if isinstance(error, dict) and error.get("Text")]


def oauth_error_texts(response: requests.Response) -> list[str]:
    """`error` / `error_description` from an OAuth token error (RFC 6749 section 5.2)."""
    body = json_object(response) or {}
    text = ": ".join(str(body[key]) for key in ("error", "error_description") if body.get(key))
    return [text] if text else []
