"""The Delivery row is the queue: what is claimable, in what order, and the lease that replaces a sweep."""

from datetime import timedelta

import pytest

from orders.delivery import WORKER_LOST_ERROR, delivery_send_once
from orders.models import Delivery, DeliveryAttempt, Order
from tests.delivery_fakes import T0, FakeRedox, delivery_ref_of, transient
from tests.factories import DeliveryFactory, OrderFactory

pytestmark = pytest.mark.django_db

NOW = T0 + timedelta(minutes=30)


def set_fields(delivery, **fields):
    Delivery.objects.filter(pk=delivery.pk).update(**fields)
    delivery.refresh_from_db()
    return delivery


def died_mid_send(delivery, *, lease_expires_at, started=NOW - timedelta(minutes=1)):
    """The row as a worker killed during its HTTP call leaves it."""
    return set_fields(
        delivery,
        status=Delivery.Status.SENDING,
        sending_started_at=started,
        lease_expires_at=lease_expires_at,
        attempt_count=1,
    )


def test_a_claim_marks_the_delivery_sending_with_a_lease(partner, uploader, settings):
    settings.DELIVERY_LEASE_SECONDS = 60
    delivery = DeliveryFactory(
        order=OrderFactory(partner=partner, sending=True), created_by=uploader, created_at=T0, enqueue=True
    )
    seen = {}

    def look_at_the_row(message):
        seen["row"] = Delivery.objects.get(pk=delivery.pk)
        return FakeRedox().default

    with FakeRedox(look_at_the_row).patch():
        delivery_send_once(now=NOW)

    assert seen["row"].status == Delivery.Status.SENDING
    assert seen["row"].lease_expires_at == NOW + timedelta(seconds=60)
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT
    assert delivery.lease_expires_at is None


def test_first_attempts_go_ahead_of_due_retries_and_the_oldest_due_goes_first(partner, uploader):
    retry_old, retry_new, first_late, first_early = (
        DeliveryFactory(
            order=OrderFactory(partner=partner, ehr_order_id=name, sending=True),
            created_by=uploader,
            created_at=created_at,
            enqueue=True,
        )
        for name, created_at in (
            ("retry-old", T0),
            ("retry-new", T0),
            ("first-late", T0),
            ("first-early", T0 - timedelta(minutes=1)),
        )
    )
    for delivery, due in ((retry_old, NOW - timedelta(minutes=9)), (retry_new, NOW - timedelta(minutes=1))):
        set_fields(delivery, status=Delivery.Status.RETRY_SCHEDULED, next_attempt_at=due, attempt_count=1)
    not_due = set_fields(
        DeliveryFactory(
            order=OrderFactory(partner=partner, ehr_order_id="not-due", sending=True),
            created_by=uploader,
            created_at=T0,
            enqueue=True,
        ),
        status=Delivery.Status.RETRY_SCHEDULED,
        next_attempt_at=NOW + timedelta(seconds=1),
        attempt_count=1,
    )

    assert list(Delivery.objects.claimable(NOW)) == [first_early, first_late, retry_old, retry_new]
    fake = FakeRedox()
    with fake.patch():
        while delivery_send_once(now=NOW):
            pass
    assert [delivery_ref_of(m) for m in fake.messages] == [
        f"hcoint-delivery-{d.pk}" for d in (first_early, first_late, retry_old, retry_new)
    ]
    not_due.refresh_from_db()
    assert not_due.status == Delivery.Status.RETRY_SCHEDULED


def test_a_delivery_whose_lease_expired_is_claimed_recorded_as_lost_and_sent_with_the_same_id(partner, uploader):
    order = OrderFactory(partner=partner, sending=True)
    delivery = died_mid_send(
        DeliveryFactory(order=order, created_by=uploader, created_at=T0, enqueue=True),
        lease_expires_at=NOW - timedelta(seconds=1),
    )
    fake = FakeRedox()

    with fake.patch():
        delivery_send_once(now=NOW)

    delivery.refresh_from_db()
    order.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT
    assert delivery.attempt_count == 2
    assert order.state == Order.State.SENT
    lost, sent = delivery.attempts.all()
    assert (lost.outcome, lost.error, lost.started_at) == (
        DeliveryAttempt.Outcome.TRANSIENT,
        WORKER_LOST_ERROR,
        NOW - timedelta(minutes=1),
    )
    assert sent.outcome == DeliveryAttempt.Outcome.SENT
    assert [delivery_ref_of(m) for m in fake.messages] == [f"hcoint-delivery-{delivery.pk}"]


