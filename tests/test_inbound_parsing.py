"""redox.inbound turns Order JSON into plain values, tolerating how partners really fill it."""

import hashlib
import json
from datetime import UTC, date, datetime

import pytest

from redox import inbound, values
from redox.verification import challenge_from_body, challenge_from_query
from tests.conftest import sample_bytes, sample_json


def order_message(data):
    """The Order message in `data`, read the way ingest reads a body: one `inbound.read` call."""
    result = inbound.read(json.dumps(data).encode())
    assert result.error is None, result.error
    return result.order_message


def refusal(data):
    """Why `inbound.read` will not process `data` (None when it will)."""
    return inbound.read(json.dumps(data).encode()).error


def test_parses_the_new_sample_into_every_field_staff_need():
    message = order_message(sample_json("order-new.json"))
    assert message.meta.data_model == "Order"
    assert message.meta.event_type == "New"
    assert message.meta.event_at == datetime(2026, 10, 5, 17, 4, 15, 120000, tzinfo=UTC)
    assert message.meta.is_test is True
    assert message.meta.log_id == "0b5f2c1e-6a3d-4e8f-9b7a-1c2d3e4f5a60"
    patient = message.patient
    assert patient.mrn == "MRN0048213"
    assert patient.identifiers_text == "MRN0048213 EPI77120"
    assert [i["IDType"] for i in patient.identifiers] == ["MR", "EPI"]
    assert (patient.first_name, patient.middle_name, patient.last_name) == ("Testy", "Q", "Samplepatient")
    assert patient.dob == date(1948, 2, 29)
    assert patient.sex == "Male"
    assert message.visit_number == "VIS-2026-000731"
    (order,) = message.orders
    assert order.ehr_order_id == "157720311"
    assert order.status == "New"
    assert order.transaction_at == datetime(2026, 10, 5, 17, 4, 12, tzinfo=UTC)
    assert (order.procedure_code, order.procedure_codeset) == ("DOC1042", "")
    assert order.procedure_description == "Request for outside clinical notes"
    assert order.provider_npi == "1999999984"
    assert order.provider_name == "Exampledoc, Alex"
    assert order.priority == "Routine"
    assert order.comments.startswith("Discharge summary")
    assert order.diagnoses == [{"Code": "I50.9", "Codeset": "ICD-10", "Name": "Heart failure, unspecified"}]


def test_grouped_orders_yield_every_order_with_the_shared_patient():
    message = order_message(sample_json("order-grouped.json"))
    assert [o.ehr_order_id for o in message.orders] == ["157720313", "157720312"]
    assert message.patient.mrn == "MRN0048213"


def test_a_bare_minimum_order_parses_with_empty_values():
    data = {"Meta": {"DataModel": "Order", "EventType": "New"}, "Order": {"ID": 42}}
    message = order_message(data)
    assert message.orders[0].ehr_order_id == "42"
    assert message.meta.event_at is None
    assert message.meta.is_test is None
    assert message.patient.identifiers == []
    assert message.patient.mrn == ""
    assert message.patient.dob is None
    assert message.visit_number == ""
    assert message.orders[0].provider_name == ""


def test_nulls_everywhere_are_read_as_missing():
    data = {
        "Meta": {"DataModel": "Order", "EventType": "Update", "EventDateTime": None, "Test": None, "Logs": None},
        "Patient": {"Identifiers": [None, {"ID": None, "IDType": "MR"}], "Demographics": None},
        "Visit": None,
        "Order": {
            "ID": "A-1",
            "Status": None,
            "Procedure": None,
            "Provider": {"NPI": None, "FirstName": None, "LastName": "Solo"},
            "Priority": None,
            "Comments": None,
            "Diagnoses": [None, "not-an-object", {"Code": "R69"}],
        },
    }
    message = order_message(data)
    order = message.orders[0]
    assert message.patient.identifiers == []
    assert message.patient.demographics == {}
    assert order.provider_name == "Solo"
    assert order.provider_npi == ""
    assert order.diagnoses == [{"Code": "R69"}]
    assert order.status == order.priority == order.comments == ""


def test_unknown_extra_fields_are_ignored_but_kept_in_the_raw_blobs():
    data = sample_json("order-new.json")
    data["Meta"]["SomethingNew"] = {"deep": [1, 2]}
    data["Patient"]["Demographics"]["PreferredPronouns"] = "they/them"
    data["Order"]["VendorExtension"] = {"x": 1}
    message = order_message(data)
    assert message.orders[0].ehr_order_id == "157720311"
    assert message.patient.demographics["PreferredPronouns"] == "they/them"


def test_several_identifiers_pick_the_first_mr_or_mrn_as_the_mrn():
    data = sample_json("order-new.json")
    data["Patient"]["Identifiers"] = [
        {"ID": "E-1", "IDType": "EHRID"},
        {"ID": "123-45-6789", "IDType": "SSN"},
        {"ID": "M-77", "IDType": "mrn"},
        {"ID": "M-78", "IDType": "MR"},
        {"ID": 555, "IDType": "NIST"},
    ]
    patient = order_message(data).patient
    assert patient.mrn == "M-77"
    assert patient.identifiers_text == "E-1 123-45-6789 M-77 M-78 555"


