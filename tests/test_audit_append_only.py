"""Audit events are append-only: the app can add them but not change or delete them."""

import pytest
from django.contrib.auth.models import User
from django.db.models import ProtectedError
from django.urls import get_resolver, reverse

from orders.audit import audit_record
from orders.models import AuditEvent
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def event(viewer):
    return audit_record(user=viewer, action=AuditEvent.Action.VIEW_ORDER)


def test_saving_an_existing_event_is_refused(event):
    event.outcome = AuditEvent.Outcome.FAILURE
    with pytest.raises(PermissionError):
        event.save()
    event.refresh_from_db()
    assert event.outcome == AuditEvent.Outcome.SUCCESS


def test_deleting_an_event_is_refused(event):
    with pytest.raises(PermissionError):
        event.delete()
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_bulk_update_is_refused(event):
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).update(outcome=AuditEvent.Outcome.DENIED)
    assert AuditEvent.objects.get(pk=event.pk).outcome == AuditEvent.Outcome.SUCCESS


def test_bulk_delete_is_refused(event):
    with pytest.raises(PermissionError):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.count() == 1


def test_no_staff_page_works_on_the_trail():
    """Outside the (read-only) admin, no URL exists that could edit or delete an event."""
    names = [name for name in get_resolver().reverse_dict if isinstance(name, str)]
    assert names
    assert not [name for name in names if "audit" in name]


def test_deleting_a_user_with_audit_events_is_refused_and_leaves_the_rows_as_they_were(event, viewer):
    before = AuditEvent.objects.values().get(pk=event.pk)
    with pytest.raises(ProtectedError):
        viewer.delete()
    assert User.objects.filter(pk=viewer.pk).exists()
    assert AuditEvent.objects.values().get(pk=event.pk) == before
    assert before["actor_id"] == viewer.pk


def test_the_admin_refuses_to_delete_a_user_with_audit_events(client, event, viewer):
    superuser = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(superuser)
    url = reverse("admin:auth_user_delete", args=[viewer.pk])
    page = client.get(url).content.decode()
    # Django names the audit events as what the deletion would need to remove, and offers no button.
    assert "Cannot delete user" in page
    assert "<li>audit event</li>" in page
    assert 'name="post"' not in page
    assert "Cannot delete user" in client.post(url, {"post": "yes"}).content.decode()
    assert User.objects.filter(pk=viewer.pk).exists()
    assert AuditEvent.objects.get(pk=event.pk).actor_id == viewer.pk
