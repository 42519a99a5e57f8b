"""`manage.py reconcile` lists each order in a date range with its delivery and Redox status, in CSV with
opaque ids and order numbers only; `--refresh` asks Redox about every delivery still accepted."""

import csv
import io
from datetime import UTC, datetime
from unittest import mock

import pytest
from django.core.management import CommandError, call_command

from orders.models import Delivery, Order
from redox.client import LogStatus, PlatformClient
from tests.delivery_fakes import T0
from tests.factories import PATIENT_VALUES, DeliveryFactory, OrderFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def orders(partner, uploader):
    def order(ehr_id, day, state, **delivery):
        made = OrderFactory(
            partner=partner, ehr_order_id=ehr_id, state=state, first_received_at=datetime(2026, 10, day, 12, tzinfo=UTC)
        )
        if delivery:
            DeliveryFactory(
                order=made,
                created_by=uploader,
                created_at=T0,
                sent_at=datetime(2026, 10, day, 13, tzinfo=UTC),
                **delivery,
            )
        return made

    return [
        order("EHR-1", 1, Order.State.SENT, status=Delivery.Status.SENT, redox_log_id="log-1", attempt_count=1),
        order("EHR-2", 2, Order.State.FILED, status=Delivery.Status.FILED, redox_log_id="log-2"),
        order("EHR-3", 3, Order.State.AWAITING_NOTE),
        order("EHR-9", 20, Order.State.AWAITING_NOTE),  # outside the range
    ]


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("reconcile", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_csv_lists_each_order_in_the_range_with_ids_and_statuses_only(orders):
    out, _ = run("--since", "2026-10-01", "--until", "2026-10-03", "--csv")

    rows = list(csv.DictReader(io.StringIO(out)))
    assert [row["ehr_order_id"] for row in rows] == ["EHR-1", "EHR-2", "EHR-3"]
    assert [row["delivery_status"] for row in rows] == ["sent", "filed", ""]
    assert rows[0]["redox_log_id"] == "log-1"
    assert not [value for value in PATIENT_VALUES if value in out]


def test_the_table_says_how_many_are_not_filed(orders):
    out, _ = run("--since", "2026-10-01", "--until", "2026-10-31")
    assert "4 order(s); 3 not filed" in out
    assert not [value for value in PATIENT_VALUES if value in out]


def test_refresh_asks_redox_about_accepted_deliveries_and_records_the_answer(orders):
    fake = mock.create_autospec(PlatformClient, instance=True)
    fake.log_status.return_value = LogStatus(status="succeeded", attempts=1)
    with (
        mock.patch("orders.confirm.get_platform_client", return_value=fake),
        mock.patch("orders.management.commands.reconcile.confirmer_configured", return_value=True),
    ):
        out, err = run("--since", "2026-10-01", "--until", "2026-10-03", "--csv", "--refresh")

    fake.log_status.assert_called_once_with("log-1")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[0]["redox_status"] == "succeeded"
    assert rows[0]["delivery_status"] == "filed"
    assert Order.objects.get(pk=orders[0].pk).state == Order.State.FILED
    assert "Asked Redox about 1" in err


def test_refresh_without_platform_credentials_is_refused(orders):
    with pytest.raises(CommandError, match="REDOX_PLATFORM"):
        run("--since", "2026-10-01", "--until", "2026-10-03", "--refresh")


def test_dates_are_checked(orders):
    with pytest.raises(CommandError, match="not a date"):
        run("--since", "October", "--until", "2026-10-03")
    with pytest.raises(CommandError, match="before"):
        run("--since", "2026-10-05", "--until", "2026-10-03")
