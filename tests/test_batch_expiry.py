"""Files nobody sent do not stay: a batch past its expiry is deleted, with its files and
their bytes, by a periodic job in the worker that never raises into its loop."""

from datetime import timedelta

import pytest
from django.utils import timezone

from orders import batches, note_content
from orders.models import BatchFile, UploadBatch
from orders.worker import Worker
from tests.conftest import events
from tests.factories import SAMPLE_PDF, BatchFileFactory, DeliveryFactory, UploadBatchFactory

pytestmark = pytest.mark.django_db


def test_a_new_batch_expires_after_the_configured_days(uploader, settings):
    settings.UPLOAD_BATCH_EXPIRY_DAYS = 3
    now = timezone.now()
    batch, refused = batches.batch_create(user=uploader, uploads=[], now=now)
    assert refused == 0
    assert batch.expires_at == now + timedelta(days=3)


def purge_job():
    """The bulk-upload purge as the worker runs it (failures logged, never raised)."""
    return next(job for job in Worker().periodic if job.job is batches.batch_purge)


def test_expired_batches_are_deleted_with_their_files_and_the_rest_stay(caplog):
    now = timezone.now()
    expired = UploadBatchFactory(expires_at=now - timedelta(seconds=1))
    BatchFileFactory(batch=expired)
    BatchFileFactory(batch=expired, decision=BatchFile.Decision.SKIPPED)
    sent = DeliveryFactory()
    BatchFileFactory(batch=expired, decision=BatchFile.Decision.SENT, note=sent.note, content=b"")
    current = BatchFileFactory(batch=UploadBatchFactory(expires_at=now + timedelta(hours=1)))

    assert purge_job().run() is True

    assert list(UploadBatch.objects.all()) == [current.batch]
    assert list(BatchFile.objects.all()) == [current]
    # What was sent stays: the note and its delivery are the record, not the batch.
    sent.refresh_from_db()
    assert note_content.read(sent.note) == SAMPLE_PDF
    [purged] = events(caplog, "batch.purged")
    assert (purged.batches, purged.unsent_files) == (1, 2)


def test_nothing_to_purge_is_a_quiet_success(caplog):
    BatchFileFactory()
    assert purge_job().run() is True
    assert BatchFile.objects.count() == 1
    [purged] = events(caplog, "batch.purged")
    assert (purged.batches, purged.unsent_files) == (0, 0)


def test_a_failing_purge_is_logged_and_never_raises(monkeypatch, caplog):
    def broken(now=None):
        raise RuntimeError("boom, with words that could be anything")

    monkeypatch.setattr(batches, "batch_purge_expired", broken)
    assert purge_job().run() is False
    [failed] = events(caplog, "batch.purge_failed")
    assert failed.error_class == "RuntimeError"
    assert "boom" not in caplog.text


def test_the_worker_runs_the_purge_at_its_interval(settings):
    settings.UPLOAD_BATCH_PURGE_SECONDS = 1234
    jobs = {job.job: job.seconds for job in Worker().periodic}
    assert jobs[batches.batch_purge] == 1234


def test_a_worker_turn_purges_expired_batches():
    BatchFileFactory(batch__expires_at=timezone.now() - timedelta(minutes=1))
    worker = Worker()
    worker.periodic = [job for job in worker.periodic if job.job is batches.batch_purge]
    worker.turn()
    assert not UploadBatch.objects.exists() and not BatchFile.objects.exists()
