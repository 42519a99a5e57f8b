"""Fill a migrated, empty HCOINT database with plausible history (`make bench`). Not a test.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hcoint_bench_x python bench/seed.py 100000

Orders arrive at a steady rate (ORDERS_PER_DAY, about a busy partner's), so 1,000 orders
are the last eleven days and 100,000 are three years: the history grows, the week does
not. Every table a page reads is filled: partners, staff users in their roles, orders
(names with accents and apostrophes, MRNs, order ids, visit numbers, the folded search
column), the inbound message of each order, notes, deliveries, attempts and audit
events, and the Usage page's weekly rollup as the worker would fill it. Most orders are
sent, the newest await a note, a few failed, were cancelled, or are test orders.
PostgreSQL only; rows go in through COPY, so 100,000 orders take well under a minute.
"""

import hashlib
import io
import json
import random
import sys
import time
from datetime import timedelta
from types import SimpleNamespace

from benchenv import setup_django
from harness import TOTP_SECRET

setup_django()

from allauth.mfa.totp.internal.auth import TOTP  # noqa: E402
from django.contrib.auth.models import Group, User  # noqa: E402
from django.db import DatabaseError, connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from hcoint.fields import keyring  # noqa: E402
from orders.models import Partner  # noqa: E402
from orders.search import order_search_text  # noqa: E402
from orders.usage_rollup import refresh_usage_rollup  # noqa: E402

ORDERS_PER_DAY = 90
PASSWORD = "bench-password-not-a-secret"  # noqa: S105
TOKEN = "bench-verification-token-0123456789"  # noqa: S105
LAST_NAMES = [
    "Nguyễn", "Trần", "Lê", "Phạm", "O'Brien", "O'Connor", "D'Angelo", "Smith", "Johnson", "Williams",
    "García", "Martínez", "Rodríguez", "Hernández", "López", "González", "Pérez", "Sánchez", "Müller",
    "Schröder", "Björk", "Åström", "Søren", "Kowalski", "Nowak", "Wiśniewska", "Dąbrowski", "Kim", "Park",
    "Lee", "Chen", "Wang", "Li", "Zhang", "Liu", "Yılmaz", "Öztürk", "Dubois", "Lefèvre", "Faure",
    "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson", "Taylor", "Thomas", "Moore", "Jackson",
    "MacDonald", "McAllister", "Van der Berg", "de la Cruz", "Abu-Bakr", "Okafor", "Adeyemi", "Mensah",
    "Haddad", "Nakamura",
]  # fmt: skip
FIRST_NAMES = [
    "Thị", "Văn", "Minh", "Seán", "Siobhán", "Zoë", "Chloé", "José", "María", "Jürgen", "Björn", "Åsa",
    "John", "Mary", "James", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William", "Elizabeth",
    "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen",
    "Ngozi", "Chidi", "Aisha", "Omar", "Hiroshi", "Yuki", "Wei", "Mei", "Łukasz", "Agnieszka", "François",
    "Hélène", "Noël", "Renée", "Ana", "Luis",
]  # fmt: skip
MIDDLE_NAMES = ["", "", "", "Anne", "Marie", "J.", "Lee", "Ngọc", "Ann-Marie", "K."]
PROCEDURES = [("DOC1042", "Request for outside clinical notes"), ("DOC2001", "Discharge summary request")]
PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)
PDF_SHA256 = hashlib.sha256(PDF).hexdigest()


def sealed(value):
    """`value` as EncryptedBinaryField stores it: COPY bypasses the field, so encrypt here."""
    return bytes(keyring().encrypt(value))


def copy_rows(table, columns, rows):
    started = time.perf_counter()
    buffer = io.StringIO()
    for row in rows:
        buffer.write("\t".join(_copy_value(value) for value in row))
        buffer.write("\n")
    buffer.seek(0)
    with connection.cursor() as cursor:
        cursor.cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", buffer)
        cursor.execute(f"SELECT setval(pg_get_serial_sequence(%s, %s), (SELECT max(id) FROM {table}))", [table, "id"])  # noqa: S608 (our own table names)
    print(f"  {table}: {len(rows)} rows in {time.perf_counter() - started:.1f} s", file=sys.stderr)


