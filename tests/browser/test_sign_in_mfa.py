"""Sign-in in a real browser: a local user is made to enrol an authenticator app, signs
out, signs in again with a code; a wrong code is refused and audited; company sign-in
against a fake identity provider on loopback creates a user who sees nothing until given
a role; an idle session warns on a page with a form, then ends."""

import pytest
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from playwright.sync_api import expect

from orders.models import AuditEvent
from tests.factories import PASSWORD, OrderFactory, UserFactory
from tests.fake_idp import FakeIdp
from tests.test_sign_in_mfa import _mfa_required, code_for  # noqa: F401 - _mfa_required is an autouse fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def password_step(page, username):
    page.goto("/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()


def sign_out(page):
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")


def test_enrol_totp_sign_out_and_sign_in_with_a_code(page, partner):
    OrderFactory(partner=partner)
    UserFactory(username="vera", role="viewer")
    password_step(page, "vera")
    # Forced to the authenticator app's enrolment before any page.
    page.wait_for_url("**/accounts/2fa/totp/activate/**")
    page.goto("/")
    page.wait_for_url("**/accounts/2fa/totp/activate/**")
    secret = page.locator("#authenticator_secret").input_value()
    first = code_for(secret)
    page.get_by_label("Authenticator code").fill(first)
    page.get_by_role("button", name="Activate").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Recovery Codes")
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Orders")
    sign_out(page)

    password_step(page, "vera")
    page.wait_for_url("**/accounts/2fa/authenticate/")
    # allauth refuses a code twice within its 30-second period, remembering used codes in
    # the cache; clearing it stands for that period passing, instead of waiting it out.
    cache.clear()
    page.get_by_label("Code").fill(code_for(secret))
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url("**/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Orders")
    vera = User.objects.get(username="vera")
    actions = list(AuditEvent.objects.filter(actor=vera).values_list("action", flat=True))
    assert actions.count(AuditEvent.Action.SIGN_IN) == 2
    assert AuditEvent.Action.MFA_ENROLLED in actions
    assert not page.problems, page.problems


def test_a_wrong_code_is_refused_and_audited(page):
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    user = UserFactory(username="vera", role="viewer")
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    password_step(page, "vera")
    page.wait_for_url("**/accounts/2fa/authenticate/")
    page.get_by_label("Code").fill(code_for(secret, periods_ago=10))
    page.get_by_role("button", name="Sign In").click()
    expect(page.locator(".error").first).to_contain_text("Incorrect code")
    # Still not signed in: the orders page sends back to the code prompt.
    page.goto("/")
    page.wait_for_url("**/accounts/2fa/authenticate/")
    expect(page.get_by_role("heading", level=1)).not_to_have_text("Orders")
    event = AuditEvent.objects.get(action=AuditEvent.Action.MFA_FAILED)
    assert event.actor == user and event.outcome == AuditEvent.Outcome.FAILURE
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN).exists()


def test_company_sign_in_creates_a_user_without_a_role(page, settings, partner):
    OrderFactory(partner=partner)
    with FakeIdp() as idp:
        idp.allauth_settings(settings)
        idp.next_user = {"sub": "c-42", "email": "carol@example.org", "email_verified": True, "amr": ["pwd", "mfa"]}
        page.goto("/")
        page.get_by_role("button", name="Sign in with company sign-in").click()
        page.wait_for_url("**/")
        # Signed in, but no role: the order list is refused and no order shows.
        expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
        expect(page.locator("table.orders")).to_have_count(0)
        carol = User.objects.get(email="carol@example.org")
        assert not carol.groups.exists()
        carol.groups.add(Group.objects.get(name="viewer"))
        page.reload()
        expect(page.get_by_role("heading", level=1)).to_have_text("Orders")
        expect(page.locator("table.orders tbody tr")).to_have_count(1)
    assert AuditEvent.objects.filter(actor=carol, action=AuditEvent.Action.OIDC_SIGN_IN).exists()


def test_an_idle_session_warns_on_a_form_page_and_then_ends(page, settings, partner):
    settings.MFA_REQUIRED = False
    settings.SESSION_COOKIE_AGE = 8
    settings.SESSION_IDLE_WARNING_SECONDS = 4
    order = OrderFactory(partner=partner)
    UserFactory(username="ursula", role="uploader")
    password_step(page, "ursula")
    page.wait_for_url("**/")
    page.goto(f"/orders/{order.pk}/notes/new/")
    warning = page.locator("#idle-warning")
    expect(warning).to_be_hidden()
    expect(warning).to_be_visible(timeout=10_000)
    expect(warning).to_contain_text("signed out soon")
    # "Stay signed in" restarts the clock without leaving the page.
    page.get_by_role("button", name="Stay signed in").click()
    expect(warning).to_be_hidden()
    expect(warning).to_be_visible(timeout=10_000)
    expect(warning).to_contain_text("choose the file again", timeout=10_000)
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
