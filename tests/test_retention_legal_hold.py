"""A legal hold, on an order or on a whole partner, keeps everything under it from the purge;
setting and releasing it is done in the admin, needs a reason, and is audited."""

import itertools
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from orders import note_content
from orders.models import AuditEvent, ClinicalNote, InboundMessage, Order, Partner
from orders.retention import purge, purge_preview
from tests.factories import (
    SAMPLE_PDF,
    ClinicalNoteFactory,
    InboundMessageFactory,
    OrderFactory,
    PartnerFactory,
    partner_form,
)

pytestmark = pytest.mark.django_db

NOW = timezone.now()
LONG_AGO = NOW - timedelta(days=3000)
LOG_IDS = itertools.count()


def order_with_everything_due(partner):
    """A closed order whose PDF, message, patient fields and audit rows are all past retention."""
    order = OrderFactory(partner=partner)
    Order.objects.filter(pk=order.pk).update(state=Order.State.FILED, updated_at=LONG_AGO)
    note = ClinicalNoteFactory(order=order)
    message = InboundMessageFactory(partner=partner, dedupe_key=f"log:{next(LOG_IDS)}")
    message.orders.set([order])
    InboundMessage.objects.filter(pk=message.pk).update(last_seen_at=LONG_AGO)
    event = AuditEvent.objects.create(action=AuditEvent.Action.VIEW_ORDER, order=order, created_at=LONG_AGO)
    about_partner = AuditEvent.objects.create(
        action=AuditEvent.Action.PARTNER_CHANGE, object_type="partner", object_id=str(partner.pk), created_at=LONG_AGO
    )
    return order, note, message, event, about_partner


def untouched(order, note, message, event, about_partner=None):
    order.refresh_from_db()
    note.refresh_from_db()
    message.refresh_from_db()
    return (
        order.patient_purged_at is None
        and order.patient_last_name != ""
        and note.content_purged_at is None
        and bytes(note_content.read(note)) == SAMPLE_PDF
        and message.body_purged_at is None
        and len(bytes(message.body)) > 0
        and AuditEvent.objects.filter(pk=event.pk).exists()
        and (about_partner is None or AuditEvent.objects.filter(pk=about_partner.pk).exists())
    )


def test_without_a_hold_the_same_records_are_purged():
    records = order_with_everything_due(PartnerFactory())
    purge(now=NOW)
    assert not untouched(*records)
    order, note, message, event, about_partner = records
    assert note.content_purged_at and message.body_purged_at and order.patient_purged_at
    assert not AuditEvent.objects.filter(pk__in=[event.pk, about_partner.pk]).exists()


def test_an_order_under_hold_keeps_everything():
    partner = PartnerFactory()
    held = order_with_everything_due(partner)
    Order.objects.filter(pk=held[0].pk).update(legal_hold=True, legal_hold_reason="Matter 2026-17")
    other = OrderFactory(partner=partner)
    Order.objects.filter(pk=other.pk).update(state=Order.State.CANCELLED, updated_at=LONG_AGO)
    counts = purge(now=NOW)
    assert untouched(*held[:4])
    other.refresh_from_db()
    assert other.patient_purged_at == NOW, "the partner's other orders are not held"
    assert counts["orders"] == 1


def test_a_partner_under_hold_keeps_everything_of_every_order():
    partner = PartnerFactory(legal_hold=True, legal_hold_reason="Litigation hold, ticket LH-4")
    held = [order_with_everything_due(partner) for _ in range(2)]
    free = order_with_everything_due(PartnerFactory())
    unlinked = InboundMessageFactory(partner=partner, dedupe_key="log:unlinked")
    InboundMessage.objects.filter(pk=unlinked.pk).update(last_seen_at=LONG_AGO)
    assert purge_preview(now=NOW) == {"notes": 1, "messages": 1, "redeliveries": 0, "orders": 1, "audit_events": 2}
    purge(now=NOW)
    assert all(untouched(*records) for records in held)
    assert not untouched(*free)
    unlinked.refresh_from_db()
    assert unlinked.body_purged_at is None


def test_after_the_hold_is_released_the_next_purge_removes_what_is_due():
    partner = PartnerFactory(legal_hold=True, legal_hold_reason="Matter 9")
    records = order_with_everything_due(partner)
    purge(now=NOW)
    assert untouched(*records)
    Partner.objects.filter(pk=partner.pk).update(legal_hold=False)
    purge(now=NOW)
    assert not untouched(*records)


# --- Setting and releasing it in the admin ---------------------------------------------


