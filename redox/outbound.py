"""Build the messages HCOINT sends to Redox from plain values. Interface stub."""

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class OutboundOrder:
    """What the message needs to know about the order, as plain values (no models)."""

    ehr_order_id: str
    patient_identifiers: list  # [{"ID": ..., "IDType": ...}, ...] as Redox sent them
    patient_demographics: dict  # Patient.Demographics as Redox sent it
    visit_number: str
    procedure: dict  # {"Code", "Codeset", "Description"}
    provider: dict  # Order.Provider as Redox sent it
    is_test: bool
    destination_id: str
    destination_name: str
    delivery_ref: str  # stable id of our delivery, e.g. "hcoint-delivery-42"
    corrected: bool
    completed_at: datetime


@dataclass(frozen=True)
class Document:
    file_name: str
    value: str  # base64 of the PDF, or the blob URI when is_uri
    is_uri: bool = False


def build_message(order, document, *, data_model="results", source_id=None):
    """Results.New (default) or Notes.New for `order` carrying `document`."""
    raise NotImplementedError
