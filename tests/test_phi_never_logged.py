"""No patient value from Redox's payloads ever reaches a log line.

The whole flow runs once with every logger at DEBUG (and Django's SQL logging forced
on): every sample payload through the webhook, duplicates, a wrong token, a body that is
not JSON and one with an impossible date of birth; the staff pages (search by name and
MRN, the order, upload, review, the PDF, send, retry, abandon, usage); two deliveries
through the real Redox client against a Redox that fails transiently, echoes patient
data in its errors, times out, refuses for good and finally accepts; the admin; a view
that crashes with patient data in its exception; report_usage. Each record is formatted
by the real JSON and plain formatters behind the real filters, and no output may contain
a patient value in any of the forms it could take.
"""

import json
import logging
import re
from datetime import date, timedelta
from unittest import mock

import pytest
import requests
import responses
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from hcoint.logging import JsonFormatter, PhiFilter, PlainFormatter
from hcoint.middleware import RequestIdFilter
from orders.delivery import delivery_send_once
from orders.models import BatchFile, Delivery, InboundMessage, Order
from tests.conftest import PARTNER_TOKEN, SAMPLES, sample_bytes, sample_json
from tests.factories import other_patient_order
from tests.pdf_text import text_pdf

API = "https://redox.test"
WEBHOOK = "/redox/webhook/"
ORDER_ID = "157720311"


def patient_values():
    """Every patient value in the sample payloads, plus the other forms a value could be written in."""
    values = set()
    for path in SAMPLES.glob("order-*.json"):
        data = json.loads(path.read_bytes())
        patient = data["Patient"]
        demographics = patient["Demographics"]
        values.update(identifier["ID"] for identifier in patient["Identifiers"])
        values.update(demographics[key] for key in ("FirstName", "LastName", "DOB"))
        address = demographics["Address"]
        values.update(address[key] for key in ("StreetAddress", "City", "ZIP"))
        values.add(data["Visit"]["VisitNumber"])
        for order in data.get("Orders") or [data["Order"]]:
            values.add(order["ID"])
            values.add(order["Comments"])
            values.add(order["OrderingFacility"]["PhoneNumber"])
            values.update(diagnosis["Name"] for diagnosis in order["Diagnoses"])
    values.update(
        {
            # The date of birth, 1948-02-29, as people and libraries write it.
            "02/29/1948",
            "2/29/1948",
            "29/02/1948",
            "1948/02/29",
            "19480229",
            "Feb 29, 1948",
            "Feb. 29, 1948",
            "February 29, 1948",
            "29 Feb 1948",
            # The phone number without its country code and punctuated.
            "2535550100",
            "253-555-0100",
            "(253) 555-0100",
        }
    )
    return sorted(values)


PATIENT_VALUES = patient_values()
BIRTH_DATE = sample_json("order-new.json")["Patient"]["Demographics"]["DOB"]
LAST_NAME = sample_json("order-new.json")["Patient"]["Demographics"]["LastName"]
MRN = sample_json("order-new.json")["Patient"]["Identifiers"][0]["ID"]


