"""Request-level glue: the health check, request ids, and sign-in for every page."""

import contextvars
import logging
import re
import uuid

from django.db import connection
from django.http import HttpResponse

_request_id = contextvars.ContextVar("request_id", default="")
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

logger = logging.getLogger(__name__)


def current_request_id():
    return _request_id.get()


def healthcheck_response():
    """200 `ok` when the database answers a trivial query, 503 otherwise."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        logger.exception("healthcheck failed", extra={"event": "healthcheck.failed"})
        return HttpResponse("database unavailable", status=503, content_type="text/plain")
    return HttpResponse("ok", content_type="text/plain")


class HealthcheckMiddleware:
    """Answer Aptible's checker, which sends `Host: containers`, before host validation.

    Only the exact path and that exact host skip ALLOWED_HOSTS; every other request
    (including /healthcheck on a real host name) goes through the normal stack.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path == "/healthcheck" and request.META.get("HTTP_HOST", "").split(":")[0] == "containers":
            return healthcheck_response()
        return self.get_response(request)


class RequestIdMiddleware:
    """Give each request an opaque id for logs, error pages and support."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token = _request_id.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            _request_id.reset(token)
        response["X-Request-ID"] = request_id
        return response


class RequestIdFilter(logging.Filter):
    def filter(self, record):
        if not getattr(record, "request_id", None):
            record.request_id = current_request_id()
        return True
