"""The webhook refuses callers it cannot identify, and oversized bodies, before storing anything."""

import logging

import pytest
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
