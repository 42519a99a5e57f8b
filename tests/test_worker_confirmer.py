"""The worker runs the confirmer between deliveries every REDOX_CONFIRM_POLL_SECONDS; a failing pass never stops it."""

import logging
from unittest import mock

import pytest

from orders import worker as worker_module
from orders.worker import Worker, confirm_once

pytestmark = pytest.mark.usefixtures("restore_signal_handlers")


def test_the_confirmer_runs_at_the_first_turn_then_once_per_poll_interval(settings):
    settings.REDOX_CONFIRM_POLL_SECONDS = 10
    worker = Worker(report_seconds=3600)
    clock = {}
    with (
        mock.patch.object(worker_module.time, "monotonic", side_effect=lambda: clock["now"]),
        mock.patch.object(worker_module, "delivery_send_once", return_value=None),
        mock.patch.object(worker_module, "usage_report", autospec=True),
        mock.patch.object(worker_module, "close_old_connections"),
        mock.patch.object(worker_module, "confirm_due", autospec=True) as confirm,
    ):
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
        assert confirm_once() is False
    [record] = [r for r in caplog.records if getattr(r, "event", "") == "delivery.confirm_failed"]
    assert record.error_class == "RuntimeError"
    assert "Samplepatient" not in record.getMessage()


def test_a_confirmer_pass_without_credentials_is_a_quiet_success(settings):
    settings.REDOX_PLATFORM_CLIENT_ID = ""
    settings.REDOX_ORGANIZATION_ID = ""
    assert confirm_once() is True
