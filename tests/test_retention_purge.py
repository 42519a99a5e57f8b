"""The retention purge removes exactly what the settings say, one day either side of each
boundary, and running it again removes nothing (orders/retention.py)."""

from datetime import timedelta

import pytest
from django.conf import settings as loaded_settings
from django.utils import timezone

from orders import note_content
from orders.models import (
    AuditEvent,
    ClinicalNote,
    Delivery,
    InboundMessage,
    Order,
    Redelivery,
    identifier_hash,
)
from orders.retention import purge, purge_preview
from orders.search import order_search_text, search_orders
from tests.conftest import events, settings_defaults
from tests.factories import (
    SAMPLE_PDF,
    ClinicalNoteFactory,
    DeliveryFactory,
    InboundMessageFactory,
    OrderFactory,
)

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def ago(days):
    return NOW - timedelta(days=days)


# Days kept: PDFs, raw payloads, patient fields, audit rows (six years and two leap days).
RETENTION = {
    "RETENTION_PDF_DAYS": 90,
    "RETENTION_PAYLOAD_DAYS": 365,
    "RETENTION_PATIENT_DAYS": 365,
    "AUDIT_RETENTION_DAYS": 2192,
}


def test_the_retention_defaults_are_the_policys(monkeypatch):
    assert settings_defaults(monkeypatch, *RETENTION) == RETENTION
    # The boundaries below are these very settings, as this run loaded them, not an override.
    assert {name: getattr(loaded_settings, name) for name in RETENTION} == RETENTION


def order_last_changed(order, days, state=None):
    """The order as if its last change (in `state`) was `days` ago: the retention clock of a closed order."""
    Order.objects.filter(pk=order.pk).update(state=state or order.state, updated_at=ago(days))
    order.refresh_from_db()
    return order


def closed_order(days, state=Order.State.FILED, **kwargs):
    return order_last_changed(OrderFactory(**kwargs), days, state)


def filed_delivery(days, order=None):
    order = order or OrderFactory(state=Order.State.FILED)
    return DeliveryFactory(order=order, sent=True, status=Delivery.Status.FILED, confirmed_at=ago(days))


def pdf_kept(note):
    note.refresh_from_db()
    return note.content_purged_at is None and bytes(note_content.read(note)) == SAMPLE_PDF


def pdf_removed(note):
    note.refresh_from_db()
    return note.content_purged_at == NOW and not note.chunks.exists() and bytes(note.content) == b""


def patient_kept(order):
    order.refresh_from_db()
    return order.patient_purged_at is None and order.patient_last_name and order.patient_dob


# --- PDFs ---------------------------------------------------------------------------


@pytest.mark.parametrize(("days", "removed"), [(89, False), (91, True)])
def test_a_filed_note_keeps_its_pdf_for_the_retention_days_after_it_was_filed(days, removed):
    note = filed_delivery(days).note
    purge(now=NOW)
    assert pdf_removed(note) if removed else pdf_kept(note)


@pytest.mark.parametrize(("days", "removed"), [(89, False), (91, True)])
def test_an_abandoned_note_keeps_its_pdf_for_the_retention_days_after_it_was_abandoned(days, removed):
    note = DeliveryFactory(abandoned=True, abandoned_at=ago(days)).note
    purge(now=NOW)
    assert pdf_removed(note) if removed else pdf_kept(note)


@pytest.mark.parametrize("state", [Order.State.FILED, Order.State.CANCELLED, Order.State.CLOSED])
@pytest.mark.parametrize(("days", "removed"), [(89, False), (91, True)])
def test_a_note_never_sent_keeps_its_pdf_for_the_retention_days_after_its_order_closed(state, days, removed):
    note = ClinicalNoteFactory(order=closed_order(days, state))
    purge(now=NOW)
    assert pdf_removed(note) if removed else pdf_kept(note)


def test_a_note_superseded_by_a_filed_resend_goes_with_its_order():
    order = OrderFactory()
    failed = DeliveryFactory(order=order, sent=True, status=Delivery.Status.FAILED_DOWNSTREAM, confirmed_at=ago(200))
    filed = filed_delivery(91, order=order)
    order_last_changed(order, 91, Order.State.FILED)
    purge(now=NOW)
    assert pdf_removed(failed.note)
    assert pdf_removed(filed.note)


@pytest.mark.parametrize(
    "state", [Order.State.FAILED_DOWNSTREAM, Order.State.FILTERED, Order.State.UNCONFIRMED, Order.State.FAILED]
)
def test_an_order_staff_still_have_to_act_on_keeps_its_pdfs_however_old(state):
    order = OrderFactory()
    delivery = DeliveryFactory(order=order, sent=True, status=state, confirmed_at=ago(1000))
    order_last_changed(order, 1000, state)
    purge(now=NOW)
    assert pdf_kept(delivery.note)


@pytest.mark.parametrize("status", [Delivery.Status.PENDING, Delivery.Status.RETRY_SCHEDULED, Delivery.Status.SENDING])
def test_a_note_on_its_way_keeps_its_pdf_even_on_an_order_closed_long_ago(status):
    order = OrderFactory()
    delivery = DeliveryFactory(order=order, status=status)
    order_last_changed(order, 1000, Order.State.CANCELLED)
    purge(now=NOW)
    assert pdf_kept(delivery.note)


