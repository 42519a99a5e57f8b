"""Request-level glue: the health check, request ids, no caching of pages, and sign-in for every page."""

import contextvars
import logging
import re
import uuid

from django.db import connection
from django.http import HttpResponse
from django.middleware.common import CommonMiddleware
from django.urls import get_script_prefix, resolve, reverse
from django.utils.cache import patch_cache_control

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


class NoStoreMiddleware:
    """`Cache-Control: no-store, private` on every response the app's views make.

    Nearly every page shows patient data (order list and search, detail, review, usage,
    PDFs, the admin), and the few that do not (sign-in, the health check, the webhook's
    answers) lose nothing by not being cached: one rule with no exceptions cannot miss a
    new page. A browser then keeps no copy on disk and a shared proxy none at all
    (https://www.rfc-editor.org/rfc/rfc9111#section-5.2.2.5). Static files are served by
    WhiteNoise above this middleware and keep their long-lived caching. Directives a view
    set (Django's never_cache adds no-cache, must-revalidate) are kept.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        patch_cache_control(response, no_store=True, private=True)
        return response


class WebhookMiddleware:
    """Answer Redox's webhook straight after the request id and no-store, skipping the rest.

    The webhook authenticates the partner by its verification token and never uses a
    session, a user, CSRF, messages, sign-in or MFA redirects, axes' lockout or a page's
    headers (orders/webhook.py); those middleware only cost time on every delivery
    (docs/performance.md). Only the exact path the URLconf gives `redox_webhook` is
    short-circuited, through the view it maps to (so a tracer's wrapping of it stays),
    with the resolver's match set as Django would; everything else, including a path
    without its slash, goes through the normal stack. Middleware above this one (health
    check, SecurityMiddleware's HTTPS redirect and headers, WhiteNoise, request id,
    no-store) still applies, and an exception from the view becomes Django's 500 response
    as before.

    What CommonMiddleware would have done for this path is done here first, by the same
    code: the Host header is checked against ALLOWED_HOSTS (`request.get_host()`, whose
    DisallowedHost becomes a 400), DISALLOWED_USER_AGENTS is refused (403) and PREPEND_WWW
    redirects. The middleware skipped below add nothing a text/plain answer needs for
    its safety: X-Frame-Options and the CSP concern pages a browser renders, the answer
    carries `nosniff` from SecurityMiddleware, and the webhook sets no cookie.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self._common = CommonMiddleware(get_response)
        self._path = None
        self._match = None

    def __call__(self, request):
        if self._path is None:
            # As path_info: without the script prefix a deployment under a sub-path adds.
            self._path = "/" + reverse("redox_webhook").removeprefix(get_script_prefix())
        if request.path_info != self._path:
            return self.get_response(request)
        redirect = self._common.process_request(request)  # may raise DisallowedHost
        if redirect is not None:
            return redirect
        if self._match is None:
            self._match = resolve(self._path)
        request.resolver_match = self._match
        return self._match.func(request, *self._match.args, **self._match.kwargs)
