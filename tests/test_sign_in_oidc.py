"""Company sign-in over OpenID Connect, against a fake identity provider on loopback
(tests/fake_idp.py): a new user is created without a role; an existing user is matched by
a verified email; the IdP's `amr`/`acr` decides whether HCOINT asks for its own second
factor; OIDC_ROLE_CLAIM/OIDC_ROLE_MAP grant roles; the sign-in is audited."""

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.contrib.auth.models import User
from django.urls import reverse

from orders.models import AuditEvent
from tests.factories import UserFactory
from tests.fake_idp import FakeIdp

pytestmark = pytest.mark.django_db


@pytest.fixture
def idp(settings):
    with FakeIdp() as idp:
        idp.allauth_settings(settings)
        yield idp


def company_sign_in(client, idp, **claims):
    """Press "Sign in with ...", follow the IdP's redirect back; the callback's response."""
    idp.next_user = {"sub": "idp-user-1", "email": "ann@example.org", "email_verified": True, **claims}
    start = client.post(reverse("openid_connect_login", kwargs={"provider_id": "company"}))
    assert start.status_code == 302 and start["Location"].startswith(idp.issuer + "/authorize?")
    back = requests.get(start["Location"], allow_redirects=False, timeout=5)
    assert back.status_code == 302
    callback = urlsplit(back.headers["Location"])
    assert callback.path == reverse("openid_connect_callback", kwargs={"provider_id": "company"})
    return client.get(callback.path, {k: v[0] for k, v in parse_qs(callback.query).items()})


def test_the_sign_in_page_offers_company_sign_in_only_when_configured(client, settings):
    assert "Sign in with company sign-in" not in client.get(reverse("login")).content.decode()
    with FakeIdp() as idp:
        idp.allauth_settings(settings)
        html = client.get(reverse("login")).content.decode()
    assert "Sign in with Test IdP" not in html  # the name comes from OIDC_PROVIDER_NAME
    assert "Sign in with company sign-in" in html


def test_a_new_user_is_created_without_a_role_and_sees_nothing(client, idp):
    response = company_sign_in(client, idp, amr=["pwd", "mfa"])
    assert response.status_code == 302
    user = User.objects.get(email="ann@example.org")
    assert not user.groups.exists() and not user.is_staff and not user.has_usable_password()
    assert client.get(reverse("order_list")).status_code == 403
    actions = set(AuditEvent.objects.filter(actor=user).values_list("action", flat=True))
    assert {AuditEvent.Action.SIGN_IN, AuditEvent.Action.OIDC_SIGN_IN} <= actions
    # The IdP's token exchange carried our client's credentials, from the settings.
    assert idp.token_requests[-1]["client_id"] == idp.client_id


def test_a_granted_role_opens_the_pages(client, idp):
    company_sign_in(client, idp, amr=["mfa"])
    from django.contrib.auth.models import Group

    User.objects.get(email="ann@example.org").groups.add(Group.objects.get(name="viewer"))
    assert client.get(reverse("order_list")).status_code == 200


def test_an_existing_user_is_matched_by_verified_email(client, idp):
    vera = UserFactory(username="vera", role="viewer", email="ann@example.org")
    company_sign_in(client, idp, amr=["mfa"])
    assert User.objects.filter(email="ann@example.org").count() == 1
    assert client.get(reverse("order_list")).status_code == 200
    assert int(client.session["_auth_user_id"]) == vera.pk


def test_an_unverified_email_matches_nobody(client, idp):
    vera = UserFactory(username="vera", role="viewer", email="ann@example.org")
    company_sign_in(client, idp, amr=["mfa"], email_verified=False)
    assert int(client.session.get("_auth_user_id", 0)) != vera.pk


def test_without_mfa_from_the_idp_hcoint_asks_for_its_own(client, idp, settings):
    settings.MFA_REQUIRED = True
    company_sign_in(client, idp, amr=["pwd"])
    response = client.get(reverse("order_list"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("mfa_activate_totp"))


@pytest.mark.parametrize(("claims", "asks"), [({"amr": ["pwd", "otp"]}, False), ({"acr": "gold"}, False), ({}, True)])
def test_amr_and_acr_decide_whether_the_idp_did_mfa(client, idp, settings, claims, asks):
    settings.MFA_REQUIRED = True
    settings.OIDC_MFA_ACR_VALUES = ["gold"]
    UserFactory(username="vera", role="viewer", email="ann@example.org")
    company_sign_in(client, idp, **claims)
    orders = client.get(reverse("order_list"))
    assert orders.status_code == (302 if asks else 200)


def test_roles_follow_the_idp_group_claim_when_mapped(client, idp, settings):
    settings.OIDC_ROLE_CLAIM = "groups"
    settings.OIDC_ROLE_MAP = {"hcoint-uploaders": "uploader", "hcoint-viewers": "viewer"}
    company_sign_in(client, idp, amr=["mfa"], groups=["staff", "hcoint-uploaders"])
    user = User.objects.get(email="ann@example.org")
    assert set(user.groups.values_list("name", flat=True)) == {"uploader"}
    client.post(reverse("logout"))
    company_sign_in(client, idp, amr=["mfa"], groups=["hcoint-viewers"])
    assert set(user.groups.values_list("name", flat=True)) == {"viewer"}


@pytest.mark.parametrize(("claims", "asks"), [({"amr": ["mfa"]}, False), ({"amr": ["pwd"]}, True)])
def test_a_user_with_a_local_factor_is_not_asked_again_when_the_idp_did_mfa(client, idp, settings, claims, asks):
    """The IdP's word counts for a user who also enrolled a factor here; without it, that factor is asked."""
    settings.MFA_REQUIRED = True
    user = UserFactory(username="vera", role="viewer", email="ann@example.org")
    TOTP.activate(user, generate_totp_secret())
    callback = company_sign_in(client, idp, **claims)
    asked_at_callback = callback.status_code == 302 and callback["Location"].startswith(reverse("mfa_authenticate"))
    assert asked_at_callback is asks
    orders = client.get(reverse("order_list"))
    assert orders.status_code == (302 if asks else 200)
    signed_in = AuditEvent.objects.filter(action=AuditEvent.Action.OIDC_SIGN_IN, actor=user).exists()
    assert signed_in is not asks, "the sign-in completes (and is audited) only once a second factor counts"