class CaptureEverything(logging.Handler):
    """Formats each record with both real formatters, behind the filters the console handler has."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.addFilter(RequestIdFilter())
        self.addFilter(PhiFilter())
        self.formatters = [JsonFormatter(), PlainFormatter()]
        self.records = []
        self.lines = []

    def emit(self, record):
        self.records.append(record)
        for formatter in self.formatters:
            self.lines.append(formatter.format(record))


@pytest.fixture
def every_logger_at_debug():
    """Every logger at DEBUG, enabled and propagating to the root logger (where caplog listens too)."""
    root = logging.getLogger()
    loggers = [root] + [item for item in logging.root.manager.loggerDict.values() if isinstance(item, logging.Logger)]
    saved = [(item, item.level, item.propagate, item.disabled) for item in loggers]
    for item in loggers:
        item.setLevel(logging.DEBUG)
        item.propagate = True
        item.disabled = False
    try:
        yield
    finally:
        for item, level, propagate, disabled in saved:
            item.setLevel(level)
            item.propagate = propagate
            item.disabled = disabled


@pytest.fixture
def every_log_line(every_logger_at_debug):
    """Every logger at DEBUG, propagating to a capturing handler on the root logger."""
    handler = CaptureEverything()
    root = logging.getLogger()
    root.addHandler(handler)
    # Django logs SQL (with the values bound into it) only in DEBUG; force it on.
    saved_debug_cursor = connection.force_debug_cursor
    connection.force_debug_cursor = True
    try:
        yield handler
    finally:
        connection.force_debug_cursor = saved_debug_cursor
        root.removeHandler(handler)


@pytest.fixture(autouse=True)
def _redox_api_key(settings):
    settings.REDOX_API_BASE_URL = API
    settings.REDOX_UPLOAD_URL = "https://blob.redox.test/upload"
    settings.REDOX_API_KEY = "api-key-1"
    settings.REDOX_API_SECRET = "api-secret-1"


def post(client, body, token=PARTNER_TOKEN):
    return client.post(WEBHOOK, body, content_type="application/json", headers={"verification-token": token})


def redox_error(status, text):
    """A Redox error answer that, like some real ones, quotes the patient back."""
    return {"status": status, "json": {"Meta": {"Errors": [{"ID": 1, "Text": text, "Type": "message"}]}}}


def run_webhook(client):
    for name in ("order-new.json", "order-update.json", "order-grouped.json", "order-new.json"):  # one duplicate
        assert post(client, sample_bytes(name)).status_code == 200
    challenge = sample_json("challenge-post.json")
    challenge["verification-token"] = PARTNER_TOKEN
    assert post(client, json.dumps(challenge)).status_code == 200
    query = {"challenge": "abc123", "verification-token": PARTNER_TOKEN}
    assert client.get(WEBHOOK, query).status_code == 200
    assert post(client, sample_bytes("order-new.json"), token="wrong-token").status_code == 401
    # Not JSON: the body (and so json.JSONDecodeError.doc) is full of patient data.
    broken = sample_bytes("order-new.json").replace(b'"Order": {', b'"Order": {{', 1)
    broken = broken.replace(b'"0b5f2c1e', b'"broken-0b5f2c1e', 1)
    assert post(client, broken).status_code == 200
    # Valid JSON, impossible date of birth: the parser's error would quote it.
    impossible = sample_json("order-new.json")
    impossible["Meta"]["Logs"][0]["ID"] = "impossible-dob-log"
    impossible["Order"]["ID"] = "157720399"
    impossible["Patient"]["Demographics"]["DOB"] = BIRTH_DATE.replace("02-29", "02-30")
    assert post(client, json.dumps(impossible)).status_code == 200


def run_staff_pages(client, uploader, order):
    client.force_login(uploader)
    for query in (LAST_NAME, MRN, BIRTH_DATE, ORDER_ID):
        assert client.get(reverse("order_list"), {"q": query}).status_code == 200
    assert client.get(reverse("order_detail", args=[order.pk])).status_code == 200
    upload = SimpleUploadedFile(
        f"{LAST_NAME}_{MRN}_discharge.pdf", sample_bytes("clinical-note.pdf"), content_type="application/pdf"
    )
    response = client.post(reverse("upload_note", args=[order.pk]), {"file": upload})
    assert response.status_code == 302
    note = order.notes.get()
    for name in ("review_note", "note_pdf", "note_download"):
        assert client.get(reverse(name, args=[note.pk])).status_code == 200
    assert client.post(reverse("send_note", args=[note.pk])).status_code == 302
    return Delivery.objects.get(note=note)


def run_delivery_with_failures(redox, delivery):
    """503 quoting the patient, a timeout, then accepted."""
    redox.post(f"{API}/endpoint", **redox_error(503, f"Patient {LAST_NAME} ({MRN}, DOB {BIRTH_DATE}) busy"))
    redox.post(f"{API}/endpoint", body=requests.ConnectionError(f"reset while sending {LAST_NAME}"))
    redox.post(f"{API}/endpoint", json={"Meta": {"Logs": [{"ID": "log-accepted", "AttemptID": "a-1"}]}})
    now = timezone.now()
    for _ in range(3):
        delivery_send_once(delivery_id=delivery.pk, now=now)
        delivery.refresh_from_db()
        now = max(now, delivery.next_attempt_at or now) + timedelta(seconds=1)
    assert delivery.status == Delivery.Status.SENT


def run_refused_delivery(client, redox, uploader, order):
    """A permanent refusal quoting the patient, then staff retry, then abandon with a reason naming them."""
    client.force_login(uploader)
    upload = SimpleUploadedFile("note.pdf", sample_bytes("clinical-note.pdf"), content_type="application/pdf")
    client.post(reverse("upload_note", args=[order.pk]), {"file": upload})
    note = order.notes.get()
    client.post(reverse("send_note", args=[note.pk]))
    delivery = Delivery.objects.get(note=note)
    refusal = redox_error(400, f"Patient.Demographics.DOB {BIRTH_DATE} does not match {LAST_NAME}")
    redox.post(f"{API}/endpoint", **refusal)
    redox.post(f"{API}/endpoint", **refusal)
    delivery_send_once(delivery_id=delivery.pk, now=timezone.now())
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED
    assert client.post(reverse("retry_delivery", args=[delivery.pk])).status_code == 302
    delivery_send_once(delivery_id=delivery.pk, now=timezone.now())
    assert client.get(reverse("order_detail", args=[order.pk])).status_code == 200
    reason = {"reason": f"Faxed to the clinic for {LAST_NAME}, MRN {MRN}"}
    assert client.post(reverse("abandon_delivery", args=[delivery.pk]), reason).status_code == 302


def run_admin(client, admin_user, order):
    client.force_login(admin_user)
    for model in ("order", "inboundmessage", "delivery", "clinicalnote", "partner", "auditevent"):
        assert client.get(reverse(f"admin:orders_{model}_changelist")).status_code == 200
        assert client.get(reverse(f"admin:orders_{model}_changelist"), {"q": LAST_NAME}).status_code == 200
    assert client.get(reverse("admin:orders_order_change", args=[order.pk])).status_code == 200
    for message in InboundMessage.objects.all():
        assert client.get(reverse("admin:orders_inboundmessage_change", args=[message.pk])).status_code == 200
    for delivery in Delivery.objects.all():
        assert client.get(reverse("admin:orders_delivery_change", args=[delivery.pk])).status_code == 200


def run_crashing_view(uploader, order):
    """A bug whose exception message carries patient data, through Django's 500 handling."""
    client = Client(raise_request_exception=False)
    client.force_login(uploader)
    crash = ValueError(f"cannot show {LAST_NAME} born {BIRTH_DATE} ({MRN})")
    with mock.patch.object(Order, "patient_name", new_callable=mock.PropertyMock, side_effect=crash):
        assert client.get(reverse("order_detail", args=[order.pk])).status_code == 500


