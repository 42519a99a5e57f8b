"""HCOINT's data: partners, what Redox sent us, orders, notes, deliveries, audit.

Single-object rules and state transitions live here as methods; the workflows that
touch several objects (ingesting a message, submitting a note, delivering it) live
in `orders/ingest.py`, `orders/notes.py` and `orders/delivery.py`.
"""

import hashlib
import hmac
import re
from datetime import timedelta

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from hcoint.fields import EncryptedBinaryField
from orders.search import SEARCH_FIELDS, order_search_text
from redox.inbound import ORDER_ID_MAX_CHARS
from redox.verification import token_problem


def hash_token(token):
    """A verification token as stored: SHA-256 hex.

    Tokens are long random secrets that identify the partner, so a fast hash is
    enough to keep them out of a database dump while still letting us find the
    partner a request belongs to.
    """
    return hashlib.sha256(token.encode()).hexdigest()


class PartnerQuerySet(models.QuerySet):
    def for_token(self, token):
        """The active partner whose current or second token is `token`, or None.

        One indexed lookup by the token's SHA-256, not a scan of every partner: the
        webhook asks this on every delivery. What the index lookup's timing could reveal
        is a prefix of the hash, which says nothing usable about the token itself.
        """
        if not token:
            return None
        presented = hash_token(token)
        return (
            self.filter(Q(token_hash=presented) | Q(second_token_hash=presented), is_active=True).order_by("pk").first()
        )


class LegalHold(models.Model):
    """A legal hold: while it is on, the retention purge (orders/retention.py) leaves the record,
    and everything under it, exactly as it is. Set and released in the admin, and audited there."""

    legal_hold = models.BooleanField(
        "under legal hold",
        default=False,
        db_default=False,
        help_text="While on, nothing under it is purged by the retention rules (docs/runbook.md).",
    )
    legal_hold_reason = models.TextField(
        "legal hold reason",
        blank=True,
        default="",
        db_default="",
        help_text="Why, for example a matter or ticket number. Never patient data.",
    )
    legal_hold_since = models.DateTimeField("under legal hold since", null=True, blank=True, editable=False)

    class Meta:
        abstract = True

    def legal_hold_problem(self, hold, reason):
        """Why this hold change must not be made, or ""."""
        if hold and not (reason or "").strip():
            return "A legal hold needs a reason."
        return ""

    def change_legal_hold(self, hold, reason, now=None):
        """Set or release the hold (unsaved); returns the audit action for the change, or None if none."""
        reason = (reason or "").strip()
        action = None
        if hold and not self.legal_hold:
            action = AuditEvent.Action.LEGAL_HOLD_SET
            self.legal_hold_since = now or timezone.now()
        elif not hold and self.legal_hold:
            action = AuditEvent.Action.LEGAL_HOLD_RELEASED
            self.legal_hold_since = None
        self.legal_hold = hold
        # A released hold keeps its last reason on record beside the audit event.
        if reason:
            self.legal_hold_reason = reason
        return action


