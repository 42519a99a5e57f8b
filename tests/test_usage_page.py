"""The Usage page: for uploaders and admins, refused to viewers, figures shown as computed."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from orders.models import Delivery, Order
from tests.factories import DeliveryFactory, OrderFactory


@pytest.fixture
def one_sent_note(partner, uploader):
    received = timezone.now() - timedelta(hours=3)
    # Production orders: the page leaves test orders out.
    order = OrderFactory(partner=partner, first_received_at=received, state=Order.State.SENT, is_test=False)
    DeliveryFactory(
        order=order, created_by=uploader, status=Delivery.Status.SENT, sent_at=received + timedelta(hours=2, minutes=5)
    )
    OrderFactory(partner=partner, first_received_at=received, is_test=False)
    return order


def test_uploaders_see_weekly_figures(client, uploader, one_sent_note):
    client.force_login(uploader)
    response = client.get(reverse("usage"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>Usage</h1>" in html
    assert "Cascade Health" in html
    assert "2 h 5 min" in html  # median and 90th percentile of the one note
    # Summed over the weeks shown: three hours ago may be last week early on a Monday.
    totals = [row for row in response.context["usage"].rows if row.partner_id is None]
    assert sum(row.orders_received for row in totals) == 2
    assert sum(row.notes_sent for row in totals) == 1


def test_admins_may_see_it(client, admin_user):
    client.force_login(admin_user)
    assert client.get(reverse("usage")).status_code == 200


def test_viewers_are_refused(client, viewer):
    client.force_login(viewer)
    assert client.get(reverse("usage")).status_code == 403


def test_signed_out_visitors_are_sent_to_sign_in(client):
    response = client.get(reverse("usage"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_the_number_of_weeks_is_validated(client, uploader):
    client.force_login(uploader)
    response = client.get(reverse("usage"), {"weeks": "9999"})
    assert response.status_code == 200
    assert len(response.context["usage"].weeks) == 12  # the default, with the error shown
    assert 'class="error"' in response.content.decode()
    response = client.get(reverse("usage"), {"weeks": "3"})
    assert len(response.context["usage"].weeks) == 3