@pytest.fixture
def whole_flow(client, partner, uploader, admin_user, every_log_line):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as redox:
        redox.post(
            f"{API}/auth/authenticate",
            json={"accessToken": "token-1", "expires": (timezone.now() + timedelta(hours=24)).isoformat()},
        )
        run_webhook(client)
        order = Order.objects.get(ehr_order_id=ORDER_ID)
        delivery = run_staff_pages(client, uploader, order)
        run_delivery_with_failures(redox, delivery)
        run_refused_delivery(client, redox, uploader, Order.objects.get(ehr_order_id="157720312"))
    assert client.get(reverse("usage")).status_code == 200
    call_command("report_usage", "--include-test", stdout=open("/dev/null", "w"))  # noqa: SIM115
    run_admin(client, admin_user, order)
    run_crashing_view(uploader, order)
    assert post(client, sample_bytes("order-cancel.json")).status_code == 200
    client.logout()
    client.post(reverse("login"), {"username": uploader.username, "password": "not-the-password"})
    return every_log_line


def test_the_flow_really_logged_what_it_should(whole_flow):
    """Guards the test below against passing because nothing was logged."""
    events = {getattr(record, "event", None) for record in whole_flow.records}
    for event in (
        "message.received",
        "message.duplicate",
        "message.failed",
        "webhook.auth_failed",
        "order.created",
        "order.updated",
        "order.cancelled",
        "note.uploaded",
        "delivery.queued",
        "delivery.attempted",
        "delivery.retry_scheduled",
        "delivery.sent",
        "delivery.failed",
        "delivery.abandoned",
        "auth.sign_in_failed",
        "usage.weekly",
        "usage.backlog",
    ):
        assert event in events, event
    loggers = {record.name for record in whole_flow.records}
    assert "django.db.backends" in loggers  # SQL with bound patient values was logged, and scrubbed
    crashes = [record for record in whole_flow.records if record.name == "django.request" and record.exc_info]
    assert crashes, "the crashing view's traceback was logged"


