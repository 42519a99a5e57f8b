"""Every accountable action leaves an audit record (who, what, which object by id, when,
from where, outcome), and no record holds patient data."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from orders.models import AuditEvent, Delivery
from tests.conftest import sample_bytes
from tests.factories import PATIENT_VALUES, DeliveryFactory, OrderFactory

pytestmark = pytest.mark.django_db

A = AuditEvent.Action


def test_a_working_session_leaves_a_complete_trail(client, uploader, partner):
    order = OrderFactory(partner=partner)
    earlier = OrderFactory(partner=partner)
    DeliveryFactory(order=earlier, created_by=uploader, status=Delivery.Status.SENT)
    failing = DeliveryFactory(order=OrderFactory(partner=partner), created_by=uploader, status=Delivery.Status.FAILED)
    retrying = DeliveryFactory(
        order=OrderFactory(partner=partner), created_by=uploader, status=Delivery.Status.RETRY_SCHEDULED
    )
    pdf = sample_bytes("clinical-note.pdf")
    remote = {"REMOTE_ADDR": "192.0.2.10"}

    client.post(reverse("login"), {"username": "ursula", "password": "wrong"}, **remote)
    client.post(reverse("login"), {"username": "ursula", "password": "correct-horse-battery"}, **remote)
    client.get(reverse("order_detail", args=[order.pk]), **remote)
    client.post(reverse("upload_note", args=[order.pk]), {"file": SimpleUploadedFile("n.pdf", pdf)}, **remote)
    note = order.notes.get()
    client.get(reverse("note_pdf", args=[note.pk]), **remote)
    client.get(reverse("note_download", args=[note.pk]), **remote)
    client.post(reverse("send_note", args=[note.pk]), **remote)
    client.post(reverse("upload_note", args=[earlier.pk]), {"file": SimpleUploadedFile("c.pdf", pdf)}, **remote)
    client.post(reverse("resend_note", args=[earlier.notes.last().pk]), {"reason": "Corrected"}, **remote)
    client.post(reverse("retry_delivery", args=[failing.pk]), **remote)
    client.post(reverse("abandon_delivery", args=[retrying.pk]), {"reason": "Stop"}, **remote)
    client.post(reverse("logout"), **remote)

    actions = list(AuditEvent.objects.values_list("action", flat=True))
    assert actions == [
        A.SIGN_IN_FAILED,
        A.SIGN_IN,
        A.VIEW_ORDER,
        A.UPLOAD_NOTE,
        A.VIEW_PDF,
        A.DOWNLOAD_PDF,
        A.SEND_NOTE,
        A.UPLOAD_NOTE,
        A.RESEND_NOTE,
        A.RETRY_DELIVERY,
        A.ABANDON_DELIVERY,
        A.SIGN_OUT,
    ]
    for event in AuditEvent.objects.all():
        assert event.ip_address == "192.0.2.10"
        assert event.actor_username == "ursula"
        assert event.created_at is not None
        assert event.outcome == (AuditEvent.Outcome.FAILURE if event.action == A.SIGN_IN_FAILED else "success")
        assert event.request_id
        stored = " ".join(str(value) for value in vars(event).values())
        for value in PATIENT_VALUES:
            assert value not in stored
    linked = AuditEvent.objects.exclude(action__in=[A.SIGN_IN, A.SIGN_IN_FAILED, A.SIGN_OUT])
    assert all(event.order_id and event.object_id for event in linked)
