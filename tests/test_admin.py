"""The back office: every model is shown, raw messages are read-only and audited, the audit trail is untouchable."""

import pytest
from django.urls import reverse

from orders.ingest import message_ingest
from orders.models import AuditEvent, DeliveryAttempt, InboundMessage, Order
from tests.conftest import PARTNER_TOKEN, sample_bytes
from tests.factories import DeliveryFactory, UserFactory


@pytest.fixture
def superuser_client(client, db):
    user = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


def ingest(partner, name):
    return message_ingest(partner=partner, body=sample_bytes(name), headers={}).message


def note_and_delivery(order, user):
    delivery = DeliveryFactory(order=order, created_by=user, failed=True)
    DeliveryAttempt.objects.create(
        delivery=delivery, outcome=DeliveryAttempt.Outcome.PERMANENT, http_status=400, error="Redox said no"
    )
    return delivery.note, delivery


@pytest.mark.parametrize("model", ["partner", "order", "inboundmessage", "clinicalnote", "delivery", "auditevent"])
def test_every_changelist_opens_for_an_admin(admin_client, partner, admin_user, model):
    order = ingest(partner, "order-new.json").orders.get()
    note_and_delivery(order, admin_user)
    response = admin_client.get(reverse(f"admin:orders_{model}_changelist"))
    assert response.status_code == 200


def test_a_failed_message_shows_in_the_changelist_filtered_by_failed(admin_client, client, partner):
    ingest(partner, "order-new.json")
    client.post(
        "/redox/webhook/",
        b"{broken json",
        content_type="application/json",
        headers={"verification-token": PARTNER_TOKEN},
    )
    failed = InboundMessage.objects.get(status=InboundMessage.Status.FAILED)
    processed = InboundMessage.objects.get(status=InboundMessage.Status.PROCESSED)
    response = admin_client.get(reverse("admin:orders_inboundmessage_changelist"), {"status__exact": "failed"})
    assert response.status_code == 200
    listed = list(response.context["cl"].result_list)
    assert listed == [failed]
    assert processed not in listed
    assert reverse("admin:orders_inboundmessage_change", args=[failed.pk]).encode() in response.content


def test_messages_can_be_found_by_order_id_and_by_redox_log_id(admin_client, partner):
    new = ingest(partner, "order-new.json")
    grouped = ingest(partner, "order-grouped.json")
    url = reverse("admin:orders_inboundmessage_changelist")
    assert list(admin_client.get(url, {"q": "157720312"}).context["cl"].result_list) == [grouped]
    assert list(admin_client.get(url, {"q": "0b5f2c1e-6a3d-4e8f-9b7a-1c2d3e4f5a60"}).context["cl"].result_list) == [new]


def test_messages_can_be_filtered_by_partner_and_date(admin_client, partner, second_partner):
    ingest(partner, "order-new.json")
    other = message_ingest(partner=second_partner, body=sample_bytes("order-new.json"), headers={}).message
    url = reverse("admin:orders_inboundmessage_changelist")
    response = admin_client.get(
        url, {"partner__id__exact": second_partner.pk, "received_at__year": other.received_at.year}
    )
    assert list(response.context["cl"].result_list) == [other]


