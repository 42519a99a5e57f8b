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

Every value that leaves this module can be stored by PostgreSQL and read back by
Python: text has no NUL and no lone UTF-16 surrogate, JSON values are bounded in
depth, and times are UTC within `EARLIEST_TIME`..`LATEST_TIME` (dates of birth within
`EARLIEST_DOB`..`LATEST_DOB`). A value outside that is dropped (None or ""), field by
field; the message itself is never refused for it.

Field reference: https://docs.redoxengine.com/api-reference/datamodels/order/order-new
"""

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

# A JSON object as Redox sent it, after cleaning (see `_clean`): values of any JSON type.
JsonObject = dict[str, Any]

ORDER_MODEL = "Order"
SINGLE_ORDER_EVENTS = ("New", "Update", "Cancel")
GROUPED_EVENT = "GroupedOrders"
ORDER_EVENTS = (*SINGLE_ORDER_EVENTS, GROUPED_EVENT)
MRN_TYPES = ("MR", "MRN")
DEDUPE_KEY_MAX_CHARS = 200

# The one place the sane range of a stored time is decided. Orders and their events
# happen now; anything outside these years is a typo or an attack. The bounds keep
# every stored time far inside what Python's datetime can hold (years 1..9999) even
# after conversion to any local time zone, because psycopg2 cannot read back a
# timestamptz outside that range and the pages convert to TIME_ZONE to display it:
# one such row used to fail every page showing the order. Migration 0009 repairs rows
# stored before these bounds with a frozen copy of them.
EARLIEST_TIME = datetime(1900, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2200, 1, 1, tzinfo=UTC)
# Dates of birth go further back: no living patient was born before 1850.
EARLIEST_DOB = date(1850, 1, 1)
LATEST_DOB = date(2200, 1, 1)
# PostgreSQL refuses a UTC offset of 16 hours or more; no real zone is beyond ±14 hours.
MAX_UTC_OFFSET = timedelta(hours=15, minutes=59)
# JSON kept in a column (demographics, provider, diagnoses, identifiers) is cut below
# this depth: a Redox message nests a few levels, and every walk over it (ours,
# Django's encoder, PostgreSQL's parser) recurses once per level.
JSON_MAX_DEPTH = 32
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


# --- Small tolerant readers -------------------------------------------------


def _obj(value: object) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


# NUL, which PostgreSQL text and jsonb refuse, and lone UTF-16 surrogates (from a JSON
# escape such as "\ud800"), which cannot be encoded as UTF-8 at all.
_UNSTORABLE = re.compile("\x00|[\ud800-\udfff]")


def _storable_char(match: re.Match[str]) -> str:
    return "" if match.group() == "\x00" else "\ufffd"


def clean_text(value: str) -> str:
    """`value` as text PostgreSQL can store: NUL dropped, lone surrogates shown as U+FFFD."""
    return _UNSTORABLE.sub(_storable_char, value)


def _text(value: object) -> str:
    """A scalar as text: strings cleaned (clean_text) and stripped, numbers as written, anything else ""."""
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, str):
        return clean_text(value).strip()
    if isinstance(value, int | float):
        return str(value)
    return ""


def _clean(value: object, depth: int = 0) -> Any:
    """A JSON value as stored in a JSON column: text (keys too) cleaned, nesting below JSON_MAX_DEPTH dropped."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict | list) and depth >= JSON_MAX_DEPTH:
        return None
    if isinstance(value, dict):
        return {clean_text(str(k)): _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v, depth + 1) for v in value]
    return value