def _copy_value(value):
    if value is None:
        return r"\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, bytes):
        return "\\\\x" + value.hex()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    text = value if isinstance(value, str) else json.dumps(value) if isinstance(value, dict | list) else str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def seed(total, *, rng=None):
    rng = rng or random.Random(11)
    now = timezone.now()
    partners = []
    for number in range(3):
        partner = Partner(
            name=f"Bench Health {number}",
            destination_id=f"bench-dest-{number}",
            destination_name=f"Bench EHR {number}",
        )
        partner.set_tokens(f"{TOKEN}-{number}" if number else TOKEN)
        partner.save()
        partners.append(partner)
    staff = []
    for role in ("viewer", "uploader", "admin"):
        user = User.objects.create_user(f"bench-{role}", password=PASSWORD)
        user.groups.add(Group.objects.get(name=role))
        TOTP.activate(user, TOTP_SECRET)  # production asks for a second factor (MFA_REQUIRED)
        staff.append(user)
    uploader = staff[1]

    started = time.perf_counter()
    orders, messages, links, notes, pieces, deliveries, attempts, audits = [], [], [], [], [], [], [], []
    span = timedelta(days=total / ORDERS_PER_DAY)
    times = sorted((now - span * rng.random() for _ in range(total)), reverse=False)
    order_ids = rng.sample(range(100_000_000, 999_999_999), total)
    for pk, (received, ehr_id) in enumerate(zip(times, order_ids, strict=True), start=1):
        partner = partners[0] if rng.random() < 0.7 else rng.choice(partners[1:])
        last, first, middle = rng.choice(LAST_NAMES), rng.choice(FIRST_NAMES), rng.choice(MIDDLE_NAMES)
        mrn = f"MRN{rng.randrange(10_000_000):07d}"
        epi = f"EPI{rng.randrange(1_000_000):06d}"
        visit = f"VIS-{received.year}-{pk:06d}"
        identifiers = [{"ID": mrn, "IDType": "MR"}, {"ID": epi, "IDType": "EPI"}]
        identifiers_text = f"{mrn} {epi}"
        age = now - received
        roll = rng.random()
        is_test = rng.random() < 0.02
        if age < timedelta(days=3) or roll < 0.04:
            state = "awaiting_note"
        elif roll < 0.06:
            state = "failed"
        elif roll < 0.09:
            state = "cancelled"
        else:
            state = "sent"
        procedure = rng.choice(PROCEDURES)
        dob = (now - timedelta(days=rng.randrange(20 * 365, 95 * 365))).date()
        search_text = order_search_text(
            SimpleNamespace(
                patient_last_name=last,
                patient_first_name=first,
                patient_middle_name=middle,
                identifiers_text=identifiers_text,
                patient_mrn=mrn,
                ehr_order_id=str(ehr_id),
                visit_number=visit,
            )
        )
        orders.append(
            (
                pk, partner.pk, str(ehr_id), state, identifiers,
                {"FirstName": first, "LastName": last, "MiddleName": middle or None, "DOB": dob.isoformat()},
                identifiers_text, mrn, first, middle, last, dob, "Unknown", visit, procedure[0], "CPT",
                procedure[1], {"NPI": "1999999984", "FirstName": "Alex", "LastName": "Exampledoc"},
                "1999999984", "Alex Exampledoc", "Routine", "", [], "New", received, is_test, received,
                received, now if state == "cancelled" else None, received, search_text,
            )
        )  # fmt: skip
        body = json.dumps(
            {
                "Meta": {
                    "DataModel": "Order",
                    "EventType": "New",
                    "Test": is_test,
                    "EventDateTime": received.isoformat(),
                },
                "Patient": {"Identifiers": identifiers, "Demographics": orders[-1][5]},
                "Visit": {"VisitNumber": visit},
                "Order": {"ID": str(ehr_id), "Procedure": {"Code": procedure[0], "Description": procedure[1]}},
            }
        ).encode()
        messages.append(
            (
                pk, partner.pk, f"log-{pk}", f"log-{pk}", "Order", "New", received, sealed(body), {}, received, 1,
                received, "processed", "", received, "",
            )
        )  # fmt: skip
        links.append((pk, pk, pk))
        if state in ("sent", "failed"):
            uploaded = received + timedelta(hours=rng.uniform(0.25, 60))
            sent = uploaded + timedelta(seconds=rng.uniform(2, 90))
            # The PDF in one piece (orders/note_content.py), the old column empty, as note_upload stores it.
            notes.append((pk, pk, "note.pdf", b"", len(PDF), PDF_SHA256, 1, uploaded, uploader.pk))
            pieces.append((pk, pk, 0, sealed(PDF)))
            deliveries.append(
                (
                    pk, pk, pk, state, False, "", uploaded, 1 if state == "sent" else 8, None, None,
                    sent if state == "sent" else None, f"redox-{pk}" if state == "sent" else "",
                    "" if state == "sent" else "HTTP 400", "", None, uploader.pk,
                )
            )  # fmt: skip
            attempts.append(
                (
                    pk, pk, uploaded, 900, "sent" if state == "sent" else "permanent",
                    200 if state == "sent" else 400, f"redox-{pk}" if state == "sent" else "", "",
                )
            )  # fmt: skip
            for action in ("upload_note", "send_note"):
                audits.append(
                    (
                        len(audits) + 1,
                        uploaded,
                        uploader.username,
                        action,
                        "note",
                        str(pk),
                        pk,
                        uploader.pk,
                        "success",
                        "",
                    )
                )
        audits.append(
            (
                len(audits) + 1,
                received + timedelta(hours=1),
                "bench-viewer",
                "view_order",
                "order",
                str(pk),
                pk,
                staff[0].pk,
                "success",
                "",
            )
        )

    print(f"  rows made in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    with connection.cursor() as cursor:
        # Bulk-load as a restore would: no per-row foreign-key triggers (the rows are
        # consistent by construction; needs a superuser, else skipped) and the trigram
        # index built once at the end rather than row by row.
        cursor.execute("SET synchronous_commit = off")
        try:
            with transaction.atomic():
                cursor.execute("SET session_replication_role = replica")
        except DatabaseError:
            pass
        cursor.execute("DROP INDEX IF EXISTS order_search_trgm")
    copy_rows(
        "orders_order",
        (
            "id", "partner_id", "ehr_order_id", "state", "patient_identifiers", "patient_demographics",
            "identifiers_text", "patient_mrn", "patient_first_name", "patient_middle_name", "patient_last_name",
            "patient_dob", "patient_sex", "visit_number", "procedure_code", "procedure_codeset",
            "procedure_description", "provider", "provider_npi", "provider_name", "priority", "comments",
            "diagnoses", "redox_status", "transaction_at", "is_test", "first_received_at", "last_event_at",
            "cancelled_at", "updated_at", "search_text",
        ),
        orders,
    )  # fmt: skip
    copy_rows(
        "orders_inboundmessage",
        (
            "id", "partner_id", "dedupe_key", "redox_log_id", "data_model", "event_type", "event_at", "body",
            "headers", "received_at", "times_seen", "last_seen_at", "status", "error", "processed_at", "body_sha256",
        ),
        messages,
    )  # fmt: skip
    copy_rows("orders_inboundmessage_orders", ("id", "inboundmessage_id", "order_id"), links)
    copy_rows(
        "orders_clinicalnote",
        ("id", "order_id", "file_name", "content", "size", "sha256", "page_count", "uploaded_at", "uploaded_by_id"),
        notes,
    )
    copy_rows("orders_notechunk", ("id", "note_id", "index", "data"), pieces)
    copy_rows(
        "orders_delivery",
        (
            "id", "order_id", "note_id", "status", "is_correction", "correction_reason", "created_at",
            "attempt_count", "next_attempt_at", "sending_started_at", "sent_at", "redox_log_id", "last_error",
            "abandoned_reason", "abandoned_by_id", "created_by_id",
        ),
        deliveries,
    )  # fmt: skip
    copy_rows(
        "orders_deliveryattempt",
        ("id", "delivery_id", "started_at", "duration_ms", "outcome", "http_status", "redox_log_id", "error"),
        attempts,
    )
    copy_rows(
        "orders_auditevent",
        (
            "id",
            "created_at",
            "actor_username",
            "action",
            "object_type",
            "object_id",
            "order_id",
            "actor_id",
            "outcome",
            "request_id",
        ),  # fmt: skip
        audits,
    )
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = DEFAULT")
        cursor.execute("CREATE INDEX order_search_trgm ON orders_order USING gin (search_text gin_trgm_ops)")
        cursor.execute("VACUUM ANALYZE")
    print(f"  vacuum analyze in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    # The Usage page's rollup, as the worker's first pass fills it (orders/usage_rollup.py).
    started = time.perf_counter()
    weeks = refresh_usage_rollup()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE orders_usageweek")
    print(f"  usage rollup of {weeks} weeks in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return len(orders), len(deliveries)


def main():
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    if connection.vendor != "postgresql":
        raise SystemExit("bench/seed.py needs DATABASE_URL=postgres://...")
    started = time.perf_counter()
    orders, deliveries = seed(total)
    print(f"seeded {orders} orders, {deliveries} deliveries in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
