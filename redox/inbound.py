"""Turn an inbound Redox Order message into plain values.

Redox documents few fields as required, and each EHR fills the rest its own way, so
everything optional is read defensively: a missing key, a `null`, a number where a
string was expected or an unknown extra field never stops a message. Only what we
cannot act on at all raises `InboundError`: a body that is not JSON, a missing
`Meta.DataModel` / `Meta.EventType`, an unknown Order event type, or an order without
`Order.ID`. The error text is one of a few fixed sentences, never a value from the
body, because it is stored, shown to staff and logged.

Field reference: https://docs.redoxengine.com/api-reference/datamodels/order/order-new
"""

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

ORDER_MODEL = "Order"
SINGLE_ORDER_EVENTS = ("New", "Update", "Cancel")
GROUPED_EVENT = "GroupedOrders"
ORDER_EVENTS = (*SINGLE_ORDER_EVENTS, GROUPED_EVENT)
MRN_TYPES = ("MR", "MRN")
DEDUPE_KEY_MAX_CHARS = 200


class InboundError(ValueError):
    """The message cannot be processed. `str()` is safe to store and log: no patient data."""


@dataclass(frozen=True)
class Patient:
    identifiers: list = field(default_factory=list)  # [{"ID": ..., "IDType": ...}] as sent, cleaned
    demographics: dict = field(default_factory=dict)
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
    provider: dict = field(default_factory=dict)
    provider_npi: str = ""
    provider_name: str = ""
    priority: str = ""
    comments: str = ""
    diagnoses: list = field(default_factory=list)


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
    orders: tuple  # of OrderInfo; one for New/Update/Cancel, one or more for GroupedOrders

    @property
    def is_cancel(self):
        return self.meta.event_type == "Cancel"


# --- Small tolerant readers -------------------------------------------------


def _obj(value):
    return value if isinstance(value, dict) else {}


def _list(value):
    return value if isinstance(value, list) else []


def _text(value):
    """A scalar as text: strings stripped, numbers as written, anything else "".

    NUL characters are dropped because PostgreSQL text columns refuse them.
    """
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, str):
        return value.replace("\x00", "").strip()
    if isinstance(value, int | float):
        return str(value)
    return ""


def _clean(value):
    """A JSON value as stored in a JSON column: NUL characters removed (jsonb refuses them)."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _bool(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def parse_datetime(value):
    """ISO 8601 as Redox writes it ("2026-10-05T17:04:15.120Z"); naive means UTC. Bad → None."""
    text = _text(value)
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = _parse_compact(text)
        if parsed is None:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _parse_compact(text):
    # HL7-flavoured feeds sometimes pass through "20261005170412" or "20261005".
    for fmt in ("%Y%m%d%H%M%S", "%Y%m%d%H%M", "%Y%m%d"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def parse_date(value):
    """A date of birth: "YYYY-MM-DD", a full timestamp, or "YYYYMMDD". Bad → None."""
    text = _text(value)
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        pass
    parsed = parse_datetime(text)
    return parsed.date() if parsed else None


# --- Reading a body ---------------------------------------------------------


def _reject_constant(name):
    # NaN and Infinity are not JSON and PostgreSQL's jsonb refuses them.
    raise ValueError("not a JSON number")


def load(body):
    """The body as a JSON object, or InboundError."""
    try:
        data = json.loads(bytes(body), parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise InboundError("The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise InboundError("The body is not a JSON object.")
    return data


def read_meta(data):
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


def dedupe_key(body, meta=None):
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


def _patient(data):
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


def _comments(value):
    if isinstance(value, list):
        return "\n".join(filter(None, (_text(v) for v in value)))
    return _text(value)


def _order(order):
    ehr_order_id = _text(order.get("ID"))
    if not ehr_order_id:
        raise InboundError("Order.ID is missing.")
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


def parse_order_message(data):
    """An Order message as plain values, or InboundError saying (without data) why not."""
    meta = read_meta(data)
    if not meta.data_model:
        raise InboundError("Meta.DataModel is missing.")
    if not meta.event_type:
        raise InboundError("Meta.EventType is missing.")
    if meta.data_model != ORDER_MODEL:
        raise InboundError("The data model is not Order.")
    if meta.event_type not in ORDER_EVENTS:
        raise InboundError("The Order event type is not one HCOINT handles (New, Update, Cancel, GroupedOrders).")
    if meta.event_type == GROUPED_EVENT:
        raw_orders = [_obj(o) for o in _list(data.get("Orders"))]
        if not raw_orders:
            raise InboundError("GroupedOrders has no Orders.")
    else:
        raw_orders = [_obj(data.get("Order"))]
    # An order listed twice in one GroupedOrders is applied once, as first listed.
    orders = {}
    for raw in raw_orders:
        order = _order(raw)
        orders.setdefault(order.ehr_order_id, order)
    return OrderMessage(
        meta=meta,
        patient=_patient(data),
        visit_number=_text(_obj(data.get("Visit")).get("VisitNumber")),
        orders=tuple(orders.values()),
    )
