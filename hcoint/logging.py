"""Log lines for HCOINT: JSON on stdout in production, plain lines in development.

Formatters and wiring only; what counts as patient data, and how it is removed, is
`hcoint.phi`. Every process Django sets up (web, worker, management commands)
configures logging through `hcoint.observability.configure_observability`, named by
`LOGGING_CONFIG` in settings; gunicorn takes the same configuration through
`gunicorn_logconfig`.

The JSON line is what Datadog's JSON preprocessing understands without a custom
pipeline (https://docs.datadoghq.com/logs/log_configuration/pipelines/): `timestamp`,
`level`, `message`, `logger.name`, the `dd.*` trace correlation attributes that ddtrace
puts on each record when log injection is on, `error.kind`/`error.message`/
`error.stack` for Error Tracking, our `request_id`, and the `event` name plus opaque
ids that `hcoint.events.log_event` passes as `extra`.

`PhiFilter` runs `hcoint.phi.scrub_record` on the handler, and both formatters run it
again, so a handler configured without the filter is safe too.
"""

import datetime
import logging

from pythonjsonlogger.json import JsonFormatter as BaseJsonFormatter

from hcoint.env import env_str
from hcoint.phi import (
    DD_FIELDS,
    exception_kind,
    is_extra_attr,
    safe_exception_message,
    safe_traceback,
    sanitize_traceback_text,
    scrub_record,
)

# Where the no-trace value of a correlation attribute comes from when ddtrace set none.
_DD_ENV_FALLBACK = {"dd.service": "DD_SERVICE", "dd.env": "DD_ENV", "dd.version": "DD_VERSION"}


class PhiFilter(logging.Filter):
    """Handler filter: scrub every record (see `hcoint.phi.scrub_record`). Never drops a record."""

    def filter(self, record):
        scrub_record(record)
        return True


def extra_fields(record):
    """The record's `extra` values, in the order they were given."""
    return {key: value for key, value in vars(record).items() if is_extra_attr(key)}


def correlation_fields(record):
    """ddtrace's correlation attributes, or their no-trace values when tracing is off."""
    fields = {}
    for name in DD_FIELDS:
        value = getattr(record, name, None)
        if value in (None, "") and name in _DD_ENV_FALLBACK:
            value = env_str(_DD_ENV_FALLBACK[name], "")
        if value in (None, "") and name in ("dd.trace_id", "dd.span_id"):
            value = "0"
        fields[name] = str(value)
    return fields


def _json_default(value):
    """Serialise what json cannot, without ever expanding an object into its fields."""
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, BaseException):
        return f"{exception_kind(value)}: {safe_exception_message(value)}"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__}>"


class JsonFormatter(BaseJsonFormatter):
    """One JSON object per line with Datadog's standard attribute names.

    Field order: timestamp, level, message, logger.name, dd.*, request_id, error.*,
    then the record's extras (`event` and the opaque ids).
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("json_default", _json_default)
        super().__init__(*args, **kwargs)

    def format(self, record):
        scrub_record(record)
        return super().format(record)

    def formatException(self, ei):
        return safe_traceback(ei[1]) if ei and ei[1] is not None else ""

    def add_fields(self, log_data, record, message_dict):
        log_data["timestamp"] = (
            datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
        log_data["level"] = record.levelname
        log_data["message"] = record.message
        log_data["logger.name"] = record.name
        log_data.update(correlation_fields(record))
        log_data["request_id"] = getattr(record, "request_id", "") or ""
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            log_data["error.kind"] = exception_kind(exc)
            log_data["error.message"] = safe_exception_message(exc)
            log_data["error.stack"] = safe_traceback(exc)
        elif record.exc_text:
            # Another formatter may have cached it after our filter ran.
            log_data["error.stack"] = sanitize_traceback_text(record.exc_text)
        if message_dict.get("stack_info"):
            log_data["stack_info"] = message_dict["stack_info"]
        for key, value in message_dict.items():
            if key not in ("exc_info", "stack_info"):
                log_data.setdefault(key, value)
        for key, value in extra_fields(record).items():
            log_data.setdefault(key, value)


class PlainFormatter(logging.Formatter):
    """A readable line for development: time, level, logger, message, then key=value extras."""

    def format(self, record):
        scrub_record(record)
        record.message = record.getMessage()
        parts = [self.formatTime(record), record.levelname, record.name, record.message]
        request_id = getattr(record, "request_id", "")
        extras = extra_fields(record)
        if extras.get("event") == record.message:
            # log_event's message is the event name; saying it twice adds nothing.
            del extras["event"]
        parts.extend(f"{key}={value}" for key, value in extras.items())
        if request_id:
            parts.append(f"request_id={request_id}")
        line = " ".join(str(part) for part in parts)
        if record.exc_info and record.exc_info[1] is not None:
            line = f"{line}\n{safe_traceback(record.exc_info[1])}"
        elif record.exc_text:
            line = f"{line}\n{sanitize_traceback_text(record.exc_text)}"
        if record.stack_info:
            line = f"{line}\n{self.formatStack(record.stack_info)}"
        return line


def gunicorn_logconfig(config, *, access_log=False):
    """gunicorn's `logconfig_dict`, built from Django's LOGGING (`config`), for gunicorn.conf.py.

    gunicorn logs on its own loggers, from its master process too, where Django never
    configures logging: left alone they print plain lines to stderr ("Booting worker",
    "Worker exiting", a worker timeout), and Aptible drains stderr to Datadog as well. Here
    they go to the app's `console` handler instead: stdout, the same formatter (JSON in
    production) and the same PHI filter as every other line.

    The access log stays silent unless `access_log` is true. gunicorn treats any
    `logconfig_dict` as a wish for access logging, so "off" is a logger that passes nothing,
    not a missing setting.
    """
    return {
        **config,
        "loggers": {
            # The app's own rules too (ddtrace's plain stderr handler goes): the master
            # runs under ddtrace-run as well.
            **config.get("loggers", {}),
            # No level: gunicorn has already set the one its `loglevel` setting names.
            "gunicorn.error": {"handlers": ["console"], "propagate": False},
            "gunicorn.access": {
                "handlers": ["console"] if access_log else [],
                "level": "INFO" if access_log else "CRITICAL",
                "propagate": False,
            },
        },
    }
