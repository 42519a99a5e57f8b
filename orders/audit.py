"""The audit trail: who did what to which object, when, from which address.

Records hold ids and action names only, never patient data, and cannot be edited or
deleted from the app (see AuditEvent).
"""

from dataclasses import dataclass

from axes.helpers import get_client_ip_address
from django.db import connection
from django.db.models import Count

from orders.models import AuditEvent


def audit_record(*, request=None, user=None, action, obj=None, order=None, outcome=AuditEvent.Outcome.SUCCESS):
    """Append one audit event. `obj` is the object acted on; `order` links it to an order's timeline."""
    if user is None and request is not None:
        user = getattr(request, "user", None)
    if user is not None and not user.is_authenticated:
        user = None
    return AuditEvent.objects.create(
        actor=user,
        actor_username=user.get_username() if user else "",
        action=action,
        object_type=obj._meta.model_name if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        order=order,
        # The address django-axes keys lockouts on (hcoint/client_ip.py), so the two agree.
        ip_address=get_client_ip_address(request) if request is not None else None,
        request_id=getattr(request, "request_id", "") if request is not None else "",
        outcome=outcome,
    )


# The events an order's timeline shows as one line per action: after months of views (and
# every page image of a note's preview is a "Viewed PDF"), one row each would bury the
# events that matter. A failed view (a removed PDF, say) keeps its own line.
GROUPED_VIEWS = (AuditEvent.Action.VIEW_ORDER, AuditEvent.Action.VIEW_PDF)
GROUPED_VIEW = {"action__in": GROUPED_VIEWS, "outcome": AuditEvent.Outcome.SUCCESS}


@dataclass(frozen=True)
class ViewSummary:
    action: str
    count: int
    people: int
    last: AuditEvent  # the latest view: who, when, from where


def order_events(order):
    """The order's audit events the timeline lists one by one (every one but successful views)."""
    return order.audit_events.exclude(**GROUPED_VIEW)


def view_summaries(order):
    """Per viewing action (order, PDF), in GROUPED_VIEWS' order: how often, by how many
    people, and the latest view; only the actions that happened.

    Two queries on PostgreSQL, whatever the number of views (the audit table's order_id index).
    """
    views = order.audit_events.filter(**GROUPED_VIEW)
    figures = {
        row["action"]: row
        for row in views.values("action").annotate(count=Count("id"), people=Count("actor_username", distinct=True))
    }
    if not figures:
        return []
    # The newest view of each action: DISTINCT ON (action) where the database has it
    # (PostgreSQL); elsewhere (SQLite, `make run`) one small query per action.
    if connection.features.can_distinct_on_fields:
        newest = views.order_by("action", "-created_at", "-id").distinct("action")
    else:
        newest = [views.filter(action=action).order_by("-created_at", "-id").first() for action in figures]
    latest = {event.action: event for event in newest}
    return [
        ViewSummary(
            action=action, count=figures[action]["count"], people=figures[action]["people"], last=latest[action]
        )
        for action in GROUPED_VIEWS
        if action in figures
    ]