# --- Raw payloads ---------------------------------------------------------------------


def message_for(*orders, last_seen_days):
    message = InboundMessageFactory(partner=orders[0].partner if orders else None, headers={"user-agent": "Redox"})
    message.orders.set(orders)
    InboundMessage.objects.filter(pk=message.pk).update(last_seen_at=ago(last_seen_days))
    return message


def body_kept(message):
    message.refresh_from_db()
    return message.body_purged_at is None and len(bytes(message.body)) > 0 and message.headers


def body_removed(message):
    message.refresh_from_db()
    return message.body_purged_at == NOW and bytes(message.body) == b"" and message.headers == {}


@pytest.mark.parametrize(("days", "removed"), [(364, False), (366, True)])
def test_a_message_and_its_redeliveries_keep_their_bodies_for_the_retention_days_after_the_order_closed(days, removed):
    message = message_for(closed_order(days), last_seen_days=days)
    redelivery = Redelivery.objects.create(
        message=message, body=b'{"again": 1}', body_sha256="0" * 64, headers={"a": 1}
    )
    purge(now=NOW)
    redelivery.refresh_from_db()
    if removed:
        assert body_removed(message)
        assert (bytes(redelivery.body), redelivery.headers, redelivery.body_purged_at) == (b"", {}, NOW)
    else:
        assert body_kept(message)
        assert bytes(redelivery.body) == b'{"again": 1}'


def test_a_message_that_touched_an_open_order_keeps_its_body():
    message = message_for(closed_order(1000), OrderFactory(), last_seen_days=1000)
    purge(now=NOW)
    assert body_kept(message)


def test_a_message_seen_again_recently_keeps_its_body():
    message = message_for(closed_order(1000), last_seen_days=364)
    purge(now=NOW)
    assert body_kept(message)


@pytest.mark.parametrize(("days", "removed"), [(364, False), (366, True)])
def test_a_message_that_touched_no_order_keeps_its_body_for_the_retention_days(partner, days, removed):
    message = InboundMessageFactory(partner=partner, headers={"user-agent": "Redox"})
    InboundMessage.objects.filter(pk=message.pk).update(last_seen_at=ago(days))
    purge(now=NOW)
    assert body_removed(message) if removed else body_kept(message)


# --- Patient fields ---------------------------------------------------------------------


@pytest.mark.parametrize(("days", "removed"), [(364, False), (366, True)])
def test_a_closed_order_keeps_its_patient_fields_for_the_retention_days(days, removed):
    order = closed_order(days)
    purge(now=NOW)
    assert not patient_kept(order) if removed else patient_kept(order)


def test_an_order_not_closed_keeps_its_patient_fields_however_old():
    order = order_last_changed(OrderFactory(), 1000, Order.State.AWAITING_NOTE)
    purge(now=NOW)
    assert patient_kept(order)


def test_a_purged_order_keeps_ids_dates_and_states_and_only_hashes_of_its_identifiers():
    order = closed_order(366)
    mrn, visit, ids = order.patient_mrn, order.visit_number, [i["ID"] for i in order.patient_identifiers]
    before = Order.objects.values().get(pk=order.pk)
    purge(now=NOW)
    after = Order.objects.values().get(pk=order.pk)

    for field in ("id", "partner_id", "ehr_order_id", "state", "first_received_at", "updated_at", "procedure_code"):
        assert after[field] == before[field]
    assert after["patient_purged_at"] == NOW
    for field in ("patient_mrn", "patient_first_name", "patient_middle_name", "patient_last_name", "patient_sex"):
        assert after[field] == ""
    assert after["patient_dob"] is None
    assert (after["patient_identifiers"], after["patient_demographics"], after["diagnoses"]) == ([], {}, [])
    assert after["identifiers_text"] == after["visit_number"] == after["comments"] == ""
    # Only the EHR order id is left to search by.
    assert after["search_text"] == order_search_text(Order(ehr_order_id=before["ehr_order_id"]))
    # Nothing the patient could be named by is left anywhere in the row, only the keyed hashes.
    row = " ".join(str(value) for value in after.values())
    for value in [mrn, visit, *ids, before["patient_last_name"]]:
        assert value not in row
    assert identifier_hash(mrn) in after["identifier_hashes"]
    assert identifier_hash(visit) in after["identifier_hashes"]


def test_was_this_mrn_ever_here_is_answered_before_and_after_the_purge():
    purged, live = closed_order(366), closed_order(1)
    mrn = purged.patient_mrn
    assert set(Order.objects.with_identifier(mrn)) == {purged, live}
    purge(now=NOW)
    assert set(Order.objects.with_identifier(mrn)) == {purged, live}
    assert set(Order.objects.with_identifier(f" {mrn} ")) == {purged, live}
    assert not Order.objects.with_identifier(mrn + "9").exists()
    assert not Order.objects.with_identifier("").exists()


