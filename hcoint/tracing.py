"""Datadog tracing glue: custom spans with opaque tags, and a scrubber for every span sent.

Tracing is switched on from outside the code: the Procfile runs web and worker under
`ddtrace-run`, configured by `DD_*` variables (see `.env.example`). This module never
imports ddtrace itself; when ddtrace is not loaded, or `DD_TRACE_ENABLED=false`,
`span()` does nothing, so development and tests need no agent.

    from hcoint.tracing import span

    with span("redox.request", resource="Results.New", partner_id=p.pk, delivery_id=d.pk) as s:
        result = client.send(message)
        s.set_tag("http.status_code", result.status)
        s.set_tag("outcome", "sent")

Tags must be opaque ids and codes (partner id, data model, delivery id, outcome, HTTP
status): a tag whose key looks sensitive (see `hcoint.phi.is_sensitive_key`) is
dropped. Exceptions raised inside a span are recorded with their type, their
stack and a message only when the type is known not to echo input.

`install()` (run by `hcoint.observability.configure_observability` in every process) keeps
patient data out of the spans ddtrace creates on its own:
- the Django integration's username tag is switched off
  (`ddtrace.config.django["include_user_name"]`, same as `DD_DJANGO_INCLUDE_USER_NAME=false`);
- `PhiTraceFilter` removes query strings from `http.url` and drops `http.query.string`
  (staff search by patient name with `?q=`), removes user names, and replaces exception
  messages in `error.message`/`error.stack` the same way the logs do. Setting
  `DD_HTTP_SERVER_TAG_QUERY_STRING=false` and `DD_TRACE_HTTP_CLIENT_TAG_QUERY_STRING=false`
  in the environment stops the query strings at the source; the filter is the backstop.
"""

import sys
from contextlib import contextmanager

from hcoint.phi import (
    WITHHELD,
    exception_kind,
    is_sensitive_key,
    message_is_safe,
    safe_exception_message,
    safe_traceback,
    sanitize_traceback_text,
)

# Tags that name a person (a staff user) rather than describe the request.
_USER_NAME_TAGS = ("django.user.name", "usr.name", "usr.email")
# Tags our own span() sets; never dropped for looking sensitive.
_OWN_TAG_PREFIXES = ("error.", "http.status_code", "_dd.")


def _active_tracer():
    """ddtrace's global tracer when ddtrace-run (or ddtrace.auto) loaded it and tracing is on."""
    module = sys.modules.get("ddtrace.trace")
    if module is None:
        return None
    tracer = getattr(module, "tracer", None)
    if tracer is None or not getattr(tracer, "enabled", False):
        return None
    return tracer


class SpanHandle:
    """What `span()` yields: set opaque tags on the span, or do nothing when tracing is off."""

    def __init__(self, span):
        self._span = span

    @property
    def active(self):
        return self._span is not None

    def set_tag(self, key, value):
        if self._span is None or value is None:
            return
        if is_sensitive_key(key) and not key.startswith(_OWN_TAG_PREFIXES):
            return
        if isinstance(value, bool):
            value = "true" if value else "false"
        self._span.set_tag(key, str(value))

    def set_tags(self, **tags):
        for key, value in tags.items():
            self.set_tag(key, value)

    def record_error(self, exc):
        """Mark the span failed with a message that cannot carry patient data."""
        if self._span is None:
            return
        self._span.error = 1
        self._span.set_tag("error.type", exception_kind(exc))
        self._span.set_tag("error.message", safe_exception_message(exc))
        self._span.set_tag("error.stack", safe_traceback(exc))


@contextmanager
def span(name, *, resource=None, **tags):
    """A custom span around a block; a no-op when tracing is off. Yields a `SpanHandle`."""
    tracer = _active_tracer()
    if tracer is None:
        yield SpanHandle(None)
        return
    current = tracer.trace(name, resource=resource or name)
    handle = SpanHandle(current)
    # Measured spans get trace metrics (hits, errors, latency) of their own in Datadog.
    current.set_tag("_dd.measured")
    handle.set_tags(**tags)
    try:
        yield handle
    except Exception as exc:
        # Recorded here rather than by ddtrace, which would tag str(exc) verbatim.
        handle.record_error(exc)
        raise
    finally:
        current.finish()


def _exception_class(kind):
    """The exception class named by an `error.type` tag, if its module is loaded."""
    module_name, _, name = (kind or "").rpartition(".")
    module = sys.modules.get(module_name or "builtins")
    candidate = getattr(module, name, None) if module is not None else None
    return candidate if isinstance(candidate, type) and issubclass(candidate, BaseException) else None


def scrub_span(current):
    """Remove patient data ddtrace may have put on a finished span."""
    tags = current.get_tags()
    url = tags.get("http.url")
    if url and "?" in url:
        current.set_tag("http.url", url.split("?", 1)[0])
    for key in ("http.query.string", *_USER_NAME_TAGS):
        if key in tags:
            current.remove_tag(key)
    if "error.message" in tags:
        cls = _exception_class(tags.get("error.type"))
        if cls is None or not message_is_safe(cls):
            current.set_tag("error.message", WITHHELD)
    if "error.stack" in tags:
        current.set_tag("error.stack", sanitize_traceback_text(tags["error.stack"]))


def _make_trace_filter():
    from ddtrace.trace import TraceFilter

    class PhiTraceFilter(TraceFilter):
        """Runs on every finished trace before it is sent to the agent."""

        def process_trace(self, trace):
            for current in trace:
                scrub_span(current)
            return trace

    return PhiTraceFilter()


_installed = False


def install():
    """Switch off ddtrace's PHI-prone tags and add the scrubber. No-op without ddtrace."""
    global _installed
    if _installed or "ddtrace" not in sys.modules:
        return False
    from ddtrace import config
    from ddtrace.trace import tracer

    if not tracer.enabled:
        # Nothing will be sent; and tracer.configure() would switch tracing back on.
        return False
    config.django["include_user_name"] = False
    tracer.configure(trace_processors=[_make_trace_filter()])
    _installed = True
    return True
