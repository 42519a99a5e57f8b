"""Importing the old system's history keeps each message's arrival time, and closes the
orders the old system already answered, so they are neither "new" nor backlog."""

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from orders.models import Delivery, InboundMessage, Order
from orders.notes import note_send, note_upload
from tests.conftest import sample_bytes, sample_json
from tests.factories import OrderFactory

ARRIVED = "2025-03-04T15:20:00Z"
ARRIVED_AT = datetime(2025, 3, 4, 15, 20, tzinfo=UTC)
EVENT_AT = datetime(2025, 3, 4, 15, 19, 58, tzinfo=UTC)
PATIENT_NAME = "Zoë Historypatient"


def run(*args):
    out = io.StringIO()
    call_command("import_redox_messages", *args, stdout=out)
    return out.getvalue()


def message(log_id, order_id, event_at=EVENT_AT):
    data = sample_json("order-new.json")
    data["Meta"]["Logs"][0]["ID"] = log_id
    data["Order"]["ID"] = order_id
    data["Patient"]["Demographics"]["FirstName"] = PATIENT_NAME
    if event_at is None:
        data["Meta"].pop("EventDateTime")
    else:
        data["Meta"]["EventDateTime"] = event_at.isoformat().replace("+00:00", "Z")
    return data


def local(naive):
    """A time in TIME_ZONE (the day --close-before means), with its offset."""
    return timezone.make_aware(datetime.fromisoformat(naive)).isoformat()


def jsonl(tmp_path, *records):
    file = tmp_path / "old-messages.jsonl"
    file.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return str(file)


def test_an_envelope_time_becomes_the_arrival_and_first_received_time(partner, tmp_path):
    as_text = json.dumps(message("h-1", "H-1"), indent=1)
    file = jsonl(
        tmp_path,
        {"received_at": ARRIVED, "body": as_text},
        {"received_at": "2025-03-05T08:00:00-08:00", "body": message("h-2", "H-2")},
    )
    out = run("--partner", partner.name, file)
    assert "2 new, 0 duplicate, 0 failed" in out
    assert "no arrival time" not in out

    first = InboundMessage.objects.get(redox_log_id="h-1")
    assert first.received_at == ARRIVED_AT
    assert bytes(first.body) == as_text.encode()  # a string body is kept byte for byte
    assert Order.objects.get(ehr_order_id="H-1").first_received_at == ARRIVED_AT
    second = InboundMessage.objects.get(redox_log_id="h-2")
    assert second.received_at == datetime(2025, 3, 5, 16, 0, tzinfo=UTC)
    assert json.loads(bytes(second.body)) == message("h-2", "H-2")
    assert Order.objects.get(ehr_order_id="H-2").first_received_at == second.received_at


def test_without_an_envelope_time_the_default_is_the_time_of_the_import(partner, tmp_path):
    before = timezone.now()
    out = run("--partner", partner.name, jsonl(tmp_path, message("h-1", "H-1"), {"body": message("h-2", "H-2")}))
    assert "2 new" in out
    assert "2 record(s) had no arrival time" in out
    assert all(o.first_received_at >= before for o in Order.objects.all())


def test_arrival_event_time_takes_meta_event_date_time_unless_the_envelope_says(partner, tmp_path):
    file = jsonl(
        tmp_path,
        message("h-1", "H-1"),
        {"received_at": ARRIVED, "body": message("h-2", "H-2", event_at=EVENT_AT - timedelta(days=9))},
        message("h-3", "H-3", event_at=None),
        "{not json",
    )
    before = timezone.now()
    out = run("--partner", partner.name, "--arrival", "event-time", file)
    assert "3 new, 0 duplicate, 1 failed" in out
    assert "2 record(s) had no arrival time (no envelope time and no Meta.EventDateTime)" in out
    assert Order.objects.get(ehr_order_id="H-1").first_received_at == EVENT_AT
    assert Order.objects.get(ehr_order_id="H-2").first_received_at == ARRIVED_AT
    assert Order.objects.get(ehr_order_id="H-3").first_received_at >= before


