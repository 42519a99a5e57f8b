"""A PDF over REDOX_INLINE_MAX_BYTES is uploaded first and referenced by URI; a smaller one travels inline."""

import base64

import pytest

from orders.delivery import delivery_send_once
from orders.models import Delivery
from tests.delivery_fakes import T0, FakeRedox
from tests.factories import SAMPLE_PDF, DeliveryFactory, OrderFactory

pytestmark = pytest.mark.django_db


def sent_value(message):
    value = message["Orders"][0]["Results"][0]["Value"]
    return value if isinstance(value, str) else value.text()


def test_a_pdf_at_the_threshold_travels_inline_as_base64(partner, uploader, settings):
    settings.REDOX_INLINE_MAX_BYTES = len(SAMPLE_PDF)
    delivery = DeliveryFactory(
        order=OrderFactory(partner=partner, sending=True), created_by=uploader, created_at=T0, enqueue=True
    )
    fake = FakeRedox()

    with fake.patch():
        delivery_send_once(delivery_id=delivery.pk, now=T0)

    assert fake.uploads == []
    [message] = fake.messages
    assert base64.b64decode(sent_value(message)) == SAMPLE_PDF
    assert message["Orders"][0]["Results"][0]["ValueType"] == "Encapsulated Data"
    assert message["Orders"][0]["Results"][0]["FileType"] == "PDF"


def test_a_pdf_over_the_threshold_is_uploaded_and_the_message_carries_the_uri(partner, uploader, settings):
    settings.REDOX_INLINE_MAX_BYTES = len(SAMPLE_PDF) - 1
    delivery = DeliveryFactory(
        order=OrderFactory(partner=partner, sending=True), created_by=uploader, created_at=T0, enqueue=True
    )
    fake = FakeRedox()

    with fake.patch():
        delivery_send_once(delivery_id=delivery.pk, now=T0)

    assert fake.uploads == [(SAMPLE_PDF, "clinical-note.pdf")]
    [message] = fake.messages
    assert sent_value(message) == "https://blob.redox.test/1"
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT


def test_a_failed_upload_is_a_failed_attempt_and_nothing_is_sent(partner, uploader, settings):
    from redox.errors import RedoxError

    settings.REDOX_INLINE_MAX_BYTES = 10
    delivery = DeliveryFactory(
        order=OrderFactory(partner=partner, sending=True), created_by=uploader, created_at=T0, enqueue=True
    )
    fake = FakeRedox()
    fake.client.upload_file.side_effect = RedoxError("Redox blob upload: HTTP 503", retryable=True, status=503)

    with fake.patch():
        delivery_send_once(delivery_id=delivery.pk, now=T0)

    assert fake.messages == []
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.RETRY_SCHEDULED
    assert delivery.last_error == "Redox blob upload: HTTP 503"
    assert delivery.attempts.get().http_status == 503
