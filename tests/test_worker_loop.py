"""The worker loop: it outlives database outages and its own bugs, renews its lease, wakes on a
new delivery, and stops cleanly after the current send."""

import logging
import os
import signal
import threading
import time
from datetime import timedelta
from unittest import mock

import pytest
from django.core.management import call_command
from django.db import OperationalError, connection
from django.utils import timezone

from orders import worker as worker_module
from orders.delivery import wake_workers
from orders.models import Delivery
from orders.worker import Listener, Worker, backoff_delays, lease_heartbeat
from tests.delivery_fakes import T0
from tests.factories import DeliveryFactory, OrderFactory

pytestmark = pytest.mark.usefixtures("restore_signal_handlers")


def events(caplog):
    return [record.event for record in caplog.records if hasattr(record, "event")]


def test_backoff_doubles_from_half_a_second_to_thirty_with_jitter():
    def take(rand, count=9):
        delays = backoff_delays(rand=rand)
        return [next(delays) for _ in range(count)]

    assert take(lambda: 1.0) == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert take(lambda: 0.0) == [0.25, 0.5, 1, 2, 4, 8, 15, 15, 15]


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="Django keeps an in-memory SQLite test database's one connection open; reconnecting is PostgreSQL's case",
)
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_lost_database_is_logged_once_retried_with_backoff_and_its_return_logged(caplog):
    outcomes = [OperationalError("server closed the connection"), OperationalError("refused"), mock.sentinel.sent]
    turns = []  # (when, the DB-API connection the turn found)

    def send_once(**kwargs):
        connection.ensure_connection()
        turns.append((time.monotonic(), connection.connection))
        outcome = outcomes.pop(0) if outcomes else None
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    with (
        mock.patch.object(worker_module, "delivery_send_once", side_effect=send_once),
        caplog.at_level(logging.INFO, logger="orders.worker"),
    ):
        assert Worker().run(until_idle=True) == 1

    assert events(caplog) == [
        "worker.started",
        "worker.db_unavailable",
        "worker.db_recovered",
        "worker.stopped",
    ]
    [unavailable] = [r for r in caplog.records if getattr(r, "event", None) == "worker.db_unavailable"]
    assert unavailable.error_class == "OperationalError"
    # Backoff: at least 0.25 s, then at least 0.5 s, between the tries (backoff_delays).
    times = [when for when, _ in turns]
    assert times[1] - times[0] >= 0.25 and times[2] - times[1] >= 0.5, times
    # The broken connection is dropped after each failure, so the next turn reconnects.
    seen = [dbapi for _, dbapi in turns]
    assert seen[1] is not seen[0] and seen[2] is not seen[1]


@pytest.mark.django_db
def test_a_bug_in_a_turn_is_logged_by_class_only_and_the_loop_goes_on(caplog):
    secret = "Samplepatient"
    worker = Worker()
    with (
        mock.patch.object(
            worker_module, "delivery_send_once", side_effect=[ValueError(secret), mock.sentinel.sent, None]
        ),
        caplog.at_level(logging.INFO, logger="orders.worker"),
    ):
        assert worker.run(until_idle=True) == 1

    [failed] = [r for r in caplog.records if getattr(r, "event", None) == "worker.turn_failed"]
    assert failed.error_class == "ValueError"
    assert secret not in caplog.text


@pytest.mark.django_db  # on SQLite each turn's close_old_connections() touches the shared in-memory test connection
def test_sigterm_during_a_send_lets_it_finish_then_the_worker_exits():
    attempts = []

    def send_while_a_deploy_stops_us(**kwargs):
        attempts.append(kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # handled by the command's handler, in this thread
        return mock.sentinel.sent

    with mock.patch.object(worker_module, "delivery_send_once", side_effect=send_while_a_deploy_stops_us):
        call_command("deliver")  # not --until-idle: only the signal ends it

    assert len(attempts) == 1


@pytest.mark.django_db  # on SQLite each turn's close_old_connections() touches the shared in-memory test connection
def test_a_stop_ends_an_idle_wait_at_once():
    worker = Worker(idle_seconds=30)
    timer = threading.Timer(0.2, worker.stop)

    with (
        mock.patch.object(worker_module, "delivery_send_once", return_value=None),
        mock.patch.object(Listener, "fileno", return_value=None),
    ):
        started = time.monotonic()
        timer.start()
        worker.run()

    assert time.monotonic() - started < 5


@pytest.mark.skipif(connection.vendor != "postgresql", reason="LISTEN/NOTIFY is PostgreSQL's; SQLite workers poll")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_idle_worker_wakes_at_once_when_a_delivery_is_committed():
    worker = Worker(idle_seconds=30)
    looked = []

    def attempt(**kwargs):
        looked.append(time.monotonic())
        if len(looked) == 2:
            worker.stop()
        return None

    def notify_from_elsewhere():
        time.sleep(0.5)  # the worker is in its idle wait by now
        wake_workers()
        connection.close()

    notifier = threading.Thread(target=notify_from_elsewhere)
    with mock.patch.object(worker_module, "delivery_send_once", side_effect=attempt):
        notifier.start()
        worker.run()
    notifier.join(5)

    assert len(looked) == 2
    assert looked[1] - looked[0] < 5, "woken by the NOTIFY, not the 30 s poll"


def test_the_listener_falls_back_to_polling_when_it_cannot_connect_and_says_so_once(caplog):
    listener = Listener()
    handler = mock.MagicMock()
    handler.__getitem__.return_value.vendor = "postgresql"
    handler.create_connection.side_effect = OperationalError("refused")
    with mock.patch.object(worker_module, "connections", handler), caplog.at_level(logging.INFO, "orders.worker"):
        assert listener.fileno() is None
        assert listener.fileno() is None
    assert listener.wrapper is None
    assert events(caplog) == ["worker.listen_failed"]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_heartbeat_renews_the_lease_while_sending_and_stops_once_another_worker_has_it(partner, uploader, caplog):
    delivery = DeliveryFactory(
        order=OrderFactory(partner=partner, sending=True), created_by=uploader, created_at=T0, enqueue=True
    )
    start = timezone.now()
    Delivery.objects.filter(pk=delivery.pk).update(
        status=Delivery.Status.SENDING, attempt_count=1, lease_expires_at=start + timedelta(seconds=1)
    )
    delivery.refresh_from_db()

    with caplog.at_level(logging.INFO, logger="orders.worker"), lease_heartbeat(delivery, lease_seconds=60, every=0.05):
        time.sleep(0.3)
        renewed = Delivery.objects.get(pk=delivery.pk).lease_expires_at
        Delivery.objects.filter(pk=delivery.pk).update(attempt_count=2)  # taken over
        time.sleep(0.3)

    assert renewed >= start + timedelta(seconds=59)
    assert events(caplog).count("worker.lease_lost") == 1
