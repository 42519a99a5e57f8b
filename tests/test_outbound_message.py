"""The Results.New / Notes.New messages we build for Redox (redox/messages.py)."""

import base64
import json
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import jsonschema
import pytest

from redox.messages import Base64File, Document, OutboundOrder, build_message, encode_message
from tests.conftest import sample_bytes, sample_json
from tests.factories import OutboundOrderFactory

SCHEMAS = Path(__file__).resolve().parent.parent / "redox" / "schemas"
PDF = sample_bytes("clinical-note.pdf")


def schema(data_model):
    return json.loads((SCHEMAS / data_model / "new.json").read_text())


def sparse_order(**changes):
    """An order that carried only what Redox requires."""
    order = OutboundOrder(
        ehr_order_id="900001",
        patient_identifiers=[{"ID": "MRN1", "IDType": "MR"}, {"ID": "X", "IDType": None}],
        patient_demographics={"FirstName": None, "Address": None},
        visit_number="",
        procedure={},
        provider={},
        is_test=False,
        destination_id="dest-1",
        destination_name="",
        delivery_ref="hcoint-delivery-7",
        corrected=False,
        completed_at=datetime(2026, 1, 2, 3, 4, 5, 678000),
    )
    return replace(order, **changes)


def as_json(message):
    return json.loads(encode_message(message))


def inline_pdf():
    return Document(file_name="note.pdf", value=Base64File(PDF))


def test_results_message_carries_the_order_patient_and_pdf():
    message = as_json(build_message(OutboundOrderFactory(), inline_pdf()))
    example = sample_json("results-new-example.json")

    assert message["Meta"] == {
        "DataModel": "Results",
        "EventType": "New",
        "EventDateTime": "2026-10-06T18:22:41.000Z",
        "Test": True,
        "Destinations": [{"ID": "5c1e8a90-2f47-4b6d-9e13-7a0c4d2b8f61", "Name": "Cascade Health Epic (Staging)"}],
    }
    assert message["Patient"]["Identifiers"] == example["Patient"]["Identifiers"]
    assert message["Patient"]["Demographics"] == sample_json("order-new.json")["Patient"]["Demographics"]
    assert message["Visit"] == {"VisitNumber": "VIS-2026-000731"}
    order = message["Orders"][0]
    assert order["ID"] == "157720311"
    assert order["ApplicationOrderID"] == "hcoint-delivery-42"
    assert order["Status"] == "Resulted"
    assert order["ResultsStatus"] == "Final"
    assert order["CompletionDateTime"] == "2026-10-06T18:22:41.000Z"
    assert order["Procedure"] == {"Code": "DOC1042", "Description": "Request for outside clinical notes"}
    assert order["Provider"] == sample_json("order-new.json")["Order"]["Provider"]
    assert order["Results"] == [
        {
            "Code": "DOC1042",
            "Description": "Clinical note (PDF)",
            "ValueType": "Encapsulated Data",
            "FileType": "PDF",
            "Value": example["Orders"][0]["Results"][0]["Value"],
            "Status": "Final",
            "CompletionDateTime": "2026-10-06T18:22:41.000Z",
        }
    ]
    jsonschema.validate(message, schema("results"))


def test_results_message_validates_for_a_sparse_order():
    message = as_json(build_message(sparse_order(), inline_pdf()))

    jsonschema.validate(message, schema("results"))
    assert message["Patient"] == {"Identifiers": [{"ID": "MRN1", "IDType": "MR"}]}
    assert "Visit" not in message
    assert message["Meta"]["Destinations"] == [{"ID": "dest-1"}]
    assert message["Meta"]["EventDateTime"] == "2026-01-02T03:04:05.678Z"
    result = message["Orders"][0]["Results"][0]
    assert result["Code"] == "CLINICAL-NOTE"
    assert "Procedure" not in message["Orders"][0]
    assert "Provider" not in message["Orders"][0]


def test_corrected_resend_is_marked_corrected_in_order_and_result():
    message = as_json(build_message(OutboundOrderFactory(corrected=True), inline_pdf()))

    assert message["Orders"][0]["ResultsStatus"] == "Corrected"
    assert message["Orders"][0]["Results"][0]["Status"] == "Corrected"
    jsonschema.validate(message, schema("results"))


