"""HCOINT's patient-data (PHI) policy: what counts as patient data, and how it is kept out.

Business code logs event names and opaque ids only (`hcoint.events.log_event`). This
module is the backstop every output path shares: the log formatters and filter
(`hcoint.logging`), the trace scrubber (`hcoint.tracing`) and metric tags
(`hcoint.metrics`) all decide with the rules below, so there is one definition of
"sensitive" to review.

- A key is sensitive (`is_sensitive_key`) when it equals one of SENSITIVE_KEYS or
  contains one of SENSITIVE_KEY_PARTS: names, DOB, identifiers, addresses, comments,
  diagnoses, bodies, payloads, tokens, ... Its value is replaced with `[redacted]`.
- `scrub_record` makes a log record safe in place: sensitive `extra` values redacted,
  SQL text and query strings dropped, exception objects passed as arguments turned
  into their safe description, a cached traceback reduced to its frames.
- Exception messages are withheld unless the exception type is known not to echo its
  input (`message_is_safe`). Parsers put the offending value into their messages
  (`int("MRN0048213")`, `date.fromisoformat(...)`, jsonschema, PostgreSQL's "invalid
  input syntax" and "Key (...)=(...)"), so an unknown message is replaced, while the
  type and the stack (file, line, function, source line; never variable values) are
  kept for debugging. `json.JSONDecodeError` keeps its position only: its `doc`
  attribute holds the whole payload and is never read here.

This module imports nothing from the project, so anything may use it.
"""

import json
import logging
import re
import socket
import ssl
import traceback

import requests
from django.core import exceptions as django_exceptions
from django.db import utils as db_utils
from django.http import Http404

REDACTED = "[redacted]"
WITHHELD = "(message withheld: it may contain patient data)"
DD_FIELDS = ("dd.trace_id", "dd.span_id", "dd.service", "dd.env", "dd.version")

# Attributes every LogRecord has; anything else on a record came from `extra` (or from
# ddtrace / our filters).
STANDARD_RECORD_ATTRS = frozenset(vars(logging.LogRecord("n", logging.INFO, "p", 1, "m", (), None))) | {
    "message",
    "asctime",
    "taskName",
}

# An `extra` key is sensitive when it equals one of SENSITIVE_KEYS or contains one of
# SENSITIVE_KEY_PARTS (case-insensitive). Broad on purpose: an over-eager match costs a
# `[redacted]` in a log line, a missed one costs a disclosure.
SENSITIVE_KEY_PARTS = (
    "name",
    "dob",
    "birth",
    "mrn",
    "ssn",
    "identifier",
    "demographic",
    "patient",
    "address",
    "street",
    "city",
    "zip",
    "postal",
    "phone",
    "email",
    "comment",
    "diagnos",
    "body",
    "payload",
    "content",
    "token",
    "secret",
    "password",
    "cookie",
    "header",
    "sql",
    "param",
    "query",
)
SENSITIVE_KEYS = frozenset(
    {
        "q",
        "request",
        "data",
        "doc",
        "raw",
        "value",
        "values",
        "text",
        "sex",
        "gender",
        "visit",
        "visit_number",
        "ehr_order_id",
        "document",
        "pdf",
    }
)

# Exceptions whose messages describe our infrastructure (a host, a timeout, a setting),
# never the data being processed. Everything else has its message withheld.
_safe_message_types: list[type[Exception]] = [
    ConnectionError,
    TimeoutError,
    socket.gaierror,
    ssl.SSLError,
    requests.ConnectionError,
    requests.Timeout,
    django_exceptions.ImproperlyConfigured,
    django_exceptions.DisallowedHost,
    django_exceptions.RequestDataTooBig,
    django_exceptions.TooManyFieldsSent,
    django_exceptions.TooManyFilesSent,
    django_exceptions.PermissionDenied,
    Http404,
    db_utils.OperationalError,
    db_utils.InterfaceError,
]
try:
    import psycopg2

    _safe_message_types += [psycopg2.OperationalError, psycopg2.InterfaceError]
except ImportError:  # SQLite-only installs
    pass
SAFE_MESSAGE_TYPES = tuple(_safe_message_types)

# Loggers whose messages quote request lines (and so query strings such as `?q=<name>`);
# gunicorn.error does too, in "Error handling request /?q=...".
_REQUEST_LINE_LOGGERS = ("django.server", "gunicorn.access", "gunicorn.error")
_QUERY_STRING = re.compile(r"\?[^\s\"']*")
# Django logs every SQL statement with its parameters interpolated (when DEBUG is on).
_SQL_LOGGERS = ("django.db.backends",)


def is_extra_attr(key):
    """Whether a LogRecord attribute came from `extra` (rather than logging, ddtrace or our middleware)."""
    return key not in STANDARD_RECORD_ATTRS and not key.startswith("_") and key not in DD_FIELDS and key != "request_id"


def is_sensitive_key(key):
    lowered = str(key).lower()
    return lowered in SENSITIVE_KEYS or any(part in lowered for part in SENSITIVE_KEY_PARTS)


def exception_kind(exc_or_type):
    cls = exc_or_type if isinstance(exc_or_type, type) else type(exc_or_type)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def message_is_safe(cls):
    """Whether exceptions of type `cls` carry no input values in their messages."""
    if issubclass(cls, (json.JSONDecodeError, UnicodeError)):
        return True
    return bool(getattr(cls, "log_safe_message", False)) or issubclass(cls, SAFE_MESSAGE_TYPES)


