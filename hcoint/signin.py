"""Sign-in with django-allauth: local passwords, company sign-in (OIDC), a second factor
for everyone, and the session's absolute lifetime.

- Local accounts (admins create them; nobody signs up) sign in with a password, then a
  TOTP code, a passkey or a recovery code (allauth's MFA stage).
- Company sign-in (settings OIDC_*) matches a user by an email address the IdP marks
  verified, or creates one without a role. It counts as multi-factor only when the ID
  token's `amr`/`acr` says so (`idp_says_mfa`); otherwise HCOINT asks for its own factor.
  When the IdP did MFA, a factor the user also enrolled here is not asked again
  (`IdpAwareAuthenticateStage` replaces allauth's MFA stage in the login stages).
- `MfaRequiredMiddleware`: every page needs a session that passed a second factor. A user
  without one is sent to enrol TOTP; a user with one whose session skipped it (the Django
  admin's own sign-in form) is asked for a code. MFA_REQUIRED=false (DEBUG only) skips it.
- `SessionLifetimeMiddleware`: a session ends SESSION_MAX_HOURS after sign-in, however
  active; the idle limit is Django's SESSION_COOKIE_AGE with SESSION_SAVE_EVERY_REQUEST.

Failed codes are counted per user in the throttle table (`MFA_CODE`) and per address in
the sign-in throttle, like failed passwords: a 6-digit code must not be guessable by
retrying, and allauth's own limits live in a per-process cache.
"""

import logging
import time

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.forms import LoginForm as AllauthLoginForm
from allauth.mfa.base.forms import AuthenticateForm, ReauthenticateForm
from allauth.mfa.models import Authenticator
from allauth.mfa.stages import AuthenticateStage
from allauth.mfa.totp.forms import ActivateTOTPForm
from allauth.mfa.webauthn.forms import AddWebAuthnForm as AllauthAddWebAuthnForm
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode

from hcoint.events import log_event
from hcoint.throttle import SIGN_IN_ADDRESS, Throttle, address_key

logger = logging.getLogger(__name__)

ROLES = ("viewer", "uploader", "admin")
# Session keys: when the user signed in, and which user passed a second factor in it.
SIGNED_IN_AT = "hcoint_signed_in_at"
MFA_USER = "hcoint_mfa_user"

MFA_CODE = Throttle(
    scope="mfa_code",
    event="auth.mfa_throttled",
    limit_setting="AXES_FAILURE_LIMIT",
    window_setting="SIGN_IN_ADDRESS_WINDOW_SECONDS",
)


class LoginForm(AllauthLoginForm):
    """allauth's sign-in form, with the user name posted as `username`, as before.

    django-axes reads `username` from the request (AXES_USERNAME_FORM_FIELD), and
    bookmarks, scripts and password managers know the old field name.
    """

    def add_prefix(self, field_name):
        return "username" if field_name == "login" else super().add_prefix(field_name)


class AccountAdapter(DefaultAccountAdapter):
    # The wording staff knew from Django's own sign-in form.
    error_messages = {
        **DefaultAccountAdapter.error_messages,
        "username_password_mismatch": (
            "Please enter a correct username and password. Note that both fields may be case-sensitive."
        ),
    }

    def is_open_for_signup(self, request):
        # Admins create local accounts; company sign-in creates its own (below).
        return False

    def get_login_stages(self):
        # allauth's MFA stage asks every user with an authenticator for it, company sign-in
        # included; ours lets the IdP's MFA count instead (IdpAwareAuthenticateStage).
        return [
            IDP_AWARE_STAGE if path == "allauth.mfa.stages.AuthenticateStage" else path
            for path in super().get_login_stages()
        ]


IDP_AWARE_STAGE = "hcoint.signin.IdpAwareAuthenticateStage"


