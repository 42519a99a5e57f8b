"""Benchmark: peak memory and time to build a Results.New body around a PDF.

Run alone, in process; `make bench` runs bench/bench.py (over HTTP) instead.

Compares `redox.messages.encode_message` (one exact-size buffer, base64 written in
place) with the obvious `json.dumps` of a base64 string, for PDFs of 200 KB, 5 MB and
Redox's file limit (settings.REDOX_FILE_LIMIT_BYTES, 30 MiB), measured with tracemalloc.
Not a test.
"""

import base64
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchenv import setup_django, traced  # noqa: E402

setup_django()

from django.conf import settings  # noqa: E402

from redox.messages import Base64File, Document, OutboundOrder, build_message, encode_message  # noqa: E402

SIZES = [200_000, 5_000_000, settings.REDOX_FILE_LIMIT_BYTES]
ORDER = OutboundOrder(
    ehr_order_id="157720311",
    patient_identifiers=[{"ID": "MRN-BENCH", "IDType": "MR"}],
    patient_demographics={"FirstName": "Bench", "LastName": "Patient", "DOB": "1950-01-01", "Sex": "Unknown"},
    visit_number="V-1",
    procedure={"Code": "DOC1042", "Codeset": None, "Description": "Clinical note"},
    provider={"NPI": "1999999984", "FirstName": "Alex", "LastName": "Exampledoc"},
    is_test=True,
    destination_id="dest",
    destination_name="Dest",
    delivery_ref="hcoint-delivery-1",
    corrected=False,
    completed_at=datetime(2026, 1, 1, tzinfo=UTC),
)


def main():
    print("Building a Results.New body (peak extra memory over the PDF itself):")
    for size in SIZES:
        pdf = b"%PDF-1.4\n" + os.urandom(size - 9)

        def streamed(pdf=pdf):
            return encode_message(build_message(ORDER, Document("note.pdf", Base64File(pdf))))

        def naive(pdf=pdf):
            value = base64.b64encode(pdf).decode()
            return json.dumps(build_message(ORDER, Document("note.pdf", value)), separators=(",", ":")).encode()

        body, ours_ms, ours = traced(streamed)
        expected, theirs_ms, theirs = traced(naive)
        assert bytes(body) == expected, "encode_message must produce exactly the compact json.dumps body"
        print(
            f"  {size / 1e6:6.1f} MB PDF: encode_message {ours / 1e6:7.1f} MB in {ours_ms:6.1f} ms"
            f"   json.dumps {theirs / 1e6:7.1f} MB in {theirs_ms:6.1f} ms"
        )


if __name__ == "__main__":
    main()
