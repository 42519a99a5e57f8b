"""A second factor for everyone (every role sees patient data): enrolment is forced at
first sign-in, then every sign-in asks for a TOTP code (or a passkey, or a recovery code);
wrong codes are refused, audited and, repeated, throttled; a session that skipped the
factor (the Django admin's own sign-in form) must give one before any page."""

import time

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, generate_totp_secret, hotp_value
from django.core.cache import cache
from django.urls import reverse

from orders.models import AuditEvent
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _mfa_required(settings):
    settings.MFA_REQUIRED = True
    # allauth refuses a code already used in its period (its cache); tests reuse periods.
    cache.clear()


def code_for(secret, periods_ago=0):
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30 - periods_ago))


def enrolled(user):
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return secret


def password_sign_in(client, username="vera", password=PASSWORD):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR="10.1.2.3")


def test_first_sign_in_forces_totp_enrolment(client, viewer, django_capture_on_commit_callbacks):
    assert password_sign_in(client).status_code == 302
    response = client.get(reverse("order_list"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("mfa_activate_totp"))
    page = client.get(response["Location"])
    assert page.status_code == 200
    secret = client.session["mfa.totp.secret"]
    # allauth announces the enrolment once its transaction commits.
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("mfa_activate_totp"), {"code": code_for(secret)})
    assert response.status_code == 302
    assert Authenticator.objects.filter(user=viewer, type=Authenticator.Type.TOTP).exists()
    assert client.get(reverse("order_list")).status_code == 200
    assert AuditEvent.objects.filter(actor=viewer, action=AuditEvent.Action.MFA_ENROLLED).count() == 1


def test_sign_in_asks_for_the_code_and_accepts_the_right_one(client, viewer):
    secret = enrolled(viewer)
    response = password_sign_in(client)
    assert response.status_code == 302 and response["Location"] == reverse("mfa_authenticate")
    # Not signed in yet: the password alone opens nothing.
    assert client.get(reverse("order_list"))["Location"].startswith(reverse("login"))
    response = client.post(reverse("mfa_authenticate"), {"code": code_for(secret)})
    assert response.status_code == 302
    assert client.get(reverse("order_list")).status_code == 200
    assert AuditEvent.objects.filter(actor=viewer, action=AuditEvent.Action.SIGN_IN).count() == 1


def test_a_wrong_code_is_refused_and_audited(client, viewer):
    secret = enrolled(viewer)
    password_sign_in(client)
    wrong = code_for(secret, periods_ago=5)
    response = client.post(reverse("mfa_authenticate"), {"code": wrong}, REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 200 and "Incorrect code" in response.content.decode()
    assert client.get(reverse("order_list"))["Location"].startswith(reverse("login"))
    event = AuditEvent.objects.get(action=AuditEvent.Action.MFA_FAILED)
    assert (event.actor, event.outcome, event.ip_address) == (viewer, AuditEvent.Outcome.FAILURE, "10.1.2.3")
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN).exists()


def test_repeated_wrong_codes_lock_the_second_step(client, viewer, settings):
    secret = enrolled(viewer)
    password_sign_in(client)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("mfa_authenticate"), {"code": code_for(secret, periods_ago=7)})
    response = client.post(reverse("mfa_authenticate"), {"code": code_for(secret)})
    assert response.status_code == 200 and "Too many wrong codes" in response.content.decode()
    assert client.get(reverse("order_list"))["Location"].startswith(reverse("login"))


def test_a_recovery_code_signs_in_and_is_audited(client, viewer):
    enrolled(viewer)
    codes = RecoveryCodes.activate(viewer).get_unused_codes()
    password_sign_in(client)
    assert client.post(reverse("mfa_authenticate"), {"code": codes[0]}).status_code == 302
    assert client.get(reverse("order_list")).status_code == 200
    assert AuditEvent.objects.filter(actor=viewer, action=AuditEvent.Action.RECOVERY_CODE_USED).count() == 1


def test_the_admin_sign_in_form_does_not_skip_the_second_factor(client):
    admin = UserFactory(username="adele", role="admin")
    secret = enrolled(admin)
    response = client.post(reverse("admin:login"), {"username": "adele", "password": PASSWORD})
    assert response.status_code == 302
    for url in (reverse("admin:index"), reverse("order_list"), reverse("mfa_deactivate_totp"), reverse("mfa_index")):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("mfa_reauthenticate")), url
    # A password alone cannot swap the second factor.
    assert client.post(reverse("mfa_deactivate_totp")).status_code == 302
    assert Authenticator.objects.filter(user=admin, type=Authenticator.Type.TOTP).exists()
    response = client.post(reverse("mfa_reauthenticate"), {"code": code_for(secret)})
    assert response.status_code == 302
    assert client.get(reverse("admin:index")).status_code == 200


def test_without_a_factor_only_enrolment_and_sign_out_open(client, viewer):
    client.force_login(viewer)
    assert client.get(reverse("mfa_activate_totp")).status_code == 200
    assert client.get(reverse("session_keepalive")).status_code == 302
    assert client.post(reverse("logout")).status_code == 302


def test_mfa_off_is_said_on_every_page(client, viewer, settings):
    client.force_login(viewer)
    assert "MFA is off" not in client.get(reverse("order_list")).content.decode()
    settings.MFA_REQUIRED = False
    assert "MFA is off: development only" in client.get(reverse("order_list")).content.decode()


def test_removing_a_factor_is_audited(client, viewer, django_capture_on_commit_callbacks):
    secret = enrolled(viewer)
    password_sign_in(client)
    client.post(reverse("mfa_authenticate"), {"code": code_for(secret)})
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("mfa_deactivate_totp"))
    assert response.status_code == 302
    assert not Authenticator.objects.filter(user=viewer, type=Authenticator.Type.TOTP).exists()
    assert AuditEvent.objects.filter(actor=viewer, action=AuditEvent.Action.MFA_REMOVED).exists()
    # Without a factor left, the next page is enrolment again.
    client.post(reverse("logout"))
    password_sign_in(client)
    assert client.get(reverse("order_list"))["Location"].startswith(reverse("mfa_activate_totp"))
