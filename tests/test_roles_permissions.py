"""Roles are groups with permissions; every staff view checks its permission and answers
403 without it (a hidden button is not enough), every page needs sign-in, and every
response carries `Cache-Control: no-store, private` (pages show patient data).

The matrix is generated from the URLconf: every named URL outside the admin must have a
rule in RULES, so a new URL without one fails `test_every_url_has_a_rule`. The Django
admin's URLs (every one of them, generated from admin.site) follow one rule: only the
admin role gets in.
"""

from unittest import mock

import pytest
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from orders.models import Delivery
from tests.factories import BatchFileFactory, ClinicalNoteFactory, DeliveryFactory, OrderFactory, UserFactory

pytestmark = pytest.mark.django_db

# Who may reach a URL when it is not a permission: anyone, any signed-in user, or a
# partner by its verification token (the webhook; no session).
PUBLIC, SIGNED_IN, PARTNER_TOKEN = "public", "signed in", "partner token"
# Sign-in pages (allauth): a step of a sign-in under way (anyone; without one it goes back
# to sign-in), a signed-in user with a second factor enrolled, the owner of a passkey, and
# company sign-in (anyone; 404 while OIDC_* is unset).
SIGN_IN_STEP, ENROLLED, OWN_PASSKEY, COMPANY_SIGN_IN = "sign-in step", "enrolled", "own passkey", "company sign-in"

# url name -> [(which object's id goes in the path, method, who may)]; a permission
# name means a signed-in user holding it.
RULES = {
    "healthcheck": [(None, "get", PUBLIC)],
    "login": [(None, "get", PUBLIC)],
    "account_login": [(None, "get", PUBLIC)],
    "account_inactive": [(None, "get", PUBLIC)],
    "logout": [(None, "post", SIGNED_IN)],
    "account_logout": [(None, "post", SIGNED_IN)],
    "account_reauthenticate": [(None, "get", SIGNED_IN)],
    "session_keepalive": [(None, "get", SIGNED_IN)],
    "mfa_authenticate": [(None, "get", SIGN_IN_STEP)],
    "mfa_login_webauthn": [(None, "post", SIGN_IN_STEP)],
    "mfa_index": [(None, "get", SIGNED_IN)],
    "mfa_reauthenticate": [(None, "get", SIGNED_IN)],
    "mfa_activate_totp": [(None, "get", SIGNED_IN)],
    "mfa_deactivate_totp": [(None, "get", ENROLLED)],
    "mfa_view_recovery_codes": [(None, "get", ENROLLED)],
    "mfa_generate_recovery_codes": [(None, "get", SIGNED_IN)],
    "mfa_download_recovery_codes": [(None, "get", ENROLLED)],
    "mfa_list_webauthn": [(None, "get", SIGNED_IN)],
    "mfa_add_webauthn": [(None, "get", SIGNED_IN)],
    "mfa_reauthenticate_webauthn": [(None, "get", SIGNED_IN)],
    "mfa_edit_webauthn": [("passkey", "get", OWN_PASSKEY)],
    "mfa_remove_webauthn": [("passkey", "get", OWN_PASSKEY)],
    "openid_connect_login": [(None, "post", COMPANY_SIGN_IN)],
    "openid_connect_callback": [(None, "get", COMPANY_SIGN_IN)],
    "socialaccount_login_cancelled": [(None, "get", PUBLIC)],
    "socialaccount_login_error": [(None, "get", PUBLIC)],
    "socialaccount_signup": [(None, "get", SIGN_IN_STEP)],
    "password_change": [(None, "get", SIGNED_IN)],
    "password_change_done": [(None, "get", SIGNED_IN)],
    "redox_webhook": [(None, "get", PARTNER_TOKEN), (None, "post", PARTNER_TOKEN)],
    # The worklist for uploaders and admins; a viewer is sent on to the order list.
    "home": [(None, "get", "orders.view_order")],
    "order_list": [(None, "get", "orders.view_order")],
    "order_detail": [("order", "get", "orders.view_order")],
    "note_pdf": [("note", "get", "orders.view_order")],
    "note_download": [("note", "get", "orders.view_order")],
    "note_page": [("note", "get", "orders.view_order")],
    "upload_note": [("order", "get", "orders.upload_note"), ("order", "post", "orders.upload_note")],
    "review_note": [("note", "get", "orders.upload_note")],
    "send_note": [("note", "post", "orders.upload_note")],
    "resend_note": [("note", "post", "orders.upload_note")],
    "retry_delivery": [("delivery", "post", "orders.manage_delivery")],
    "abandon_delivery": [("delivery", "get", "orders.manage_delivery"), ("delivery", "post", "orders.manage_delivery")],
    "batch_list": [(None, "get", "orders.upload_note"), (None, "post", "orders.upload_note")],
    "batch_detail": [("batch", "get", "orders.upload_note")],
    "batch_send": [("batch", "post", "orders.upload_note")],
    "batch_file_preview": [("batch_file", "get", "orders.upload_note")],
    "usage": [(None, "get", "orders.view_usage")],
    "reconcile": [(None, "get", "orders.upload_note")],
}
ROLE_PERMISSIONS = {
    "viewer": {"orders.view_order"},
    "uploader": {"orders.view_order", "orders.upload_note", "orders.manage_delivery", "orders.view_usage"},
    "admin": {"orders.view_order", "orders.upload_note", "orders.manage_delivery", "orders.view_usage"},
}
ADMIN_NAMESPACE = "admin"
# The admin's own sign-in page opens for everyone; its sign-out sends a visitor who is
# not signed in to the admin's index, which asks for sign-in.
ADMIN_PUBLIC = {"login"}
ADMIN_SIGN_OUT = "logout"


