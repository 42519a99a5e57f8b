"""The confirmer asks Redox's log what became of each accepted note: filed, failed downstream, filtered,
or still pending (asked again on a schedule, Unconfirmed after the window); it never touches a
delivery that changed meanwhile, never asks without credentials, and bounds its requests per minute."""

import logging
from datetime import timedelta
from unittest import mock

import pytest

from orders.confirm import confirm_due, confirm_one, wait_after
from orders.delivery import delivery_abandon
from orders.models import Delivery, Order
from redox.client import LogStatus, PlatformClient
from redox.errors import RedoxError
from tests.delivery_fakes import T0
from tests.factories import DeliveryFactory, OrderFactory

pytestmark = pytest.mark.django_db

SENT_AT = T0
FIRST_DUE = SENT_AT + timedelta(seconds=60)


class FakePlatform:
    """An autospec'd PlatformClient: each log id answers with its scripted status (or error)."""

    def __init__(self, default="pending", **by_log):
        self.default = default
        self.by_log = by_log
        self.asked = []
        self.client = mock.create_autospec(PlatformClient, instance=True)
        self.client.log_status.side_effect = self._log_status

    def _log_status(self, log_id):
        self.asked.append(log_id)
        answer = self.by_log.get(log_id, self.default)
        if callable(answer) and not isinstance(answer, BaseException):
            answer = answer(log_id)
        if isinstance(answer, BaseException):
            raise answer
        return LogStatus(status=answer, attempts=1)


@pytest.fixture(autouse=True)
def _confirm_settings(settings):
    settings.REDOX_CONFIRM_FIRST_CHECK_SECONDS = 60
    settings.REDOX_CONFIRM_MAX_WAIT_SECONDS = 3600
    settings.REDOX_CONFIRM_WINDOW_DAYS = 7
    settings.REDOX_CONFIRM_MAX_PER_MINUTE = 60


def accepted_delivery(partner, user, ehr_order_id="157720311", log_id="log-1", **fields):
    order = OrderFactory(partner=partner, ehr_order_id=ehr_order_id, state=Order.State.SENT)
    values = {"status": Delivery.Status.SENT, "sent_at": SENT_AT, "redox_log_id": log_id, "attempt_count": 1}
    values.update(fields)
    return DeliveryFactory(order=order, created_by=user, created_at=T0, **values)


@pytest.mark.parametrize(
    ("redox_status", "delivery_status", "order_state"),
    [
        ("succeeded", Delivery.Status.FILED, Order.State.FILED),
        ("failed", Delivery.Status.FAILED_DOWNSTREAM, Order.State.FAILED_DOWNSTREAM),
        ("filtered", Delivery.Status.FILTERED, Order.State.FILTERED),
    ],
)
def test_each_final_redox_status_settles_the_delivery_and_its_order(
    partner, uploader, redox_status, delivery_status, order_state
):
    delivery = accepted_delivery(partner, uploader)
    fake = FakePlatform(default=redox_status)

    run = confirm_due(now=FIRST_DUE, client=fake.client)

    delivery.refresh_from_db()
    assert fake.asked == ["log-1"]
    assert (run.asked, run.changed) == (1, 1)
    assert delivery.status == delivery_status
    assert delivery.confirmed_at == FIRST_DUE
    assert delivery.confirmation_checked_at == FIRST_DUE
    assert delivery.next_check_at is None
    assert delivery.order.state == order_state
    # Settled: never asked again.
    assert confirm_due(now=FIRST_DUE + timedelta(days=1), client=fake.client).asked == 0


def test_nothing_is_asked_before_the_first_wait(partner, uploader):
    accepted_delivery(partner, uploader)
    fake = FakePlatform()

    assert confirm_due(now=FIRST_DUE - timedelta(seconds=1), client=fake.client).asked == 0
    assert fake.asked == []


def test_pending_is_asked_again_after_5_then_15_minutes_then_hourly(partner, uploader):
    delivery = accepted_delivery(partner, uploader)
    fake = FakePlatform(default="pending")
    now = FIRST_DUE
    waits = []
    for _ in range(5):
        assert confirm_due(now=now, client=fake.client).asked == 1
        delivery.refresh_from_db()
        assert delivery.status == Delivery.Status.SENT
        assert confirm_due(now=delivery.next_check_at - timedelta(seconds=1), client=fake.client).asked == 0
        waits.append((delivery.next_check_at - now).total_seconds())
        now = delivery.next_check_at

    assert waits == [300, 900, 3600, 3600, 3600]
    assert delivery.confirm_checks == 5
    assert delivery.order.state == Order.State.SENT
    assert [wait_after(n) for n in (1, 2, 3, 10)] == [300, 900, 3600, 3600]