class Partner(LegalHold):
    """A hospital connection through Redox. Adding one is configuration, not code."""

    class Outbound(models.TextChoices):
        RESULTS = "results", "Results.New"
        NOTES = "notes", "Notes.New"

    name = models.CharField(max_length=200, unique=True)
    is_active = models.BooleanField("active", default=True)
    # Compared with each incoming message's Meta.Test: a test message on a production
    # connection (or the reverse) is logged as `message.environment_mismatch` and alerts.
    is_production = models.BooleanField(
        "production connection",
        default=False,
        help_text="Off for a Redox development or staging connection. Messages whose Meta.Test disagrees "
        "are flagged and alert.",
    )
    # The source_id and source_name columns stay in the database for one release (old
    # containers still read and write them during a deploy); migration 0012 gave them a
    # database default and removed them from the model. A later release drops them.
    destination_id = models.CharField("Redox destination id", max_length=100)
    destination_name = models.CharField("Redox destination name", max_length=200)
    outbound_model = models.CharField(
        "outbound data model", max_length=10, choices=Outbound.choices, default=Outbound.RESULTS
    )
    # The partner's expectation: an order still awaiting a note this many days after it
    # arrived is overdue (highlighted on the worklist, counted in the digest email).
    # db_default: the previous release inserts partners without it while a release migrates.
    note_due_days = models.PositiveSmallIntegerField(
        "note due within (days)",
        default=14,
        db_default=14,
        validators=[MinValueValidator(1), MaxValueValidator(365)],
        help_text="An order still awaiting a note this many days after it arrived is overdue.",
    )
    # Indexed: the webhook finds the partner by the hash of the token it presents.
    token_hash = models.CharField(max_length=64, editable=False, db_index=True)
    second_token_hash = models.CharField(max_length=64, blank=True, editable=False, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PartnerQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def set_tokens(self, token=None, second_token=None, *, clear_second_token=False):
        """Store verification tokens hashed; returns what changed, in words (never the tokens).

        A token not given keeps what is stored, so a rotation adds the next token as
        `second_token` while the current one stays valid, then makes it `token` with
        `clear_second_token` to end the rotation. Ask `token_problems` first: it says
        whether the tokens are fit to store.
        """
        if second_token and clear_second_token:
            raise ValueError("Either set a second token or clear it, not both.")
        changed = []
        if token and self.token_hash != (digest := hash_token(token)):
            self.token_hash = digest
            changed.append("verification token")
        if second_token and self.second_token_hash != (digest := hash_token(second_token)):
            self.second_token_hash = digest
            changed.append("second token")
        elif clear_second_token and self.second_token_hash:
            self.second_token_hash = ""
            changed.append("second token removed")
        return changed

    def token_used_by_another(self, token):
        """Whether another partner already has `token` (a token must identify one partner)."""
        digest = hash_token(token)
        return Partner.objects.filter(Q(token_hash=digest) | Q(second_token_hash=digest)).exclude(pk=self.pk).exists()

    def token_problems(self, token=None, second_token=None, *, clear_second_token=False):
        """Why `set_tokens` with these arguments must not go ahead: {argument name: message}, empty when fine.

        The one token rule, shared by the admin form and configure_partner: a partner has a
        token; each token is fit (redox.verification.token_problem), belongs to no other
        partner, and is not the public demo token outside development; the two tokens differ.
        """
        problems = {}
        if second_token and clear_second_token:
            problems["clear_second_token"] = "Either set a second token or remove it, not both."  # noqa: S105 - a message
        if not token and not self.token_hash:
            problems["token"] = "A new partner needs a verification token."  # noqa: S105 - a message
        for key, value in (("token", token), ("second_token", second_token)):
            if not value:
                continue
            if problem := token_problem(value):
                problems[key] = problem
            elif value == settings.DEMO_VERIFICATION_TOKEN and not settings.DEBUG:
                problems[key] = "This is the public demo token; a real partner needs a token of its own."
            elif self.token_used_by_another(value):
                problems[key] = "Another partner already uses this token."
        final = hash_token(token) if token else self.token_hash
        final_second = (
            "" if clear_second_token else (hash_token(second_token) if second_token else self.second_token_hash)
        )
        if final_second and final_second == final and not problems:
            problems["second_token" if second_token else "token"] = (
                "The second token must differ from the verification token."
            )
        return problems

    def note_overdue_before(self, now):
        """Orders of this partner first received before this moment, still awaiting a note, are overdue."""
        return now - timedelta(days=self.note_due_days)

    def environment_mismatch(self, is_test):
        """How a message's Meta.Test (`is_test`; None when absent) contradicts this connection, or "".

        A test message on a production connection, or a production message on a test
        connection, means the partner or Redox is wired to the wrong environment.
        """
        if is_test is None or bool(is_test) != self.is_production:
            return ""
        if is_test:
            return "A test message (Meta.Test true) arrived on a production connection."
        return "A production message (Meta.Test false) arrived on a test connection."


# What says who the patient is, and clinical text about them: what the retention purge
# empties (orders/retention.py). Kept: ids, dates, states, the partner, the procedure and the
# ordering provider (what billing is reconciled on; none of it says who the patient is).
PATIENT_DETAIL_FIELDS = (
    "patient_identifiers",
    "patient_demographics",
    "identifiers_text",
    "patient_mrn",
    "patient_first_name",
    "patient_middle_name",
    "patient_last_name",
    "patient_dob",
    "patient_sex",
    "visit_number",
    "comments",
    "diagnoses",
)


def identifier_hash(value):
    """The keyed hash an identifier is kept as once the patient fields are removed."""
    key = settings.RETENTION_HASH_KEY.encode()
    return hmac.new(key, value.strip().encode(), hashlib.sha256).hexdigest()


class OrderQuerySet(models.QuerySet):
    def awaiting_note(self):
        """Orders no note has been sent for yet: the worklist's first part, the matcher's
        candidates, the usage page's backlog (`order_state_newest` serves it)."""
        return self.filter(state=Order.State.AWAITING_NOTE)

    def with_identifier(self, value):
        """Orders that hold, or once held, the patient identifier `value` (an MRN, say).

        Live orders match on their identifiers; purged ones on the keyed hash kept instead.
        A rare look-up by staff, so an unindexed scan of the hash column is fine.
        """
        value = (value or "").strip()
        if not value:
            return self.none()
        live = Q(patient_mrn=value) | Q(identifiers_text__regex=rf"(^|\s){re.escape(value)}(\s|$)")
        return self.filter(live | Q(identifier_hashes__contains=identifier_hash(value)))


class Order(LegalHold):
    """One order per (partner, EHR `Order.ID`), as the latest applied event describes it."""

    class State(models.TextChoices):
        AWAITING_NOTE = "awaiting_note", "Awaiting note"
        SENDING = "sending", "Note sending"
        # Stored as "sent" (old containers still write it during a deploy): Redox answered
        # 200, which only means it queued the message. Filed is the done state.
        SENT = "sent", "Accepted by Redox"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        # What Redox's log said became of the accepted note (orders/confirm.py).
        FILED = "filed", "Filed"
        FAILED_DOWNSTREAM = "failed_downstream", "Failed downstream"
        FILTERED = "filtered", "Filtered"
        UNCONFIRMED = "unconfirmed", "Unconfirmed"
        # An imported order whose note went out through the old system: not backlog.
        CLOSED = "closed", "Closed before HCOINT"

    # The states in which nothing more happens to an order: done for the To reconcile page,
    # and the retention clock runs from its last change in one of these (orders/retention.py).
    # Failed downstream, filtered and unconfirmed are not here: staff still have to act on them.
    CLOSED_STATES = (State.FILED, State.CANCELLED, State.CLOSED)

    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="orders")
    # Whole, never cut: an Update or Cancel must find the order its New created. Longer
    # ids are refused at ingest (see ORDER_ID_MAX_CHARS in redox/inbound.py for the bound).
    ehr_order_id = models.CharField("EHR order id", max_length=ORDER_ID_MAX_CHARS)
    state = models.CharField(max_length=20, choices=State.choices, default=State.AWAITING_NOTE)

    # Patient, as Redox sent it (identifiers and demographics are echoed back in Results).
    patient_identifiers = models.JSONField(default=list, blank=True)
    patient_demographics = models.JSONField(default=dict, blank=True)
    identifiers_text = models.TextField(
        blank=True, editable=False, help_text="Every patient identifier, space-separated, for search."
    )
    patient_mrn = models.CharField("MRN", max_length=100, blank=True)
    patient_first_name = models.CharField(max_length=200, blank=True)
    patient_middle_name = models.CharField(max_length=200, blank=True)
    patient_last_name = models.CharField(max_length=200, blank=True)
    patient_dob = models.DateField("date of birth", null=True, blank=True)
    patient_sex = models.CharField(max_length=50, blank=True)
    visit_number = models.CharField(max_length=100, blank=True)
    # The seven searchable fields folded for the search (orders/search.py), kept by save().
    # db_default: the previous release inserts orders without it while a release migrates;
    # `manage.py fill_search_text` fills those afterwards.
    search_text = models.TextField(blank=True, default="", db_default="", editable=False)

    # The order itself.
    procedure_code = models.CharField(max_length=100, blank=True)
    procedure_codeset = models.CharField(max_length=100, blank=True)
    procedure_description = models.CharField(max_length=500, blank=True)
    provider = models.JSONField("ordering provider", default=dict, blank=True)
    provider_npi = models.CharField("provider NPI", max_length=20, blank=True)
    provider_name = models.CharField(max_length=300, blank=True)
    priority = models.CharField(max_length=50, blank=True)
    comments = models.TextField(blank=True)
    diagnoses = models.JSONField(default=list, blank=True)
    redox_status = models.CharField("Redox order status", max_length=50, blank=True)
    transaction_at = models.DateTimeField("ordered at", null=True, blank=True)
    is_test = models.BooleanField("test", default=False)

    first_received_at = models.DateTimeField(default=timezone.now)
    last_event_at = models.DateTimeField(
        null=True, blank=True, help_text="Meta.EventDateTime of the newest event applied."
    )
    cancelled_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Retention (orders/retention.py): when the patient fields were removed, and the keyed
    # hashes (HMAC-SHA256, RETENTION_HASH_KEY) of the identifiers they held, space-separated,
    # so "was this MRN ever here" can still be answered (Order.objects.with_identifier).
    patient_purged_at = models.DateTimeField("patient details removed at", null=True, blank=True, editable=False)
    identifier_hashes = models.TextField(blank=True, default="", db_default="", editable=False)

    objects = OrderQuerySet.as_manager()

    class Meta:
        ordering = ["-first_received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["partner", "ehr_order_id"], name="order_unique_per_partner"),
        ]
        # Plus, on PostgreSQL only, `order_search_trgm`: a GIN trigram index on search_text
        # (migration 0013; outside the model state so SQLite never tries to build it).
        indexes = [
            models.Index(fields=["-first_received_at", "-id"], name="order_newest_first"),
            models.Index(fields=["state", "-first_received_at"], name="order_state_newest"),
            # The retention purge's scan: closed orders whose patient fields are still here.
            models.Index(
                fields=["state", "updated_at"], name="order_patient_kept", condition=Q(patient_purged_at__isnull=True)
            ),
            # The backlog (worklist counts, the Usage page's "still awaiting" and backlog):
            # a small index of the orders awaiting a note that answers those counts alone.
            models.Index(
                fields=["first_received_at", "partner", "is_test"],
                name="order_awaiting",
                condition=Q(state="awaiting_note"),
            ),
            # The usage rollup's check for orders changed since a week was rolled up.
            models.Index(fields=["updated_at"], name="order_updated"),
        ]
        permissions = [
            ("upload_note", "Can upload and send clinical notes"),
            ("manage_delivery", "Can retry or abandon deliveries"),
            ("view_usage", "Can view usage figures"),
            ("set_legal_hold", "Can place or release a legal hold"),
        ]

    def __str__(self):
        # Opaque on purpose: __str__ reaches admin messages and logs.
        return f"Order {self.pk}"

    def save(self, *args, **kwargs):
        update_fields = self.fill_derived(kwargs.get("update_fields"))
        if update_fields is not None:
            kwargs["update_fields"] = update_fields
        super().save(*args, **kwargs)

    def get_absolute_url(self):
        return reverse("order_detail", args=[self.pk])

    def fill_derived(self, update_fields=None):
        """Set the fields other fields decide, as every write of an order must: save(), and
        ingest's one statement (orders/ingest_statement.py), which inserts without save().

        Returns `update_fields` with the derived fields that must be written with them
        (None, for a save of every field, stays None).
        """
        # search_text in step with the fields it folds (ingest, admin, notes).
        self.search_text = order_search_text(self)
        if update_fields is not None and not set(update_fields).isdisjoint(SEARCH_FIELDS):
            update_fields = {*update_fields, "search_text"}
        if self.patient_purged_at is not None and self.has_patient_details:
            # A later event from the EHR brought patient details back after the purge: they
            # are new data, kept (and purged) by the same rule as any other.
            self.patient_purged_at = None
            if update_fields is not None:
                update_fields = {*update_fields, "patient_purged_at"}
        return update_fields

    @property
    def patient_name(self):
        return ", ".join(p for p in (self.patient_last_name, self.patient_first_name) if p)

    @property
    def is_cancelled(self):
        return self.state == self.State.CANCELLED

    @property
    def has_patient_details(self):
        return any(getattr(self, field) for field in PATIENT_DETAIL_FIELDS)

    def cancel(self, when=None):
        """Mark the order cancelled. Nothing is ever deleted."""
        self.state = self.State.CANCELLED
        self.cancelled_at = when or timezone.now()


