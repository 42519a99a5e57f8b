"""The worker sweeps at startup and then every DELIVERY_SWEEP_INTERVAL_SECONDS in a background thread."""

import logging
import threading
from unittest import mock

import pytest
from django.core.management import call_command

from orders.management.commands import db_worker
from tests.delivery_fakes import FakeRedox, make_delivery, make_order

pytestmark = pytest.mark.usefixtures("restore_signal_handlers")


def test_the_sweeper_sweeps_each_interval_until_stopped():
    stop = threading.Event()
    calls = []

    def sweep():
        calls.append(1)
        if len(calls) == 3:
            stop.set()
        return {"requeued": [], "reclaimed": []}

    with (
        mock.patch.object(db_worker, "delivery_sweep", side_effect=sweep),
        mock.patch.object(db_worker, "close_old_connections"),
        mock.patch.object(db_worker, "connection"),
    ):
        db_worker.run_sweeper(stop, 0.001)

    assert len(calls) == 3


def test_a_failing_sweep_is_logged_without_details_and_does_not_stop_the_sweeper(caplog):
    secret = "Samplepatient"
    with (
        mock.patch.object(db_worker, "delivery_sweep", side_effect=RuntimeError(secret)),
        mock.patch.object(db_worker, "close_old_connections"),
        caplog.at_level(logging.ERROR, logger="orders.delivery"),
    ):
        assert db_worker.sweep_once() is None

    [record] = caplog.records
    assert record.event == "delivery.sweep_failed"
    assert record.error_class == "RuntimeError"
    assert secret not in caplog.text


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_long_running_worker_sweeps_at_startup_and_runs_the_sweeper_until_it_exits(partner, uploader):
    make_delivery(make_order(partner), uploader)
    started = []
    reporters = []

    def fake_sweeper(stop, interval):
        started.append((stop, interval))

    def fake_reporter(stop, interval):
        reporters.append((stop, interval))

    with (
        FakeRedox().patch(),
        mock.patch.object(db_worker, "run_sweeper", side_effect=fake_sweeper),
        mock.patch.object(db_worker, "run_usage_reporter", side_effect=fake_reporter),
        mock.patch.object(db_worker, "sweep_once", wraps=db_worker.sweep_once) as sweep_once,
    ):
        call_command("db_worker", "--no-startup-delay", "--no-reload", "--max-tasks", "1", "--verbosity", "0")

    assert sweep_once.call_count == 1
    [(stop, interval)] = started
    assert interval == 60
    assert stop.is_set(), "the sweeper is told to stop when the worker exits"
    assert reporters == [(stop, 3600)], "the usage report runs beside it, hourly, and stops with it"


def test_the_reloader_parent_process_does_not_sweep(monkeypatch):
    monkeypatch.delenv("RUN_MAIN", raising=False)
    with (
        mock.patch("django_tasks_db.management.commands.db_worker.run_with_reloader") as reloader,
        mock.patch.object(db_worker, "sweep_once") as sweep_once,
        mock.patch.object(db_worker, "run_sweeper") as run_sweeper,
        mock.patch.object(db_worker, "run_usage_reporter") as run_usage_reporter,
    ):
        call_command("db_worker", "--reload", "--verbosity", "0")

    reloader.assert_called_once()
    sweep_once.assert_not_called()
    run_sweeper.assert_not_called()
    run_usage_reporter.assert_not_called()