def test_still_pending_when_the_window_ends_is_unconfirmed(partner, uploader, caplog):
    delivery = accepted_delivery(partner, uploader)
    fake = FakePlatform(default="pending")
    deadline = SENT_AT + timedelta(days=7)

    # A check just before the end of the window schedules the last one at the deadline exactly.
    delivery.next_check_at = deadline - timedelta(minutes=10)
    delivery.confirm_checks = 100  # hourly by now
    delivery.save(update_fields=["next_check_at", "confirm_checks"])
    confirm_due(now=deadline - timedelta(minutes=10), client=fake.client)
    delivery.refresh_from_db()
    assert delivery.next_check_at == deadline

    with caplog.at_level(logging.INFO):
        confirm_due(now=deadline, client=fake.client)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.UNCONFIRMED
    assert delivery.confirmed_at == deadline
    assert delivery.order.state == Order.State.UNCONFIRMED
    [record] = [r for r in caplog.records if getattr(r, "event", "") == "delivery.unconfirmed"]
    assert record.levelno == logging.WARNING  # its own monitor alerts; "ERROR logged" is for bugs
    assert record.delivery_id == delivery.pk


def test_a_final_status_learned_late_still_counts(partner, uploader):
    delivery = accepted_delivery(partner, uploader)
    confirm_due(now=SENT_AT + timedelta(days=8), client=FakePlatform(default="succeeded").client)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FILED


def test_without_platform_credentials_nothing_is_asked(partner, uploader, settings):
    for name in ("REDOX_PLATFORM_CLIENT_ID", "REDOX_PLATFORM_KEY_ID", "REDOX_PLATFORM_PRIVATE_KEY"):
        setattr(settings, name, "")
    settings.REDOX_PLATFORM_PRIVATE_KEY_FILE = ""
    settings.REDOX_ORGANIZATION_ID = ""
    delivery = accepted_delivery(partner, uploader)

    with mock.patch.object(PlatformClient, "log_status", autospec=True) as log_status:
        run = confirm_due(now=SENT_AT + timedelta(days=30))
        assert confirm_one(delivery, now=SENT_AT + timedelta(days=30)) is None

    log_status.assert_not_called()
    assert run.asked == 0
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT
    assert delivery.confirm_checks == 0


def test_a_delivery_without_a_log_id_is_never_asked_about(partner, uploader):
    accepted_delivery(partner, uploader, log_id="")
    fake = FakePlatform()

    assert confirm_due(now=FIRST_DUE, client=fake.client).asked == 0


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"attempt_count": 2, "status": Delivery.Status.PENDING}, id="retried"),
        pytest.param({"redox_log_id": "log-2"}, id="sent-again-with-a-new-log"),
        pytest.param({"status": Delivery.Status.ABANDONED}, id="abandoned"),
        pytest.param({"status": Delivery.Status.FILED}, id="confirmed-by-another-worker"),
    ],
)
def test_a_delivery_changed_while_redox_was_asked_is_left_alone(partner, uploader, change):
    delivery = accepted_delivery(partner, uploader)

    def meanwhile(log_id):
        Delivery.objects.filter(pk=delivery.pk).update(**change)
        return "failed"

    run = confirm_due(now=FIRST_DUE, client=FakePlatform(default=meanwhile).client)

    delivery.refresh_from_db()
    assert run.skipped == 1
    assert run.changed == 0
    for field, value in change.items():
        assert getattr(delivery, field) == value
    assert delivery.order.state == Order.State.SENT


def test_a_corrected_resend_on_its_way_keeps_the_order_sending(partner, uploader):
    first = accepted_delivery(partner, uploader)
    Order.objects.filter(pk=first.order_id).update(state=Order.State.SENDING)
    DeliveryFactory(
        order=first.order, created_by=uploader, is_correction=True, created_at=T0 + timedelta(seconds=30)
    )  # pending

    confirm_due(now=FIRST_DUE, client=FakePlatform(default="failed").client)

    first.refresh_from_db()
    assert first.status == Delivery.Status.FAILED_DOWNSTREAM
    assert first.order.state == Order.State.SENDING


def test_an_older_delivery_settling_does_not_overwrite_the_newer_ones_state(partner, uploader):
    first = accepted_delivery(partner, uploader, log_id="log-old", next_check_at=FIRST_DUE + timedelta(hours=1))
    DeliveryFactory(
        order=first.order,
        created_by=uploader,
        status=Delivery.Status.FILED,
        sent_at=SENT_AT,
        redox_log_id="log-new",
        created_at=T0 + timedelta(seconds=30),
    )
    Order.objects.filter(pk=first.order_id).update(state=Order.State.FILED)

    confirm_due(now=FIRST_DUE + timedelta(hours=1), client=FakePlatform(default="failed").client)

    first.refresh_from_db()
    assert first.status == Delivery.Status.FAILED_DOWNSTREAM
    assert first.order.state == Order.State.FILED


def test_a_cancelled_order_stays_cancelled(partner, uploader):
    delivery = accepted_delivery(partner, uploader)
    Order.objects.filter(pk=delivery.order_id).update(state=Order.State.CANCELLED)

    confirm_due(now=FIRST_DUE, client=FakePlatform(default="succeeded").client)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FILED
    assert delivery.order.state == Order.State.CANCELLED