class InboundMessage(models.Model):
    """Every authenticated delivery from Redox, verbatim, with how we handled it."""

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSED = "processed", "Processed"
        FAILED = "failed", "Failed"
        IGNORED = "ignored", "Ignored"

    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="messages")
    dedupe_key = models.CharField(max_length=200)
    redox_log_id = models.CharField("Redox log id", max_length=100, blank=True, db_index=True)
    data_model = models.CharField(max_length=50, blank=True)
    event_type = models.CharField(max_length=50, blank=True)
    event_at = models.DateTimeField("event time", null=True, blank=True)
    # Encrypted at rest (hcoint/fields.py): compare bodies by body_sha256, never by bytes.
    body = EncryptedBinaryField("raw body")
    # Lets a redelivery be compared with the body without reading it back. db_default,
    # because containers still running the previous release insert rows without it;
    # "" means not yet known (ingest then hashes the body once).
    body_sha256 = models.CharField("body SHA-256", max_length=64, blank=True, default="", db_default="")
    headers = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    times_seen = models.PositiveIntegerField(default=1)
    last_seen_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RECEIVED, db_index=True)
    error = models.TextField(blank=True, help_text="Why processing failed; never patient data.")
    processed_at = models.DateTimeField(null=True, blank=True)
    orders = models.ManyToManyField(Order, related_name="messages", blank=True)
    # Retention (orders/retention.py): when the body and headers (and its redeliveries') were removed.
    body_purged_at = models.DateTimeField("raw body removed at", null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["partner", "dedupe_key"], name="message_unique_per_partner"),
        ]
        indexes = [
            # The retention purge's scan: messages whose body is still here, oldest first.
            models.Index(fields=["last_seen_at"], name="message_body_kept", condition=Q(body_purged_at__isnull=True)),
        ]

    def __str__(self):
        return f"Message {self.pk}"


