"""The one way tests build rows: factory_boy factories for partners, orders, messages, notes,
deliveries and staff users.

The defaults are the patient, visit and order of redox/samples/order-new.json, as ingest would
store them, so a test reads like the sample went through the webhook. The patient values are
distinctive: PATIENT_VALUES lists those that must never reach a URL or a log line.

Build with keywords for what the test is about and let the rest default:

    OrderFactory(partner=partner, state=Order.State.CANCELLED)
    DeliveryFactory(order=order, created_by=uploader, retry_scheduled=True)
    UserFactory(uploader=True)
    BatchFileFactory(batch__created_by=uploader, proposed_order=order)

A DeliveryFactory with `enqueue=True` announces the delivery as the note workflow does
(orders/notes.py), so a listening worker is woken once it is committed.
"""

import datetime
import hashlib
import json
from pathlib import Path

import factory
from django.contrib.auth.models import Group, User
from django.utils import timezone

from orders import note_content
from orders.models import BatchFile, ClinicalNote, Delivery, InboundMessage, Order, Partner, UploadBatch, hash_token
from redox import inbound
from redox.messages import OutboundOrder

SAMPLES = Path(__file__).resolve().parent.parent / "redox" / "samples"
SAMPLE_ORDER = json.loads((SAMPLES / "order-new.json").read_bytes())
SAMPLE_PDF = (SAMPLES / "clinical-note.pdf").read_bytes()
PASSWORD = "correct-horse-battery"  # noqa: S105 - the test users' password, known to the tests

_patient = SAMPLE_ORDER["Patient"]
_demographics = _patient["Demographics"]
_order = SAMPLE_ORDER["Order"]

# The partner of the `partner` fixture (tests/conftest.py), as Redox names its destination.
PARTNER_DESTINATION_ID = "5c1e8a90-2f47-4b6d-9e13-7a0c4d2b8f61"
PARTNER_DESTINATION_NAME = "Cascade Health Epic (Staging)"

# Values that must never appear in a URL or a log line.
PATIENT_VALUES = ["Testy", "Samplepatient", "MRN0048213", "EPI77120", "1948-02-29", "VIS-2026-000731", "157720311"]


def sha256_hex(content):
    return hashlib.sha256(content).hexdigest()


class UserFactory(factory.django.DjangoModelFactory):
    """A staff user; `viewer=True`, `uploader=True` or `admin=True` puts them in that role's group
    (orders/roles.py), or `role="uploader"` when the role is a parameter of the test. The admin
    trait also sets is_staff, as an admin is set up; `role="admin"` alone does not."""

    class Meta:
        model = User

    class Params:
        viewer = factory.Trait(role="viewer")
        uploader = factory.Trait(role="uploader")
        admin = factory.Trait(role="admin", is_staff=True)

    username = factory.Sequence(lambda n: f"staff{n}")
    password = factory.django.Password(PASSWORD)
    # Not a User field: _create puts the user in this group.
    role = None

    @classmethod
    def _create(cls, model_class, *args, role=None, **kwargs):
        user = super()._create(model_class, *args, **kwargs)
        if role:
            user.groups.add(Group.objects.get(name=role))
        return user

    @classmethod
    def _build(cls, model_class, *args, role=None, **kwargs):
        return super()._build(model_class, *args, **kwargs)


class OutboundOrderFactory(factory.Factory):
    """The OutboundOrder (redox/messages.py) the delivery code makes from order-new.json for the
    partner of the `partner` fixture: plain values, no rows."""

    class Meta:
        model = OutboundOrder

    ehr_order_id = _order["ID"]
    patient_identifiers = factory.LazyFunction(lambda: [dict(i) for i in _patient["Identifiers"]])
    patient_demographics = factory.LazyFunction(lambda: json.loads(json.dumps(_demographics)))
    visit_number = SAMPLE_ORDER["Visit"]["VisitNumber"]
    procedure = factory.LazyFunction(lambda: dict(_order["Procedure"]))
    provider = factory.LazyFunction(lambda: json.loads(json.dumps(_order["Provider"])))
    is_test = SAMPLE_ORDER["Meta"]["Test"]
    destination_id = PARTNER_DESTINATION_ID
    destination_name = PARTNER_DESTINATION_NAME
    delivery_ref = "hcoint-delivery-42"
    corrected = False
    completed_at = datetime.datetime(2026, 10, 6, 18, 22, 41, tzinfo=datetime.UTC)


class PartnerFactory(factory.django.DjangoModelFactory):
    """A hospital connection; `token` (not stored) is hashed into token_hash by the app's own
    hash_token (orders/models.py), so a factory partner is found by its token as a real one is."""

    class Meta:
        model = Partner
        exclude = ("token",)

    name = factory.Sequence(lambda n: f"Hospital {n}")
    destination_id = factory.Sequence(lambda n: f"dest-{n}")
    destination_name = factory.LazyAttribute(lambda p: f"{p.name} Epic")
    token = factory.Sequence(lambda n: f"partner-token-{n:04d}-0123456789abcdef")
    token_hash = factory.LazyAttribute(lambda p: hash_token(p.token))


