"""The audit trail: who did what to which object, when, from which address.

Records hold ids and action names only, never patient data, and cannot be edited or
deleted from the app (see AuditEvent).
"""

from axes.helpers import get_client_ip_address

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
