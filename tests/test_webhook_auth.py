"""The webhook refuses callers it cannot identify, and oversized bodies, before storing anything."""

import logging

import pytest
from django.core.handlers.wsgi import WSGIRequest
from django.test import RequestFactory

from orders.models import InboundMessage, Order
from orders.webhook import redox_webhook
from tests.conftest import PARTNER_TOKEN, SECOND_PARTNER_TOKEN, sample_bytes

URL = "/redox/webhook/"


def post(client, body, token=None):
    headers = {"verification-token": token} if token is not None else {}
    return client.post(URL, body, content_type="application/json", headers=headers)


def auth_failures(caplog):
    return [r for r in caplog.records if getattr(r, "event", None) == "webhook.auth_failed"]


@pytest.mark.parametrize("token", [None, "", "wrong-token-0123456789", PARTNER_TOKEN + "x", PARTNER_TOKEN.upper()])
def test_a_missing_or_wrong_token_is_refused_and_nothing_is_stored(client, partner, caplog, token):
    body = sample_bytes("order-new.json")
    response = post(client, body, token)
    assert response.status_code == 401
    assert InboundMessage.objects.count() == 0
    assert Order.objects.count() == 0
    (record,) = auth_failures(caplog)
    assert record.levelno == logging.WARNING
    logged = record.getMessage() + repr(record.__dict__)
    assert "Samplepatient" not in logged
    assert "157720311" not in logged
    assert PARTNER_TOKEN not in logged


def test_an_inactive_partners_token_is_refused(client, partner):
    partner.is_active = False
    partner.save()
    assert post(client, sample_bytes("order-new.json"), PARTNER_TOKEN).status_code == 401
    assert InboundMessage.objects.count() == 0


def test_the_token_decides_which_partner_the_message_belongs_to(client, partner, second_partner):
    assert post(client, sample_bytes("order-new.json"), SECOND_PARTNER_TOKEN).status_code == 200
    message = InboundMessage.objects.get()
    assert message.partner == second_partner
    assert Order.objects.get().partner == second_partner


def test_a_declared_length_over_the_limit_is_refused_with_413(client, partner, settings):
    settings.REDOX_WEBHOOK_MAX_BYTES = 100
    response = post(client, sample_bytes("order-new.json"), PARTNER_TOKEN)
    assert response.status_code == 413
    assert InboundMessage.objects.count() == 0


def test_a_body_longer_than_it_declared_is_refused_with_413(partner, settings):
    settings.REDOX_WEBHOOK_MAX_BYTES = 100
    request = RequestFactory().post(
        URL,
        sample_bytes("order-new.json"),
        content_type="application/json",
        headers={"verification-token": PARTNER_TOKEN},
    )
    request.META["CONTENT_LENGTH"] = "50"
    assert redox_webhook(request).status_code == 413
    assert InboundMessage.objects.count() == 0


def test_a_body_at_the_limit_is_accepted(client, partner, settings):
    body = sample_bytes("order-new.json")
    settings.REDOX_WEBHOOK_MAX_BYTES = len(body)
    assert post(client, body, PARTNER_TOKEN).status_code == 200


def test_a_get_without_a_challenge_is_refused_without_a_token_and_rejected_with_one(client, partner):
    assert client.get(URL).status_code == 401
    assert client.get(URL, headers={"verification-token": PARTNER_TOKEN}).status_code == 400


def test_other_methods_are_not_allowed(client, partner):
    assert client.put(URL, b"{}", headers={"verification-token": PARTNER_TOKEN}).status_code == 405
    assert InboundMessage.objects.count() == 0


def test_the_webhook_needs_no_sign_in_and_no_csrf_token(partner):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    response = strict.post(
        URL,
        sample_bytes("order-new.json"),
        content_type="application/json",
        headers={"verification-token": PARTNER_TOKEN},
    )
    assert response.status_code == 200


class CountingStream:
    """A request body that records how many bytes the view asked for."""

    def __init__(self, body):
        self.body, self.position, self.requested = body, 0, 0

    def read(self, size=-1):
        size = len(self.body) - self.position if size is None or size < 0 else size
        self.requested += size
        chunk = self.body[self.position : self.position + size]
        self.position += len(chunk)
        return chunk

    def readline(self, size=-1):
        return self.read(size)


def streamed_post(body, token=None, declared=None):
    stream = CountingStream(body)
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": URL,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": stream,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body) if declared is None else declared),
    }
    if token is not None:
        environ["HTTP_VERIFICATION_TOKEN"] = token
    return WSGIRequest(environ), stream


@pytest.mark.parametrize("token", [None, "wrong-token-0123456789"])
def test_a_large_body_without_a_partners_token_is_refused_unread(partner, token):
    body = b'{"Meta": {}, "pad": "' + b"x" * 1_000_000 + b'"}'
    request, stream = streamed_post(body, token)
    assert redox_webhook(request).status_code == 401
    assert stream.requested == 0
    assert InboundMessage.objects.count() == 0


def test_a_small_body_without_a_partners_token_is_read_only_to_look_for_a_challenge(partner):
    # The declared length is small, but the stream holds more: no more than a challenge is read.
    body = sample_bytes("order-new.json")
    request, stream = streamed_post(body, "wrong-token-0123456789", declared=100)
    assert redox_webhook(request).status_code == 401
    assert 0 < stream.requested <= 100
    assert InboundMessage.objects.count() == 0


def test_a_partners_token_lets_the_body_be_read_and_stored(partner):
    body = sample_bytes("order-new.json")
    request, stream = streamed_post(body, PARTNER_TOKEN)
    assert redox_webhook(request).status_code == 200
    assert bytes(InboundMessage.objects.get().body) == body
