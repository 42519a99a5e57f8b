"""Retry-now and abandon (with a reason) for a failed or retry-scheduled delivery:
buttons for `orders.manage_delivery`, each action audited, refusals explained."""

import pytest
from django.urls import reverse

from orders.models import AuditEvent, Delivery, Order
from tests.factories import DeliveryFactory, OrderFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def failed(partner, uploader):
    order = OrderFactory(partner=partner, state=Order.State.FAILED)
    return DeliveryFactory(order=order, created_by=uploader, status=Delivery.Status.FAILED, last_error="Redox said 400")


def test_retry_now_requeues_and_is_audited(client, uploader, failed):
    client.force_login(uploader)
    response = client.post(reverse("retry_delivery", args=[failed.pk]), follow=True)
    assert response.redirect_chain == [(reverse("order_detail", args=[failed.order_id]), 302)]
    failed.refresh_from_db()
    assert failed.status == Delivery.Status.PENDING
    event = AuditEvent.objects.get(action=AuditEvent.Action.RETRY_DELIVERY)
    assert (event.actor, event.object_id, event.order_id, event.outcome) == (
        uploader,
        str(failed.pk),
        failed.order_id,
        AuditEvent.Outcome.SUCCESS,
    )
    assert "will be tried again now" in response.content.decode()


def test_retry_of_a_sent_delivery_is_refused_and_audited_as_a_failure(client, uploader, partner):
    sent = DeliveryFactory(order=OrderFactory(partner=partner), created_by=uploader, status=Delivery.Status.SENT)
    client.force_login(uploader)
    response = client.post(reverse("retry_delivery", args=[sent.pk]), follow=True)
    assert "cannot be retried" in response.content.decode()
    sent.refresh_from_db()
    assert sent.status == Delivery.Status.SENT
    assert AuditEvent.objects.get(action=AuditEvent.Action.RETRY_DELIVERY).outcome == AuditEvent.Outcome.FAILURE


def test_retry_needs_post(client, uploader, failed):
    client.force_login(uploader)
    assert client.get(reverse("retry_delivery", args=[failed.pk])).status_code == 405


def test_abandon_with_a_reason(client, uploader, failed):
    client.force_login(uploader)
    response = client.post(reverse("abandon_delivery", args=[failed.pk]), {"reason": "Partner asked us to stop"})
    assert response.status_code == 302
    failed.refresh_from_db()
    assert failed.status == Delivery.Status.ABANDONED
    assert failed.abandoned_reason == "Partner asked us to stop"
    assert failed.abandoned_by == uploader
    event = AuditEvent.objects.get(action=AuditEvent.Action.ABANDON_DELIVERY)
    assert (event.object_id, event.outcome) == (str(failed.pk), AuditEvent.Outcome.SUCCESS)


def test_abandon_without_a_reason_shows_the_error_next_to_the_field(client, uploader, failed):
    client.force_login(uploader)
    response = client.post(reverse("abandon_delivery", args=[failed.pk]), {"reason": ""})
    assert response.status_code == 400
    assert '<p class="error" id="id_reason_error">Give a reason.</p>' in response.content.decode()
    failed.refresh_from_db()
    assert failed.status == Delivery.Status.FAILED
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.ABANDON_DELIVERY).exists()


def test_abandon_page_asks_for_the_reason(client, uploader, failed):
    client.force_login(uploader)
    html = client.get(reverse("abandon_delivery", args=[failed.pk])).content.decode()
    assert '<textarea name="reason"' in html


def test_abandoning_a_pending_delivery_is_refused(client, uploader, partner):
    pending = DeliveryFactory(order=OrderFactory(partner=partner), created_by=uploader)
    client.force_login(uploader)
    response = client.post(reverse("abandon_delivery", args=[pending.pk]), {"reason": "why not"}, follow=True)
    assert "cannot be abandoned" in response.content.decode()
    pending.refresh_from_db()
    assert pending.status == Delivery.Status.PENDING
    assert AuditEvent.objects.get(action=AuditEvent.Action.ABANDON_DELIVERY).outcome == AuditEvent.Outcome.FAILURE