def _bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def _parse_as_written(text: str) -> datetime | None:
    """A datetime, naive or with the offset as written, or None."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return _parse_compact(text)


def parse_datetime(value: object) -> datetime | None:
    """ISO 8601 as Redox writes it ("2026-10-05T17:04:15.120Z"), in UTC; naive means UTC.

    Bad, an offset beyond MAX_UTC_OFFSET, or outside EARLIEST_TIME..LATEST_TIME → None.
    """
    text = _text(value)
    if not text:
        return None
    parsed = _parse_as_written(text)
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    offset = parsed.utcoffset()
    if offset is None or abs(offset) > MAX_UTC_OFFSET:
        return None
    try:
        parsed = parsed.astimezone(UTC)
    except OverflowError:
        # 9999-12-31T23:59-05:00 is after year 9999 in UTC.
        return None
    if not EARLIEST_TIME <= parsed < LATEST_TIME:
        return None
    return parsed


def _parse_compact(text: str) -> datetime | None:
    # HL7-flavoured feeds sometimes pass through "20261005170412" or "20261005".
    for fmt in ("%Y%m%d%H%M%S", "%Y%m%d%H%M", "%Y%m%d"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def parse_date(value: object) -> date | None:
    """A date of birth: "YYYY-MM-DD", a full timestamp, or "YYYYMMDD", as written (a
    timestamp's own date, not converted to UTC). Bad or outside EARLIEST_DOB..LATEST_DOB → None."""
    text = _text(value)
    if not text:
        return None
    parsed: date | None
    try:
        parsed = date.fromisoformat(text[:10])
    except ValueError:
        as_written = _parse_as_written(text)
        parsed = as_written.date() if as_written else None
    if parsed is None or not EARLIEST_DOB <= parsed < LATEST_DOB:
        return None
    return parsed


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
    meta = _obj(_obj(data).get("Meta"))
    logs = _list(meta.get("Logs"))
    first_log = _obj(logs[0]) if logs else {}
    source = _obj(meta.get("Source"))
    return Meta(
        data_model=_text(meta.get("DataModel")),
        event_type=_text(meta.get("EventType")),
        event_at=parse_datetime(meta.get("EventDateTime")),
        is_test=_bool(meta.get("Test")),
        log_id=_text(first_log.get("ID")),
        message_id=_text(_obj(meta.get("Message")).get("ID")),
        source_id=_text(source.get("ID")),
        source_name=_text(source.get("Name")),
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
    patient = _obj(data.get("Patient"))
    identifiers = []
    for item in _list(patient.get("Identifiers")):
        item = _obj(item)
        identifier = _text(item.get("ID"))
        if identifier:
            identifiers.append({**_clean(item), "ID": identifier, "IDType": _text(item.get("IDType"))})
    mrn = next((i["ID"] for i in identifiers if i["IDType"].upper() in MRN_TYPES), "")
    demographics = _clean(_obj(patient.get("Demographics")))
    return Patient(
        identifiers=identifiers,
        demographics=demographics,
        mrn=mrn,
        identifiers_text=" ".join(i["ID"] for i in identifiers),
        first_name=_text(demographics.get("FirstName")),
        middle_name=_text(demographics.get("MiddleName")),
        last_name=_text(demographics.get("LastName")),
        dob=parse_date(demographics.get("DOB")),
        sex=_text(demographics.get("Sex")),
    )


def _comments(value: object) -> str:
    if isinstance(value, list):
        return "\n".join(filter(None, (_text(v) for v in value)))
    return _text(value)


def _order(order: JsonObject) -> OrderInfo:
    ehr_order_id = _text(order.get("ID"))
    if not ehr_order_id:
        raise InboundError("Order.ID is missing.")
    if len(ehr_order_id) > ORDER_ID_MAX_CHARS:
        raise InboundError(f"Order.ID is longer than {ORDER_ID_MAX_CHARS} characters; HCOINT does not cut ids.")
    procedure = _obj(order.get("Procedure"))
    provider = _clean(_obj(order.get("Provider")))
    npi = _text(provider.get("NPI"))
    if not npi and _text(provider.get("IDType")).upper() == "NPI":
        npi = _text(provider.get("ID"))
    provider_name = ", ".join(
        part for part in (_text(provider.get("LastName")), _text(provider.get("FirstName"))) if part
    )
    return OrderInfo(
        ehr_order_id=ehr_order_id,
        status=_text(order.get("Status")),
        transaction_at=parse_datetime(order.get("TransactionDateTime")),
        procedure_code=_text(procedure.get("Code")),
        procedure_codeset=_text(procedure.get("Codeset")),
        procedure_description=_text(procedure.get("Description")),
        provider=provider,
        provider_npi=npi,
        provider_name=provider_name,
        priority=_text(order.get("Priority")),
        comments=_comments(order.get("Comments")),
        diagnoses=[_clean(d) for d in _list(order.get("Diagnoses")) if isinstance(d, dict)],
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
        raw_orders = [_obj(o) for o in _list(data.get("Orders"))]
        if not raw_orders:
            raise InboundError("GroupedOrders has no Orders.")
    else:
        raw_orders = [_obj(data.get("Order"))]
    # An order listed twice in one GroupedOrders is applied once, as first listed.
    orders: dict[str, OrderInfo] = {}
    for raw in raw_orders:
        order = _order(raw)
        orders.setdefault(order.ehr_order_id, order)
    return OrderMessage(
        meta=meta,
        patient=_patient(data),
        visit_number=_text(_obj(data.get("Visit")).get("VisitNumber")),
        orders=tuple(orders.values()),
    )