class Redelivery(models.Model):
    """A message Redox sent again (same dedupe key) with bytes other than those we hold.

    Redox retries with a new `Meta.Logs[0].AttemptID`, or resends changed content under
    the same id. The duplicate changes no order, but every byte Redox sends is kept, so
    the differing body is stored here, verbatim, before the webhook answers.
    """

    message = models.ForeignKey(InboundMessage, on_delete=models.PROTECT, related_name="redeliveries")
    received_at = models.DateTimeField(default=timezone.now)
    body = EncryptedBinaryField("raw body")  # encrypted at rest, as InboundMessage.body
    body_sha256 = models.CharField("body SHA-256", max_length=64)
    headers = models.JSONField(default=dict, blank=True)
    body_purged_at = models.DateTimeField("raw body removed at", null=True, blank=True, editable=False)

    class Meta:
        ordering = ["received_at", "id"]
        verbose_name_plural = "redeliveries"

    def __str__(self):
        return f"Redelivery {self.pk}"


class ClinicalNote(models.Model):
    """An uploaded note. The bytes live in the database: containers have no durable disk.

    The PDF is the clean copy rebuilt from the upload (orders/pdf/rebuild.py): what the
    reviewer sees and what is sent. It is stored in pieces, `NoteChunk` rows, read and
    written through orders/note_content.py so no process holds more than a piece of it at
    once. `sha256` and `size` describe that copy; `original_sha256` identifies the file as
    uploaded, which is not kept. `content` holds the PDF of notes stored before chunks
    (migration 0024 copies it into chunks and leaves it for the previous release's
    containers during that deploy); new notes leave it empty.
    """

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="notes")
    file_name = models.CharField(max_length=255)
    content = EncryptedBinaryField(blank=True, default=b"", editable=False)  # before chunks only; see above
    size = models.PositiveIntegerField()
    sha256 = models.CharField("SHA-256", max_length=64)
    # Empty for notes stored before uploads were rebuilt (their content is the upload).
    # `db_default` lets containers still running the previous release insert notes.
    original_sha256 = models.CharField("SHA-256 of the upload", max_length=64, blank=True, default="", db_default="")
    page_count = models.PositiveIntegerField()
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    uploaded_at = models.DateTimeField(default=timezone.now)
    # Retention (orders/retention.py): when the PDF bytes were removed; the row, its size,
    # hashes and page count stay, so the timeline still says what was sent.
    content_purged_at = models.DateTimeField("PDF removed at", null=True, blank=True, editable=False)

    class Meta:
        ordering = ["uploaded_at", "id"]
        indexes = [
            # The retention purge's scan: notes whose PDF is still here, by order.
            models.Index(fields=["order"], name="note_content_kept", condition=Q(content_purged_at__isnull=True)),
        ]

    def __str__(self):
        return f"Note {self.pk}"

    @property
    def is_purged(self):
        return self.content_purged_at is not None