def safe_exception_message(exc):
    """The message of `exc` if its type is known not to echo input, else a placeholder.

    A class may declare `log_safe_message = True` when every message it is raised with
    is written by us and holds no patient data.
    """
    if isinstance(exc, json.JSONDecodeError):
        # Rebuilt from the position fields; `exc.doc` is the entire payload.
        return f"{exc.msg}: line {exc.lineno} column {exc.colno} (char {exc.pos})"
    if isinstance(exc, UnicodeError):
        reason = getattr(exc, "reason", "")
        start = getattr(exc, "start", None)
        return f"{getattr(exc, 'encoding', 'codec')} error at position {start}: {reason}"
    if not message_is_safe(type(exc)):
        return WITHHELD
    try:
        return str(exc)
    except Exception:
        return WITHHELD


def safe_traceback(exc):
    """The traceback of `exc` and its causes with each exception message made safe."""
    chain = []
    links = []
    seen = set()
    current = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        if current.__cause__ is not None:
            links.append("\nThe above exception was the direct cause of the following exception:\n\n")
            current = current.__cause__
        elif current.__context__ is not None and not current.__suppress_context__:
            links.append("\nDuring handling of the above exception, another exception occurred:\n\n")
            current = current.__context__
        else:
            current = None
    parts = []
    for index in range(len(chain) - 1, -1, -1):
        item = chain[index]
        if item.__traceback__ is not None:
            parts.append("Traceback (most recent call last):\n")
            parts.extend(traceback.format_list(traceback.extract_tb(item.__traceback__)))
        parts.append(f"{exception_kind(item)}: {safe_exception_message(item)}\n")
        if index > 0:
            parts.append(links[index - 1])
    return "".join(parts).rstrip("\n")


_CHAIN_LINES = (
    "Traceback (most recent call last):",
    "During handling of the above exception",
    "The above exception was the direct cause",
)
_EXCEPTION_HEADER = re.compile(r"^([A-Za-z_][\w.]*)(?::|$)")


def sanitize_traceback_text(text):
    """Keep only the frames of an already formatted traceback; reduce exception lines to their type.

    For tracebacks we did not format ourselves (a cached `exc_text`, a trace's
    `error.stack`). Frame lines (`  File ...`) and the indented source lines after them
    are kept; an exception line keeps its type; anything after it (a multi-line
    message, such as jsonschema's dump of the offending instance) is dropped until the
    next frame or chain line.
    """
    kept = []
    in_message = False
    for line in str(text).splitlines():
        if line.startswith(_CHAIN_LINES) or line.startswith("  File "):
            kept.append(line)
            in_message = False
        elif in_message or not line.strip():
            continue
        elif line.startswith(" "):
            kept.append(line)
        else:
            match = _EXCEPTION_HEADER.match(line)
            kept.append(f"{match.group(1) if match else 'Exception'}: {WITHHELD}")
            in_message = True
    return "\n".join(kept)


def scrub_value(value, depth=0):
    """A copy of `value` safe to log: sensitive keys redacted at any depth, exceptions described."""
    if depth > 6:
        return REDACTED
    if isinstance(value, dict):
        return {
            key: (REDACTED if is_sensitive_key(key) else scrub_value(item, depth + 1)) for key, item in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        return [scrub_value(item, depth + 1) for item in value]
    if isinstance(value, BaseException):
        return f"{exception_kind(value)}: {safe_exception_message(value)}"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    return value


def scrub_record(record):
    """Make `record` safe to format, in place. Idempotent; every handler may run it."""
    if getattr(record, "_hcoint_scrubbed", False):
        return record
    if not getattr(record, "request_id", "") and getattr(getattr(record, "request", None), "request_id", ""):
        # django.request logs 4xx responses after RequestIdMiddleware has finished; the
        # request it passes still knows its id.
        record.request_id = record.request.request_id
    for key in list(vars(record)):
        if not is_extra_attr(key):
            continue
        value = record.__dict__[key]
        if isinstance(value, bool) or value is None:
            # Yes, no or nothing cannot carry patient data, whatever the key (token_present=False).
            continue
        record.__dict__[key] = REDACTED if is_sensitive_key(key) else scrub_value(value)

    if isinstance(record.msg, (dict, BaseException)):
        record.msg = scrub_value(record.msg)
    if isinstance(record.args, dict):
        record.args = scrub_value(record.args)
    elif isinstance(record.args, tuple):
        record.args = tuple(
            scrub_value(arg) if isinstance(arg, (BaseException, bytes, bytearray, memoryview, dict, list)) else arg
            for arg in record.args
        )

    if record.name.startswith(_SQL_LOGGERS):
        # The statement text has the parameters interpolated into it.
        record.msg = "SQL statement (text withheld)"
        record.args = ()
    elif record.name.startswith(_REQUEST_LINE_LOGGERS):
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        record.msg = _QUERY_STRING.sub("?[query withheld]", message)
        record.args = ()

    if record.exc_text:
        record.exc_text = sanitize_traceback_text(record.exc_text)
    record._hcoint_scrubbed = True
    return record
