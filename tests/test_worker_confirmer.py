"""The worker runs the confirmer between deliveries every REDOX_CONFIRM_POLL_SECONDS; a failing pass never stops it."""

import logging
from unittest import mock

import pytest

from orders import worker as worker_module
from orders.worker import Worker

pytestmark = pytest.mark.usefixtures("restore_signal_handlers")


def confirmer_job():
    """The worker's confirmer job (a Periodic: it logs a failure and never raises), over
    whatever orders.worker.confirm_due is now."""
    (job,) = [job for job in Worker().periodic if job.job is worker_module.confirm_due]
    return job


def test_the_confirmer_runs_at_the_first_turn_then_once_per_poll_interval(settings):
    settings.REDOX_CONFIRM_POLL_SECONDS = 10
    clock = {}
    with (
        mock.patch.object(worker_module.time, "monotonic", side_effect=lambda: clock["now"]),
        mock.patch.object(worker_module, "delivery_send_once", return_value=None),
        mock.patch.object(worker_module, "usage_report", autospec=True),
        mock.patch.object(worker_module, "close_old_connections"),
        mock.patch.object(worker_module, "confirm_due", autospec=True) as confirm,
    ):
        worker = Worker(report_seconds=3600)  # built under the patch: its job is the mock
        for now, expected in ((1000, 1), (1005, 1), (1010, 2), (1019, 2), (1020, 3)):
            clock["now"] = now
            assert worker.turn() is False
            assert confirm.call_count == expected
        worker.turn(report=False)  # until_idle runs (tests, drills) deliver only
        assert confirm.call_count == 3


def test_a_failing_confirmer_pass_is_logged_and_never_raises(caplog):
    with (
        mock.patch.object(worker_module, "confirm_due", side_effect=RuntimeError("Samplepatient")),
        caplog.at_level(logging.INFO),
    ):
        assert confirmer_job().run() is False
    [record] = [r for r in caplog.records if getattr(r, "event", "") == "delivery.confirm_failed"]
    assert record.error_class == "RuntimeError"
    assert "Samplepatient" not in record.getMessage()


def test_a_confirmer_pass_without_credentials_is_a_quiet_success(settings):
    settings.REDOX_PLATFORM_CLIENT_ID = ""
    settings.REDOX_ORGANIZATION_ID = ""
    assert confirmer_job().run() is True