def test_non_ascii_names_survive_intact():
    data = sample_json("order-new.json")
    data["Patient"]["Demographics"].update(FirstName="Zoë", LastName="Ñúñez-Ødegård", MiddleName="Ł")
    data["Order"]["Provider"].update(FirstName="Chloé", LastName="Müller-Łukasz")
    message = order_message(json.loads(json.dumps(data, ensure_ascii=False).encode("utf-8")))
    assert message.patient.first_name == "Zoë"
    assert message.patient.last_name == "Ñúñez-Ødegård"
    assert message.orders[0].provider_name == "Müller-Łukasz, Chloé"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1948-02-29", date(1948, 2, 29)),
        ("1948-02-29T00:00:00.000Z", date(1948, 2, 29)),
        ("19480229", date(1948, 2, 29)),
        ("1948-02-30", None),
        ("unknown", None),
        ("", None),
        (None, None),
        (19480229, date(1948, 2, 29)),
    ],
)
def test_dates_of_birth_are_parsed_tolerantly(value, expected):
    assert values.parse_date(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-10-05T17:04:15.120Z", datetime(2026, 10, 5, 17, 4, 15, 120000, tzinfo=UTC)),
        ("2026-10-05T17:04:15", datetime(2026, 10, 5, 17, 4, 15, tzinfo=UTC)),
        ("2026-10-05T10:04:15-07:00", datetime(2026, 10, 5, 17, 4, 15, tzinfo=UTC)),
        ("20261005170415", datetime(2026, 10, 5, 17, 4, 15, tzinfo=UTC)),
        ("yesterday", None),
        (None, None),
    ],
)
def test_event_times_are_parsed_tolerantly(value, expected):
    assert values.parse_datetime(value) == expected


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"Order": {"ID": "1"}}, "Meta.DataModel is missing."),
        ({"Meta": {"DataModel": "Order"}, "Order": {"ID": "1"}}, "Meta.EventType is missing."),
        ({"Meta": {"DataModel": "Order", "EventType": "New"}}, "Order.ID is missing."),
        ({"Meta": {"DataModel": "Order", "EventType": "New"}, "Order": {"ID": "  "}}, "Order.ID is missing."),
        ({"Meta": {"DataModel": "Order", "EventType": "GroupedOrders"}, "Orders": []}, "GroupedOrders has no Orders."),
        (
            {"Meta": {"DataModel": "Order", "EventType": "GroupedOrders"}, "Orders": [{"ID": "1"}, {"ID": None}]},
            "Order.ID is missing.",
        ),
    ],
)
def test_unprocessable_messages_say_why_without_data(data, reason):
    result = inbound.read(json.dumps(data).encode())
    assert result.error == reason
    assert result.order_message is None


def test_another_data_model_is_read_as_ignored_not_as_an_error():
    result = inbound.read(json.dumps({"Meta": {"DataModel": "Scheduling", "EventType": "New"}}).encode())
    assert result.ignored
    assert result.meta.data_model == "Scheduling"


def test_an_unknown_event_type_is_refused_without_echoing_it():
    data = {"Meta": {"DataModel": "Order", "EventType": "Zoë Ñúñez"}, "Order": {"ID": "1"}}
    reason = refusal(data)
    assert reason
    assert "Zoë" not in reason


@pytest.mark.parametrize(
    "body", [b"{not json", b"", b"[1, 2]", b'"text"', b'{"a": NaN}', b"\xff\xfe\x00", b"[" * 100_000]
)
def test_read_refuses_anything_but_a_json_object(body):
    result = inbound.read(body)
    assert result.error in ("The body is not valid JSON.", "The body is not a JSON object.")
    assert result.meta == inbound.Meta()


def test_nul_characters_are_dropped_because_postgresql_refuses_them():
    data = sample_json("order-new.json")
    data["Patient"]["Demographics"]["LastName"] = "Nul\u0000l"
    data["Order"]["Comments"] = "a\u0000b"
    message = order_message(data)
    assert message.patient.last_name == "Null"
    assert message.patient.demographics["LastName"] == "Null"
    assert message.orders[0].comments == "ab"


def test_dedupe_key_prefers_the_log_id_then_the_message_id_then_the_body_hash():
    body = sample_bytes("order-new.json")
    data = json.loads(body)
    assert (
        inbound.dedupe_key(body, inbound.read(json.dumps(data).encode()).meta)
        == "log:0b5f2c1e-6a3d-4e8f-9b7a-1c2d3e4f5a60"
    )
    data["Meta"]["Logs"] = []
    data["Meta"]["Message"] = {"ID": 5565}
    assert inbound.dedupe_key(body, inbound.read(json.dumps(data).encode()).meta) == "message:5565"
    del data["Meta"]["Message"]
    assert (
        inbound.dedupe_key(body, inbound.read(json.dumps(data).encode()).meta)
        == "sha256:" + hashlib.sha256(body).hexdigest()
    )
    assert inbound.dedupe_key(b"{oops") == "sha256:" + hashlib.sha256(b"{oops").hexdigest()


def test_an_overlong_log_id_still_gives_a_key_that_fits_the_column():
    meta = inbound.Meta(log_id="x" * 500)
    key = inbound.dedupe_key(b"{}", meta)
    assert len(key) <= 200
    assert key.startswith("log-sha256:")


def test_challenge_is_read_from_a_post_body_and_not_from_a_message():
    body = sample_bytes("challenge-post.json")
    found = challenge_from_body(body)
    assert found.challenge == "3c9a1f0e-77d2-4b55-a0e4-0f6b1c2d3e4f"
    assert found.token == "replace-with-partner-token"
    assert challenge_from_body(b'{"challenge": "c1"}', header_token="from-header").token == "from-header"
    assert challenge_from_body(sample_bytes("order-new.json")) is None
    assert challenge_from_body(b"{not json") is None
    assert challenge_from_body(b'{"challenge": ""}') is None


def test_challenge_is_read_from_query_parameters_with_the_token_in_either_place():
    found = challenge_from_query({"challenge": "c1", "verification-token": "t1"})
    assert (found.challenge, found.token) == ("c1", "t1")
    assert challenge_from_query({"challenge": "c1"}, header_token="t2").token == "t2"
    assert challenge_from_query({}) is None
    assert challenge_from_query({"challenge": "x" * 1000}) is None
