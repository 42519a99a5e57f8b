"""Audit events are append-only: the app can add them but not change or delete them."""

import pytest
from django.urls import get_resolver

from orders.audit import audit_record
from orders.models import AuditEvent

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
