"""Sign-in, failed sign-in, sign-out, lockout, company sign-in and second-factor events
(enrolled, removed, failed, recovery code used): each an audit record and a log line.

Django's auth signals, django-axes's `user_locked_out` and allauth's signals are the only hooks for these
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


def on_social_signed_in(request, user, sociallogin=None, **kwargs):
    # allauth's own user_logged_in, after Django's: says the sign-in came from the IdP.
    if sociallogin is not None:
        audit_record(request=request, user=user, action=AuditEvent.Action.OIDC_SIGN_IN)


def on_mfa_added(sender, request, user, authenticator, **kwargs):
    if authenticator.type != authenticator.Type.RECOVERY_CODES:
        audit_record(request=request, user=user, action=AuditEvent.Action.MFA_ENROLLED, obj=authenticator)
        log_event(logger, "auth.mfa_enrolled", user_id=user.pk, kind=authenticator.type)


def on_mfa_removed(sender, request, user, authenticator, **kwargs):
    audit_record(request=request, user=user, action=AuditEvent.Action.MFA_REMOVED, obj=authenticator)
    log_event(logger, "auth.mfa_removed", user_id=user.pk, kind=authenticator.type)


def on_mfa_used(sender, request, user, authenticator, **kwargs):
    # Codes and passkeys are recorded by the sign-in itself; a recovery code is worth its
    # own record: the user may have lost their device, and has fewer codes left.
    if authenticator.type == authenticator.Type.RECOVERY_CODES:
        audit_record(request=request, user=user, action=AuditEvent.Action.RECOVERY_CODE_USED, obj=authenticator)
        log_event(logger, "auth.recovery_code_used", level=logging.WARNING, user_id=user.pk)


def on_mfa_failed(sender, request, user, authenticator, **kwargs):
    audit_record(
        request=request,
        user=user,
        action=AuditEvent.Action.MFA_FAILED,
        obj=authenticator,
        outcome=AuditEvent.Outcome.FAILURE,
    )
    log_event(logger, "auth.mfa_failed", level=logging.WARNING, user_id=user.pk)


def _known_user(credentials):
    User = get_user_model()
    username = (credentials or {}).get(User.USERNAME_FIELD) or (credentials or {}).get("username")
    if not username:
        return None
    return User._default_manager.filter(**{User.USERNAME_FIELD: username}).first()


def connect():
    from allauth.account.signals import user_logged_in as allauth_logged_in
    from allauth.mfa.signals import (
        authentication_failed,
        authenticator_added,
        authenticator_removed,
        authenticator_used,
    )
    from axes.signals import user_locked_out

    from hcoint import signin

    user_logged_in.connect(on_signed_in, dispatch_uid="orders.auth_audit.signed_in")
    user_logged_out.connect(on_signed_out, dispatch_uid="orders.auth_audit.signed_out")
    user_login_failed.connect(on_sign_in_failed, dispatch_uid="orders.auth_audit.sign_in_failed")
    user_locked_out.connect(on_locked_out, dispatch_uid="orders.auth_audit.locked_out")
    allauth_logged_in.connect(on_social_signed_in, dispatch_uid="orders.auth_audit.oidc_signed_in")
    authenticator_added.connect(on_mfa_added, dispatch_uid="orders.auth_audit.mfa_added")
    authenticator_removed.connect(on_mfa_removed, dispatch_uid="orders.auth_audit.mfa_removed")
    authenticator_used.connect(on_mfa_used, dispatch_uid="orders.auth_audit.mfa_used")
    authentication_failed.connect(on_mfa_failed, dispatch_uid="orders.auth_audit.mfa_failed")
    # The session side of sign-in (lifetime clock, second factor passed) in hcoint.signin.
    signin.connect()