class NoteChunk(models.Model):
    """One piece of a note's PDF, at most orders.note_content.CHUNK_BYTES, encrypted on its own.

    Why pieces: psycopg2 writes a `bytea` as hex inside the SQL text and reads it back as
    hex, so one 25 MB column cost the web process over ten times the file
    (docs/performance.md, "Large notes"); a piece costs a few times its own size.
    """

    # No index of its own: the unique (note, index) constraint's index leads with it.
    note = models.ForeignKey(ClinicalNote, on_delete=models.CASCADE, related_name="chunks", db_index=False)
    index = models.PositiveIntegerField(help_text="0 is the first piece.")
    data = EncryptedBinaryField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["note", "index"], name="note_chunk_one_per_index")]

    def __str__(self):
        return f"Note {self.note_id} piece {self.index}"


class NotePreview(models.Model):
    """One page of a note as a PNG (orders/previews.py), rendered once and kept here:
    containers have no durable disk, and rendering costs a child process. A page that
    could not be rendered is kept too, with no image and why (`problem`), so it costs one
    child, not one per view. A cache: it goes with its note."""

    note = models.ForeignKey(ClinicalNote, on_delete=models.CASCADE, related_name="previews")
    page_index = models.PositiveIntegerField(help_text="0 is the first page.")
    png = EncryptedBinaryField()
    problem = models.CharField(
        max_length=20,
        blank=True,
        help_text="Why the page could not be rendered (a PreviewError reason).",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["note", "page_index"], name="note_preview_one_per_page"),
        ]

    def __str__(self):
        return f"Note {self.note_id} page {self.page_index + 1}"


class DeliveryQuerySet(models.QuerySet):
    def in_flight(self):
        return self.filter(status__in=Delivery.IN_FLIGHT_STATUSES)

    def accepted(self):
        """Deliveries Redox accepted, whatever it later said of them."""
        return self.filter(status__in=Delivery.ACCEPTED_STATUSES)

    def retrying(self, *, queued_before=None):
        """Deliveries waiting for their next try after a transient failure; with `queued_before`,
        only those queued before then (retrying for long)."""
        retrying = self.filter(status=Delivery.Status.RETRY_SCHEDULED)
        return retrying if queued_before is None else retrying.filter(created_at__lt=queued_before)

    def confirmable(self, now, first_wait):
        """Accepted deliveries with a Redox log id whose next check is due, longest waiting first.

        A row the previous release marked sent has no next_check_at: it is due
        `first_wait` after it was sent.
        """
        due = Q(next_check_at__lte=now) | Q(next_check_at__isnull=True, sent_at__lte=now - first_wait)
        return (
            self.filter(status=Delivery.Status.SENT)
            .exclude(redox_log_id="")
            .filter(due)
            .order_by(Coalesce("next_check_at", "sent_at"), "id")
        )

    def claimable(self, now):
        """What a worker may take now, most urgent first: the Delivery table is the queue.

        Due pending and retry-scheduled deliveries, and SENDING ones whose lease ran out (their
        worker died). First attempts go ahead of retries and re-sends, so a backlog of failing
        deliveries never delays a fresh one; within each group the longest-waiting goes first.
        """
        due = Q(status__in=[Delivery.Status.PENDING, Delivery.Status.RETRY_SCHEDULED]) & (
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
        )
        lease_expired = Q(status=Delivery.Status.SENDING, lease_expires_at__lt=now)
        return self.filter(due | lease_expired).order_by(
            models.Case(models.When(attempt_count=0, then=0), default=1),
            Coalesce("next_attempt_at", "lease_expires_at", "created_at"),
            "id",
        )


