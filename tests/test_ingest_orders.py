"""message_ingest applies New, Update, Cancel and GroupedOrders to one order per (partner, Order.ID)."""

import json
import uuid
from datetime import UTC, date, datetime

from orders.ingest import message_ingest
from orders.models import InboundMessage, Order
from tests.conftest import sample_json


def message(event="New", order_id="ORD-1", event_at="2026-10-05T17:04:15.000Z", **order_changes):
    data = sample_json("order-new.json")
    data["Meta"]["EventType"] = event
    data["Meta"]["EventDateTime"] = event_at
    data["Meta"]["Logs"] = [{"ID": str(uuid.uuid4()), "AttemptID": str(uuid.uuid4())}]
    data["Order"]["ID"] = order_id
    data["Order"].update(order_changes)
    return data


def ingest(partner, data):
    body = json.dumps(data, ensure_ascii=False).encode() if not isinstance(data, bytes) else data
    return message_ingest(partner=partner, body=body, headers={})


def test_an_update_for_an_unseen_order_creates_it(partner):
    ingest(partner, message("Update", Priority="Stat"))
    order = Order.objects.get()
    assert order.priority == "Stat"
    assert order.state == Order.State.AWAITING_NOTE


def test_a_cancel_for_an_unseen_order_creates_it_cancelled(partner):
    ingest(partner, message("Cancel", event_at="2026-10-07T11:00:00Z"))
    order = Order.objects.get()
    assert order.state == Order.State.CANCELLED
    assert order.cancelled_at == datetime(2026, 10, 7, 11, 0, tzinfo=UTC)


def test_an_older_event_does_not_overwrite_newer_data_but_joins_the_history(partner):
    ingest(partner, message("Update", event_at="2026-10-06T09:30:00Z", Priority="Stat", Comments="newer"))
    late_new = ingest(partner, message("New", event_at="2026-10-05T17:04:15Z", Priority="Routine", Comments="older"))
    order = Order.objects.get()
    assert order.priority == "Stat"
    assert order.comments == "newer"
    assert order.last_event_at == datetime(2026, 10, 6, 9, 30, tzinfo=UTC)
    assert late_new.message.status == InboundMessage.Status.PROCESSED
    assert list(late_new.message.orders.all()) == [order]
    assert order.messages.count() == 2


def test_a_newer_event_overwrites_and_moves_the_last_event_time(partner):
    ingest(partner, message("New", event_at="2026-10-05T17:00:00Z", Priority="Routine"))
    ingest(partner, message("Update", event_at="2026-10-06T17:00:00Z", Priority="ASAP"))
    order = Order.objects.get()
    assert order.priority == "ASAP"
    assert order.last_event_at == datetime(2026, 10, 6, 17, 0, tzinfo=UTC)


def test_an_event_without_a_time_is_applied_in_arrival_order(partner):
    ingest(partner, message("New", event_at="2026-10-05T17:00:00Z", Priority="Routine"))
    ingest(partner, message("Update", event_at=None, Priority="Stat"))
    order = Order.objects.get()
    assert order.priority == "Stat"
    assert order.last_event_at == datetime(2026, 10, 5, 17, 0, tzinfo=UTC)


def test_a_cancel_never_deletes_and_a_later_update_does_not_revive_the_order(partner):
    ingest(partner, message("New", event_at="2026-10-05T00:00:00Z"))
    ingest(partner, message("Cancel", event_at="2026-10-06T00:00:00Z"))
    ingest(partner, message("Update", event_at="2026-10-07T00:00:00Z", Priority="Stat"))
    order = Order.objects.get()
    assert order.state == Order.State.CANCELLED
    assert order.priority == "Stat"
    assert InboundMessage.objects.count() == 3


def test_a_cancel_older_than_the_applied_data_still_cancels_without_overwriting(partner):
    ingest(partner, message("Update", event_at="2026-10-08T00:00:00Z", Comments="kept"))
    ingest(partner, message("Cancel", event_at="2026-10-07T00:00:00Z", Comments="stale"))
    order = Order.objects.get()
    assert order.state == Order.State.CANCELLED
    assert order.comments == "kept"


def test_a_sparse_cancel_keeps_what_staff_search_by(partner):
    ingest(partner, message("New"))
    sparse = {
        "Meta": {"DataModel": "Order", "EventType": "Cancel", "Logs": [{"ID": "sparse"}]},
        "Order": {"ID": "ORD-1"},
    }
    ingest(partner, sparse)
    order = Order.objects.get()
    assert order.state == Order.State.CANCELLED
    assert order.patient_mrn == "MRN0048213"
    assert order.patient_last_name == "Samplepatient"
    assert order.procedure_code == "DOC1042"
    assert order.is_test is True


def test_the_same_order_id_at_two_partners_is_two_orders(partner, second_partner):
    ingest(partner, message("New"))
    ingest(second_partner, message("New"))
    assert Order.objects.filter(ehr_order_id="ORD-1").count() == 2


