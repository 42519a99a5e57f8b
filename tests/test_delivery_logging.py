"""Deliveries log business events with opaque ids only, never patient data or Redox's error text."""

import logging
from datetime import timedelta

import pytest

from orders.delivery import delivery_abandon, delivery_retry_now, delivery_send_once
from tests.delivery_fakes import T0, FakeRedox, permanent, transient
from tests.factories import DeliveryFactory, OrderFactory

pytestmark = pytest.mark.django_db

PHI = ("Samplepatient", "Testy", "MRN0048213", "1948-02-29", "VIS-2026-000731")


def events(caplog):
    return [(record.event, record) for record in caplog.records if hasattr(record, "event")]


def test_every_transition_is_logged_with_ids_and_no_patient_data(partner, uploader, caplog):
    order = OrderFactory(partner=partner, sending=True)
    rejection = permanent((f"Patient {PHI[0]} {PHI[2]} not found",))
    with caplog.at_level(logging.DEBUG):
        delivery = DeliveryFactory(order=order, created_by=uploader, created_at=T0, enqueue=True)
        with FakeRedox(transient(503), rejection).patch():
            delivery_send_once(delivery_id=delivery.pk, now=T0)
            delivery.refresh_from_db()
            delivery_send_once(delivery_id=delivery.pk, now=delivery.next_attempt_at)
        delivery.refresh_from_db()
        delivery_retry_now(delivery=delivery, user=uploader, now=T0 + timedelta(minutes=5))
        with FakeRedox(ValueError(PHI[0])).patch():
            delivery_send_once(delivery_id=delivery.pk, now=T0 + timedelta(minutes=5))
        delivery.refresh_from_db()
        delivery_abandon(delivery=delivery, user=uploader, reason=f"Faxed to {PHI[1]}", now=T0 + timedelta(minutes=6))

    names = [name for name, _ in events(caplog)]
    assert names == [
        "delivery.queued",
        "delivery.attempted",
        "delivery.retry_scheduled",  # a retry is the row's next_attempt_at: nothing else is queued
        "delivery.attempted",
        "delivery.failed",
        "delivery.queued",
        "delivery.attempted",
        "delivery.retry_scheduled",
        "delivery.abandoned",
    ]
    for name, record in events(caplog):
        assert record.delivery_id == delivery.pk, name
        assert record.order_id == order.pk, name
    attempted = [record for name, record in events(caplog) if name == "delivery.attempted"]
    assert [r.http_status for r in attempted] == [503, 400, None]
    assert [r.attempt for r in attempted] == [1, 2, 3]
    assert attempted[0].partner_id == partner.pk
    failed = next(record for name, record in events(caplog) if name == "delivery.failed")
    assert failed.levelno == logging.ERROR
    assert failed.reason == "permanent"

    everything = caplog.text + " ".join(str(record.__dict__) for record in caplog.records)
    for value in PHI:
        assert value not in everything
