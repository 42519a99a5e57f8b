"""The sweep recovers a delivery whose job vanished or whose worker died mid-send, and leaves healthy ones alone."""

from datetime import timedelta

import pytest
from django_tasks_db.models import DBTaskResult

from orders.delivery import WORKER_LOST_ERROR, delivery_attempt, delivery_sweep
from orders.models import Delivery, DeliveryAttempt, Order
from tests.delivery_fakes import T0, FakeRedox, make_delivery, make_order

pytestmark = pytest.mark.django_db

NOW = T0 + timedelta(minutes=30)


@pytest.fixture(autouse=True)
def _sweep_settings(settings):
    settings.DELIVERY_SENDING_TIMEOUT_SECONDS = 300


def jobs_for(delivery):
    return DBTaskResult.objects.filter(status="READY", args_kwargs__kwargs__delivery_id=delivery.pk)


def set_fields(delivery, **fields):
    Delivery.objects.filter(pk=delivery.pk).update(**fields)
    delivery.refresh_from_db()
    return delivery


def test_a_pending_delivery_whose_job_vanished_is_queued_again_and_then_sent(partner, uploader):
    delivery = make_delivery(make_order(partner), uploader)
    jobs_for(delivery).delete()

    found = delivery_sweep(now=NOW)

    assert found == {"requeued": [delivery.pk], "reclaimed": []}
    assert jobs_for(delivery).count() == 1
    with FakeRedox().patch():
        delivery_attempt(delivery_id=delivery.pk, now=NOW)
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT


def test_a_due_retry_whose_job_vanished_is_queued_again(partner, uploader):
    delivery = make_delivery(make_order(partner), uploader)
    jobs_for(delivery).delete()
    set_fields(delivery, status=Delivery.Status.RETRY_SCHEDULED, next_attempt_at=NOW - timedelta(seconds=1))

    assert delivery_sweep(now=NOW)["requeued"] == [delivery.pk]
    assert jobs_for(delivery).count() == 1


def test_a_job_left_running_by_a_dead_worker_does_not_count_as_queued(partner, uploader):
    delivery = make_delivery(make_order(partner), uploader)
    # The worker took the job, then died before claiming the delivery.
    jobs_for(delivery).update(status="RUNNING", started_at=NOW - timedelta(hours=1))

    assert delivery_sweep(now=NOW)["requeued"] == [delivery.pk]


def test_a_delivery_stuck_sending_is_reclaimed_recorded_and_sent_again_with_the_same_id(partner, uploader):
    order = make_order(partner)
    delivery = make_delivery(order, uploader)
    jobs_for(delivery).delete()
    stuck_since = NOW - timedelta(seconds=301)
    set_fields(delivery, status=Delivery.Status.SENDING, sending_started_at=stuck_since, attempt_count=1)

    found = delivery_sweep(now=NOW)

    assert found == {"requeued": [], "reclaimed": [delivery.pk]}
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.RETRY_SCHEDULED
    assert delivery.next_attempt_at == NOW
    assert delivery.last_error == WORKER_LOST_ERROR
    [attempt] = delivery.attempts.all()
    assert attempt.outcome == DeliveryAttempt.Outcome.TRANSIENT
    assert attempt.started_at == stuck_since
    assert attempt.error == WORKER_LOST_ERROR
    assert jobs_for(delivery).count() == 1

    fake = FakeRedox()
    with fake.patch():
        delivery_attempt(delivery_id=delivery.pk, now=NOW)
    delivery.refresh_from_db()
    order.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT
    assert order.state == Order.State.SENT
    assert fake.messages[0]["Orders"][0]["ApplicationOrderID"] == f"hcoint-delivery-{delivery.pk}"


def test_a_delivery_stuck_sending_past_the_max_age_fails(partner, uploader, settings):
    settings.DELIVERY_MAX_AGE_HOURS = 1
    delivery = make_delivery(make_order(partner), uploader, created_at=T0)
    set_fields(delivery, status=Delivery.Status.SENDING, sending_started_at=T0 + timedelta(minutes=50))

    delivery_sweep(now=T0 + timedelta(hours=2))

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED
    assert WORKER_LOST_ERROR.rstrip(".") in delivery.last_error


def test_a_late_finisher_does_not_overwrite_the_attempt_that_replaced_it(partner, uploader):
    delivery = make_delivery(make_order(partner), uploader)

    def meanwhile_the_sweep_reclaims_it(message):
        delivery_sweep(now=NOW + timedelta(seconds=301))
        return FakeRedox().default

    with FakeRedox(meanwhile_the_sweep_reclaims_it).patch():
        delivery_attempt(delivery_id=delivery.pk, now=NOW)

    delivery.refresh_from_db()
    # Redox accepted the slow attempt, so the resend the sweep queued is not needed.
    assert delivery.status == Delivery.Status.SENT
    assert [a.outcome for a in delivery.attempts.all()] == ["transient", "sent"]
    fake = FakeRedox()
    with fake.patch():
        assert delivery_attempt(delivery_id=delivery.pk, now=NOW + timedelta(seconds=302)) is None
    assert fake.messages == []


def test_the_sweep_leaves_healthy_deliveries_alone(partner, uploader):
    queued = make_delivery(make_order(partner, ehr_order_id="queued"), uploader)
    sending = set_fields(
        make_delivery(make_order(partner, ehr_order_id="sending"), uploader),
        status=Delivery.Status.SENDING,
        sending_started_at=NOW - timedelta(seconds=299),
    )
    waiting = set_fields(
        make_delivery(make_order(partner, ehr_order_id="waiting"), uploader, enqueue=False),
        status=Delivery.Status.RETRY_SCHEDULED,
        next_attempt_at=NOW + timedelta(minutes=5),
    )
    sent = set_fields(
        make_delivery(make_order(partner, ehr_order_id="sent"), uploader, enqueue=False), status=Delivery.Status.SENT
    )
    failed = set_fields(
        make_delivery(make_order(partner, ehr_order_id="failed"), uploader, enqueue=False),
        status=Delivery.Status.FAILED,
    )
    before = {
        d.pk: (d.status, d.next_attempt_at, d.sending_started_at) for d in (queued, sending, waiting, sent, failed)
    }
    jobs_before = DBTaskResult.objects.count()

    found = delivery_sweep(now=NOW)

    assert found == {"requeued": [], "reclaimed": []}
    assert DBTaskResult.objects.count() == jobs_before
    after = {d.pk: (d.status, d.next_attempt_at, d.sending_started_at) for d in Delivery.objects.all()}
    assert after == before
    assert not DeliveryAttempt.objects.exists()
