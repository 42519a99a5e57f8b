"""Turn an inbound Redox body into plain values, in one call: `read(body) -> Inbound`.

`read` decodes the JSON once and returns everything the store and apply steps need:
the `Meta` (for indexing and dedupe), and either the Order message, a reason the body
cannot be processed, or neither (a data model HCOINT does not act on, kept as ignored).
It never raises for anything a partner can send.

Redox documents few fields as required, and each EHR fills the rest its own way, so
everything optional is read defensively: a missing key, a `null`, a number where a
string was expected or an unknown extra field never stops a message. Only what we
cannot act on at all becomes `Inbound.error`: a body that is not JSON, a missing
`Meta.DataModel` / `Meta.EventType`, an unknown Order event type, or an order without
`Order.ID` (or with one too long to match). The error text is one of a few fixed
sentences, never a value from the body, because it is stored, shown to staff and logged.

Every value that leaves this module is read through `redox/values.py`, so PostgreSQL
can store it and Python read it back; a value that could not be stored is dropped
(None or ""), field by field, and the message itself is never refused for it.

Field reference: https://docs.redoxengine.com/api-reference/datamodels/order/order-new
"""

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from redox.values import as_bool, as_list, as_object, as_text, clean_json, parse_date, parse_datetime

# A JSON object as Redox sent it, after cleaning (`values.clean_json`): values of any JSON type.
JsonObject = dict[str, Any]

ORDER_MODEL = "Order"
SINGLE_ORDER_EVENTS = ("New", "Update", "Cancel")
GROUPED_EVENT = "GroupedOrders"
ORDER_EVENTS = (*SINGLE_ORDER_EVENTS, GROUPED_EVENT)
MRN_TYPES = ("MR", "MRN")
DEDUPE_KEY_MAX_CHARS = 200

# Ids are matched in full, never cut: a cut id would make a later Update or Cancel miss
# its order. An id longer than this is refused (the message fails, stored, with a
# reason), which keeps the (partner, id) unique index under PostgreSQL's btree limit
# of about 2,700 bytes per entry even for 4-byte UTF-8 characters (500 × 4 = 2,000).
# Real EHR order ids are a few dozen characters at most.
ORDER_ID_MAX_CHARS = 500


class InboundError(ValueError):
    """The message cannot be processed (raised inside this module; `read` turns it into
    `Inbound.error`). `str()` is safe to store and log: no patient data."""


@dataclass(frozen=True)
class Patient:
    identifiers: list[JsonObject] = field(default_factory=list)  # [{"ID": ..., "IDType": ...}] as sent, cleaned
    demographics: JsonObject = field(default_factory=dict)
    mrn: str = ""
    identifiers_text: str = ""
    first_name: str = ""
    middle_name: str = ""
    last_name: str = ""
    dob: date | None = None
    sex: str = ""


@dataclass(frozen=True)
class OrderInfo:
    ehr_order_id: str
    status: str = ""
    transaction_at: datetime | None = None
    procedure_code: str = ""
    procedure_codeset: str = ""
    procedure_description: str = ""
    provider: JsonObject = field(default_factory=dict)
    provider_npi: str = ""
    provider_name: str = ""
    priority: str = ""
    comments: str = ""
    diagnoses: list[JsonObject] = field(default_factory=list)


@dataclass(frozen=True)
class Meta:
    """What the store step records about any message, whatever its data model."""

    data_model: str = ""
    event_type: str = ""
    event_at: datetime | None = None
    is_test: bool | None = None
    log_id: str = ""
    message_id: str = ""
    source_id: str = ""
    source_name: str = ""


@dataclass(frozen=True)
class OrderMessage:
    meta: Meta
    patient: Patient
    visit_number: str
    orders: tuple[OrderInfo, ...]  # one for New/Update/Cancel, one or more for GroupedOrders

    @property
    def is_cancel(self) -> bool:
        return self.meta.event_type == "Cancel"


@dataclass(frozen=True)
class Inbound:
    """What one body says, read once.

    Exactly one of three: `order_message` is set (an Order message to apply), `error` is
    set (why it cannot be processed: one of a few fixed sentences, no patient data), or
    neither (another data model: keep the message, apply nothing). `meta` is whatever
    could be read, even when there is an error (empty when the body is not JSON).
    """

    meta: Meta
    order_message: OrderMessage | None = None
    error: str | None = None

    @property
    def ignored(self) -> bool:
        return self.order_message is None and self.error is None


# --- Reading a body ---------------------------------------------------------


def _reject_constant(name: str) -> float:
    # NaN and Infinity are not JSON and PostgreSQL's jsonb refuses them.
    raise ValueError("not a JSON number")


def _finite_float(text: str) -> float:
    # 1e999 is valid JSON but Python reads it as infinity, which jsonb refuses too.
    number = float(text)
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    return number


def read(body: bytes | bytearray | memoryview) -> Inbound:
    """Everything `body` says, read once; never raises for anything a partner can send."""
    try:
        data = _load(body)
    except InboundError as exc:
        return Inbound(meta=Meta(), error=str(exc))
    meta = _read_meta(data)
    try:
        return Inbound(meta=meta, order_message=_order_message(data, meta))
    except InboundError as exc:
        return Inbound(meta=meta, error=str(exc))


