"""`manage.py db_worker` delivers every pending note exactly once, across stops, restarts and crashes."""

from datetime import timedelta

import pytest
from django.core.management import call_command, get_commands, load_command_class
from django.utils import timezone
from django_tasks_db.management.commands.db_worker import Command as LibraryWorkerCommand
from django_tasks_db.models import DBTaskResult

from orders.delivery import delivery_enqueue
from orders.models import Delivery
from tests.delivery_fakes import FakeRedox, make_delivery, make_order, transient

# The worker commits as it goes and checks its connection between jobs, as in production.
pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("restore_signal_handlers"),
]


def run_worker(*extra):
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", "--verbosity", "0", *extra)


def pending_deliveries(partner, user, count):
    now = timezone.now()
    return [make_delivery(make_order(partner, ehr_order_id=f"order-{n}"), user, created_at=now) for n in range(count)]


def test_db_worker_is_our_command_with_the_sweep():
    assert get_commands()["db_worker"] == "orders"
    command = load_command_class("orders", "db_worker")
    assert isinstance(command, LibraryWorkerCommand)
    assert type(command) is not LibraryWorkerCommand


def test_a_stopped_worker_restarted_delivers_every_pending_note_exactly_once(partner, uploader):
    deliveries = pending_deliveries(partner, uploader, 5)
    fake = FakeRedox()

    with fake.patch():
        run_worker("--max-tasks", "2")  # stops after two jobs, the others still pending
        assert Delivery.objects.filter(status=Delivery.Status.SENT).count() == 2
        assert Delivery.objects.filter(status=Delivery.Status.PENDING).count() == 3

        run_worker()
        run_worker()  # a third start finds nothing left to do

    assert fake.sends_per_delivery == {f"hcoint-delivery-{d.pk}": 1 for d in deliveries}
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.SENT}
    assert not DBTaskResult.objects.exclude(status="SUCCESSFUL").exists()


def test_after_a_crash_a_restarted_worker_recovers_lost_and_half_sent_deliveries(partner, uploader, settings):
    settings.DELIVERY_SENDING_TIMEOUT_SECONDS = 300
    lost_job, half_sent, untouched = pending_deliveries(partner, uploader, 3)
    # The crash: one job row is gone, one delivery was mid-send with its job left RUNNING.
    DBTaskResult.objects.filter(args_kwargs__kwargs__delivery_id=lost_job.pk).delete()
    DBTaskResult.objects.filter(args_kwargs__kwargs__delivery_id=half_sent.pk).update(
        status="RUNNING", started_at=timezone.now() - timedelta(minutes=10)
    )
    Delivery.objects.filter(pk=half_sent.pk).update(
        status=Delivery.Status.SENDING, sending_started_at=timezone.now() - timedelta(minutes=10), attempt_count=1
    )
    fake = FakeRedox()

    with fake.patch():
        run_worker()
        run_worker()

    refs = {f"hcoint-delivery-{d.pk}" for d in (lost_job, half_sent, untouched)}
    assert fake.sends_per_delivery == dict.fromkeys(refs, 1)
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.SENT}


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
    # The retry waits as a delayed job; the worker did not sit on it.
    retry = DBTaskResult.objects.get(status="READY", args_kwargs__kwargs__delivery_id=failing.pk)
    assert retry.run_after == failing.next_attempt_at > timezone.now()


def test_a_first_attempt_goes_ahead_of_due_retries(partner, uploader):
    retrying, fresh = pending_deliveries(partner, uploader, 2)
    DBTaskResult.objects.all().delete()
    due = timezone.now() - timedelta(seconds=1)
    Delivery.objects.filter(pk=retrying.pk).update(status=Delivery.Status.RETRY_SCHEDULED, next_attempt_at=due)
    delivery_enqueue(delivery=retrying, run_after=due)
    delivery_enqueue(delivery=fresh)
    fake = FakeRedox()

    with fake.patch():
        run_worker("--max-tasks", "1")

    assert list(fake.sends_per_delivery) == [f"hcoint-delivery-{fresh.pk}"]
