"""Redox's webhook is answered right below the request id and no-store middleware: the
session, auth, CSRF, messages, CSP, sign-in, MFA and axes middleware never run for it,
and its answers still carry the request id, no-store and the security headers."""

import re
from unittest import mock

from django.contrib.sessions.middleware import SessionMiddleware
from django.middleware.csrf import CsrfViewMiddleware

from orders.models import InboundMessage
from tests.conftest import PARTNER_TOKEN, sample_bytes

URL = "/redox/webhook/"


def post(client, token=PARTNER_TOKEN, **headers):
    return client.post(
        URL,
        sample_bytes("order-new.json"),
        content_type="application/json",
        headers={"verification-token": token, **headers},
    )


def test_a_delivery_skips_the_middleware_it_does_not_need(client, partner):
    with (
        mock.patch.object(SessionMiddleware, "process_request", side_effect=AssertionError("session")),
        mock.patch.object(CsrfViewMiddleware, "process_view", side_effect=AssertionError("csrf")),
    ):
        response = post(client)
    assert response.status_code == 200
    assert InboundMessage.objects.get().status == InboundMessage.Status.PROCESSED
    assert "Set-Cookie" not in response.headers


def test_its_answers_keep_the_request_id_no_store_and_security_headers(client, partner):
    for response in (post(client), post(client, token="wrong-token-0123456789abcdef")):
        assert response.headers["X-Request-ID"]
        assert "no-store" in response.headers["Cache-Control"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.status_code == 401


def test_the_answer_comes_from_the_view_the_urlconf_maps(client, partner):
    response = post(client)
    assert response.wsgi_request.resolver_match.view_name == "redox_webhook"


def test_other_paths_still_go_through_the_whole_stack(client):
    original = SessionMiddleware.process_request
    with mock.patch.object(SessionMiddleware, "process_request", autospec=True, side_effect=original) as session:
        client.get("/redox/webhook")  # not the webhook's exact path
        client.get("/")
    assert session.call_count == 2


def test_a_host_outside_allowed_hosts_is_refused_before_the_view(client, partner, settings):
    # CommonMiddleware's Host check, which the short path would otherwise skip.
    settings.ALLOWED_HOSTS = ["hcoint.example.org"]
    refused = post(client, host="attacker.example.com")
    assert refused.status_code == 400
    assert not InboundMessage.objects.exists()
    accepted = post(client, host="hcoint.example.org")
    assert accepted.status_code == 200
    assert InboundMessage.objects.get().status == InboundMessage.Status.PROCESSED


def test_a_disallowed_user_agent_is_refused_as_common_middleware_would(client, partner, settings):
    settings.DISALLOWED_USER_AGENTS = [re.compile(r"^BadBot")]
    response = post(client, **{"user-agent": "BadBot/1.0"})
    assert response.status_code == 403
    assert not InboundMessage.objects.exists()
