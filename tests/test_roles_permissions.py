"""Roles are groups with permissions; every staff view checks its permission and answers
403 without it (a hidden button is not enough), and every page needs sign-in."""

from unittest import mock

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from orders.models import Delivery
from tests.conftest import make_user
from tests.pages_fixtures import make_delivery, make_note, make_order

pytestmark = pytest.mark.django_db

# (url name, which object's id goes in the path, method, permission needed)
VIEWS = [
    ("order_list", None, "get", "orders.view_order"),
    ("order_detail", "order", "get", "orders.view_order"),
    ("note_pdf", "note", "get", "orders.view_order"),
    ("note_download", "note", "get", "orders.view_order"),
    ("upload_note", "order", "get", "orders.upload_note"),
    ("upload_note", "order", "post", "orders.upload_note"),
    ("review_note", "note", "get", "orders.upload_note"),
    ("send_note", "note", "post", "orders.upload_note"),
    ("resend_note", "note", "post", "orders.upload_note"),
    ("retry_delivery", "delivery", "post", "orders.manage_delivery"),
    ("abandon_delivery", "delivery", "get", "orders.manage_delivery"),
    ("abandon_delivery", "delivery", "post", "orders.manage_delivery"),
]
ROLE_PERMISSIONS = {
    "viewer": {"orders.view_order"},
    "uploader": {"orders.view_order", "orders.upload_note", "orders.manage_delivery"},
    "admin": {"orders.view_order", "orders.upload_note", "orders.manage_delivery"},
}


@pytest.fixture(autouse=True)
def enqueue():
    with mock.patch("orders.notes.delivery_enqueue", autospec=True), mock.patch("orders.delivery.delivery_enqueue"):
        yield


@pytest.fixture
def objects(partner):
    author = make_user("author", "uploader")
    order = make_order(partner)
    note = make_note(order, author)
    delivery = make_delivery(make_order(partner), author, status=Delivery.Status.FAILED)
    return {"order": order, "note": note, "delivery": delivery}


def call(client, objects, name, kind, method):
    url = reverse(name, args=[objects[kind].pk] if kind else [])
    return getattr(client, method)(url, {"reason": "a reason"} if method == "post" else None)


@pytest.mark.parametrize(("name", "kind", "method", "perm"), VIEWS)
def test_anonymous_is_sent_to_sign_in(client, objects, name, kind, method, perm):
    response = call(client, objects, name, kind, method)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


@pytest.mark.parametrize(("name", "kind", "method", "perm"), VIEWS)
def test_signed_in_user_without_a_role_gets_403(client, objects, name, kind, method, perm):
    client.force_login(make_user("nobody"))
    assert call(client, objects, name, kind, method).status_code == 403


@pytest.mark.parametrize("role", ["viewer", "uploader", "admin"])
@pytest.mark.parametrize(("name", "kind", "method", "perm"), VIEWS)
def test_each_role_gets_exactly_its_views(client, objects, role, name, kind, method, perm):
    client.force_login(make_user(f"{role}-user", role, is_staff=role == "admin"))
    status = call(client, objects, name, kind, method).status_code
    if perm in ROLE_PERMISSIONS[role]:
        assert status != 403
        assert status < 500
    else:
        assert status == 403


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
