"""delivery.retry_scheduled says how long the delivery has been trying, for the "still retrying" monitor."""

import logging
from datetime import timedelta

import pytest

from orders.delivery import delivery_send_once
from tests.delivery_fakes import T0, FakeRedox, transient
from tests.factories import DeliveryFactory, OrderFactory

pytestmark = pytest.mark.django_db


def test_retry_scheduled_carries_the_age_of_the_delivery_in_minutes(partner, uploader, caplog):
    delivery = DeliveryFactory(
        order=OrderFactory(partner=partner, sending=True), created_by=uploader, created_at=T0, enqueue=True
    )
    with caplog.at_level(logging.INFO, logger="orders.delivery"), FakeRedox(transient(503)).patch():
        delivery_send_once(delivery_id=delivery.pk, now=T0 + timedelta(minutes=70, seconds=30))
    (record,) = [r for r in caplog.records if getattr(r, "event", None) == "delivery.retry_scheduled"]
    assert record.age_minutes == 70