def test_every_patient_detail_field_is_emptied_and_a_late_comment_is_purged_again():
    order = closed_order(366)
    purge(now=NOW)
    order.refresh_from_db()
    assert not order.has_patient_details
    assert order.comments == "" and order.diagnoses == [] and order.patient_dob is None
    # A later EHR event brings back only clinical text: it is new data, purged by the same rule.
    order.comments = "Follow-up requested"
    order.save(update_fields=["comments"])
    order.refresh_from_db()
    assert order.patient_purged_at is None


def test_a_purged_order_is_still_found_by_its_ehr_order_id():
    order = closed_order(366)
    purge(now=NOW)
    assert list(search_orders(Order.objects.all(), order.ehr_order_id)) == [order]
    assert not search_orders(Order.objects.all(), "Samplepatient").exists()


def test_patient_details_that_arrive_again_after_the_purge_are_purged_again_and_old_hashes_kept():
    order = closed_order(366)
    old_mrn = order.patient_mrn
    purge(now=NOW)
    order.refresh_from_db()
    # A late event from the EHR (the ingest saves the order) brings details back under a new MRN.
    order.patient_mrn, order.patient_last_name = "NEW-MRN-7", "Latearrival"
    order.save()
    order.refresh_from_db()
    assert order.patient_purged_at is None, "the page must not claim removed details that are there"
    order_last_changed(order, 366)
    assert purge(now=NOW)["orders"] == 1
    order.refresh_from_db()
    assert (order.patient_mrn, order.patient_last_name) == ("", "")
    assert set(Order.objects.with_identifier(old_mrn)) == set(Order.objects.with_identifier("NEW-MRN-7")) == {order}


def test_the_hash_depends_on_the_key(settings):
    first = identifier_hash("MRN-1")
    settings.RETENTION_HASH_KEY = "another key"
    assert identifier_hash("MRN-1") != first


# --- Audit rows -----------------------------------------------------------------------


@pytest.mark.parametrize(("days", "removed"), [(2191, False), (2193, True)])
def test_audit_events_are_kept_six_years(days, removed):
    event = AuditEvent.objects.create(action=AuditEvent.Action.SIGN_IN, created_at=ago(days))
    recent = AuditEvent.objects.create(action=AuditEvent.Action.SIGN_IN)
    purge(now=NOW)
    assert AuditEvent.objects.filter(pk=event.pk).exists() is not removed
    assert AuditEvent.objects.filter(pk=recent.pk).exists()


def test_the_trails_one_deletion_path_never_removes_a_younger_row():
    young = AuditEvent.objects.create(action=AuditEvent.Action.SIGN_IN, created_at=ago(2191))
    assert AuditEvent.objects.filter(pk=young.pk).delete_expired(now=NOW) == 0
    assert AuditEvent.objects.filter(pk=young.pk).exists()
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=young.pk).delete()


# --- Running it -----------------------------------------------------------------------


def everything_due():
    closed = closed_order(1000)
    ClinicalNoteFactory(order=closed)
    filed_delivery(91)
    message_for(closed, last_seen_days=1000)
    AuditEvent.objects.create(action=AuditEvent.Action.SIGN_IN, created_at=ago(3000))
    return closed


def test_a_second_run_removes_nothing(caplog):
    everything_due()
    first = purge(now=NOW)
    assert first == {"notes": 2, "messages": 1, "orders": 1, "audit_events": 1}
    snapshot = [list(model.objects.values().order_by("pk")) for model in (ClinicalNote, InboundMessage, Order)]
    assert purge(now=NOW + timedelta(minutes=5)) == {"notes": 0, "messages": 0, "orders": 0, "audit_events": 0}
    assert [list(model.objects.values().order_by("pk")) for model in (ClinicalNote, InboundMessage, Order)] == snapshot
    logged = events(caplog, "retention.purged")
    assert [(r.notes, r.messages, r.orders, r.audit_events) for r in logged] == [(2, 1, 1, 1), (0, 0, 0, 0)]


def test_the_preview_counts_what_the_purge_then_removes_and_changes_nothing():
    everything_due()
    snapshot = [list(model.objects.values().order_by("pk")) for model in (ClinicalNote, InboundMessage, Order)]
    preview = purge_preview(now=NOW)
    assert preview == {"notes": 2, "messages": 1, "redeliveries": 0, "orders": 1, "audit_events": 1}
    assert [list(model.objects.values().order_by("pk")) for model in (ClinicalNote, InboundMessage, Order)] == snapshot
    assert AuditEvent.objects.filter(created_at__lt=ago(2192)).count() == 1
    removed = purge(now=NOW)
    assert removed == {kind: count for kind, count in preview.items() if kind != "redeliveries"}


def test_the_work_is_done_in_batches_and_a_bounded_run_leaves_the_rest_for_the_next():
    notes = [filed_delivery(91).note for _ in range(5)]
    assert purge(now=NOW, batch_size=2, max_batches=1)["notes"] == 2
    assert sum(pdf_removed(note) for note in notes) == 2
    assert purge(now=NOW, batch_size=2)["notes"] == 3
    assert all(pdf_removed(note) for note in notes)
