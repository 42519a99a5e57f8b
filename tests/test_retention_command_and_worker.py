"""`manage.py purge` (with --dry-run to preview) and the worker's periodic purge run the same
rules; two purges at once share the rows instead of waiting (SKIP LOCKED, on PostgreSQL)."""

import threading
from datetime import timedelta
from io import StringIO
from unittest import mock

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from orders import worker as worker_module
from orders.models import ClinicalNote, Delivery, Order
from orders.retention import purge
from orders.worker import Worker, retention_purge
from tests.conftest import events
from tests.factories import DeliveryFactory, OrderFactory

LONG_AGO = timezone.now() - timedelta(days=3000)


def purge_job():
    """The worker's retention job (a Periodic: it logs a failure and never raises)."""
    (job,) = [job for job in Worker().periodic if job.job is retention_purge]
    return job


def filed_notes(count):
    notes = []
    for _ in range(count):
        order = OrderFactory()
        notes.append(DeliveryFactory(order=order, sent=True, status=Delivery.Status.FILED, confirmed_at=LONG_AGO).note)
        Order.objects.filter(pk=order.pk).update(state=Order.State.FILED, updated_at=LONG_AGO)
    return notes


def run(*args):
    out = StringIO()
    call_command("purge", *args, stdout=out)
    return out.getvalue()


def count_of(output, label_start):
    return next(int(line.split()[0]) for line in output.splitlines() if line.split()[1:2] == [label_start])


@pytest.mark.django_db
def test_dry_run_prints_the_counts_and_changes_nothing_then_purge_removes_them():
    notes = filed_notes(3)
    before = list(ClinicalNote.objects.values().order_by("pk"))
    preview = run("--dry-run")
    assert "Dry run: nothing was changed" in preview
    assert count_of(preview, "PDFs") == 3
    assert count_of(preview, "orders'") == 3
    assert list(ClinicalNote.objects.values().order_by("pk")) == before

    removed = run()
    assert count_of(removed, "PDFs") == 3
    assert all(ClinicalNote.objects.get(pk=note.pk).content_purged_at for note in notes)
    assert count_of(run(), "PDFs") == 0
    assert count_of(run("--dry-run"), "PDFs") == 0


@pytest.mark.django_db
def test_the_output_names_no_patient_data():
    filed_notes(1)
    assert "Samplepatient" not in run("--dry-run") + run()


@pytest.mark.django_db
def test_the_worker_purges_in_its_loop_bounded_per_pass(settings, caplog):
    settings.RETENTION_BATCH_SIZE = 2
    settings.RETENTION_MAX_BATCHES = 1
    filed_notes(3)
    assert purge_job().run() is True
    assert [record.notes for record in events(caplog, "retention.purged")] == [2]
    assert purge_job().run() is True
    assert [record.notes for record in events(caplog, "retention.purged")] == [2, 1]


def test_the_purge_is_one_of_the_workers_periodic_jobs(settings, restore_signal_handlers):
    settings.RETENTION_PURGE_INTERVAL_SECONDS = 1234
    jobs = {periodic.job: periodic.seconds for periodic in Worker().periodic}
    assert jobs[retention_purge] == 1234


def test_a_failing_purge_is_logged_by_class_only(caplog):
    with mock.patch.object(worker_module, "purge", autospec=True, side_effect=RuntimeError("Samplepatient")):
        assert purge_job().run() is False
    (record,) = events(caplog, "retention.purge_failed")
    assert record.error_class == "RuntimeError"
    assert "Samplepatient" not in caplog.text


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="row locks (SELECT ... FOR UPDATE SKIP LOCKED) need PostgreSQL; set DATABASE_URL",
)
def test_a_purge_skips_rows_another_worker_has_locked_instead_of_waiting():
    locked_note, free_note = filed_notes(2)
    locked, release = threading.Event(), threading.Event()

    def other_worker_holds_a_note():
        try:
            with transaction.atomic():
                ClinicalNote.objects.select_for_update().get(pk=locked_note.pk)
                locked.set()
                release.wait(timeout=10)
        finally:
            connection.close()

    holder = threading.Thread(target=other_worker_holds_a_note)
    holder.start()
    assert locked.wait(timeout=10)
    try:
        counts = purge()
    finally:
        release.set()
        holder.join()
    assert counts["notes"] == 1
    assert ClinicalNote.objects.get(pk=free_note.pk).content_purged_at is not None
    assert ClinicalNote.objects.get(pk=locked_note.pk).content_purged_at is None
    # The next pass takes what was skipped.
    assert purge()["notes"] == 1