class Delivery(models.Model):
    """One send of one note for one order to Redox. The row is the source of truth."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        RETRY_SCHEDULED = "retry_scheduled", "Retry scheduled"
        # Stored as "sent" so containers of the previous release, which write "sent", keep
        # working during a deploy: it always meant Redox's 200, "accepted", never "filed".
        SENT = "sent", "Accepted by Redox"
        FAILED = "failed", "Failed"
        ABANDONED = "abandoned", "Abandoned"
        # Learned from Redox's log of the accepted message (orders/confirm.py), at confirmed_at.
        FILED = "filed", "Filed"
        FAILED_DOWNSTREAM = "failed_downstream", "Failed downstream"
        FILTERED = "filtered", "Filtered"
        # Still not final when REDOX_CONFIRM_WINDOW_DAYS ran out: someone must ask Redox.
        UNCONFIRMED = "unconfirmed", "Unconfirmed"

    IN_FLIGHT_STATUSES = (Status.PENDING, Status.SENDING, Status.RETRY_SCHEDULED)
    # Every status Redox's 200 leads to: the note left us (usage counts these as sent).
    ACCEPTED_STATUSES = (Status.SENT, Status.FILED, Status.FAILED_DOWNSTREAM, Status.FILTERED, Status.UNCONFIRMED)

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="deliveries")
    note = models.OneToOneField(ClinicalNote, on_delete=models.PROTECT, related_name="delivery")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    is_correction = models.BooleanField("corrected resend", default=False)
    correction_reason = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    attempt_count = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sending_started_at = models.DateTimeField(null=True, blank=True)
    # While SENDING: the worker holding the row renews this; once it passes, the worker is
    # presumed dead and any worker may claim the delivery again (orders/worker.py).
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    redox_log_id = models.CharField("Redox log id", max_length=100, blank=True)
    # Confirmation (orders/confirm.py): when Redox's log gave a final status, when it was last
    # asked, when to ask next (empty: at sent_at + REDOX_CONFIRM_FIRST_CHECK_SECONDS) and how
    # often it was asked. db_default, so the previous release's containers can still insert.
    confirmed_at = models.DateTimeField(null=True, blank=True)
    confirmation_checked_at = models.DateTimeField(null=True, blank=True)
    next_check_at = models.DateTimeField(null=True, blank=True)
    confirm_checks = models.PositiveIntegerField(default=0, db_default=0)
    last_error = models.TextField(blank=True)
    abandoned_reason = models.TextField(blank=True)
    abandoned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    # The PDF retention clock of an abandoned note starts here (orders/retention.py).
    abandoned_at = models.DateTimeField(null=True, blank=True)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "deliveries"
        constraints = [
            # The database, not just the form, refuses a second concurrent send.
            models.UniqueConstraint(
                fields=["order"],
                condition=Q(status__in=["pending", "sending", "retry_scheduled"]),
                name="delivery_one_in_flight_per_order",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="delivery_due"),
            # The usage figures count deliveries by week sent and week created.
            models.Index(fields=["status", "sent_at"], name="delivery_status_sent"),
            models.Index(fields=["created_at"], name="delivery_created"),
            # The Usage page's deliveries failed in its window, read live (orders/usage.py).
            models.Index(fields=["status", "created_at"], name="delivery_status_created"),
            # The claim query's second half: sending rows whose lease ran out.
            models.Index(fields=["lease_expires_at"], name="delivery_lease", condition=Q(status="sending")),
            # The confirmer's claim: accepted deliveries by when they are next due.
            models.Index(fields=["next_check_at", "sent_at"], name="delivery_confirm_due", condition=Q(status="sent")),
            # The retention purge: filed and abandoned notes by when their clock started.
            models.Index(fields=["confirmed_at"], name="delivery_filed_at", condition=Q(status="filed")),
            models.Index(fields=["abandoned_at"], name="delivery_abandoned_at", condition=Q(status="abandoned")),
        ]

    def __str__(self):
        return f"Delivery {self.pk}"

    @property
    def in_flight(self):
        return self.status in self.IN_FLIGHT_STATUSES

    # --- State transitions. Callers hold the row lock (select_for_update) and keep the
    # order's state in step (orders/delivery.py); each saves only the fields it changes.

    def claim(self, now, lease_seconds):
        """pending / retry scheduled / lease expired -> sending, leased to the caller until renewed."""
        self.status = self.Status.SENDING
        self.sending_started_at = now
        self.lease_expires_at = now + timedelta(seconds=lease_seconds)
        self.next_attempt_at = None
        self.attempt_count += 1
        self._save("status", "sending_started_at", "lease_expires_at", "next_attempt_at", "attempt_count")

    def renew_lease(self, now, lease_seconds):
        """Push the lease on, if this attempt still holds the row. False once another worker took it."""
        held = Delivery.objects.filter(pk=self.pk, status=self.Status.SENDING, attempt_count=self.attempt_count)
        return held.update(lease_expires_at=now + timedelta(seconds=lease_seconds)) == 1

    def is_held_by(self, attempt_count, sending_started_at):
        """Whether the attempt that claimed the row with these values still owns it."""
        return (
            self.status == self.Status.SENDING
            and self.attempt_count == attempt_count
            and self.sending_started_at == sending_started_at
        )

    def mark_sent(self, now, log_id):
        self.status = self.Status.SENT
        self.sent_at = now
        self.redox_log_id = log_id or ""
        self.last_error = ""
        self._save("status", "sent_at", "redox_log_id", "last_error")

    def record_confirmation(self, status, now):
        """accepted -> filed / failed downstream / filtered / unconfirmed, learned at `now`."""
        self.status = status
        self.confirmed_at = now
        self.confirmation_checked_at = now
        self.next_check_at = None
        self.confirm_checks += 1
        self._save("status", "confirmed_at", "confirmation_checked_at", "next_check_at", "confirm_checks")

    def schedule_check(self, now, next_at):
        """Still accepted (Redox says pending, or could not be asked): ask again at `next_at`."""
        self.confirmation_checked_at = now
        self.next_check_at = next_at
        self.confirm_checks += 1
        self._save("confirmation_checked_at", "next_check_at", "confirm_checks")

    def schedule_retry(self, next_at, error_text):
        self.status = self.Status.RETRY_SCHEDULED
        self.next_attempt_at = next_at
        self.last_error = error_text
        self._save("status", "next_attempt_at", "last_error")

    def mark_failed(self, error_text):
        self.status = self.Status.FAILED
        self.last_error = error_text
        self._save("status", "last_error")

    def queue_now(self, now):
        """Staff "retry now": due at once, as a first attempt would be."""
        self.status = self.Status.PENDING
        self.next_attempt_at = now
        self._save("status", "next_attempt_at")

    def abandon(self, reason, by=None, now=None):
        self.status = self.Status.ABANDONED
        self.abandoned_reason = reason
        self.abandoned_by = by
        self.abandoned_at = now or timezone.now()
        self._save("status", "abandoned_reason", "abandoned_by", "abandoned_at")

    def _save(self, *fields):
        # Whatever the new state, nothing is scheduled or leased unless it says so.
        if self.status != self.Status.SENDING:
            self.lease_expires_at = None
        if self.status != self.Status.RETRY_SCHEDULED and not (
            self.status == self.Status.PENDING and "next_attempt_at" in fields
        ):
            self.next_attempt_at = None
        self.save(update_fields=sorted({*fields, "lease_expires_at", "next_attempt_at"}))


class UsageWeek(models.Model):
    """One settled ISO week's usage figures for one partner (or, `partner` None, all partners
    together), with or without test orders: the rollup the worker keeps (orders/usage_rollup.py,
    `refresh_usage_rollup`) so the Usage page reads closed weeks instead of aggregating
    their orders and deliveries on every view. Only the figures a closed week can no longer
    change are kept; "still awaiting" and "deliveries failed" are always read live.

    Every rolled-up week has its all-partners row (zeros included): it marks the week as
    rolled up, so a week without activity is not mistaken for a week never computed.
    """

    week = models.DateField()  # the Monday, in TIME_ZONE
    include_test = models.BooleanField()
    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    orders_received = models.PositiveIntegerField(default=0)
    notes_sent = models.PositiveIntegerField(default=0)
    median_to_accept = models.DurationField(null=True, blank=True)
    p90_to_accept = models.DurationField(null=True, blank=True)
    # The snapshot's time less ROLLUP_MARGIN: an order saved after it makes its weeks read live.
    computed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["include_test", "week", "partner"],
                name="usage_week_partner_unique",
                condition=Q(partner__isnull=False),
            ),
            models.UniqueConstraint(
                fields=["include_test", "week"], name="usage_week_all_unique", condition=Q(partner__isnull=True)
            ),
        ]

    def __str__(self):
        return f"Usage {self.week} ({self.partner_id or 'all'})"


class DeliveryAttempt(models.Model):
    """One HTTP try of a delivery, successful or not."""

    class Outcome(models.TextChoices):
        SENT = "sent", "Sent"
        TRANSIENT = "transient", "Transient error"
        PERMANENT = "permanent", "Permanent error"

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempts")
    started_at = models.DateTimeField(default=timezone.now)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    http_status = models.PositiveIntegerField("HTTP status", null=True, blank=True)
    redox_log_id = models.CharField("Redox log id", max_length=100, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["started_at", "id"]

    def __str__(self):
        return f"Attempt {self.pk}"


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise PermissionError("Audit events are append-only.")

    def delete(self):
        raise PermissionError("Audit events are append-only.")

    def delete_expired(self, now=None):
        """The one deletion the trail allows: rows older than AUDIT_RETENTION_DAYS, for the
        retention purge (orders/retention.py). Younger rows in `self` are left alone, whoever
        calls this. Returns how many rows were deleted."""
        cutoff = (now or timezone.now()) - timedelta(days=settings.AUDIT_RETENTION_DAYS)
        # QuerySet.delete itself, which this class refuses everywhere else.
        deleted, _ = models.QuerySet.delete(self.filter(created_at__lt=cutoff))
        return deleted


class AuditEvent(models.Model):
    """Who did what to which object, when, from where. Append-only; never patient data."""

    class Action(models.TextChoices):
        SIGN_IN = "sign_in", "Signed in"
        SIGN_IN_FAILED = "sign_in_failed", "Sign-in failed"
        SIGN_OUT = "sign_out", "Signed out"
        VIEW_ORDER = "view_order", "Viewed order"
        VIEW_PDF = "view_pdf", "Viewed PDF"
        DOWNLOAD_PDF = "download_pdf", "Downloaded PDF"
        UPLOAD_NOTE = "upload_note", "Uploaded note"
        SEND_NOTE = "send_note", "Sent note"
        RESEND_NOTE = "resend_note", "Sent corrected note"
        RETRY_DELIVERY = "retry_delivery", "Retried delivery"
        ABANDON_DELIVERY = "abandon_delivery", "Abandoned delivery"
        VIEW_MESSAGE = "view_message", "Viewed raw message"
        PARTNER_CHANGE = "partner_change", "Changed partner"
        OIDC_SIGN_IN = "oidc_sign_in", "Signed in with company sign-in"
        MFA_ENROLLED = "mfa_enrolled", "Enrolled a second factor"
        MFA_REMOVED = "mfa_removed", "Removed a second factor"
        MFA_FAILED = "mfa_failed", "Second factor failed"
        RECOVERY_CODE_USED = "recovery_code_used", "Used a recovery code"
        LEGAL_HOLD_SET = "legal_hold_set", "Placed a legal hold"
        LEGAL_HOLD_RELEASED = "legal_hold_released", "Released a legal hold"

    class Outcome(models.TextChoices):
        SUCCESS = "success", "Success"
        FAILURE = "failure", "Failure"
        DENIED = "denied", "Denied"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # PROTECT, not SET_NULL: deleting a user would otherwise rewrite their audit rows.
    # Users who leave are deactivated; the admin shows why a deletion is refused.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    actor_username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=30, choices=Action.choices)
    object_type = models.CharField(max_length=50, blank=True)
    object_id = models.CharField(max_length=50, blank=True)
    order = models.ForeignKey(Order, on_delete=models.PROTECT, null=True, blank=True, related_name="audit_events")
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.SUCCESS)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self):
        return f"{self.get_action_display()} ({self.outcome})"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise PermissionError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit events are append-only.")


class ThrottleCount(models.Model):
    """Failures one client address had in one time window, per throttle (hcoint/throttle.py).

    A table, not a per-process cache: gunicorn runs several processes in several
    containers, and a limit each of them counted alone would be that many times higher.
    """

    scope = models.CharField(max_length=40)
    key = models.CharField(max_length=64)
    window_start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "key", "window_start"], name="throttle_one_row_per_window"),
        ]

    def __str__(self):
        return f"{self.scope} {self.window_start:%Y-%m-%d %H:%M}: {self.count}"


class DigestRun(models.Model):
    """One row per digest email: the last period it was decided for (orders/digest.py).

    The worker that sends a digest holds this row (`SELECT … FOR UPDATE SKIP LOCKED`) while
    it decides and sends, and records the period before it commits, so with several workers
    each period's email goes out once.
    """

    name = models.CharField(max_length=40, unique=True)
    # The start of the last period decided (sent, or nothing was waiting); null: never.
    period_start = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    recipients = models.PositiveIntegerField(default=0)

    def __str__(self):
        return f"Digest {self.name}"


class UploadBatch(models.Model):
    """Many PDFs dropped at once by one uploader (orders/batches.py), kept until sent or expired.

    A batch lives in the database, like notes (containers have no durable disk), so it
    survives a page reload; the worker deletes it, its files and their bytes at `expires_at`
    (UPLOAD_BATCH_EXPIRY_DAYS after it was made), whatever was left unconfirmed.
    """

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    # How many files the upload held: fewer rows than this means the upload was cut short.
    file_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "upload batches"

    def __str__(self):
        return f"Batch {self.pk}"


class BatchFile(models.Model):
    """One file of a batch: the gate's clean copy, what matching proposed, and what a person decided.

    The text read from the file (patient data) is not kept: only the proposal made from it
    (candidate order ids, scores and reasons). Bytes and preview are dropped once the file
    is sent (the note holds them) or skipped.
    """

    class Decision(models.TextChoices):
        PENDING = "pending", "Waiting for a decision"
        CONFIRMED = "confirmed", "Confirmed"
        SKIPPED = "skipped", "Skipped"
        SENT = "sent", "Sent"
        REFUSED = "refused", "Refused"

    batch = models.ForeignKey(UploadBatch, on_delete=models.CASCADE, related_name="files")
    position = models.PositiveIntegerField(default=0)
    file_name = models.CharField(max_length=255)
    content = EncryptedBinaryField(blank=True, default=b"")
    original_sha256 = models.CharField("SHA-256 of the upload", max_length=64, blank=True)
    page_count = models.PositiveIntegerField(null=True, blank=True)
    size = models.PositiveIntegerField("size of the upload", default=0)
    preview_png = EncryptedBinaryField(blank=True, default=b"")
    # Why there is no preview, in plain words (empty when there is one).
    preview_problem = models.CharField(max_length=300, blank=True)
    # [{"order": id, "score": 0-100, "reasons": [...]}], best first (orders/matching.py).
    proposal = models.JSONField(default=list, blank=True)
    proposed_order = models.ForeignKey(Order, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    chosen_order = models.ForeignKey(Order, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    decision = models.CharField(max_length=10, choices=Decision.choices, default=Decision.PENDING)
    # Refused by the PDF gate (decision refused) or by the send rules (still pending): plain words.
    problem = models.TextField(blank=True)
    reason = models.CharField("reason code", max_length=40, blank=True)
    note = models.OneToOneField(
        ClinicalNote, on_delete=models.SET_NULL, null=True, blank=True, related_name="batch_file"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["batch", "position", "id"]

    def __str__(self):
        return f"Batch file {self.pk}"

    # Still waiting for a person (a confirmed row whose send did not happen stays open too).
    OPEN_DECISIONS = (Decision.PENDING, Decision.CONFIRMED)

    @property
    def is_open(self):
        return self.decision in self.OPEN_DECISIONS

    def mark_sent(self, note, now):
        """Done with: the note holds the bytes now."""
        self.decision = self.Decision.SENT
        self.note = note
        self.chosen_order_id = note.order_id
        self.content = b""
        self.preview_png = b""
        self.problem = ""
        self.reason = ""
        self.decided_at = now
        fields = ["decision", "note", "chosen_order", "content", "preview_png", "problem", "reason", "decided_at"]
        self.save(update_fields=fields)