class IdpAwareAuthenticateStage(AuthenticateStage):
    """allauth's MFA stage, passed over when the ID token says the IdP checked a second factor
    (`idp_says_mfa`): a company user who also enrolled a factor here is not asked for it again.
    Without that claim, the local factor is asked as before."""

    def _should_handle(self, request):
        sociallogin = (self.login.signal_kwargs or {}).get("sociallogin")
        if sociallogin is not None and idp_says_mfa(id_token_claims(sociallogin)):
            return False
        return super()._should_handle(request)


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request, sociallogin):
        # A user the IdP vouches for may exist here, without a role until one is granted.
        return True


def _refuse_if_throttled(user, request):
    if MFA_CODE.is_over(str(user.pk)) or SIGN_IN_ADDRESS.is_over(address_key(request)):
        raise ValidationError("Too many wrong codes. Wait a while, or ask an administrator.", code="throttled")


class _CountedFailures:
    """A wrong code counts against the user and the address; too many refuse every code."""

    def clean_code(self):
        from allauth.core import context

        _refuse_if_throttled(self.user, context.request)
        try:
            return super().clean_code()
        except ValidationError:
            MFA_CODE.record_failure(str(self.user.pk))
            SIGN_IN_ADDRESS.record_failure(address_key(context.request))
            raise


class MfaAuthenticateForm(_CountedFailures, AuthenticateForm):
    pass


class MfaReauthenticateForm(_CountedFailures, ReauthenticateForm):
    pass


class _ProvesTheFactor:
    """Enrolling checks a code from the new app or a signature from the new key: that is a
    second factor passed, so the session need not ask for it again at once. (allauth's
    `authenticator_added` comes only after its transaction commits, too late for a test
    client's session and not guaranteed inside the request.)"""

    def clean(self):
        from allauth.core import context

        cleaned = super().clean()
        if not self.errors:
            mark_second_factor(context.request, context.request.user)
        return cleaned


class ActivateTotpForm(_ProvesTheFactor, ActivateTOTPForm):
    pass


class AddWebAuthnForm(_ProvesTheFactor, AllauthAddWebAuthnForm):
    pass


# --- Company sign-in ------------------------------------------------------------


def id_token_claims(sociallogin):
    data = sociallogin.account.extra_data or {}
    return data.get("id_token") or {}


def idp_says_mfa(claims):
    """Whether the ID token says the IdP itself checked a second factor (`amr` or `acr`)."""
    amr = claims.get("amr") or []
    if isinstance(amr, str):
        amr = [amr]
    if set(amr) & set(settings.OIDC_MFA_AMR_VALUES):
        return True
    return bool(claims.get("acr")) and claims.get("acr") in settings.OIDC_MFA_ACR_VALUES


def mapped_roles(claims):
    """HCOINT roles from the IdP's group claim, or None when no mapping is configured."""
    if not (settings.OIDC_ROLE_CLAIM and settings.OIDC_ROLE_MAP):
        return None
    groups = claims.get(settings.OIDC_ROLE_CLAIM) or []
    if isinstance(groups, str):
        groups = [groups]
    return {settings.OIDC_ROLE_MAP[group] for group in groups if group in settings.OIDC_ROLE_MAP}


def set_roles(user, roles):
    """Give `user` exactly `roles` among HCOINT's role groups; other groups are untouched."""
    with transaction.atomic():
        user.groups.remove(*Group.objects.filter(name__in=set(ROLES) - set(roles)))
        user.groups.add(*Group.objects.filter(name__in=roles))


# --- Session state --------------------------------------------------------------


def mark_second_factor(request, user):
    """Record in the session that `user` passed a second factor (here or at the IdP)."""
    request.session[MFA_USER] = str(user.pk)


def passed_second_factor(request):
    return request.session.get(MFA_USER) == str(request.user.pk)


def on_signed_in(sender, request, user, **kwargs):
    """Django's user_logged_in: start the absolute lifetime clock."""
    if request is not None and hasattr(request, "session"):
        request.session[SIGNED_IN_AT] = int(time.time())