def hold_events():
    actions = (AuditEvent.Action.LEGAL_HOLD_SET, AuditEvent.Action.LEGAL_HOLD_RELEASED)
    return list(
        AuditEvent.objects.filter(action__in=actions)
        .order_by("id")
        .values_list("action", "object_type", "object_id", "order_id", "actor_username")
    )


def test_an_admin_places_and_releases_a_hold_on_an_order_and_both_are_audited(admin_client, admin_user):
    order = OrderFactory()
    changed_at = Order.objects.values_list("updated_at", flat=True).get(pk=order.pk)
    url = reverse("admin:orders_order_change", args=[order.pk])

    response = admin_client.post(url, {"legal_hold": "on", "legal_hold_reason": "Matter 2026-17"})
    assert response.status_code == 302
    order.refresh_from_db()
    assert (order.legal_hold, order.legal_hold_reason) == (True, "Matter 2026-17")
    assert order.legal_hold_since is not None
    assert hold_events() == [("legal_hold_set", "order", str(order.pk), order.pk, admin_user.username)]

    assert admin_client.post(url, {"legal_hold_reason": "Matter closed"}).status_code == 302
    order.refresh_from_db()
    assert (order.legal_hold, order.legal_hold_since, order.legal_hold_reason) == (False, None, "Matter closed")
    assert [event[0] for event in hold_events()] == ["legal_hold_set", "legal_hold_released"]
    # The hold is not a change of the order: its retention clock stays where it was.
    assert order.updated_at == changed_at
    assert order.patient_last_name


def test_a_hold_without_a_reason_is_refused_and_nothing_is_recorded(admin_client):
    order = OrderFactory()
    response = admin_client.post(reverse("admin:orders_order_change", args=[order.pk]), {"legal_hold": "on"})
    assert response.status_code == 200
    assert "A legal hold needs a reason." in response.content.decode()
    order.refresh_from_db()
    assert not order.legal_hold
    assert hold_events() == []


def test_saving_an_order_without_changing_the_hold_records_no_hold_event(admin_client):
    order = OrderFactory(legal_hold=True, legal_hold_reason="Matter 1")
    url = reverse("admin:orders_order_change", args=[order.pk])
    assert admin_client.post(url, {"legal_hold": "on", "legal_hold_reason": "Matter 1"}).status_code == 302
    assert hold_events() == []


def test_the_order_admin_changes_only_the_hold(admin_client):
    order = OrderFactory()
    url = reverse("admin:orders_order_change", args=[order.pk])
    admin_client.post(url, {"legal_hold": "on", "legal_hold_reason": "Matter 3", "patient_last_name": "Changed"})
    order.refresh_from_db()
    assert order.patient_last_name != "Changed"
    assert order.legal_hold


@pytest.mark.parametrize("role", ["viewer", "uploader"])
def test_staff_without_the_admin_role_cannot_place_a_hold(client, role, request):
    user = request.getfixturevalue(role)
    client.force_login(user)
    order = OrderFactory()
    client.post(reverse("admin:orders_order_change", args=[order.pk]), {"legal_hold": "on", "legal_hold_reason": "x"})
    order.refresh_from_db()
    assert not order.legal_hold
    assert hold_events() == []


def test_an_admin_places_and_releases_a_hold_on_a_partner_and_both_are_audited(admin_client, partner):
    url = reverse("admin:orders_partner_change", args=[partner.pk])
    form = partner_form(name=partner.name, new_verification_token="", legal_hold="on", legal_hold_reason="LH-4")
    assert admin_client.post(url, form).status_code == 302
    partner.refresh_from_db()
    assert (partner.legal_hold, partner.legal_hold_reason) == (True, "LH-4")
    assert hold_events()[-1][:3] == ("legal_hold_set", "partner", str(partner.pk))

    form.pop("legal_hold")
    assert admin_client.post(url, form).status_code == 302
    partner.refresh_from_db()
    assert not partner.legal_hold
    assert [event[0] for event in hold_events()] == ["legal_hold_set", "legal_hold_released"]


def test_a_partner_hold_without_a_reason_is_refused(admin_client, partner):
    records = order_with_everything_due(partner)
    url = reverse("admin:orders_partner_change", args=[partner.pk])
    response = admin_client.post(url, partner_form(name=partner.name, new_verification_token="", legal_hold="on"))
    assert response.status_code == 200
    assert "A legal hold needs a reason." in response.content.decode()
    partner.refresh_from_db()
    assert not partner.legal_hold
    assert hold_events() == []
    # A refused hold protects nothing: the partner's note and the rest that are due still go.
    purge(now=NOW)
    assert not untouched(*records)
    note = ClinicalNote.objects.get(pk=records[1].pk)
    assert note.content_purged_at == NOW and not note.chunks.exists() and bytes(note.content) == b""
