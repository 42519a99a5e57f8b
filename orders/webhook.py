"""The Redox webhook: verify, store, answer 200.

Redox pauses a partner's whole feed while we answer >= 400 and retries the same
message forever, so errors are few. The answers:

- 200: a message from a partner (stored, even when we cannot process it; see
  orders/ingest.py), or the echoed challenge of a destination verification;
- 401: a missing or wrong verification token, on a message or a challenge;
- 429: a wrong or missing token from an address over WEBHOOK_BAD_TOKEN_LIMIT this
  minute (hcoint/throttle.py); a partner's own token is never refused this way;
- 413: a body over REDOX_WEBHOOK_MAX_BYTES (from a partner; checked before and after reading);
- 400: a GET with a partner's token but no challenge (Redox only GETs to verify);
- 405: a method other than GET or POST.

https://developer.redoxengine.com/redox-json-api/processing-requests/

The token is checked before the body is read: a caller without a partner's token
never makes us read more than a verification challenge's few KB. The one exception is a
token this process found valid in the last minute (`_new_orders_in_one_round_trip`):
its delivery is read first and the statement that stores it checks the token, storing
nothing if the token no longer names that partner.
"""

import logging

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import InterfaceError, OperationalError, connection
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from hcoint.events import log_event
from hcoint.throttle import WEBHOOK_BAD_TOKEN, address_key
from orders import partner_lookup
from orders.ingest import message_ingest, new_orders_ingest
from orders.partner_lookup import partner_for_token
from redox import verification

logger = logging.getLogger(__name__)


def _text(body, status=200):
    return HttpResponse(body, status=status, content_type="text/plain; charset=utf-8")


def _refuse(request, token):
    # One line, no body and no token: enough to alert on, nothing to leak.
    log_event(
        logger,
        "webhook.auth_failed",
        level=logging.WARNING,
        token_present=bool(token),
        method=request.method,
    )
    if WEBHOOK_BAD_TOKEN.record_failure(address_key(request)):
        return _throttled()
    return _text("invalid verification token", status=401)


def _throttled():
    # No log line: the throttle logged `webhook.throttled` once, when the limit was reached.
    response = _text("too many requests with a wrong verification token", status=429)
    response["Retry-After"] = str(WEBHOOK_BAD_TOKEN.retry_after())
    return response


def _declared_length(request):
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _too_large(request):
    return _declared_length(request) > settings.REDOX_WEBHOOK_MAX_BYTES


def _challenge_without_partner(request, header_token):
    """Redox's POST verification challenge from a caller whose header names no partner, or None.

    The challenge may carry its token in the body instead of the header, so a body that
    small is read, and never more of it than a challenge can be; a larger body is not read.
    """
    if _declared_length(request) > verification.CHALLENGE_BODY_MAX_BYTES:
        return None
    return verification.challenge_from_body(request.read(verification.CHALLENGE_BODY_MAX_BYTES + 1), header_token)


def _partner_checking_the_connection(token):
    """The partner `token` names: this request's first query, which also checks the connection.

    `partner_for_token` is `Partner.objects.for_token` with its SQL compiled once
    (orders/partner_lookup.py).

    With CONN_HEALTH_CHECKS (hcoint/settings.py) Django sends `SELECT 1` on a reused
    connection before a request's first query: a round trip on every delivery, about a
    tenth of the answer's time (docs/performance.md, "Ingest"). Here the lookup does the
    check's job instead: if the connection proves dead (the server restarted, a proxy
    dropped it while idle), it is closed and the lookup asked once more on a new
    connection, which is what the check would have done. Only a read is retried, and
    only outside a transaction.
    """
    connection.health_check_done = True  # skip Django's check for this request; see above
    try:
        return partner_for_token(token)
    except (OperationalError, InterfaceError):
        if connection.in_atomic_block:
            raise
        connection.close()
        return partner_for_token(token)


@csrf_exempt
@login_not_required
@require_http_methods(["GET", "POST"])
def redox_webhook(request):
    header_token = request.headers.get(verification.TOKEN_HEADER, "")
    read = None
    if request.method == "POST":
        answered, read = _new_orders_in_one_round_trip(request, header_token)
        if answered is not None:
            return answered
    partner = _partner_checking_the_connection(header_token)
    if partner is not None:
        partner_lookup.remember(header_token, partner)
    # An address over the wrong-token limit gets 429 before its body is read. A request
    # whose header token is right still passes: Redox's egress addresses are shared.
    if partner is None and WEBHOOK_BAD_TOKEN.is_over(address_key(request)):
        return _throttled()

    if request.method == "GET":
        # Redox only uses GET to verify a destination; messages always come by POST.
        challenge = verification.challenge_from_query(request.GET, header_token)
        if challenge is not None:
            return _answer_challenge(request, challenge, header_token=header_token, header_partner=partner)
        if partner is None:
            return _refuse(request, header_token)
        return _text("challenge missing", status=400)

    if partner is None:
        challenge = _challenge_without_partner(request, header_token)
        if challenge is not None:
            return _answer_challenge(request, challenge, header_token=header_token, header_partner=None)
        return _refuse(request, header_token)

    # Refuse an oversized body before reading it, then check what actually arrived.
    if _too_large(request):
        return _text("body too large", status=413)
    body = request.body
    if len(body) > settings.REDOX_WEBHOOK_MAX_BYTES:
        return _text("body too large", status=413)

    challenge = verification.challenge_from_body(body, header_token)
    if challenge is not None:
        return _answer_challenge(request, challenge, header_token=header_token, header_partner=partner)
    message_ingest(partner=partner, body=body, headers=request.headers, read=read)
    return _text("ok")


def _new_orders_in_one_round_trip(request, token):
    """The common delivery, new orders under a token this process verified lately, in one
    round trip: (the answer, None), or (None, what was read of the body, if anything) for
    the usual way above, with nothing stored.

    The partner is not looked up first: the statement that stores the delivery checks the
    token itself and stores nothing unless the token names that partner now
    (orders/ingest.py, `new_orders_ingest`). So a partner deactivated or a token rotated
    away still stores nothing, and is then refused as any wrong token is, by the usual
    way. The body is read before that check only for a token this process found valid in
    the last `partner_lookup.REMEMBER_SECONDS`, once (it is then forgotten); any other
    caller's body is still not read before its token is checked. The statement, not a
    lookup, is this request's first query: if the connection proves dead it fails, nothing
    is stored, and the usual way's lookup reconnects (see below).
    """
    partner = partner_lookup.remembered(token)
    if partner is None or _too_large(request):
        return None, None
    body = request.body
    if len(body) > settings.REDOX_WEBHOOK_MAX_BYTES or verification.may_be_challenge(body):
        return None, None  # a challenge is decoded, and answered, the usual way
    connection.health_check_done = True  # as for the lookup (below): this request's first query checks it
    ingested, read = new_orders_ingest(partner=partner, token=token, body=body, headers=request.headers)
    if ingested is None:
        partner_lookup.forget(token)
        return None, read
    return _text("ok"), None


def _answer_challenge(request, challenge, *, header_token, header_partner):
    """Echo `challenge` if its token names a partner. `header_partner` is the partner the
    header's token named (or None): when the challenge's token is that one, it is not looked up again."""
    partner = header_partner if challenge.token == header_token else partner_for_token(challenge.token)
    if partner is None:
        return _refuse(request, challenge.token)
    return _text(challenge.challenge)
