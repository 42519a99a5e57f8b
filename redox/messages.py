"""Build the messages HCOINT sends to Redox from plain values: no models, no settings, no I/O.

    document = redox.client.prepare_document(note_bytes, "note.pdf", client=client)  # may upload
    message = build_message(order, document, data_model="results", source_id=settings.REDOX_SOURCE_ID)
    result = client.send(message)

Deciding whether a PDF travels inline or through Redox's blob store, and uploading it,
is I/O, so it lives in `redox/client.py` (`prepare_document`); this module only places
the resulting `Document` in a message.

`build_message` returns a dict. When the PDF travels inline its value is a `Base64File`,
which `encode_message` (used by `RedoxClient.send`) writes straight into the request body;
use `encode_message` too if you need the JSON of a message, e.g. to inspect it in a test.

What goes where follows docs/redox.md ("Outbound"); every message built here
validates against `redox/schemas/results/new.json` or `redox/schemas/notes/new.json`.
"""

import binascii
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, overload

FALLBACK_RESULT_CODE = "CLINICAL-NOTE"
RESULT_DESCRIPTION = "Clinical note (PDF)"
FALLBACK_DOCUMENT_TYPE = "Clinical Note"
DATA_MODELS = ("results", "notes")
# Bytes of PDF encoded per step; a multiple of 3 so no chunk but the last needs padding.
BASE64_CHUNK = 3 * 64 * 1024

# A JSON object as Redox sent it or as we send it: values of any JSON type.
JsonObject = dict[str, Any]


@dataclass(frozen=True)
class OutboundOrder:
    """What the message needs to know about the order, as plain values (no models)."""

    ehr_order_id: str
    patient_identifiers: list[JsonObject]  # [{"ID": ..., "IDType": ...}, ...] as Redox sent them
    patient_demographics: JsonObject  # Patient.Demographics as Redox sent it
    visit_number: str
    procedure: dict[str, str]  # {"Code", "Codeset", "Description"}
    provider: JsonObject  # Order.Provider as Redox sent it
    is_test: bool
    destination_id: str
    destination_name: str
    delivery_ref: str  # stable id of our delivery, e.g. "hcoint-delivery-42"
    corrected: bool
    completed_at: datetime


