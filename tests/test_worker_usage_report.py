"""The worker emits the usage report at its first turn and then every USAGE_REPORT_INTERVAL_SECONDS, in its loop."""

import logging
from datetime import timedelta
from unittest import mock

import pytest
from django.core.management import call_command
from django.utils import timezone

from orders import worker as worker_module
from orders.worker import Worker, report_usage
from tests.factories import OrderFactory

pytestmark = pytest.mark.usefixtures("restore_signal_handlers")


def usage_job():
    """The worker's usage report job (a Periodic: it logs a failure and never raises)."""
    (job,) = [job for job in Worker().periodic if job.job is report_usage]
    return job


def turns_at(worker, seconds, *, report=True):
    """Run one turn per clock reading (monotonic seconds), with nothing to deliver."""
    timeline = []
    clock = {}
    with (
        mock.patch.object(worker_module.time, "monotonic", side_effect=lambda: clock["now"]),
        mock.patch.object(worker_module, "delivery_send_once", return_value=None) as attempt,
        mock.patch.object(
            worker_module, "usage_report", autospec=True, side_effect=lambda **kwargs: timeline.append("report")
        ) as usage,
        mock.patch.object(worker_module, "close_old_connections"),
    ):
        for now in seconds:
            clock["now"] = now
            timeline.append(now)
            assert worker.turn(report=report) is False
    assert attempt.call_count == len(seconds), "every turn still looks for a delivery"
    return timeline, usage


def test_the_worker_reports_at_its_first_turn_then_only_after_each_full_interval():
    worker = Worker(report_seconds=3600)

    timeline, usage = turns_at(worker, [1000, 1005, 4599, 4600, 4601, 8200])

    assert timeline == [1000, "report", 1005, 4599, 4600, "report", 4601, 8200, "report"]


@pytest.mark.django_db
def test_a_worker_run_until_idle_sends_no_report(partner, caplog):
    OrderFactory(partner=partner, is_test=False)
    with caplog.at_level(logging.INFO):
        call_command("deliver", "--until-idle")
    assert "worker.stopped" in [getattr(record, "event", None) for record in caplog.records]
    assert usage_events(caplog) == []


def test_a_failing_report_is_logged_without_details_and_the_turn_still_delivers(caplog):
    secret = "Samplepatient"
    worker = Worker(report_seconds=60)
    with (
        mock.patch.object(worker_module, "usage_report", autospec=True, side_effect=RuntimeError(secret)),
        mock.patch.object(worker_module, "delivery_send_once", return_value=mock.sentinel.delivery) as attempt,
        mock.patch.object(worker_module, "close_old_connections"),
        # The turn's other periodic jobs would need the database, which this test has none of.
        mock.patch.object(worker_module, "purge", autospec=True, return_value={}),
        caplog.at_level(logging.ERROR, logger="orders.usage"),
    ):
        assert worker.turn() is True

    attempt.assert_called_once()
    # Only the usage report's record: the turn's other periodic jobs log their own.
    [record] = [record for record in caplog.records if record.name == "orders.usage"]
    assert record.event == "usage.report_failed"
    assert record.error_class == "RuntimeError"
    assert secret not in caplog.text


def usage_events(caplog):
    return [
        {key: value for key, value in vars(record).items() if key not in NOT_FIGURES}
        for record in caplog.records
        if getattr(record, "event", "").startswith("usage.")
    ]


# LogRecord attributes that say when and where, not what was reported, and the backlog's age,
# which grows between the two reports.
NOT_FIGURES = set(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "request_id",
    "oldest_awaiting_seconds",
    "oldest_awaiting_days",
}


@pytest.mark.django_db
def test_the_workers_report_logs_the_figures_manage_py_report_usage_logs(partner, caplog):
    OrderFactory(partner=partner, ehr_order_id="1", is_test=False, first_received_at=timezone.now() - timedelta(days=2))
    OrderFactory(partner=partner, ehr_order_id="2", is_test=True, first_received_at=timezone.now() - timedelta(days=9))

    with caplog.at_level(logging.INFO, logger="orders.usage"):
        assert usage_job().run() is True
    from_worker = usage_events(caplog)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="orders.usage"):
        call_command("report_usage")

    assert from_worker == usage_events(caplog)
    events = [event["event"] for event in from_worker]
    # This week and last for all partners, and the partner's own row in the week of its order;
    # the test order is left out, as report_usage leaves it out by default.
    assert events.count("usage.weekly") == 3
    [backlog] = [event for event in from_worker if event["event"] == "usage.backlog"]
    assert backlog["partner_id"] == partner.pk
    assert backlog["awaiting_note"] == 1
    [age] = [
        record.oldest_awaiting_days for record in caplog.records if getattr(record, "event", "") == "usage.backlog"
    ]
    assert age == pytest.approx(2, abs=0.01)