def test_a_delivery_with_a_live_lease_is_left_to_its_worker(partner, uploader):
    delivery = died_mid_send(
        DeliveryFactory(
            order=OrderFactory(partner=partner, sending=True), created_by=uploader, created_at=T0, enqueue=True
        ),
        lease_expires_at=NOW + timedelta(seconds=1),
    )
    fake = FakeRedox()

    with fake.patch():
        assert delivery_send_once(now=NOW) is None

    assert fake.messages == []
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENDING
    assert not delivery.attempts.exists()


def test_a_lost_attempt_past_the_max_age_fails_instead_of_sending(partner, uploader, settings):
    settings.DELIVERY_MAX_AGE_HOURS = 1
    order = OrderFactory(partner=partner, sending=True)
    delivery = DeliveryFactory(order=order, created_by=uploader, created_at=T0, enqueue=True)
    died_mid_send(delivery, started=T0 + timedelta(minutes=50), lease_expires_at=T0 + timedelta(minutes=51))
    fake = FakeRedox()

    with fake.patch():
        assert delivery_send_once(now=T0 + timedelta(hours=2)) is None

    assert fake.messages == []
    delivery.refresh_from_db()
    order.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED
    assert WORKER_LOST_ERROR.rstrip(".") in delivery.last_error
    assert "Gave up after 1 attempt over 1 hour." in delivery.last_error
    assert order.state == Order.State.FAILED


def test_renewing_a_lease_works_only_for_the_attempt_that_holds_it(partner, uploader):
    delivery = died_mid_send(
        DeliveryFactory(
            order=OrderFactory(partner=partner, sending=True), created_by=uploader, created_at=T0, enqueue=True
        ),
        lease_expires_at=NOW,
    )
    held = Delivery.objects.get(pk=delivery.pk)

    assert held.renew_lease(NOW, 60) is True
    assert Delivery.objects.get(pk=delivery.pk).lease_expires_at == NOW + timedelta(seconds=60)

    set_fields(delivery, attempt_count=2)  # another worker claimed it after the lease ran out
    assert held.renew_lease(NOW + timedelta(seconds=20), 60) is False
    assert Delivery.objects.get(pk=delivery.pk).lease_expires_at == NOW + timedelta(seconds=60)


def test_a_late_finisher_does_not_overwrite_the_attempt_that_replaced_it(partner, uploader, settings):
    settings.DELIVERY_LEASE_SECONDS = 60
    delivery = DeliveryFactory(
        order=OrderFactory(partner=partner, sending=True), created_by=uploader, created_at=T0, enqueue=True
    )
    later = NOW + timedelta(seconds=61)

    def meanwhile_the_lease_expires_and_another_worker_fails(message):
        # The slow first attempt's lease ran out; a second worker claims it and gets a 503.
        delivery_send_once(delivery_id=delivery.pk, now=later)
        return FakeRedox().default

    fake = FakeRedox(meanwhile_the_lease_expires_and_another_worker_fails, transient(503))
    with fake.patch():
        delivery_send_once(delivery_id=delivery.pk, now=NOW)

    delivery.refresh_from_db()
    # Redox accepted the slow attempt, so the retry the second worker scheduled is not needed.
    assert delivery.status == Delivery.Status.SENT
    # In order of start: the lost first try, its late acceptance, the second worker's 503.
    assert [a.outcome for a in delivery.attempts.all()] == ["transient", "sent", "transient"]
    fake = FakeRedox()
    with fake.patch():
        assert delivery_send_once(now=later + timedelta(days=1)) is None
    assert fake.messages == []


def test_a_failed_resend_after_a_lost_attempt_that_redox_accepted_ends_sent(partner, uploader):
    order = OrderFactory(partner=partner, sending=True)
    delivery = died_mid_send(
        DeliveryFactory(order=order, created_by=uploader, created_at=T0, enqueue=True),
        lease_expires_at=NOW - timedelta(seconds=1),
    )

    def meanwhile_the_first_worker_records_its_acceptance(message):
        # What the first worker's late _record_outcome writes when the row is no longer its own.
        DeliveryAttempt.objects.create(
            delivery=delivery, outcome=DeliveryAttempt.Outcome.SENT, http_status=200, redox_log_id="log-first"
        )
        raise transient(503)

    with FakeRedox(meanwhile_the_first_worker_records_its_acceptance).patch():
        delivery_send_once(now=NOW)

    delivery.refresh_from_db()
    order.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT
    assert delivery.redox_log_id == "log-first"
    assert order.state == Order.State.SENT
