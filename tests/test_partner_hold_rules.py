"""A partner-wide legal hold covers every order of the partner, so it needs the permission one
order's hold needs (orders.set_legal_hold): whoever may edit partners without it sees the hold
read-only, and what they post for it is ignored."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from orders.models import AuditEvent
from tests.factories import UserFactory
from tests.test_partner_tokens import partner_form

pytestmark = pytest.mark.django_db


@pytest.fixture
def partner_editor(db):
    """Staff who may edit partners, but not place a legal hold."""
    user = UserFactory(username="pat", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="orders", codename__in=["view_partner", "change_partner"])
    )
    assert not user.has_perm("orders.set_legal_hold")
    return user


def hold_events():
    actions = (AuditEvent.Action.LEGAL_HOLD_SET, AuditEvent.Action.LEGAL_HOLD_RELEASED)
    return AuditEvent.objects.filter(action__in=actions).count()


def test_without_the_permission_the_partner_hold_is_read_only(client, partner_editor, partner):
    client.force_login(partner_editor)
    url = reverse("admin:orders_partner_change", args=[partner.pk])
    page = client.get(url)
    assert page.status_code == 200
    form = page.context["adminform"].form
    assert "legal_hold" not in form.fields and "legal_hold_reason" not in form.fields
    assert 'name="legal_hold"' not in page.content.decode()

    posted = partner_form(name="Renamed", new_verification_token="", legal_hold="on", legal_hold_reason="LH-9")
    assert client.post(url, posted).status_code == 302
    partner.refresh_from_db()
    assert partner.name == "Renamed"  # the rest of the form is saved
    assert (partner.legal_hold, partner.legal_hold_reason) == (False, "")
    assert hold_events() == 0


def test_without_the_permission_a_hold_in_place_is_not_released(client, partner_editor, partner):
    partner.change_legal_hold(True, "Matter 7")
    partner.save()
    client.force_login(partner_editor)
    url = reverse("admin:orders_partner_change", args=[partner.pk])
    assert client.post(url, partner_form(name=partner.name, new_verification_token="")).status_code == 302
    partner.refresh_from_db()
    assert (partner.legal_hold, partner.legal_hold_reason) == (True, "Matter 7")
    assert hold_events() == 0


def test_with_the_permission_the_hold_is_editable(client, partner_editor, partner):
    partner_editor.user_permissions.add(Permission.objects.get(codename="set_legal_hold"))
    client.force_login(partner_editor)
    url = reverse("admin:orders_partner_change", args=[partner.pk])
    assert "legal_hold" in client.get(url).context["adminform"].form.fields
    posted = partner_form(name=partner.name, new_verification_token="", legal_hold="on", legal_hold_reason="LH-9")
    assert client.post(url, posted).status_code == 302
    partner.refresh_from_db()
    assert (partner.legal_hold, partner.legal_hold_reason) == (True, "LH-9")
    assert hold_events() == 1
