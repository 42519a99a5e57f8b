"""No patient value ever appears in a URL we generate: links, form actions, frame sources
and redirects carry opaque ids only, so patient data cannot reach access logs or traces."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from orders.models import Delivery
from tests.conftest import sample_bytes
from tests.factories import PATIENT_VALUES, ClinicalNoteFactory, DeliveryFactory, InboundMessageFactory, OrderFactory

pytestmark = pytest.mark.django_db

URL_ATTRIBUTE = re.compile(r'\b(?:href|src|action|data|formaction)="([^"]*)"')


def urls_in(response):
    found = URL_ATTRIBUTE.findall(response.content.decode())
    if response.has_header("Location"):
        found.append(response["Location"])
    return found


def assert_no_patient_data(urls):
    assert urls
    for url in urls:
        for value in PATIENT_VALUES + ["Samplepatient".lower(), "1948"]:
            assert value not in url, f"{value!r} in {url!r}"


@pytest.fixture
def order(partner, uploader):
    order = OrderFactory(partner=partner, ehr_order_id="157720311")
    inbound = InboundMessageFactory(partner=partner, dedupe_key="k1", body=b"{}")
    inbound.orders.add(order)
    ClinicalNoteFactory(order=order, uploaded_by=uploader, file_name="Samplepatient_Testy_MRN0048213.pdf")
    DeliveryFactory(order=order, created_by=uploader, status=Delivery.Status.FAILED)
    return order


def test_pages_link_by_opaque_id_only(client, admin_user, order):
    client.force_login(admin_user)
    note = order.notes.first()
    delivery = order.deliveries.first()
    urls = []
    for url in (
        reverse("order_list"),
        reverse("order_list") + "?state=failed&kind=test",
        reverse("order_detail", args=[order.pk]),
        reverse("upload_note", args=[order.pk]),
        reverse("review_note", args=[note.pk]),
        reverse("abandon_delivery", args=[delivery.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        urls += urls_in(response)
    assert_no_patient_data(urls)


def test_redirects_carry_ids_only(client, admin_user, order):
    client.force_login(admin_user)
    upload = client.post(
        reverse("upload_note", args=[order.pk]),
        {"file": SimpleUploadedFile("Samplepatient Testy.pdf", sample_bytes("clinical-note.pdf"))},
    )
    note = order.notes.last()
    responses = [
        upload,
        client.post(reverse("send_note", args=[note.pk])),
        client.post(reverse("retry_delivery", args=[order.deliveries.first().pk])),
        client.post(reverse("abandon_delivery", args=[order.deliveries.first().pk]), {"reason": "x"}),
        client.post(reverse("resend_note", args=[note.pk]), {"reason": "x"}),
    ]
    for response in responses:
        assert response.status_code == 302
    assert_no_patient_data([response["Location"] for response in responses])