def partner_form(**overrides):
    """The admin's partner form (orders/admin_partner.py) as posted for a new partner,
    Northwind Clinic with its own token; keywords override or add fields."""
    data = {
        "name": "Northwind Clinic",
        "is_active": "on",
        "destination_id": "dest-1",
        "destination_name": "Northwind Epic (Prod)",
        "outbound_model": "results",
        "note_due_days": "14",
        "new_verification_token": "northwind-token-0123456789",
        "second_token": "",
    }
    data.update(overrides)
    return data


class OrderFactory(factory.django.DjangoModelFactory):
    """An order as ingest stores order-new.json, under its own EHR order id."""

    class Meta:
        model = Order

    class Params:
        sending = factory.Trait(state=Order.State.SENDING)

    partner = factory.SubFactory(PartnerFactory)
    ehr_order_id = factory.Sequence(lambda n: f"ORD{n:06d}")
    patient_identifiers = factory.LazyFunction(lambda: [dict(i) for i in _patient["Identifiers"]])
    identifiers_text = " ".join(i["ID"] for i in _patient["Identifiers"])
    patient_demographics = factory.LazyFunction(lambda: json.loads(json.dumps(_demographics)))
    patient_mrn = _patient["Identifiers"][0]["ID"]
    patient_first_name = _demographics["FirstName"]
    patient_middle_name = _demographics["MiddleName"]
    patient_last_name = _demographics["LastName"]
    patient_dob = datetime.date.fromisoformat(_demographics["DOB"])
    patient_sex = _demographics["Sex"]
    visit_number = SAMPLE_ORDER["Visit"]["VisitNumber"]
    procedure_code = _order["Procedure"]["Code"]
    procedure_description = _order["Procedure"]["Description"]
    provider = factory.LazyFunction(lambda: json.loads(json.dumps(_order["Provider"])))
    provider_npi = _order["Provider"]["NPI"]
    provider_name = f"{_order['Provider']['FirstName']} {_order['Provider']['LastName']}"
    priority = _order["Priority"]
    comments = _order["Comments"]
    diagnoses = factory.LazyFunction(lambda: [dict(d) for d in _order["Diagnoses"]])
    redox_status = _order["Status"]
    is_test = SAMPLE_ORDER["Meta"]["Test"]


