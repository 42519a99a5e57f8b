"""The admin role opens the Django admin (the back office) without the is_staff flag, by the
same rule that shows the nav's Admin link and the timeline's raw-message link; the other
roles do not get in."""

import pytest
from django.urls import reverse

from orders.models import AuditEvent
from tests.factories import PASSWORD, InboundMessageFactory, OrderFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def role_admin(db):
    """In the admin group only: not marked staff, as a user added through the admin would be."""
    user = UserFactory(username="adele", role="admin")
    assert not user.is_staff
    return user


@pytest.fixture
def message(partner):
    order = OrderFactory(partner=partner)
    inbound = InboundMessageFactory(partner=partner)
    inbound.orders.add(order)
    return inbound


def test_an_admin_role_user_without_is_staff_opens_the_admin(client, role_admin):
    client.force_login(role_admin)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    assert "HCOINT back office" in response.content.decode()
    assert client.get(reverse("admin:orders_partner_changelist")).status_code == 200
    assert client.get(reverse("admin:auth_user_changelist")).status_code == 200


def test_an_admin_role_user_without_is_staff_opens_the_raw_message(client, role_admin, message):
    client.force_login(role_admin)
    response = client.get(reverse("admin:orders_inboundmessage_change", args=[message.pk]))
    assert response.status_code == 200
    assert AuditEvent.objects.filter(action=AuditEvent.Action.VIEW_MESSAGE, actor=role_admin).exists()


def test_an_admin_role_user_can_sign_in_on_the_admins_own_page(client, role_admin):
    response = client.post(
        reverse("admin:login"), {"username": "adele", "password": PASSWORD, "next": reverse("admin:index")}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:index")


@pytest.mark.parametrize("role", ["viewer", "uploader"])
def test_other_roles_are_sent_to_the_admin_sign_in(client, role, message):
    client.force_login(UserFactory(username=f"{role}-user", role=role))
    for url in (reverse("admin:index"), reverse("admin:orders_inboundmessage_change", args=[message.pk])):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.VIEW_MESSAGE).exists()


def test_other_roles_cannot_sign_in_on_the_admins_own_page(client, viewer):
    response = client.post(reverse("admin:login"), {"username": "vera", "password": PASSWORD})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_an_inactive_admin_role_user_is_not_let_in(client, role_admin):
    client.force_login(role_admin)
    role_admin.is_active = False
    role_admin.save()
    assert client.get(reverse("admin:index")).status_code == 302


@pytest.mark.parametrize(
    ("user_role", "shown"),
    [("viewer", False), ("uploader", False), ("admin", True)],
)
def test_the_nav_shows_the_admin_link_only_to_admins(client, user_role, shown):
    client.force_login(UserFactory(username=f"{user_role}-user", role=user_role))
    page = client.get(reverse("order_list")).content.decode()
    assert (f'href="{reverse("admin:index")}"' in page) is shown


def test_the_timeline_links_the_raw_message_for_an_admin_role_user_only(client, role_admin, uploader, message):
    order = message.orders.get()
    raw_url = reverse("admin:orders_inboundmessage_change", args=[message.pk])

    client.force_login(role_admin)
    assert raw_url in client.get(reverse("order_detail", args=[order.pk])).content.decode()
    assert client.get(raw_url).status_code == 200

    client.force_login(uploader)
    assert raw_url not in client.get(reverse("order_detail", args=[order.pk])).content.decode()


def test_staff_without_the_admin_role_see_the_admin_link_but_not_the_raw_message(client, message):
    # Django's own rule still holds for staff; what they may see inside is their permissions'.
    staff = UserFactory(username="stan", role="uploader", is_staff=True)
    order = message.orders.get()
    client.force_login(staff)
    page = client.get(reverse("order_detail", args=[order.pk])).content.decode()
    assert f'href="{reverse("admin:index")}"' in page
    assert reverse("admin:orders_inboundmessage_change", args=[message.pk]) not in page