def url_patterns(resolver=None, namespace=None):
    """(namespace, name, pattern) for every URL in the URLconf, included ones too."""
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            yield from url_patterns(entry, entry.namespace or namespace)
        elif isinstance(entry, URLPattern):
            yield namespace, entry.name, entry


APP_URLS = sorted({name for namespace, name, _ in url_patterns() if namespace != ADMIN_NAMESPACE}, key=str)
ADMIN_URLS = sorted(
    {
        (name, tuple(entry.pattern.regex.groupindex))
        for namespace, name, entry in url_patterns()
        if namespace == ADMIN_NAMESPACE and name
    }
)
VIEWS = [(name, kind, method, who) for name, rules in RULES.items() for kind, method, who in rules]
WHO = (PUBLIC, SIGNED_IN, PARTNER_TOKEN, SIGN_IN_STEP, ENROLLED, OWN_PASSKEY, COMPANY_SIGN_IN)
PERMISSION_VIEWS = [view for view in VIEWS if view[3] not in WHO]


def assert_not_cached(response):
    directives = {part.strip().split("=")[0] for part in response.get("Cache-Control", "").split(",")}
    assert {"no-store", "private"} <= directives, (response.status_code, response.get("Cache-Control"))


def test_every_url_has_a_rule():
    assert None not in APP_URLS, "every URL outside the admin needs a name, and a rule in RULES"
    assert set(APP_URLS) == set(RULES), "URLs without a rule, or rules for no URL"


def test_the_admin_is_in_the_urlconf():
    assert {"index", "login", "orders_order_changelist"} <= {name for name, _ in ADMIN_URLS}


@pytest.fixture(autouse=True)
def enqueue():
    with mock.patch("orders.notes.delivery_enqueue", autospec=True), mock.patch("orders.delivery.delivery_enqueue"):
        yield


@pytest.fixture
def objects(partner):
    author = UserFactory(username="author", role="uploader")
    order = OrderFactory(partner=partner)
    note = ClinicalNoteFactory(order=order, uploaded_by=author)
    delivery = DeliveryFactory(order=OrderFactory(partner=partner), created_by=author, status=Delivery.Status.FAILED)
    batch_file = BatchFileFactory(batch__created_by=author)
    return {
        "order": order,
        "note": note,
        "delivery": delivery,
        "author": author,
        "batch": batch_file.batch,
        "batch_file": batch_file,
    }


# What follows the object's id in a path: the page number of a note's page image.
PATH_EXTRAS = {"note_page": [1]}


def call(client, objects, name, kind, method):
    url = reverse(name, args=[objects[kind].pk, *PATH_EXTRAS.get(name, [])] if kind else [])
    return getattr(client, method)(url, {"reason": "a reason"} if method == "post" else None)


