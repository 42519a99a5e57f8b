"""The digest email: counts and a link, once per period, to DIGEST_GROUP's members, only
when something waits, never any patient value; and with two workers, still one email."""

import logging
import threading
from datetime import UTC, date, datetime, timedelta
from unittest import mock

import pytest
from django.core import mail
from django.core.mail.backends import locmem
from django.db import connection

from orders.digest import digest_send_if_due, period_start
from orders.models import DigestRun, Order
from orders.worker import Worker
from tests.conftest import events
from tests.factories import PATIENT_VALUES, DeliveryFactory, OrderFactory, UserFactory

# Monday November 30, 2026, 10:00 in Los Angeles (the default TIME_ZONE): after 07:00.
NOW = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)
DISTINCTIVE = {
    "patient_first_name": "Zelphinia",
    "patient_last_name": "Quorrington",
    "patient_middle_name": "Ottoline",
    "patient_mrn": "MRN-ZQ-99321",
    "identifiers_text": "MRN-ZQ-99321 EPI-ZQ-5512",
    "visit_number": "VIS-ZQ-2026-4410",
    "patient_dob": date(1937, 5, 17),
}
DISTINCTIVE_TEXT = [
    "Zelphinia",
    "Quorrington",
    "Ottoline",
    "MRN-ZQ-99321",
    "EPI-ZQ-5512",
    "VIS-ZQ-2026-4410",
    "1937",
    "ZQ-ORDER-771",
    *PATIENT_VALUES,
]


def digest_job():
    """The worker's digest job (a Periodic: it logs a failure and never raises)."""
    (job,) = [job for job in Worker().periodic if job.job is digest_send_if_due]
    return job


@pytest.fixture
def digest_on(settings):
    settings.DIGEST_FREQUENCY = "daily"
    settings.DIGEST_HOUR = 7
    settings.DIGEST_GROUP = "uploader"
    settings.SITE_URL = "https://hcoint.example.org"
    return settings


@pytest.fixture
def recipients(db):
    return [
        UserFactory(username="ursula", uploader=True, email="ursula@dispatch.example"),
        UserFactory(username="umberto", uploader=True, email="umberto@dispatch.example"),
    ]


@pytest.fixture
def waiting(partner):
    """Orders awaiting a note (one overdue, one with distinctive patient values) and a failed delivery."""
    OrderFactory(partner=partner, ehr_order_id="ZQ-ORDER-771", first_received_at=NOW - timedelta(days=1), **DISTINCTIVE)
    OrderFactory(partner=partner, first_received_at=NOW - timedelta(days=20))
    failed = OrderFactory(partner=partner, state=Order.State.FAILED, **DISTINCTIVE)
    DeliveryFactory(order=failed, failed=True)


def test_period_starts_at_the_hour_in_time_zone_daily_or_on_mondays():
    # 06:00 in Los Angeles is before 07:00: the period began yesterday.
    assert period_start(datetime(2026, 12, 2, 14, 0, tzinfo=UTC), "daily", 7) == datetime(2026, 12, 1, 15, tzinfo=UTC)
    assert period_start(datetime(2026, 12, 2, 16, 0, tzinfo=UTC), "daily", 7) == datetime(2026, 12, 2, 15, tzinfo=UTC)
    # Weekly: Monday 07:00; on a Monday before seven, the Monday before.
    assert period_start(datetime(2026, 12, 3, 16, 0, tzinfo=UTC), "weekly", 7) == datetime(2026, 11, 30, 15, tzinfo=UTC)
    assert period_start(datetime(2026, 11, 30, 14, 0, tzinfo=UTC), "weekly", 7) == datetime(
        2026, 11, 23, 15, tzinfo=UTC
    )


def test_one_email_per_recipient_with_counts_and_a_link_and_no_patient_value(digest_on, recipients, waiting, caplog):
    UserFactory(username="gone", uploader=True, email="gone@dispatch.example", is_active=False)
    UserFactory(username="no-address", uploader=True, email="")
    UserFactory(username="vera", viewer=True, email="vera@dispatch.example")

    with caplog.at_level(logging.INFO, logger="orders.digest"):
        assert digest_send_if_due(now=NOW) == 2

    assert sorted(message.to[0] for message in mail.outbox) == ["umberto@dispatch.example", "ursula@dispatch.example"]
    assert all(len(message.to) == 1 and not message.cc and not message.bcc for message in mail.outbox)
    message = mail.outbox[0]
    assert message.subject == "HCOINT: 2 orders awaiting a note (1 overdue), 1 delivery needs a person"
    assert "Orders awaiting a note:        2" in message.body
    assert "of which overdue:            1" in message.body
    assert "Deliveries that need a person: 1" in message.body
    assert "https://hcoint.example.org/\n" in message.body
    assert "Monday, November 30, 2026" in message.body
    for text in (message.subject, message.body):
        for value in DISTINCTIVE_TEXT:
            assert value not in text, value
    (sent,) = events(caplog, "digest.sent")
    assert (sent.recipients, sent.awaiting_note, sent.overdue, sent.needs_person) == (2, 2, 1, 1)
    run = DigestRun.objects.get()
    assert (run.period_start, run.sent_at, run.recipients) == (datetime(2026, 11, 30, 15, tzinfo=UTC), NOW, 2)