def test_importing_envelopes_again_changes_nothing(partner, tmp_path):
    file = jsonl(tmp_path, {"received_at": ARRIVED, "body": message("h-1", "H-1")})
    run("--partner", partner.name, file)
    assert "0 new, 1 duplicate" in run("--partner", partner.name, "--arrival", "event-time", file)
    assert InboundMessage.objects.get().times_seen == 2
    assert Order.objects.get().first_received_at == ARRIVED_AT


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({"received_at": "2025-03-04T15:20:00", "body": "{}"}, "UTC offset"),
        ({"received_at": "last Tuesday", "body": "{}"}, "UTC offset"),
        ({"received_at": 1741101600, "body": "{}"}, "UTC offset"),
        ({"received_at": "9999-12-31T23:59:00-05:00", "body": "{}"}, "from 1900 to 2199"),
        ({"received_at": "0001-01-01T00:00:00+01:00", "body": "{}"}, "from 1900 to 2199"),
        ({"received_at": "2025-03-04T15:20:00+16:00", "body": "{}"}, "offset under 16 hours"),
        ({"received_at": ARRIVED, "body": ["a list"]}, "JSON object or a string"),
        ({"received_at": ARRIVED, "body": "{}", PATIENT_NAME: "extra"}, "only the keys received_at and body"),
    ],
)
def test_a_malformed_envelope_stops_the_import_before_anything_is_imported(partner, tmp_path, record, problem):
    file = jsonl(tmp_path, message("h-1", "H-1"), record)
    with pytest.raises(CommandError, match=problem) as refused:
        run("--partner", partner.name, file)
    assert str(refused.value).startswith(f"{file}:2: ")
    assert PATIENT_NAME not in str(refused.value)
    assert not InboundMessage.objects.exists()


def test_close_before_closes_only_that_partners_orders_still_awaiting_a_note_from_before_the_date(
    partner, second_partner, tmp_path
):
    old_sent = OrderFactory(
        partner=partner, ehr_order_id="SENT-1", state=Order.State.SENT, first_received_at=ARRIVED_AT
    )
    theirs = OrderFactory(partner=second_partner, ehr_order_id="T-1", first_received_at=ARRIVED_AT)
    file = jsonl(
        tmp_path,
        {"received_at": "2025-03-04T15:20:00Z", "body": message("h-1", "H-1")},
        {"received_at": local("2025-03-09T23:59:59"), "body": message("h-2", "H-2")},
        {"received_at": local("2025-03-10T00:00:00"), "body": message("h-3", "H-3")},
        message("h-4", "H-4"),
    )
    out = run("--partner", partner.name, "--close-before", "2025-03-10", file)
    assert "Closed 2 order(s)" in out
    states = dict(Order.objects.values_list("ehr_order_id", "state"))
    assert states["H-1"] == states["H-2"] == Order.State.CLOSED
    assert states["H-3"] == states["H-4"] == Order.State.AWAITING_NOTE
    old_sent.refresh_from_db()
    theirs.refresh_from_db()
    assert (old_sent.state, theirs.state) == (Order.State.SENT, Order.State.AWAITING_NOTE)
    assert Order.objects.get(ehr_order_id="H-1").get_state_display() == "Closed before HCOINT"

    assert "Closed 0 order(s)" in run("--partner", partner.name, "--close-before", "2025-03-10", file)


def test_close_before_refuses_a_date_after_today_or_not_a_date(partner, tmp_path):
    file = jsonl(tmp_path, {"received_at": ARRIVED, "body": message("h-1", "H-1")})
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    with pytest.raises(CommandError, match="later than today"):
        run("--partner", partner.name, "--close-before", tomorrow, file)
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        run("--partner", partner.name, "--close-before", "10/03/2025", file)
    assert not InboundMessage.objects.exists()


def test_a_closed_order_still_takes_a_note_for_what_the_old_system_left_unanswered(partner, uploader):
    order = OrderFactory(partner=partner, ehr_order_id="C-1", state=Order.State.CLOSED)
    note = note_upload(
        order=order, file_name="note.pdf", content=sample_bytes("clinical-note.pdf"), page_count=1, user=uploader
    )
    delivery = note_send(note=note, user=uploader)
    order.refresh_from_db()
    assert order.state == Order.State.SENDING
    assert list(Delivery.objects.claimable(timezone.now())) == [delivery]