FIRST_NAMES = ["Ada", "Bruno", "Clara", "Dmitri", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kira"]
LAST_NAMES = [
    *("Alvarez", "Becker", "Castillo", "Dunmore", "Eriksen", "Fontaine", "Galloway", "Holm", "Ivanova", "Jaworski"),
    *("Kowalczyk", "Lindqvist", "Moreau", "Nakamura", "Okafor", "Petrov", "Quintero", "Rasmussen", "Sorensen"),
    *("Takahashi", "Umarov", "Valdivia", "Whitcombe", "Xiong"),
]


def other_patient_order(number, **kwargs):
    """An order of a patient of its own (name, MRN, date of birth, visit), `number` telling
    them apart (up to 24 distinct names): for matching files to orders. Keywords override any field."""
    fields = {
        "ehr_order_id": f"ORD-{7000 + number}",
        "patient_mrn": f"MRN{480000 + number}",
        "patient_first_name": FIRST_NAMES[number % len(FIRST_NAMES)],
        "patient_last_name": LAST_NAMES[number % len(LAST_NAMES)],
        "patient_middle_name": "",
        "patient_dob": datetime.date(1940, 1, 1) + datetime.timedelta(days=401 * number),
        "visit_number": f"VIS-{93000 + number}",
        "identifiers_text": f"MRN{480000 + number}",
        "patient_identifiers": [{"ID": f"MRN{480000 + number}", "IDType": "MRN"}],
        **kwargs,
    }
    return OrderFactory(**fields)


class InboundMessageFactory(factory.django.DjangoModelFactory):
    """A body (order-new.json unless given) as the webhook stores it before applying it:
    keyed and indexed by what its Meta says, status received."""

    class Meta:
        model = InboundMessage

    class Params:
        meta = factory.LazyAttribute(lambda m: inbound.read(m.body).meta)

    partner = factory.SubFactory(PartnerFactory)
    body = (SAMPLES / "order-new.json").read_bytes()
    body_sha256 = factory.LazyAttribute(lambda m: sha256_hex(bytes(m.body)))
    dedupe_key = factory.LazyAttribute(lambda m: inbound.dedupe_key(m.body, m.meta))
    redox_log_id = factory.LazyAttribute(lambda m: m.meta.log_id)
    data_model = factory.LazyAttribute(lambda m: m.meta.data_model)
    event_type = factory.LazyAttribute(lambda m: m.meta.event_type)
    event_at = factory.LazyAttribute(lambda m: m.meta.event_at)


class ClinicalNoteFactory(factory.django.DjangoModelFactory):
    """The sample note PDF, uploaded (and rebuilt to the same bytes) by an uploader."""

    class Meta:
        model = ClinicalNote

    order = factory.SubFactory(OrderFactory)
    file_name = "clinical-note.pdf"
    content = SAMPLE_PDF
    size = factory.LazyAttribute(lambda n: len(n.content))
    sha256 = factory.LazyAttribute(lambda n: sha256_hex(bytes(n.content)))
    original_sha256 = factory.LazyAttribute(lambda n: n.sha256)
    page_count = 1
    uploaded_by = factory.SubFactory(UserFactory, uploader=True)

    @classmethod
    def _create(cls, model_class, *args, content, **kwargs):
        """As note_upload stores a note: the row, then its PDF in pieces (orders/note_content.py)."""
        note = super()._create(model_class, *args, **kwargs)
        note_content.store(note, content)
        return note


RETRY_ERROR = "Redox /endpoint: HTTP 503"
FAILED_ERROR = "Redox /endpoint: HTTP 400: Meta.Destinations needs to contain a destination from existing subscriptions"


class DeliveryFactory(factory.django.DjangoModelFactory):
    """A note's delivery, pending unless a state trait says otherwise:

    `sending` (claimed by a worker whose lease has `lease_seconds` left), `retry_scheduled`
    (one transient failure, due `retry_in` seconds after it), `sent`, `failed`, `abandoned`.
    Times count from `created_at`.
    """

    class Meta:
        model = Delivery
        skip_postgeneration_save = True

    class Params:
        content = SAMPLE_PDF
        lease_seconds = 60
        retry_in = 30
        sending = factory.Trait(
            status=Delivery.Status.SENDING,
            attempt_count=1,
            sending_started_at=factory.SelfAttribute("created_at"),
            lease_expires_at=factory.LazyAttribute(
                lambda d: d.created_at + datetime.timedelta(seconds=d.lease_seconds)
            ),
        )
        retry_scheduled = factory.Trait(
            status=Delivery.Status.RETRY_SCHEDULED,
            attempt_count=1,
            next_attempt_at=factory.LazyAttribute(lambda d: d.created_at + datetime.timedelta(seconds=d.retry_in)),
            last_error=RETRY_ERROR,
        )
        sent = factory.Trait(
            status=Delivery.Status.SENT,
            attempt_count=1,
            sending_started_at=factory.SelfAttribute("created_at"),
            sent_at=factory.SelfAttribute("created_at"),
            redox_log_id="log-1",
        )
        failed = factory.Trait(status=Delivery.Status.FAILED, attempt_count=1, last_error=FAILED_ERROR)
        abandoned = factory.Trait(status=Delivery.Status.ABANDONED, abandoned_reason="Sent by fax instead.")

    order = factory.SubFactory(OrderFactory)
    created_by = factory.SubFactory(UserFactory, uploader=True)
    created_at = factory.LazyFunction(timezone.now)
    note = factory.SubFactory(
        ClinicalNoteFactory,
        order=factory.SelfAttribute("..order"),
        uploaded_by=factory.SelfAttribute("..created_by"),
        uploaded_at=factory.SelfAttribute("..created_at"),
        content=factory.SelfAttribute("..content"),
    )
    status = Delivery.Status.PENDING

    @factory.post_generation
    def enqueue(self, create, extracted, **kwargs):
        if create and extracted:
            # Imported here: orders.delivery is what many of these tests are about.
            from orders.delivery import delivery_enqueue

            delivery_enqueue(delivery=self)


# A white 1 x 1 PNG: a preview image a browser decodes.
TINY_PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x00\x00\x00\x00:~\x9bU"
    b"\x00\x00\x00\nIDATx\x9cc\xf8\x0f\x00\x01\x01\x01\x00\xb18\xf6\x14\x00\x00\x00\x00IEND\xaeB`\x82"
)


class UploadBatchFactory(factory.django.DjangoModelFactory):
    """A bulk upload (orders/batches.py) made now by an uploader, expiring in 7 days."""

    class Meta:
        model = UploadBatch

    created_by = factory.SubFactory(UserFactory, uploader=True)
    created_at = factory.LazyFunction(timezone.now)
    expires_at = factory.LazyAttribute(lambda b: b.created_at + datetime.timedelta(days=7))
    file_count = 1


class BatchFileFactory(factory.django.DjangoModelFactory):
    """The sample note as a file of a batch, checked and waiting for a decision; with
    `proposed_order`, proposed for it (score 98, by its order id in the file name)."""

    class Meta:
        model = BatchFile

    batch = factory.SubFactory(UploadBatchFactory)
    position = factory.Sequence(lambda n: n)
    file_name = "clinical-note.pdf"
    content = SAMPLE_PDF
    original_sha256 = factory.LazyAttribute(lambda f: sha256_hex(bytes(f.content)))
    page_count = 1
    size = factory.LazyAttribute(lambda f: len(f.content))
    preview_png = TINY_PNG
    proposed_order = None
    proposal = factory.LazyAttribute(
        lambda f: (
            [{"order": f.proposed_order.pk, "score": 98, "reasons": ["order id in the file name"]}]
            if f.proposed_order
            else []
        )
    )