@pytest.mark.parametrize(("name", "kind", "method", "perm"), PERMISSION_VIEWS)
def test_anonymous_is_sent_to_sign_in(client, objects, name, kind, method, perm):
    response = call(client, objects, name, kind, method)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")
    assert_not_cached(response)


@pytest.mark.parametrize(("name", "kind", "method", "perm"), PERMISSION_VIEWS)
def test_signed_in_user_without_a_role_gets_403(client, objects, name, kind, method, perm):
    client.force_login(UserFactory(username="nobody"))
    response = call(client, objects, name, kind, method)
    assert response.status_code == 403
    assert_not_cached(response)


@pytest.mark.parametrize("role", ["viewer", "uploader", "admin"])
@pytest.mark.parametrize(("name", "kind", "method", "perm"), PERMISSION_VIEWS)
def test_each_role_gets_exactly_its_views(client, objects, role, name, kind, method, perm):
    client.force_login(UserFactory(username=f"{role}-user", role=role, is_staff=role == "admin"))
    response = call(client, objects, name, kind, method)
    if perm in ROLE_PERMISSIONS[role]:
        assert response.status_code != 403
        assert response.status_code < 500
    else:
        assert response.status_code == 403
    # The order list and search, detail, review, PDFs, usage: patient data, never cached.
    assert_not_cached(response)


@pytest.mark.parametrize(("name", "kind", "method", "who"), [view for view in VIEWS if view[3] == PUBLIC])
def test_public_urls_open_without_sign_in_and_are_not_cached(client, name, kind, method, who):
    response = getattr(client, method)(reverse(name))
    # allauth's page for a company sign-in that failed answers 401, as it should.
    assert response.status_code == (401 if name == "socialaccount_login_error" else 200)
    assert_not_cached(response)