def _load(body: bytes | bytearray | memoryview) -> JsonObject:
    """The body as a JSON object, or InboundError.

    Not JSON includes: bytes that are not UTF-8 (or UTF-16/32), NaN and Infinity, a
    number too large for a float, an integer of more than 4,300 digits (Python's limit)
    and nesting deeper than Python's recursion limit.
    """
    try:
        data = json.loads(bytes(body), parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError):
        raise InboundError("The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise InboundError("The body is not a JSON object.")
    return data


def _read_meta(data: JsonObject) -> Meta:
    """`Meta` of a loaded message, never raising: what we can tell for indexing and dedupe."""
    meta = as_object(as_object(data).get("Meta"))
    logs = as_list(meta.get("Logs"))
    first_log = as_object(logs[0]) if logs else {}
    source = as_object(meta.get("Source"))
    return Meta(
        data_model=as_text(meta.get("DataModel")),
        event_type=as_text(meta.get("EventType")),
        event_at=parse_datetime(meta.get("EventDateTime")),
        is_test=as_bool(meta.get("Test")),
        log_id=as_text(first_log.get("ID")),
        message_id=as_text(as_object(meta.get("Message")).get("ID")),
        source_id=as_text(source.get("ID")),
        source_name=as_text(source.get("Name")),
    )


def dedupe_key(body: bytes | bytearray | memoryview, meta: Meta | None = None) -> str:
    """What makes two deliveries the same message: Meta.Logs[0].ID, else Meta.Message.ID, else the body's hash.

    Redox retries a delivery with the same log id (a new attempt id), so the log id
    is the best key; older payloads only have the numeric message id. Prefixes keep
    the three kinds from ever colliding.
    """
    for prefix, value in (("log", meta.log_id if meta else ""), ("message", meta.message_id if meta else "")):
        if value:
            key = f"{prefix}:{value}"
            if len(key) <= DEDUPE_KEY_MAX_CHARS:
                return key
            return f"{prefix}-sha256:{hashlib.sha256(value.encode()).hexdigest()}"
    return f"sha256:{hashlib.sha256(bytes(body)).hexdigest()}"


# --- Order messages ---------------------------------------------------------


def _patient(data: JsonObject) -> Patient:
    patient = as_object(data.get("Patient"))
    identifiers = []
    for item in as_list(patient.get("Identifiers")):
        item = as_object(item)
        identifier = as_text(item.get("ID"))
        if identifier:
            identifiers.append({**clean_json(item), "ID": identifier, "IDType": as_text(item.get("IDType"))})
    mrn = next((i["ID"] for i in identifiers if i["IDType"].upper() in MRN_TYPES), "")
    demographics = clean_json(as_object(patient.get("Demographics")))
    return Patient(
        identifiers=identifiers,
        demographics=demographics,
        mrn=mrn,
        identifiers_text=" ".join(i["ID"] for i in identifiers),
        first_name=as_text(demographics.get("FirstName")),
        middle_name=as_text(demographics.get("MiddleName")),
        last_name=as_text(demographics.get("LastName")),
        dob=parse_date(demographics.get("DOB")),
        sex=as_text(demographics.get("Sex")),
    )


def _comments(value: object) -> str:
    if isinstance(value, list):
        return "\n".join(filter(None, (as_text(v) for v in value)))
    return as_text(value)


def _order(order: JsonObject) -> OrderInfo:
    ehr_order_id = as_text(order.get("ID"))
    if not ehr_order_id:
        raise InboundError("Order.ID is missing.")
    if len(ehr_order_id) > ORDER_ID_MAX_CHARS:
        raise InboundError(f"Order.ID is longer than {ORDER_ID_MAX_CHARS} characters; HCOINT does not cut ids.")
    procedure = as_object(order.get("Procedure"))
    provider = clean_json(as_object(order.get("Provider")))
    npi = as_text(provider.get("NPI"))
    if not npi and as_text(provider.get("IDType")).upper() == "NPI":
        npi = as_text(provider.get("ID"))
    provider_name = ", ".join(
        part for part in (as_text(provider.get("LastName")), as_text(provider.get("FirstName"))) if part
    )
    return OrderInfo(
        ehr_order_id=ehr_order_id,
        status=as_text(order.get("Status")),
        transaction_at=parse_datetime(order.get("TransactionDateTime")),
        procedure_code=as_text(procedure.get("Code")),
        procedure_codeset=as_text(procedure.get("Codeset")),
        procedure_description=as_text(procedure.get("Description")),
        provider=provider,
        provider_npi=npi,
        provider_name=provider_name,
        priority=as_text(order.get("Priority")),
        comments=_comments(order.get("Comments")),
        diagnoses=[clean_json(d) for d in as_list(order.get("Diagnoses")) if isinstance(d, dict)],
    )


def _order_message(data: JsonObject, meta: Meta) -> OrderMessage | None:
    """The Order message in `data`, None for another data model, or InboundError saying (without data) why not."""
    if not meta.data_model:
        raise InboundError("Meta.DataModel is missing.")
    if not meta.event_type:
        raise InboundError("Meta.EventType is missing.")
    if meta.data_model != ORDER_MODEL:
        return None
    if meta.event_type not in ORDER_EVENTS:
        raise InboundError("The Order event type is not one HCOINT handles (New, Update, Cancel, GroupedOrders).")
    if meta.event_type == GROUPED_EVENT:
        raw_orders = [as_object(o) for o in as_list(data.get("Orders"))]
        if not raw_orders:
            raise InboundError("GroupedOrders has no Orders.")
    else:
        raw_orders = [as_object(data.get("Order"))]
    # An order listed twice in one GroupedOrders is applied once, as first listed.
    orders: dict[str, OrderInfo] = {}
    for raw in raw_orders:
        order = _order(raw)
        orders.setdefault(order.ehr_order_id, order)
    return OrderMessage(
        meta=meta,
        patient=_patient(data),
        visit_number=as_text(as_object(data.get("Visit")).get("VisitNumber")),
        orders=tuple(orders.values()),
    )