def test_an_error_is_logged_with_ids_only_and_the_check_backs_off(partner, uploader, caplog):
    delivery = accepted_delivery(partner, uploader)
    error = RedoxError("Redox Platform log: HTTP 404: Samplepatient", retryable=True, status=404)

    with caplog.at_level(logging.INFO):
        run = confirm_due(now=FIRST_DUE, client=FakePlatform(default=error).client)

    delivery.refresh_from_db()
    assert run.failed == 1
    assert delivery.status == Delivery.Status.SENT
    assert delivery.next_check_at == FIRST_DUE + timedelta(minutes=5)
    [record] = [r for r in caplog.records if getattr(r, "event", "") == "delivery.confirm_failed"]
    assert record.delivery_id == delivery.pk
    assert record.http_status == 404
    assert "Samplepatient" not in record.getMessage()


def test_an_authentication_failure_stops_the_batch_and_backs_off_the_rest(partner, uploader):
    for number in range(3):
        accepted_delivery(partner, uploader, ehr_order_id=f"ORD{number}", log_id=f"log-{number}")
    refused = RedoxError("Redox token request: HTTP 401", retryable=True, status=401)
    fake = FakePlatform(default=refused)

    run = confirm_due(now=FIRST_DUE, client=fake.client)

    assert len(fake.asked) == 1
    assert run.failed == 1
    first_wait = timedelta(seconds=60)
    assert not Delivery.objects.confirmable(FIRST_DUE + timedelta(seconds=119), first_wait).exists()
    assert Delivery.objects.confirmable(FIRST_DUE + timedelta(seconds=120), first_wait).count() == 2, (
        "the two not asked are due again after CLAIM_SECONDS"
    )
    assert confirm_due(now=FIRST_DUE + timedelta(seconds=30), client=fake.client).asked == 0


def test_polls_with_nothing_due_spend_no_budget(partner, uploader, settings):
    settings.REDOX_CONFIRM_MAX_PER_MINUTE = 5
    accepted_delivery(partner, uploader, next_check_at=FIRST_DUE + timedelta(seconds=50))
    fake = FakePlatform(default="succeeded")
    for second in range(0, 50, 5):
        confirm_due(now=FIRST_DUE + timedelta(seconds=second), client=fake.client)

    assert confirm_due(now=FIRST_DUE + timedelta(seconds=50), client=fake.client).asked == 1


def test_many_accepted_deliveries_are_confirmed_within_the_requests_per_minute(partner, uploader, settings):
    settings.REDOX_CONFIRM_MAX_PER_MINUTE = 25
    for number in range(60):
        accepted_delivery(partner, uploader, ehr_order_id=f"ORD{number:03}", log_id=f"log-{number}")
    fake = FakePlatform(default="succeeded")
    minute = FIRST_DUE.replace(second=0) + timedelta(minutes=1)

    asked_per_minute = []
    for offset in range(4):
        before = len(fake.asked)
        for second in range(0, 60, 5):  # a worker polling every 5 seconds
            confirm_due(now=minute + timedelta(minutes=offset, seconds=second), client=fake.client)
        asked_per_minute.append(len(fake.asked) - before)

    assert asked_per_minute == [25, 25, 10, 0]
    assert sorted(fake.asked) == sorted(f"log-{n}" for n in range(60)), "each log asked about once"
    assert Delivery.objects.filter(status=Delivery.Status.FILED).count() == 60


def test_a_row_the_previous_release_marked_sent_is_checked(partner, uploader):
    delivery = accepted_delivery(partner, uploader, sent_at=SENT_AT - timedelta(days=30))
    assert delivery.next_check_at is None and delivery.confirm_checks == 0

    confirm_due(now=FIRST_DUE, client=FakePlatform(default="succeeded").client)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FILED


def test_confirm_one_asks_at_once_whatever_the_schedule(partner, uploader):
    delivery = accepted_delivery(partner, uploader, next_check_at=FIRST_DUE + timedelta(hours=5))

    assert confirm_one(delivery, now=FIRST_DUE, client=FakePlatform(default="filtered").client) == "filtered"

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FILTERED


def test_abandoning_a_resend_returns_the_order_to_what_redox_said_of_the_earlier_note(partner, uploader):
    first = accepted_delivery(partner, uploader, status=Delivery.Status.FILED)
    resend = DeliveryFactory(
        order=first.order,
        created_by=uploader,
        status=Delivery.Status.FAILED,
        is_correction=True,
        created_at=T0 + timedelta(hours=1),
    )
    Order.objects.filter(pk=first.order_id).update(state=Order.State.FAILED)

    delivery_abandon(delivery=resend, user=uploader, reason="Sent the wrong file")

    first.order.refresh_from_db()
    assert first.order.state == Order.State.FILED
