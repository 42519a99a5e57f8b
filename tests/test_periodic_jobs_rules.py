"""The worker's periodic jobs are plain functions; `Periodic` handles their failures the same
way for all: an ordinary failure is logged as the job's own event, by class name only, and
the loop goes on; a lost database propagates, so the turn treats it as the database away."""

import logging
from unittest import mock

import pytest
from django.db import OperationalError

from orders import worker as worker_module
from orders.worker import Periodic, Worker
from tests.conftest import events

pytestmark = pytest.mark.usefixtures("restore_signal_handlers")

# Each job's name in orders.worker (patched there) and the event its failure logs.
JOBS = {
    "usage_report": "usage.report_failed",
    "confirm_due": "delivery.confirm_failed",
    "digest_send_if_due": "digest.failed",
    "purge": "retention.purge_failed",
}


def only_job(worker, failed_event):
    worker.periodic = [job for job in worker.periodic if job.failed_event == failed_event]
    assert len(worker.periodic) == 1
    return worker


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "failed_event"), JOBS.items())
def test_an_ordinary_failure_is_logged_by_class_and_the_turn_goes_on(name, failed_event, caplog):
    with (
        mock.patch.object(worker_module, name, side_effect=RuntimeError("Samplepatient")),
        mock.patch.object(worker_module, "delivery_send_once", return_value=None),
        caplog.at_level(logging.INFO),
    ):
        worker = only_job(Worker(), failed_event)
        assert worker.turn() is False  # nothing to deliver; the failure did not stop the turn
    (record,) = events(caplog, failed_event)
    assert record.levelno == logging.ERROR and record.error_class == "RuntimeError"
    assert "Samplepatient" not in caplog.text
    assert not events(caplog, "worker.db_unavailable")


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "failed_event"), JOBS.items())
def test_a_lost_database_propagates_to_the_turn(name, failed_event, caplog):
    with (
        mock.patch.object(worker_module, name, side_effect=OperationalError("server closed the connection")),
        mock.patch.object(worker_module, "delivery_send_once", return_value=None) as send,
        caplog.at_level(logging.INFO),
    ):
        worker = only_job(Worker(), failed_event)
        assert worker.turn() is None
    assert not send.called
    assert not events(caplog, failed_event)
    (lost,) = events(caplog, "worker.db_unavailable")
    assert lost.error_class == "OperationalError"


def test_a_job_runs_once_per_interval(monkeypatch):
    clock = {"now": 100.0}
    monkeypatch.setattr(worker_module.time, "monotonic", lambda: clock["now"])
    job = mock.Mock()
    periodic = Periodic(job, 10, failed_event="test.failed")
    assert periodic.run_if_due() is True
    clock["now"] = 109.0
    assert periodic.run_if_due() is None
    clock["now"] = 110.0
    job.side_effect = ValueError
    assert periodic.run_if_due() is False
    assert job.call_count == 2
