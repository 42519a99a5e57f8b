"""In a real browser, against the sandbox playing Redox: a sent note shows Accepted by Redox; the
sandbox page makes its log succeed and the order shows Filed and leaves the reconciliation page;
another fails downstream and is listed there, with the event its monitor matches."""

import logging
import re
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.utils import timezone
from playwright.sync_api import expect

from orders.confirm import confirm_due
from orders.delivery import delivery_send_once
from orders.models import Delivery
from tests.browser.conftest import sign_in
from tests.factories import DeliveryFactory, OrderFactory, UserFactory
from tests.sandbox_server import base_url, start_in_thread

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def sandbox(settings, tmp_path):
    server = start_in_thread()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "platform.pem"
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    url = base_url(server)
    settings.REDOX_API_BASE_URL = url
    settings.REDOX_UPLOAD_URL = f"{url}/upload"
    settings.REDOX_API_KEY = "sandbox-api-key"
    settings.REDOX_API_SECRET = "sandbox-api-secret"
    settings.REDOX_PLATFORM_BASE_URL = f"{url}/platform"
    settings.REDOX_PLATFORM_CLIENT_ID = "sandbox-platform-client"
    settings.REDOX_PLATFORM_KEY_ID = "sandbox-platform-key"
    settings.REDOX_PLATFORM_PRIVATE_KEY_FILE = str(key_file)
    settings.REDOX_ORGANIZATION_ID = "sandbox-organization"
    yield server
    server.shutdown()
    server.server_close()


def send(order, user):
    """What the Send button and the worker do: queue the note, then one attempt against the sandbox."""
    delivery = DeliveryFactory(order=order, created_by=user, created_at=timezone.now(), enqueue=True)
    delivery_send_once(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT
    return delivery


def confirm(delivery):
    """The worker's confirmer, at the delivery's first check."""
    confirm_due(now=delivery.sent_at + timedelta(minutes=2))


def test_accepted_then_filed_or_failed_downstream_as_the_sandbox_log_says(page, partner, sandbox, caplog):
    uploader = UserFactory(username="ursula", role="uploader")
    filed_order = OrderFactory(partner=partner)
    failing_order = OrderFactory(partner=partner, patient_last_name="Otherpatient")
    sign_in(page, "ursula")

    delivery = send(filed_order, uploader)
    page.goto(f"/orders/{filed_order.pk}/")
    expect(page.locator(".timeline .event-delivery .state")).to_have_text("Accepted by Redox")
    expect(page.locator(".timeline .event-delivery")).to_contain_text("Waiting for Redox to confirm it was filed")

    # The sandbox's page: make this log succeed.
    page.goto(base_url(sandbox) + "/")
    page.get_by_role("button", name=f"succeeded {delivery.redox_log_id}").click()
    expect(page.locator(f"tr:has-text('{delivery.redox_log_id}') td").nth(1)).to_have_text("succeeded")

    confirm(delivery)
    page.goto(f"/orders/{filed_order.pk}/")
    expect(page.locator(".timeline .event-delivery .state")).to_have_text("Filed")

    failing = send(failing_order, uploader)
    page.goto(base_url(sandbox) + "/")
    page.get_by_role("button", name=f"failed {failing.redox_log_id}").click()
    with caplog.at_level(logging.INFO):
        confirm(failing)
    assert [r.delivery_id for r in caplog.records if getattr(r, "event", "") == "delivery.failed_downstream"] == [
        failing.pk
    ]

    page.goto("/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name=re.compile("To reconcile")).click()
    downstream = page.locator("#failed_downstream")
    expect(downstream).to_contain_text("Otherpatient")
    expect(downstream.get_by_role("link", name="Resend corrected")).to_be_visible()
    assert page.locator(f"a[href='/orders/{filed_order.pk}/']").count() == 0
    assert not page.problems, page.problems