def test_opening_a_raw_message_shows_the_decoded_body_read_only_and_is_audited(admin_client, partner, admin_user):
    body = '{"Meta": {"DataModel": "Order"}, "Note": "Zoë <script>alert(1)</script>"}'.encode()
    message = message_ingest(partner=partner, body=body, headers={}).message
    response = admin_client.get(reverse("admin:orders_inboundmessage_change", args=[message.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Zoë" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)</script>" not in html
    assert 'name="_save"' not in html
    event = AuditEvent.objects.get(action=AuditEvent.Action.VIEW_MESSAGE)
    assert event.actor == admin_user
    assert event.object_id == str(message.pk)


def test_a_message_cannot_be_added_changed_or_deleted(admin_client, partner):
    message = ingest(partner, "order-new.json")
    assert admin_client.get(reverse("admin:orders_inboundmessage_add")).status_code == 403
    response = admin_client.post(reverse("admin:orders_inboundmessage_change", args=[message.pk]), {"status": "failed"})
    assert response.status_code == 403
    assert admin_client.post(reverse("admin:orders_inboundmessage_delete", args=[message.pk])).status_code == 403
    message.refresh_from_db()
    assert message.status == InboundMessage.Status.PROCESSED


def test_opening_an_order_is_audited_and_lists_its_messages(admin_client, partner):
    message = ingest(partner, "order-new.json")
    order = message.orders.get()
    response = admin_client.get(reverse("admin:orders_order_change", args=[order.pk]))
    assert response.status_code == 200
    assert reverse("admin:orders_inboundmessage_change", args=[message.pk]).encode() in response.content
    assert AuditEvent.objects.filter(action=AuditEvent.Action.VIEW_ORDER, order=order).count() == 1


def test_orders_can_be_found_by_ehr_order_id(admin_client, partner):
    ingest(partner, "order-grouped.json")
    response = admin_client.get(reverse("admin:orders_order_changelist"), {"q": "157720313"})
    assert [o.ehr_order_id for o in response.context["cl"].result_list] == ["157720313"]


def test_the_clinical_note_page_does_not_carry_the_pdf(admin_client, partner, admin_user):
    order = ingest(partner, "order-new.json").orders.get()
    note, _ = note_and_delivery(order, admin_user)
    response = admin_client.get(reverse("admin:orders_clinicalnote_change", args=[note.pk]))
    assert response.status_code == 200
    assert "content" not in response.context["adminform"].form.fields
    assert b"%PDF" not in response.content
    assert b"clinical-note.pdf" in response.content


def test_a_delivery_shows_its_attempts_read_only(admin_client, partner, admin_user):
    order = ingest(partner, "order-new.json").orders.get()
    _, delivery = note_and_delivery(order, admin_user)
    response = admin_client.get(reverse("admin:orders_delivery_change", args=[delivery.pk]))
    assert response.status_code == 200
    assert b"Redox said no" in response.content
    assert b"delivery attempts" in response.content.lower()
    assert 'name="_save"' not in response.content.decode()


def test_nobody_can_add_change_or_delete_audit_events(superuser_client, partner):
    ingest(partner, "order-new.json")
    event = AuditEvent.objects.create(action=AuditEvent.Action.SIGN_IN)
    assert superuser_client.get(reverse("admin:orders_auditevent_changelist")).status_code == 200
    assert superuser_client.get(reverse("admin:orders_auditevent_add")).status_code == 403
    change_url = reverse("admin:orders_auditevent_change", args=[event.pk])
    assert superuser_client.post(change_url, {"action": "sign_out"}).status_code == 403
    assert superuser_client.post(reverse("admin:orders_auditevent_delete", args=[event.pk])).status_code == 403
    superuser_client.post(
        reverse("admin:orders_auditevent_changelist"), {"action": "delete_selected", "_selected_action": [event.pk]}
    )
    assert AuditEvent.objects.filter(pk=event.pk, action=AuditEvent.Action.SIGN_IN).exists()


def test_staff_without_the_admin_role_cannot_see_raw_messages(client, partner):
    user = UserFactory(username="stan", role="uploader", is_staff=True)
    client.force_login(user)
    message = ingest(partner, "order-new.json")
    assert client.get(reverse("admin:orders_inboundmessage_change", args=[message.pk])).status_code == 403
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.VIEW_MESSAGE).exists()


def test_orders_are_not_deleted_from_the_admin(superuser_client, partner):
    order = ingest(partner, "order-new.json").orders.get()
    assert superuser_client.post(reverse("admin:orders_order_delete", args=[order.pk])).status_code == 403
    assert Order.objects.filter(pk=order.pk).exists()