def test_once_per_period(digest_on, recipients, waiting):
    assert digest_send_if_due(now=NOW) == 2
    assert digest_send_if_due(now=NOW + timedelta(hours=12)) == 0
    assert len(mail.outbox) == 2
    # The next morning, the next period.
    assert digest_send_if_due(now=NOW + timedelta(days=1)) == 2
    assert len(mail.outbox) == 4


def test_weekly_waits_for_monday(digest_on, recipients, waiting):
    digest_on.DIGEST_FREQUENCY = "weekly"
    assert digest_send_if_due(now=NOW) == 2
    for day in range(1, 7):
        assert digest_send_if_due(now=NOW + timedelta(days=day)) == 0
    assert digest_send_if_due(now=NOW + timedelta(days=7)) == 2
    assert "weekly digest" in mail.outbox[-1].body


def test_nothing_is_sent_when_nothing_waits(digest_on, recipients, partner, caplog):
    OrderFactory(partner=partner, state=Order.State.FILED)
    with caplog.at_level(logging.INFO, logger="orders.digest"):
        assert digest_send_if_due(now=NOW) == 0
    assert mail.outbox == []
    assert events(caplog, "digest.nothing_waiting")
    assert DigestRun.objects.get().sent_at is None


def test_off_sends_nothing(digest_on, recipients, waiting):
    digest_on.DIGEST_FREQUENCY = "off"
    assert digest_send_if_due(now=NOW) == 0
    assert digest_job().run() is True
    assert mail.outbox == []
    assert not DigestRun.objects.exists()


def test_nobody_in_the_group_is_logged(digest_on, waiting, caplog):
    UserFactory(username="vera", viewer=True, email="vera@dispatch.example")
    with caplog.at_level(logging.INFO, logger="orders.digest"):
        assert digest_send_if_due(now=NOW) == 0
    assert mail.outbox == []
    (warning,) = events(caplog, "digest.no_recipients")
    assert warning.group == "uploader"


def test_a_failed_send_is_logged_and_tried_again_at_the_next_check(digest_on, recipients, waiting, caplog):
    refused = ConnectionRefusedError("mail.dispatch.example refused ursula@dispatch.example")
    with (
        mock.patch.object(locmem.EmailBackend, "send_messages", side_effect=refused),
        caplog.at_level(logging.INFO, logger="orders.digest"),
        mock.patch("orders.digest.timezone.now", return_value=NOW),
    ):
        assert digest_job().run() is False
    (failed,) = events(caplog, "digest.failed")
    assert failed.levelno == logging.ERROR and failed.error_class == "ConnectionRefusedError"
    assert "ursula" not in caplog.text
    assert DigestRun.objects.get().period_start is None
    assert digest_send_if_due(now=NOW + timedelta(minutes=5)) == 2


def test_the_workers_loop_sends_it(digest_on, recipients, waiting):
    worker = Worker(idle_seconds=1)
    assert digest_send_if_due in [job.job for job in worker.periodic]
    with mock.patch("orders.digest.timezone.now", return_value=NOW):
        worker.turn()
    assert len(mail.outbox) == 2


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL: SKIP LOCKED across two connections")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_workers_send_one_digest_per_period(digest_on, recipients, waiting):
    """Two workers (threads, each with its own database connection) ask at the same moment.

    The one that claims the row holds it while sending until the other has finished asking,
    so the other meets the lock: it must skip the row, not wait for it and not send.
    """
    send = locmem.EmailBackend.send_messages

    def ask_together(now):
        start, other_done = threading.Barrier(2), threading.Event()
        sent, errors = [], []

        def held_send(backend, messages):
            assert other_done.wait(10), "the other worker waited for the lock instead of skipping it"
            return send(backend, messages)

        def worker():
            try:
                start.wait(5)
                sent.append(digest_send_if_due(now=now))
            except Exception as exc:  # noqa: BLE001 (reported by the assertion below)
                errors.append(exc)
            finally:
                other_done.set()
                connection.close()

        with mock.patch.object(locmem.EmailBackend, "send_messages", held_send):
            threads = [threading.Thread(target=worker) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(20)
        assert not errors, errors
        return sorted(sent)

    assert ask_together(NOW) == [0, 2]
    assert ask_together(NOW + timedelta(minutes=5)) == [0, 0]
    assert ask_together(NOW + timedelta(days=1)) == [0, 2]
    assert len(mail.outbox) == 4
    assert DigestRun.objects.count() == 1