def test_source_id_is_sent_only_when_given():
    with_source = build_message(OutboundOrderFactory(), inline_pdf(), source_id="source-uuid")
    without = build_message(OutboundOrderFactory(), inline_pdf())

    assert with_source["Meta"]["Source"] == {"ID": "source-uuid"}
    assert "Source" not in without["Meta"]


def test_blob_uri_goes_in_the_result_value():
    document = Document(file_name="note.pdf", value="https://blob.redoxengine.com/abc", is_uri=True)

    message = as_json(build_message(OutboundOrderFactory(), document))

    assert message["Orders"][0]["Results"][0]["Value"] == "https://blob.redoxengine.com/abc"
    jsonschema.validate(message, schema("results"))


def test_notes_message_carries_the_pdf_as_a_note_linked_to_the_order():
    message = as_json(build_message(OutboundOrderFactory(), inline_pdf(), data_model="notes", source_id="src"))

    assert message["Meta"]["DataModel"] == "Notes"
    assert message["Meta"]["EventType"] == "New"
    assert message["Meta"]["Source"] == {"ID": "src"}
    assert message["Orders"] == [{"ID": "157720311", "Name": "Request for outside clinical notes"}]
    assert message["Note"] == {
        "ContentType": "Base64 Encoded",
        "FileName": "note.pdf",
        "FileContents": base64.b64encode(PDF).decode(),
        "DocumentType": "Request for outside clinical notes",
        "DocumentID": "hcoint-delivery-42",
        "DocumentationDateTime": "2026-10-06T18:22:41.000Z",
        "Provider": {
            "ID": "1999999984",
            "IDType": "NPI",
            "FirstName": "Alex",
            "LastName": "Exampledoc",
            "Credentials": ["MD"],
        },
        "Status": "Final",
        "Availability": "Available",
    }
    jsonschema.validate(message, schema("notes"))


def test_notes_message_validates_for_a_sparse_order():
    message = as_json(build_message(sparse_order(corrected=True), inline_pdf(), data_model="notes"))

    jsonschema.validate(message, schema("notes"))
    assert message["Note"]["Provider"] == {"ID": ""}
    assert message["Note"]["DocumentType"] == "Clinical Note"
    assert message["Note"]["Status"] == "Corrected"
    assert message["Orders"] == [{"ID": "900001"}]


def test_notes_provider_falls_back_to_the_npi():
    order = OutboundOrderFactory(provider={"NPI": 1999999984, "FirstName": "Alex"})

    message = as_json(build_message(order, inline_pdf(), data_model="notes"))

    assert message["Note"]["Provider"] == {"ID": "1999999984", "IDType": "NPI", "FirstName": "Alex"}
    jsonschema.validate(message, schema("notes"))


def test_unknown_data_model_is_refused():
    with pytest.raises(ValueError, match="data_model"):
        build_message(OutboundOrderFactory(), inline_pdf(), data_model="media")


def test_encoded_body_equals_plain_json_with_the_base64_string():
    order = OutboundOrderFactory(patient_demographics={"FirstName": "Zoë", "LastName": "Ñandú"})
    streamed = build_message(order, inline_pdf())
    plain = build_message(order, Document(file_name="note.pdf", value=base64.b64encode(PDF).decode()))

    body = encode_message(streamed)

    assert bytes(body) == json.dumps(plain, separators=(",", ":")).encode("ascii")


def test_encoding_a_large_file_fills_one_exactly_sized_buffer():
    # Longer than several encoding chunks and not a multiple of 3, so the padding is exercised.
    content = bytes(range(256)) * 4000 + b"%"
    message = {"Value": Base64File(content), "Other": [Base64File(b"ab"), "x"]}

    body = encode_message(message)

    assert isinstance(body, bytearray)
    assert json.loads(body) == {
        "Value": base64.b64encode(content).decode(),
        "Other": [base64.b64encode(b"ab").decode(), "x"],
    }
    assert len(body) == len(json.dumps(json.loads(body), separators=(",", ":")))