@pytest.mark.parametrize(("name", "kind", "method", "who"), [view for view in VIEWS if view[3] == SIGNED_IN])
def test_account_urls_need_only_sign_in(client, name, kind, method, who):
    response = getattr(client, method)(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")
    assert_not_cached(response)
    client.force_login(UserFactory(username="nobody"))
    response = getattr(client, method)(reverse(name))
    assert response.status_code in (200, 204, 302)
    # Signing out ends at the sign-in page, but not as a request to sign in first.
    assert not response.get("Location", "").startswith(reverse("login") + "?next=")
    assert_not_cached(response)


def views_for(who):
    return [view for view in VIEWS if view[3] == who]


def totp_for(user):
    from allauth.mfa.models import Authenticator
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes

    RecoveryCodes.activate(user)
    return Authenticator.objects.create(user=user, type=Authenticator.Type.TOTP, data={"secret": "JBSWY3DPEHPK3PXP"})


def passkey_for(user):
    from allauth.mfa.models import Authenticator

    return Authenticator.objects.create(user=user, type=Authenticator.Type.WEBAUTHN, data={"name": "key"})


@pytest.mark.parametrize(("name", "kind", "method", "who"), views_for(SIGN_IN_STEP))
def test_sign_in_steps_without_a_sign_in_under_way_go_back_to_sign_in(client, name, kind, method, who):
    response = getattr(client, method)(reverse(name))
    assert response.status_code == 302 and response["Location"] == reverse("login")
    assert_not_cached(response)


@pytest.mark.parametrize(("name", "kind", "method", "who"), views_for(ENROLLED))
def test_second_factor_pages_need_sign_in_and_a_second_factor(client, name, kind, method, who):
    response = getattr(client, method)(reverse(name))
    assert response["Location"].startswith(reverse("login") + "?next=")
    user = UserFactory(username="nobody")
    client.force_login(user)
    assert getattr(client, method)(reverse(name)).status_code == 404
    totp_for(user)
    response = getattr(client, method)(reverse(name))
    assert response.status_code in (200, 302) and not response.get("Location", "").startswith(reverse("login"))
    assert_not_cached(response)


@pytest.mark.parametrize(("name", "kind", "method", "who"), views_for(OWN_PASSKEY))
def test_passkey_pages_open_only_for_the_owner(client, name, kind, method, who):
    owner, other = UserFactory(username="owner"), UserFactory(username="other")
    url = reverse(name, args=[passkey_for(owner).pk])
    assert getattr(client, method)(url)["Location"].startswith(reverse("login") + "?next=")
    client.force_login(other)
    assert getattr(client, method)(url).status_code == 404
    client.force_login(owner)
    response = getattr(client, method)(url)
    assert response.status_code == 200
    assert_not_cached(response)


@pytest.mark.parametrize(("name", "kind", "method", "who"), views_for(COMPANY_SIGN_IN))
def test_company_sign_in_is_absent_until_configured(client, name, kind, method, who):
    response = getattr(client, method)(reverse(name, kwargs={"provider_id": "company"}))
    assert response.status_code == 404
    assert_not_cached(response)


@pytest.mark.parametrize(("name", "kind", "method", "who"), [view for view in VIEWS if view[3] == PARTNER_TOKEN])
def test_the_webhook_wants_a_partner_token_not_a_session(client, partner, name, kind, method, who):
    # A signed-in staff user is no partner; the webhook answers 401 instead of a sign-in page.
    client.force_login(UserFactory(username="ada-admin", role="admin", is_staff=True))
    response = getattr(client, method)(reverse(name))
    assert response.status_code == 401
    assert_not_cached(response)


def admin_url(name, groups, objects):
    values = {
        "app_label": "orders",
        "object_id": str(objects["order"].pk),
        "content_type_id": str(ContentType.objects.get_for_model(objects["order"]).pk),
        "id": str(objects["author"].pk),
    }
    missing = set(groups) - set(values)
    assert not missing, f"admin:{name} takes {missing}: add a value for it in admin_url"
    return reverse(f"{ADMIN_NAMESPACE}:{name}", kwargs={group: values[group] for group in groups})


@pytest.mark.parametrize(("name", "groups"), ADMIN_URLS)
def test_only_the_admin_role_opens_the_admin_and_nothing_there_is_cached(client, objects, name, groups):
    url = admin_url(name, groups, objects)
    if name in ADMIN_PUBLIC:
        response = client.get(url)
        assert response.status_code == 200
        assert_not_cached(response)
        return
    admin_login = reverse(f"{ADMIN_NAMESPACE}:login")
    refused = (admin_login, reverse("login"))
    if name == ADMIN_SIGN_OUT:
        refused += (reverse(f"{ADMIN_NAMESPACE}:index"),)
    for visitor in (
        None,
        UserFactory(username="vera-viewer", role="viewer"),
        UserFactory(username="uma-uploader", role="uploader"),
    ):
        if visitor:
            client.force_login(visitor)
        response = client.get(url)
        assert response.status_code == 302, (visitor, response.status_code)
        assert response["Location"].startswith(refused), response["Location"]
        assert_not_cached(response)
    client.force_login(UserFactory(username="ada-admin", role="admin"))
    response = client.get(url)
    assert response.status_code < 500
    assert not response.get("Location", "").startswith((admin_login, reverse("login")))
    assert_not_cached(response)


def test_roles_exist_with_their_permissions(db):
    def perms(name):
        return {f"{p.content_type.app_label}.{p.codename}" for p in Group.objects.get(name=name).permissions.all()}

    viewer, uploader, admin = perms("viewer"), perms("uploader"), perms("admin")
    assert "orders.view_order" in viewer
    assert not viewer & {"orders.upload_note", "orders.manage_delivery"}
    assert {"orders.view_order", "orders.upload_note", "orders.manage_delivery"} <= uploader
    assert not {p for p in uploader if p.startswith("orders.change_") or p.startswith("auth.")}
    assert {"orders.view_inboundmessage", "orders.change_partner", "auth.change_user"} <= admin
    assert uploader <= admin


def test_only_staff_see_the_admin_link(client, objects, uploader, admin_user):
    client.force_login(uploader)
    assert 'href="/admin/"' not in client.get(reverse("order_list")).content.decode()
    client.force_login(admin_user)
    assert 'href="/admin/"' in client.get(reverse("order_list")).content.decode()


def test_viewer_sees_no_upload_or_delivery_buttons(client, objects, viewer):
    client.force_login(viewer)
    html = client.get(reverse("order_detail", args=[objects["delivery"].order_id])).content.decode()
    assert "Upload a note" not in html
    assert "Retry now" not in html and "Abandon" not in html
