"""The worker emits the usage report at start and then every USAGE_REPORT_INTERVAL_SECONDS, beside the sweep."""

import logging
import threading
from datetime import timedelta
from unittest import mock

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_tasks_db.management.commands.db_worker import Command as LibraryWorkerCommand

from orders.management.commands import db_worker
from orders.models import Order

pytestmark = pytest.mark.usefixtures("restore_signal_handlers")


class ScriptedStop:
    """Stands in for the worker's stop Event: each wait either lets the interval pass or says stop."""

    def __init__(self, timeline, *stops):
        self.timeline = timeline
        self.stops = list(stops)

    def wait(self, timeout):
        self.timeline.append(("interval passed", timeout))
        return self.stops.pop(0)


def run_reporter(stop, interval):
    with mock.patch.object(db_worker, "close_old_connections"), mock.patch.object(db_worker, "connection"):
        db_worker.run_usage_reporter(stop, interval)


def test_the_reporter_reports_at_start_then_only_after_each_full_interval_until_stopped():
    timeline = []
    stop = ScriptedStop(timeline, False, False, True)

    with mock.patch.object(
        db_worker, "usage_report", autospec=True, side_effect=lambda **kwargs: timeline.append("report")
    ) as report:
        run_reporter(stop, 3600)

    assert timeline == [
        "report",
        ("interval passed", 3600),
        "report",
        ("interval passed", 3600),
        "report",
        ("interval passed", 3600),
    ]
    # The same figures `manage.py report_usage` emits with its defaults.
    assert report.call_args_list == [mock.call(weeks=2, include_test=False)] * 3


def test_stopping_the_worker_ends_the_hourly_wait_at_once():
    stop = threading.Event()
    reported = threading.Event()
    reports = []

    def report(**kwargs):
        reports.append(kwargs)
        reported.set()

    with mock.patch.object(db_worker, "usage_report", autospec=True, side_effect=report):
        reporter = threading.Thread(target=run_reporter, args=(stop, 3600))
        reporter.start()
        assert reported.wait(5), "the first report comes when the worker starts"
        stop.set()
        reporter.join(5)

    assert not reporter.is_alive()
    assert len(reports) == 1, "nothing more was due within the hour"


def test_a_failing_report_is_logged_without_details_and_the_next_one_still_runs(caplog):
    secret = "Samplepatient"
    timeline = []

    def report(**kwargs):
        timeline.append("report")
        if len(timeline) == 1:
            raise RuntimeError(secret)

    with (
        mock.patch.object(db_worker, "usage_report", autospec=True, side_effect=report),
        caplog.at_level(logging.ERROR, logger="orders.usage"),
    ):
        run_reporter(ScriptedStop(timeline, False, True), 60)

    assert timeline == ["report", ("interval passed", 60), "report", ("interval passed", 60)]
    [record] = caplog.records
    assert record.event == "usage.report_failed"
    assert record.error_class == "RuntimeError"
    assert secret not in caplog.text


def test_a_stuck_report_does_not_hold_up_the_sweep(settings):
    settings.DELIVERY_SWEEP_INTERVAL_SECONDS = 0.001
    report_started = threading.Event()
    release_report = threading.Event()
    swept_while_stuck = threading.Event()
    sweeps_while_stuck = []

    reporters = []

    def stuck_report(**kwargs):
        reporters.append(threading.current_thread())
        report_started.set()
        release_report.wait(5)

    def sweep():
        if report_started.is_set():
            sweeps_while_stuck.append(1)
            if len(sweeps_while_stuck) == 2:
                swept_while_stuck.set()
        return {"requeued": [], "reclaimed": []}

    outcome = {}

    def job_loop(self, *args, **options):
        # The library's job loop, replaced: it runs until the sweeper has swept twice
        # while the report is stuck, or gives up.
        outcome["report started"] = report_started.wait(5)
        outcome["swept while stuck"] = swept_while_stuck.wait(5)

    with (
        mock.patch.object(LibraryWorkerCommand, "handle", autospec=True, side_effect=job_loop),
        mock.patch.object(db_worker, "usage_report", autospec=True, side_effect=stuck_report),
        mock.patch.object(db_worker, "delivery_sweep", autospec=True, side_effect=sweep),
        mock.patch.object(db_worker, "close_old_connections"),
        mock.patch.object(db_worker, "connection"),
    ):
        try:
            call_command("db_worker", "--no-reload", "--verbosity", "0")
        finally:
            release_report.set()
        [reporter] = reporters
        reporter.join(5)

    assert outcome == {"report started": True, "swept while stuck": True}
    assert not reporter.is_alive(), "the reporter stops with the worker"


def test_the_workers_report_logs_the_usage_figures(partner, caplog):
    Order.objects.create(partner=partner, ehr_order_id="1", first_received_at=timezone.now() - timedelta(days=2))

    # close_old_connections would take the test's open transaction for a connection to drop.
    with mock.patch.object(db_worker, "close_old_connections"), caplog.at_level(logging.INFO, logger="orders.usage"):
        assert db_worker.report_usage_once() is True

    events = [getattr(record, "event", None) for record in caplog.records]
    # This week and last for all partners, and the partner's own row in the week of its order.
    assert events.count("usage.weekly") == 3
    [backlog] = [record for record in caplog.records if getattr(record, "event", None) == "usage.backlog"]
    assert backlog.partner_id == partner.pk
    assert backlog.awaiting_note == 1
