"""A delivery moves pending → sending → sent | retry scheduled … | failed, and its order follows."""

from datetime import timedelta

import pytest

from orders.delivery import delivery_send_once
from orders.models import Delivery, DeliveryAttempt, Order
from tests.delivery_fakes import T0, FakeRedox, accepted, permanent, transient
from tests.factories import DeliveryFactory, OrderFactory

pytestmark = pytest.mark.django_db

NOW = T0 + timedelta(seconds=5)


@pytest.fixture
def order(partner):
    return OrderFactory(partner=partner, sending=True)


def test_a_pending_delivery_is_sent_and_the_order_becomes_sent(order, uploader):
    delivery = DeliveryFactory(order=order, created_by=uploader, created_at=T0, enqueue=True)
    fake = FakeRedox(accepted("redox-log-77"))

    with fake.patch():
        result = delivery_send_once(delivery_id=delivery.pk, now=NOW)

    delivery.refresh_from_db()
    order.refresh_from_db()
    assert result.pk == delivery.pk
    assert delivery.status == Delivery.Status.SENT
    assert delivery.sent_at == NOW
    assert delivery.redox_log_id == "redox-log-77"
    assert delivery.attempt_count == 1
    assert delivery.next_attempt_at is None
    assert order.state == Order.State.SENT
    [attempt] = delivery.attempts.all()
    assert attempt.outcome == DeliveryAttempt.Outcome.SENT
    assert attempt.http_status == 200
    assert attempt.redox_log_id == "redox-log-77"
    assert attempt.started_at == NOW
    assert attempt.duration_ms is not None
    assert attempt.error == ""


def test_the_delivery_and_its_order_are_sending_while_redox_is_called(order, uploader):
    delivery = DeliveryFactory(order=order, created_by=uploader, created_at=T0, enqueue=True)
    seen = {}

    def look(message):
        seen["delivery"] = Delivery.objects.get(pk=delivery.pk)
        seen["order_state"] = Order.objects.get(pk=order.pk).state
        return accepted()

    with FakeRedox(look).patch():
        delivery_send_once(delivery_id=delivery.pk, now=NOW)

    assert seen["delivery"].status == Delivery.Status.SENDING
    assert seen["delivery"].sending_started_at == NOW
    assert seen["order_state"] == Order.State.SENDING


def test_a_transient_error_schedules_a_retry_that_a_worker_claims_once_due(order, uploader):
    delivery = DeliveryFactory(order=order, created_by=uploader, created_at=T0, enqueue=True)

    with FakeRedox(transient(503)).patch():
        delivery_send_once(delivery_id=delivery.pk, now=NOW)

    delivery.refresh_from_db()
    order.refresh_from_db()
    assert delivery.status == Delivery.Status.RETRY_SCHEDULED
    assert delivery.next_attempt_at > NOW
    assert delivery.last_error == "Redox /endpoint: HTTP 503"
    assert order.state == Order.State.SENDING
    assert delivery.lease_expires_at is None
    assert not Delivery.objects.claimable(delivery.next_attempt_at - timedelta(seconds=1)).exists()
    assert list(Delivery.objects.claimable(delivery.next_attempt_at)) == [delivery]
    [attempt] = delivery.attempts.all()
    assert attempt.outcome == DeliveryAttempt.Outcome.TRANSIENT
    assert attempt.http_status == 503


def test_a_retry_is_not_attempted_before_it_is_due(order, uploader):
    delivery = DeliveryFactory(order=order, created_by=uploader, created_at=T0, enqueue=True)
    fake = FakeRedox(transient(503))
    with fake.patch():
        delivery_send_once(delivery_id=delivery.pk, now=NOW)
        delivery.refresh_from_db()
        early = delivery.next_attempt_at - timedelta(seconds=1)

        assert delivery_send_once(delivery_id=delivery.pk, now=early) is None
        assert len(fake.messages) == 1

        delivery_send_once(delivery_id=delivery.pk, now=delivery.next_attempt_at)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT
    assert delivery.attempt_count == 2
    assert len(fake.messages) == 2
    assert [a.outcome for a in delivery.attempts.all()] == ["transient", "sent"]


def test_a_permanent_error_fails_at_once_with_redox_error_text(order, uploader):
    delivery = DeliveryFactory(order=order, created_by=uploader, created_at=T0, enqueue=True)
    error = permanent(("Patient.Identifiers is required", "Orders[0].ID is required"))

    with FakeRedox(error).patch():
        delivery_send_once(delivery_id=delivery.pk, now=NOW)

    delivery.refresh_from_db()
    order.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.last_error == "Patient.Identifiers is required; Orders[0].ID is required"
    assert delivery.next_attempt_at is None
    assert order.state == Order.State.FAILED
    assert not Delivery.objects.claimable(NOW + timedelta(days=365)).exists()
    [attempt] = delivery.attempts.all()
    assert attempt.outcome == DeliveryAttempt.Outcome.PERMANENT
    assert attempt.http_status == 400
    assert attempt.error == delivery.last_error


