"""Order detail: the patient, the order, and one oldest-first timeline of everything that
happened to it (Redox messages, notes, deliveries and attempts, cancellation, audit)."""

import datetime

import pytest
from django.urls import reverse

from orders.models import AuditEvent, Delivery, DeliveryAttempt, InboundMessage, Order
from tests.factories import ClinicalNoteFactory, DeliveryFactory, InboundMessageFactory, OrderFactory

pytestmark = pytest.mark.django_db

T0 = datetime.datetime(2026, 10, 5, 17, 0, tzinfo=datetime.UTC)


def at(minutes):
    return T0 + datetime.timedelta(minutes=minutes)


def message(order, event_type, minutes, **fields):
    inbound = InboundMessageFactory(
        partner=order.partner,
        dedupe_key=f"{event_type}-{minutes}",
        data_model="Order",
        event_type=event_type,
        event_at=at(minutes),
        received_at=at(minutes),
        body=b"{}",
        status=InboundMessage.Status.PROCESSED,
        **fields,
    )
    inbound.orders.add(order)
    return inbound


@pytest.fixture
def busy_order(partner, uploader):
    order = OrderFactory(partner=partner, first_received_at=at(0))
    message(order, "New", 0)
    message(order, "Update", 10, times_seen=3, last_seen_at=at(12))
    note = ClinicalNoteFactory(order=order, uploaded_by=uploader, uploaded_at=at(20))
    delivery = DeliveryFactory(
        order=order,
        note=note,
        created_by=uploader,
        created_at=at(21),
        status=Delivery.Status.SENT,
        sent_at=at(23),
        redox_log_id="log-sent-0001",
        attempt_count=2,
    )
    DeliveryAttempt.objects.create(
        delivery=delivery, started_at=at(22), outcome=DeliveryAttempt.Outcome.TRANSIENT, error="Redox answered 503"
    )
    DeliveryAttempt.objects.create(
        delivery=delivery,
        started_at=at(23),
        outcome=DeliveryAttempt.Outcome.SENT,
        http_status=200,
        redox_log_id="log-sent-0001",
    )
    message(order, "Cancel", 30)
    order.cancel(when=at(30))
    order.save()
    return order


def test_shows_patient_and_order_fields(client, viewer, busy_order):
    client.force_login(viewer)
    html = client.get(reverse("order_detail", args=[busy_order.pk])).content.decode()
    for text in (
        "Samplepatient, Testy",
        "Feb 29, 1948",
        "MRN0048213",
        "EPI77120",
        "VIS-2026-000731",
        busy_order.ehr_order_id,
        "Request for outside clinical notes",
        "Alex Exampledoc",
        "NPI 1999999984",
        "Routine",
        "Discharge summary and visit notes for waiver billing.",
        "Heart failure, unspecified",
        "I50.9",
        "Cascade Health",
    ):
        assert text in html, text


def test_timeline_is_oldest_first_and_merges_everything(client, viewer, busy_order):
    client.force_login(viewer)
    response = client.get(reverse("order_detail", args=[busy_order.pk]))
    kinds = [entry["kind"] for entry in response.context["timeline"]]
    assert kinds[:8] == ["message", "message", "note", "delivery", "attempt", "attempt", "message", "cancelled"]
    times = [entry["at"] for entry in response.context["timeline"]]
    assert times == sorted(times)


def test_timeline_shows_the_details_staff_need(client, viewer, busy_order):
    client.force_login(viewer)
    html = client.get(reverse("order_detail", args=[busy_order.pk])).content.decode()
    assert "Redox Order.Update" in html
    assert "Seen 3 times" in html
    assert "clinical-note.pdf" in html and "621\xa0bytes" in html and "1 page" in html
    assert busy_order.notes.get().sha256 in html
    assert "Note uploaded</strong> by ursula" in html
    assert "Redox answered 503" in html
    assert "log-sent-0001" in html
    assert '<span class="state state-sent">Sent</span>' in html
    assert "Order cancelled" in html
    assert "takes no new notes" in html


