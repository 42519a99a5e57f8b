"""`manage.py deliver` delivers every pending note exactly once, across stops, restarts and crashes."""

from datetime import timedelta

import pytest
from django.core.management import call_command, get_commands
from django.utils import timezone

from orders.models import Delivery
from tests.delivery_fakes import FakeRedox, transient
from tests.factories import DeliveryFactory, OrderFactory

# The worker commits as it goes and checks its connection between turns, as in production.
pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("restore_signal_handlers"),
]


def run_worker(*extra):
    call_command("deliver", "--until-idle", *extra)


def pending_deliveries(partner, user, count):
    now = timezone.now()
    return [
        DeliveryFactory(
            order=OrderFactory(partner=partner, ehr_order_id=f"order-{n}", sending=True),
            created_by=user,
            created_at=now,
            enqueue=True,
        )
        for n in range(count)
    ]


def test_the_worker_is_our_own_command_with_no_task_library():
    assert get_commands()["deliver"] == "orders"
    assert "db_worker" not in get_commands()


def test_a_stopped_worker_restarted_delivers_every_pending_note_exactly_once(partner, uploader):
    deliveries = pending_deliveries(partner, uploader, 5)
    fake = FakeRedox()

    with fake.patch():
        run_worker("--max-deliveries", "2")  # stops after two attempts, the others still pending
        assert Delivery.objects.filter(status=Delivery.Status.SENT).count() == 2
        assert Delivery.objects.filter(status=Delivery.Status.PENDING).count() == 3

        run_worker()
        run_worker()  # a third start finds nothing left to do

    assert fake.sends_per_delivery == {f"hcoint-delivery-{d.pk}": 1 for d in deliveries}
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.SENT}


def test_after_a_crash_a_restarted_worker_resends_a_half_sent_delivery_once_its_lease_expires(
    partner, uploader, settings
):
    half_sent, untouched, leased = pending_deliveries(partner, uploader, 3)
    now = timezone.now()
    # The crash: one delivery was mid-send when its worker died (lease ran out), another
    # is held by a worker that is still alive (lease running).
    Delivery.objects.filter(pk=half_sent.pk).update(
        status=Delivery.Status.SENDING,
        sending_started_at=now - timedelta(minutes=2),
        lease_expires_at=now - timedelta(seconds=1),
        attempt_count=1,
    )
    Delivery.objects.filter(pk=leased.pk).update(
        status=Delivery.Status.SENDING, sending_started_at=now, lease_expires_at=now + timedelta(minutes=1)
    )
    fake = FakeRedox()

    with fake.patch():
        run_worker()
        run_worker()

    refs = {f"hcoint-delivery-{d.pk}" for d in (half_sent, untouched)}
    assert fake.sends_per_delivery == dict.fromkeys(refs, 1)
    assert Delivery.objects.get(pk=half_sent.pk).status == Delivery.Status.SENT
    assert Delivery.objects.get(pk=leased.pk).status == Delivery.Status.SENDING


def test_one_orders_failing_delivery_does_not_hold_up_another(partner, uploader):
    failing, healthy = pending_deliveries(partner, uploader, 2)
    failing_ref = f"hcoint-delivery-{failing.pk}"

    def answer(message):
        if message["Orders"][0]["ApplicationOrderID"] == failing_ref:
            raise transient(503)
        return FakeRedox().default

    with FakeRedox(default=answer).patch():
        run_worker()

    failing.refresh_from_db()
    healthy.refresh_from_db()
    assert healthy.status == Delivery.Status.SENT
    assert failing.status == Delivery.Status.RETRY_SCHEDULED
    # The retry waits on the row; the worker did not sit on it.
    assert failing.next_attempt_at > timezone.now()


def test_a_first_attempt_goes_ahead_of_due_retries(partner, uploader):
    retrying, fresh = pending_deliveries(partner, uploader, 2)
    due = timezone.now() - timedelta(seconds=1)
    Delivery.objects.filter(pk=retrying.pk).update(
        status=Delivery.Status.RETRY_SCHEDULED, next_attempt_at=due, attempt_count=1
    )
    fake = FakeRedox()

    with fake.patch():
        run_worker("--max-deliveries", "1")

    assert list(fake.sends_per_delivery) == [f"hcoint-delivery-{fresh.pk}"]