def test_a_sent_failed_or_abandoned_delivery_is_never_sent_again(order, uploader):
    fake = FakeRedox()
    with fake.patch():
        for status in (Delivery.Status.SENT, Delivery.Status.FAILED, Delivery.Status.ABANDONED):
            delivery = DeliveryFactory(
                order=OrderFactory(partner=order.partner, ehr_order_id=f"o-{status}", sending=True),
                created_by=uploader,
                created_at=T0,
                enqueue=True,
            )
            Delivery.objects.filter(pk=delivery.pk).update(status=status)
            assert delivery_send_once(delivery_id=delivery.pk, now=NOW) is None
    assert fake.messages == []
    assert not DeliveryAttempt.objects.exists()


def cancel_during_send(order, outcome):
    """A Redox answer that arrives after the partner cancelled the order mid-send."""

    def answer(message):
        Order.objects.filter(pk=order.pk).update(state=Order.State.CANCELLED, cancelled_at=T0)
        return outcome

    return answer


@pytest.mark.parametrize(
    ("response", "outcome"),
    [(accepted, Delivery.Status.SENT), (permanent, Delivery.Status.FAILED)],
)
def test_an_order_cancelled_mid_send_stays_cancelled_whatever_the_delivery_does(order, uploader, response, outcome):
    # A Cancel that arrives before the claim stops the send (test_delivery_cancelled_order.py);
    # one that arrives while the note is in the air cannot, but must not be undone by the outcome.
    delivery = DeliveryFactory(order=order, created_by=uploader, created_at=T0, enqueue=True)
    with FakeRedox(cancel_during_send(order, response())).patch():
        delivery_send_once(delivery_id=delivery.pk, now=NOW)
    order.refresh_from_db()
    delivery.refresh_from_db()
    assert delivery.status == outcome
    assert order.state == Order.State.CANCELLED


def test_an_unexpected_error_is_retried_and_recorded_by_class_name_only(order, uploader):
    delivery = DeliveryFactory(order=order, created_by=uploader, created_at=T0, enqueue=True)

    with FakeRedox(ValueError(f"bad value for {order.patient_last_name}")).patch():
        delivery_send_once(delivery_id=delivery.pk, now=NOW)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.RETRY_SCHEDULED
    [attempt] = delivery.attempts.all()
    assert attempt.outcome == DeliveryAttempt.Outcome.TRANSIENT
    assert attempt.http_status is None
    assert "ValueError" in attempt.error
    assert order.patient_last_name not in attempt.error
    assert order.patient_last_name not in delivery.last_error


def test_each_attempt_is_recorded(order, uploader):
    delivery = DeliveryFactory(order=order, created_by=uploader, created_at=T0, enqueue=True)
    fake = FakeRedox(transient(502), transient(429, retry_after=10), accepted("log-3"))
    now = NOW
    with fake.patch():
        for _ in range(3):
            delivery_send_once(delivery_id=delivery.pk, now=now)
            delivery.refresh_from_db()
            now = delivery.next_attempt_at or now

    attempts = list(delivery.attempts.all())
    assert [a.http_status for a in attempts] == [502, 429, 200]
    assert [a.outcome for a in attempts] == ["transient", "transient", "sent"]
    assert attempts[-1].redox_log_id == "log-3"
    assert attempts[0].started_at < attempts[1].started_at < attempts[2].started_at
    assert delivery.attempt_count == 3
    assert delivery.status == Delivery.Status.SENT
    assert delivery.last_error == ""


def test_the_message_is_built_from_the_stored_order_partner_and_note(order, uploader):
    delivery = DeliveryFactory(order=order, created_by=uploader, created_at=T0, enqueue=True)
    fake = FakeRedox()

    with fake.patch():
        delivery_send_once(delivery_id=delivery.pk, now=NOW)

    [message] = fake.messages
    assert message["Meta"]["DataModel"] == "Results"
    assert message["Meta"]["Destinations"] == [
        {"ID": order.partner.destination_id, "Name": order.partner.destination_name}
    ]
    assert message["Meta"]["Test"] is True
    assert message["Patient"]["Identifiers"] == [
        {"ID": "MRN0048213", "IDType": "MR"},
        {"ID": "EPI77120", "IDType": "EPI"},
    ]
    assert message["Visit"]["VisitNumber"] == "VIS-2026-000731"
    [results_order] = message["Orders"]
    assert results_order["ID"] == order.ehr_order_id
    assert results_order["ApplicationOrderID"] == f"hcoint-delivery-{delivery.pk}"
    assert results_order["ResultsStatus"] == "Final"


def test_a_partner_on_notes_gets_notes_new_and_a_correction_is_marked_corrected(partner, uploader):
    partner.outbound_model = partner.Outbound.NOTES
    partner.save()
    delivery = DeliveryFactory(
        order=OrderFactory(partner=partner, sending=True),
        created_by=uploader,
        is_correction=True,
        correction_reason="Wrong page",
        created_at=T0,
        enqueue=True,
    )
    fake = FakeRedox()

    with fake.patch():
        delivery_send_once(delivery_id=delivery.pk, now=NOW)

    [message] = fake.messages
    assert message["Meta"]["DataModel"] == "Notes"
    assert message["Note"]["DocumentID"] == f"hcoint-delivery-{delivery.pk}"
    assert message["Note"]["Status"] == "Corrected"