def on_social_signed_in(request, user, sociallogin=None, **kwargs):
    """allauth's user_logged_in: for company sign-in, honour the IdP's MFA and roles."""
    if sociallogin is None:
        return
    claims = id_token_claims(sociallogin)
    if idp_says_mfa(claims):
        mark_second_factor(request, user)
    roles = mapped_roles(claims)
    if roles is not None:
        set_roles(user, roles)
    log_event(logger, "auth.oidc_signed_in", user_id=user.pk, idp_mfa=idp_says_mfa(claims))


def on_second_factor(sender, request, user, **kwargs):
    """An authenticator was used (sign-in, re-check) or just enrolled with a right code."""
    if request is not None and hasattr(request, "session"):
        mark_second_factor(request, user)


def connect():
    from allauth.account.signals import user_logged_in as allauth_logged_in
    from allauth.mfa.signals import authenticator_added, authenticator_used
    from django.contrib.auth.signals import user_logged_in

    user_logged_in.connect(on_signed_in, dispatch_uid="hcoint.signin.signed_in")
    allauth_logged_in.connect(on_social_signed_in, dispatch_uid="hcoint.signin.social_signed_in")
    authenticator_used.connect(on_second_factor, dispatch_uid="hcoint.signin.mfa_used")
    authenticator_added.connect(on_second_factor, dispatch_uid="hcoint.signin.mfa_added")


# --- Middleware -----------------------------------------------------------------


class SessionLifetimeMiddleware:
    """Ends a session SESSION_MAX_HOURS after sign-in, whatever the activity since."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.user.is_authenticated:
            signed_in_at = request.session.setdefault(SIGNED_IN_AT, int(time.time()))
            if time.time() - signed_in_at > settings.SESSION_MAX_HOURS * 3600:
                log_event(logger, "auth.session_expired", user_id=request.user.pk)
                logout(request)
                return redirect(f"{reverse('login')}?{urlencode({'next': request.get_full_path(), 'expired': 1})}")
        return self.get_response(request)


# Pages a signed-in user may open before passing a second factor in this session: signing
# in and out, and giving a code or passkey. Static files and the healthcheck never get here.
BEFORE_SECOND_FACTOR = {
    "login",
    "account_login",
    "logout",
    "account_logout",
    "mfa_authenticate",
    "mfa_login_webauthn",
    "mfa_reauthenticate",
    "mfa_reauthenticate_webauthn",
}
# ... and, for a user with no factor at all, enrolling one. Never removing or replacing
# one: a password alone must not be enough to swap the second factor.
ENROLMENT = {"mfa_index", "mfa_activate_totp", "mfa_add_webauthn", "mfa_list_webauthn"}


class MfaRequiredMiddleware:
    """Sends a signed-in user who has not passed a second factor in this session to enrol
    one (none yet) or to give one (enrolled, but signed in without it)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if not settings.MFA_REQUIRED or not request.user.is_authenticated or passed_second_factor(request):
            return None
        match = request.resolver_match
        name = match.url_name if match else None
        if name in BEFORE_SECOND_FACTOR or (match and match.namespace == "admin" and name == "logout"):
            return None
        has_factor = Authenticator.objects.filter(
            user=request.user, type__in=[Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN]
        ).exists()
        if not has_factor and name in ENROLMENT:
            return None
        target = reverse("mfa_reauthenticate" if has_factor else "mfa_activate_totp")
        if request.method == "GET":
            target = f"{target}?{urlencode({'next': request.get_full_path()})}"
        return redirect(target)


def signin_context(request):
    """Template context: the development-only MFA note, company sign-in, idle warning."""
    return {
        "mfa_off": not settings.MFA_REQUIRED,
        "oidc_enabled": settings.OIDC_ENABLED,
        "oidc_provider_name": settings.OIDC_PROVIDER_NAME,
        "session_idle_seconds": settings.SESSION_COOKIE_AGE,
        "session_warning_seconds": settings.SESSION_IDLE_WARNING_SECONDS,
        "session_max_hours": settings.SESSION_MAX_HOURS,
    }


def session_keepalive(request):
    """ "Stay signed in" on the idle warning: any signed-in request restarts the idle clock."""
    return HttpResponse(status=204)