def leak_pattern(value):
    """Case-insensitive; a value that starts or ends in a digit must not touch other digits,
    so a ZIP code is not "found" inside a float such as 3.4780999840222e-05."""
    before = r"(?<!\d)" if value[0].isdigit() else ""
    after = r"(?!\d)" if value[-1].isdigit() else ""
    return re.compile(before + re.escape(value) + after, flags=re.IGNORECASE)


def test_no_patient_value_appears_in_any_log_line(whole_flow):
    patterns = [(value, leak_pattern(value)) for value in PATIENT_VALUES]
    leaks = []
    for line in whole_flow.lines:
        texts = [line]
        if line.startswith("{"):
            # Also the decoded form, in case a value was escaped in the JSON.
            texts.append(json.dumps(json.loads(line), ensure_ascii=False))
        for text in texts:
            for value, pattern in patterns:
                if pattern.search(text):
                    leaks.append((value, text[:300]))
    assert not leaks, f"{len(leaks)} leak(s), first: {leaks[:3]}"


# --- Bulk upload (issue 13) ---------------------------------------------------------------

BULK_FIRST_NAME, BULK_LAST_NAME, BULK_MRN, BULK_DOB = "Thanh", "Nguyen", "48213", date(1980, 3, 7)
BULK_VALUES = [
    BULK_FIRST_NAME,
    BULK_LAST_NAME,
    BULK_MRN,
    f"{BULK_LAST_NAME}_{BULK_MRN}",
    "03/07/1980",
    "3/7/1980",
    "1980-03-07",
    "19800307",
    "Mar 7, 1980",
    "March 7, 1980",
]


def test_the_bulk_upload_path_logs_no_patient_value(client, partner, uploader, every_logger_at_debug, caplog):
    """A file named for its patient, with the date of birth in its text, uploaded in bulk,
    matched, previewed and sent: no raw log record (every logger at DEBUG, before any
    filter) carries the name, the MRN or the date of birth."""
    caplog.set_level(logging.DEBUG)
    order = other_patient_order(
        1,
        partner=partner,
        patient_first_name=BULK_FIRST_NAME,
        patient_last_name=BULK_LAST_NAME,
        patient_mrn=BULK_MRN,
        identifiers_text=BULK_MRN,
        patient_identifiers=[{"ID": BULK_MRN, "IDType": "MRN"}],
        patient_dob=BULK_DOB,
    )
    client.force_login(uploader)
    content = text_pdf([f"Patient: {BULK_LAST_NAME}, {BULK_FIRST_NAME}\nDOB 03/07/1980\nProgress note."])
    upload = SimpleUploadedFile(f"{BULK_LAST_NAME}_{BULK_MRN}.pdf", content, content_type="application/pdf")
    response = client.post(reverse("batch_list"), {"pdfs": [upload]})
    assert response.status_code == 302
    row = BatchFile.objects.get()
    assert row.proposed_order == order, "the file was read and matched by its MRN, name and date of birth"
    assert client.get(response["Location"]).status_code == 200
    assert client.get(reverse("batch_file_preview", args=[row.pk])).status_code == 200
    assert client.post(reverse("batch_send", args=[row.batch_id]), {f"file_{row.pk}": order.pk}).status_code == 302
    assert Delivery.objects.get(order=order).note.file_name == f"{BULK_LAST_NAME}_{BULK_MRN}.pdf"

    # Guards against passing because nothing was logged.
    logged = {getattr(record, "event", None) for record in caplog.records}
    assert {"batch.created", "note.uploaded", "batch.file_sent", "delivery.queued"} <= logged
    assert any(record.levelno == logging.DEBUG for record in caplog.records)
    leaks = [value for value in BULK_VALUES if leak_pattern(value).search(caplog.text)]
    assert not leaks, f"patient values in the log: {leaks}"
