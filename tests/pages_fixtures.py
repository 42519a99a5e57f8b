"""Builders for the staff-page tests: orders, notes and deliveries made straight in the ORM.

The patient values are distinctive so a test can search for them in URLs and log lines.
"""

import datetime
import hashlib
import io
import itertools

from django.utils import timezone
from pypdf import PdfWriter

from orders.models import ClinicalNote, Delivery, Order
from tests.conftest import sample_bytes

_numbers = itertools.count(1)

PATIENT = {
    "patient_first_name": "Testy",
    "patient_middle_name": "Q",
    "patient_last_name": "Samplepatient",
    "patient_mrn": "MRN0048213",
    "patient_dob": datetime.date(1948, 2, 29),
    "patient_sex": "Male",
    "visit_number": "VIS-2026-000731",
    "patient_identifiers": [{"ID": "MRN0048213", "IDType": "MR"}, {"ID": "EPI77120", "IDType": "EPI"}],
    "identifiers_text": "MRN0048213 EPI77120",
}

# Values that must never appear in a URL or a log line.
PATIENT_VALUES = ["Testy", "Samplepatient", "MRN0048213", "EPI77120", "1948-02-29", "VIS-2026-000731", "157720311"]


def make_order(partner, **fields):
    number = next(_numbers)
    values = {
        **PATIENT,
        "ehr_order_id": f"ORD{number:06d}",
        "procedure_code": "DOC1042",
        "procedure_description": "Request for outside clinical notes",
        "provider_name": "Alex Exampledoc",
        "provider_npi": "1999999984",
        "priority": "Routine",
        "comments": "Discharge summary and visit notes.",
        "diagnoses": [{"Code": "I50.9", "Codeset": "ICD-10", "Name": "Heart failure, unspecified"}],
        "redox_status": "New",
        "is_test": True,
        "first_received_at": timezone.now() - datetime.timedelta(minutes=1000 - number),
    }
    values.update(fields)
    return Order.objects.create(partner=partner, **values)


def make_note(order, user, content=None, file_name="clinical-note.pdf"):
    content = sample_bytes("clinical-note.pdf") if content is None else content
    return ClinicalNote.objects.create(
        order=order,
        file_name=file_name,
        content=content,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        page_count=1,
        uploaded_by=user,
    )


def make_delivery(order, user, status=Delivery.Status.PENDING, **fields):
    note = make_note(order, user)
    return Delivery.objects.create(order=order, note=note, status=status, created_by=user, **fields)


def pdf_bytes(build=None, pages=1):
    """A real PDF from pypdf; `build(writer)` may add whatever the test is about."""
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=612, height=792)
    if build:
        build(writer)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
