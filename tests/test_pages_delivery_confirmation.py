"""The order page says what Redox's log said of an accepted note, and that confirmation is off when it is."""

import pytest
from django.urls import reverse

from orders.models import Delivery, Order
from tests.delivery_fakes import T0
from tests.factories import DeliveryFactory, OrderFactory

pytestmark = pytest.mark.django_db


def page_for(client, user, order):
    client.force_login(user)
    return client.get(reverse("order_detail", args=[order.pk])).content.decode()


def accepted(partner, user, status=Delivery.Status.SENT, **fields):
    order = OrderFactory(partner=partner, state=Order.State.SENT)
    DeliveryFactory(
        order=order,
        created_by=user,
        created_at=T0,
        status=status,
        sent_at=T0,
        redox_log_id="log-77",
        attempt_count=1,
        **fields,
    )
    return order


def test_without_platform_credentials_the_page_says_confirmation_is_not_configured(client, viewer, partner):
    html = page_for(client, viewer, accepted(partner, viewer))
    assert "Accepted by Redox" in html
    assert "Confirmation is not configured" in html


def test_with_credentials_an_accepted_note_waits_for_confirmation(client, viewer, partner, monkeypatch):
    monkeypatch.setattr("orders.views.confirmer_configured", lambda: True)
    html = page_for(client, viewer, accepted(partner, viewer, next_check_at=T0))
    assert "Waiting for Redox to confirm it was filed" in html
    assert "Confirmation is not configured" not in html


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (Delivery.Status.FILED, "Filed in the partner's chart"),
        (Delivery.Status.FAILED_DOWNSTREAM, "delivery to the partner failed"),
        (Delivery.Status.FILTERED, "Redox filtered it out"),
        (Delivery.Status.UNCONFIRMED, "Redox never said whether it was filed"),
    ],
)
def test_each_confirmed_state_is_shown_with_what_to_do(client, viewer, partner, status, words):
    order = accepted(partner, viewer, status=status, confirmed_at=T0)
    html = page_for(client, viewer, order)
    assert words in html
    assert f'class="state state-{status}"' in html