class Base64File:
    """A file to embed in a message as base64, encoded only when the body is written.

    Holds a reference to the caller's bytes, not a copy; see `encode_message`.
    """

    __slots__ = ("content",)

    def __init__(self, content: bytes | bytearray | memoryview) -> None:
        self.content = content

    @property
    def encoded_length(self) -> int:
        return 4 * ((len(self.content) + 2) // 3)

    def encode_into(self, buffer: bytearray, offset: int) -> int:
        """Write the base64 of the file into `buffer` at `offset`; returns the offset after it."""
        view = memoryview(self.content)
        for start in range(0, len(view), BASE64_CHUNK):
            encoded = binascii.b2a_base64(view[start : start + BASE64_CHUNK], newline=False)
            buffer[offset : offset + len(encoded)] = encoded
            offset += len(encoded)
        return offset

    def text(self) -> str:
        """The base64 as a str (a full copy: for small files and tests)."""
        return binascii.b2a_base64(self.content, newline=False).decode("ascii")

    def __repr__(self) -> str:
        return f"Base64File({len(self.content)} bytes)"


@dataclass(frozen=True)
class Document:
    file_name: str
    value: Base64File | str  # a Base64File, a base64 str, or the blob URI (a str) when is_uri
    is_uri: bool = False


def build_message(
    order: OutboundOrder, document: Document, *, data_model: str = "results", source_id: str | None = None
) -> JsonObject:
    """Results.New (default) or Notes.New for `order` carrying `document`."""
    if data_model not in DATA_MODELS:
        raise ValueError(f"data_model must be one of {DATA_MODELS}, not {data_model!r}")
    completed = _redox_time(order.completed_at)
    meta: JsonObject = {
        "DataModel": "Results" if data_model == "results" else "Notes",
        "EventType": "New",
        "EventDateTime": completed,
        "Test": bool(order.is_test),
        "Destinations": [_drop_empty({"ID": order.destination_id, "Name": order.destination_name or None})],
    }
    if source_id:
        meta["Source"] = {"ID": source_id}
    message: JsonObject = {"Meta": meta, "Patient": _patient(order)}
    if order.visit_number:
        message["Visit"] = {"VisitNumber": str(order.visit_number)}
    if data_model == "results":
        message["Orders"] = [_results_order(order, document, completed)]
    else:
        message["Note"] = _note(order, document, completed)
        message["Orders"] = [_drop_empty({"ID": order.ehr_order_id, "Name": _procedure(order).get("Description")})]
    return message


def _results_order(order: OutboundOrder, document: Document, completed: str) -> JsonObject:
    # Results.New: https://developer.redoxengine.com/data-models/Results.html
    status = "Corrected" if order.corrected else "Final"
    procedure = _procedure(order)
    result: JsonObject = {
        "Code": procedure.get("Code") or FALLBACK_RESULT_CODE,
        "Codeset": procedure.get("Codeset") if procedure.get("Code") else None,
        "Description": RESULT_DESCRIPTION,
        "ValueType": "Encapsulated Data",
        "FileType": "PDF",
        "Value": document.value,
        "Status": status,
        "CompletionDateTime": completed,
    }
    results_order: JsonObject = {
        "ID": str(order.ehr_order_id),
        # Our delivery's stable id: a resend after a crash that followed Redox's 200
        # carries the same value, so the duplicate can be recognised downstream.
        "ApplicationOrderID": order.delivery_ref,
        "Status": "Resulted",
        "ResultsStatus": status,
        "CompletionDateTime": completed,
        "Procedure": procedure,
        "Provider": _provider(order),
        "Results": [_drop_empty(result)],
    }
    return _drop_empty(results_order)


def _note(order: OutboundOrder, document: Document, completed: str) -> JsonObject:
    # Notes.New: https://docs.redoxengine.com/how-to-use-redox/send-a-file-via-redox-data-model-api/
    # Base64 (or the blob URI) goes in FileContents with ContentType "Base64 Encoded".
    provider = _provider(order)
    if provider.get("ID"):
        provider_id, provider_id_type = provider["ID"], provider.get("IDType")
    elif provider.get("NPI"):
        provider_id, provider_id_type = provider["NPI"], "NPI"
    else:
        # Note.Provider.ID is required; an order without a provider sends an empty one.
        provider_id, provider_id_type = "", None
    note_provider = _drop_empty(
        {
            "ID": provider_id,
            "IDType": provider_id_type,
            "FirstName": provider.get("FirstName"),
            "LastName": provider.get("LastName"),
            "Credentials": provider.get("Credentials"),
        }
    )
    note: JsonObject = {
        "ContentType": "Base64 Encoded",
        "FileName": document.file_name,
        "FileContents": document.value,
        "DocumentType": _procedure(order).get("Description") or FALLBACK_DOCUMENT_TYPE,
        # The stable id of our delivery: a duplicate after a crash is the same document.
        "DocumentID": order.delivery_ref,
        "DocumentationDateTime": completed,
        "Provider": note_provider,
        "Status": "Corrected" if order.corrected else "Final",
        "Availability": "Available",
    }
    return _drop_empty(note)


def _patient(order: OutboundOrder) -> JsonObject:
    identifiers: list[dict[str, str]] = []
    for identifier in order.patient_identifiers or []:
        # The schema requires both; an identifier without a type cannot be matched anyway.
        if isinstance(identifier, dict) and identifier.get("ID") and identifier.get("IDType"):
            identifiers.append({"ID": str(identifier["ID"]), "IDType": str(identifier["IDType"])})
    patient: JsonObject = {"Identifiers": identifiers}
    demographics = _drop_empty(order.patient_demographics or {})
    if demographics:
        patient["Demographics"] = demographics
    return patient


def _procedure(order: OutboundOrder) -> dict[str, str]:
    procedure = _drop_empty(order.procedure or {})
    return {key: str(value) for key, value in procedure.items() if key in ("Code", "Codeset", "Description")}


def _provider(order: OutboundOrder) -> JsonObject:
    provider = _drop_empty(order.provider or {})
    for key in ("ID", "NPI"):
        if key in provider:
            provider[key] = str(provider[key])
    return provider


@overload
def _drop_empty(value: dict[str, Any]) -> dict[str, Any]: ...
@overload
def _drop_empty(value: object) -> object: ...


def _drop_empty(value: object) -> object:
    """A copy without None values and empty objects: Redox sends nulls, the schemas refuse
    them in some places, and an absent optional field says the same thing."""
    if isinstance(value, dict):
        cleaned = {key: _drop_empty(item) for key, item in value.items() if item is not None}
        return {key: item for key, item in cleaned.items() if item != {}}
    if isinstance(value, list):
        return [_drop_empty(item) for item in value if item is not None]
    return value


def _redox_time(moment: datetime | None) -> str:
    """ISO 8601 in UTC with milliseconds, as Redox writes it: 2026-10-06T18:22:41.000Z."""
    if moment is None:
        moment = datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def encode_message(message: Mapping[str, Any]) -> bytearray:
    """The JSON body of `message` as a bytearray, with any `Base64File` encoded in place.

    Why: the obvious path, json.dumps({... "Value": base64.b64encode(pdf).decode()}).encode(),
    holds the PDF plus four more copies of its base64 at its peak (base64 bytes, the str,
    the JSON str, the encoded body). Here the JSON is first rendered with a short
    placeholder for each file, then one bytearray of the exact final size is allocated and
    filled: the text around the placeholders is copied in, and each file's base64 is
    encoded chunk by chunk straight into its slot. Peak memory is the PDF, one body, and
    one chunk. Base64 needs no JSON escaping, so the slot holds the encoding as is.
    """
    marker = secrets.token_hex(16)
    files: list[Base64File] = []

    def placeholder(value: object) -> str:
        if isinstance(value, Base64File):
            files.append(value)
            return f"{marker}-{len(files) - 1}"
        raise TypeError(f"{type(value).__name__} is not JSON serializable")

    # ASCII-only JSON (non-ASCII as \u escapes) keeps the body free of encoding questions.
    skeleton = json.dumps(message, separators=(",", ":"), default=placeholder).encode("ascii")
    if not files:
        return bytearray(skeleton)
    pieces: list[bytes] = []
    rest = skeleton
    for index, _file in enumerate(files):
        before, found, rest = rest.partition(f'"{marker}-{index}"'.encode("ascii"))
        if not found:
            raise ValueError("Base64File placeholder missing from the rendered message")
        pieces.append(before)
    pieces.append(rest)
    size = sum(len(piece) for piece in pieces) + sum(file.encoded_length + 2 for file in files)
    buffer = bytearray(size)
    offset = 0
    for piece, file in zip(pieces, files, strict=False):
        buffer[offset : offset + len(piece)] = piece
        offset += len(piece)
        buffer[offset : offset + 1] = b'"'
        offset = file.encode_into(buffer, offset + 1)
        buffer[offset : offset + 1] = b'"'
        offset += 1
    buffer[offset:] = pieces[-1]
    return buffer
