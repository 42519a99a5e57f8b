"""Sign-in, failed sign-in, sign-out and lockout: each an audit record and a log line.

Django's auth signals and django-axes's `user_locked_out` are the only hooks for these
events (there is no view of ours in the path), so receivers are the right tool here;
they record, they never decide. Connected in `OrdersConfig.ready()`.

The log lines carry the user's id only. A failed sign-in for a name that matches no
account records no name at all: people sometimes type a password into the user field.
"""

import logging

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed

from hcoint.events import log_event
from orders.audit import audit_record
from orders.models import AuditEvent

logger = logging.getLogger(__name__)


def on_signed_in(sender, request, user, **kwargs):
    audit_record(request=request, user=user, action=AuditEvent.Action.SIGN_IN)
    log_event(logger, "auth.signed_in", user_id=user.pk)


def on_signed_out(sender, request, user, **kwargs):
    # `user` is None when the session had already ended; there is nobody to record then.
    if user is None:
        return
    audit_record(request=request, user=user, action=AuditEvent.Action.SIGN_OUT)
    log_event(logger, "auth.signed_out", user_id=user.pk)


def on_sign_in_failed(sender, credentials, request=None, **kwargs):
    user = _known_user(credentials)
    # django-axes's receiver runs first (its app is listed before ours) and marks a
    # request it refused because the account and address are locked out.
    locked_out = bool(getattr(request, "axes_locked_out", False))
    audit_record(
        request=request,
        user=user,
        action=AuditEvent.Action.SIGN_IN_FAILED,
        outcome=AuditEvent.Outcome.DENIED if locked_out else AuditEvent.Outcome.FAILURE,
    )
    log_event(
        logger,
        "auth.sign_in_failed",
        level=logging.WARNING,
        user_id=user.pk if user else None,
        locked_out=locked_out,
    )


def on_locked_out(sender, request, username=None, **kwargs):
    user = _known_user({"username": username})
    log_event(logger, "auth.locked_out", level=logging.WARNING, user_id=user.pk if user else None)


def _known_user(credentials):
    User = get_user_model()
    username = (credentials or {}).get(User.USERNAME_FIELD) or (credentials or {}).get("username")
    if not username:
        return None
    return User._default_manager.filter(**{User.USERNAME_FIELD: username}).first()


def connect():
    from axes.signals import user_locked_out

    user_logged_in.connect(on_signed_in, dispatch_uid="orders.auth_audit.signed_in")
    user_logged_out.connect(on_signed_out, dispatch_uid="orders.auth_audit.signed_out")
    user_login_failed.connect(on_sign_in_failed, dispatch_uid="orders.auth_audit.sign_in_failed")
    user_locked_out.connect(on_locked_out, dispatch_uid="orders.auth_audit.locked_out")