def test_viewing_an_order_writes_an_audit_record_shown_on_its_timeline(client, viewer, busy_order):
    client.force_login(viewer)
    response = client.get(reverse("order_detail", args=[busy_order.pk]), REMOTE_ADDR="10.1.2.3")
    event = AuditEvent.objects.get(action=AuditEvent.Action.VIEW_ORDER)
    assert (event.actor, event.order, event.object_id, event.ip_address) == (
        viewer,
        busy_order,
        str(busy_order.pk),
        "10.1.2.3",
    )
    assert response.context["timeline"][-1]["obj"] == event
    assert "Viewed order" in response.content.decode()


def test_admins_get_a_link_to_the_raw_message(client, admin_user, viewer, busy_order):
    client.force_login(admin_user)
    timeline = client.get(reverse("order_detail", args=[busy_order.pk])).context["timeline"]
    urls = [entry["admin_url"] for entry in timeline if entry["kind"] == "message"]
    first = busy_order.messages.order_by("received_at").first()
    assert urls[0] == reverse("admin:orders_inboundmessage_change", args=[first.pk])

    client.force_login(viewer)
    timeline = client.get(reverse("order_detail", args=[busy_order.pk])).context["timeline"]
    assert all(entry["admin_url"] == "" for entry in timeline if entry["kind"] == "message")


def test_upload_link_only_for_uploaders_and_open_orders(client, viewer, uploader, partner):
    order = OrderFactory(partner=partner)
    upload_url = reverse("upload_note", args=[order.pk])
    client.force_login(viewer)
    assert upload_url not in client.get(reverse("order_detail", args=[order.pk])).content.decode()
    client.force_login(uploader)
    assert upload_url in client.get(reverse("order_detail", args=[order.pk])).content.decode()
    Order.objects.filter(pk=order.pk).update(state=Order.State.CANCELLED)
    assert upload_url not in client.get(reverse("order_detail", args=[order.pk])).content.decode()


def test_pending_delivery_shows_as_waiting(client, viewer, uploader, partner):
    order = OrderFactory(partner=partner, state=Order.State.SENDING)
    DeliveryFactory(order=order, created_by=uploader)
    client.force_login(viewer)
    html = client.get(reverse("order_detail", args=[order.pk])).content.decode()
    assert '<span class="state state-pending">Pending</span>' in html
    assert "Waiting for the delivery worker" in html


def test_failed_delivery_offers_retry_and_abandon_to_managers_only(client, viewer, uploader, partner):
    order = OrderFactory(partner=partner, state=Order.State.FAILED)
    delivery = DeliveryFactory(
        order=order, created_by=uploader, status=Delivery.Status.FAILED, last_error="Redox said no"
    )
    retry_url = reverse("retry_delivery", args=[delivery.pk])
    client.force_login(uploader)
    html = client.get(reverse("order_detail", args=[order.pk])).content.decode()
    assert retry_url in html and reverse("abandon_delivery", args=[delivery.pk]) in html
    assert "Redox said no" in html
    client.force_login(viewer)
    assert retry_url not in client.get(reverse("order_detail", args=[order.pk])).content.decode()


def test_detail_query_count_does_not_grow_with_the_timeline(client, viewer, uploader, partner):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    order = OrderFactory(partner=partner)
    DeliveryFactory(order=order, created_by=uploader, status=Delivery.Status.FAILED)
    client.force_login(viewer)
    client.get(reverse("order_detail", args=[order.pk]))
    with CaptureQueriesContext(connection) as small:
        client.get(reverse("order_detail", args=[order.pk]))
    for _ in range(4):
        DeliveryFactory(order=order, created_by=uploader, status=Delivery.Status.ABANDONED)
    with CaptureQueriesContext(connection) as large:
        client.get(reverse("order_detail", args=[order.pk]))
    assert len(large.captured_queries) == len(small.captured_queries)


def test_missing_order_is_404(client, viewer, db):
    client.force_login(viewer)
    assert client.get(reverse("order_detail", args=[999999])).status_code == 404