def test_grouped_orders_update_known_orders_and_create_new_ones(partner):
    ingest(partner, message("New", order_id="157720313", event_at="2026-10-01T00:00:00Z", Priority="Routine"))
    data = sample_json("order-grouped.json")
    data["Orders"][0]["Priority"] = "Stat"
    ingest(partner, data)
    orders = {o.ehr_order_id: o for o in Order.objects.all()}
    assert orders["157720313"].priority == "Stat"
    assert orders["157720312"].procedure_code == "DOC1043"


def test_a_minimal_order_with_missing_optional_fields_is_created(partner):
    ingest(partner, {"Meta": {"DataModel": "Order", "EventType": "New"}, "Order": {"ID": 99}})
    order = Order.objects.get()
    assert order.ehr_order_id == "99"
    assert order.patient_identifiers == []
    assert order.identifiers_text == ""
    assert order.patient_dob is None
    assert order.last_event_at is None
    assert order.is_test is False


def test_nulls_and_unknown_fields_are_tolerated(partner):
    data = message("New", Procedure=None, Provider=None, Diagnoses=None, Comments=None, Priority=None)
    data["Patient"]["Demographics"] = {"FirstName": None, "LastName": None, "DOB": None, "Unknown": {"a": [1]}}
    data["Visit"] = None
    data["Meta"]["Test"] = None
    data["Extra"] = {"anything": True}
    data["Order"]["SomethingNew"] = [1, 2, 3]
    ingest(partner, data)
    order = Order.objects.get()
    assert order.procedure_code == ""
    assert order.provider == {}
    assert order.diagnoses == []
    assert order.patient_demographics["Unknown"] == {"a": [1]}
    assert order.is_test is False


def test_several_identifiers_are_all_searchable_and_the_mrn_is_picked(partner):
    data = message("New")
    data["Patient"]["Identifiers"] = [
        {"ID": "EHR-9", "IDType": "EHRID"},
        {"ID": "MRN-1", "IDType": "MRN"},
        {"ID": "NIST-3", "IDType": "NIST"},
    ]
    ingest(partner, data)
    order = Order.objects.get()
    assert order.patient_mrn == "MRN-1"
    assert order.identifiers_text == "EHR-9 MRN-1 NIST-3"
    assert len(order.patient_identifiers) == 3


def test_non_ascii_names_are_stored_as_sent(partner):
    data = message("New")
    data["Patient"]["Demographics"].update(FirstName="Zoë", LastName="Ñúñez-Ødegård")
    data["Order"]["Provider"].update(FirstName="Søren", LastName="Kierkegård")
    result = ingest(partner, data)
    order = Order.objects.get()
    assert order.patient_first_name == "Zoë"
    assert order.patient_last_name == "Ñúñez-Ødegård"
    assert order.patient_name == "Ñúñez-Ødegård, Zoë"
    assert order.provider_name == "Kierkegård, Søren"
    assert "Zoë".encode() in bytes(result.message.body)


def test_a_production_message_is_not_a_test_order(partner):
    data = message("New")
    data["Meta"]["Test"] = False
    ingest(partner, data)
    assert Order.objects.get().is_test is False


def test_an_over_long_value_is_cut_to_fit_instead_of_failing_the_message(partner):
    ingest(partner, message("New", Priority="P" * 500))
    order = Order.objects.get()
    assert order.priority == "P" * 50


def test_a_long_order_id_is_stored_whole_so_its_cancel_finds_the_order(partner):
    long_id = "ORD-" + "7" * 300
    ingest(partner, message("New", order_id=long_id))
    ingest(partner, message("Cancel", order_id=long_id, event_at="2026-10-07T11:00:00Z"))
    order = Order.objects.get()
    assert order.ehr_order_id == long_id
    assert order.state == Order.State.CANCELLED
    assert InboundMessage.objects.filter(status=InboundMessage.Status.PROCESSED).count() == 2


def test_an_order_id_too_long_to_match_is_refused_not_cut(partner):
    result = ingest(partner, message("New", order_id="7" * 5000))
    assert Order.objects.count() == 0
    assert result.message.status == InboundMessage.Status.FAILED
    assert result.message.error == "Order.ID is longer than 500 characters; HCOINT does not cut ids."


def test_an_import_of_older_history_moves_first_received_back(partner):
    ingest(partner, message("Update", event_at="2026-10-06T00:00:00Z"))
    earlier = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    data = message("New", event_at="2026-10-05T00:00:00Z")
    message_ingest(partner=partner, body=json.dumps(data).encode(), headers={}, received_at=earlier)
    order = Order.objects.get()
    assert order.first_received_at == earlier
    assert InboundMessage.objects.get(received_at=earlier).orders.get() == order


def test_dates_in_other_shapes_are_read(partner):
    data = message("New", TransactionDateTime="20261005170412")
    data["Patient"]["Demographics"]["DOB"] = "1948-02-29T00:00:00.000Z"
    ingest(partner, data)
    order = Order.objects.get()
    assert order.patient_dob == date(1948, 2, 29)
    assert order.transaction_at == datetime(2026, 10, 5, 17, 4, 12, tzinfo=UTC)
