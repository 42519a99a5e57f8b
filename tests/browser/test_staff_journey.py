"""A new staff member's journey in a real browser: sign in, find the order, upload the
sample note, review it beside the patient's details, send it, and see the delivery."""

import hashlib
from pathlib import Path

import pytest
from playwright.sync_api import expect

from orders import note_content
from orders.models import ClinicalNote, Delivery
from tests.browser.conftest import sign_in
from tests.factories import OrderFactory, UserFactory

SAMPLE_PDF = Path(__file__).resolve().parents[2] / "redox" / "samples" / "clinical-note.pdf"
IN_URL_FORBIDDEN = ["Testy", "Samplepatient", "MRN0048213", "EPI77120", "1948", "VIS-2026-000731"]

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def order(partner):
    OrderFactory(partner=partner, patient_last_name="Otherpatient", identifiers_text="MRN1 X1", patient_mrn="MRN1")
    return OrderFactory(partner=partner, ehr_order_id="157720311")


def test_upload_review_send_and_see_the_delivery(page, order):
    UserFactory(username="ursula", role="uploader")
    sign_in(page, "ursula")

    page.get_by_label("Search").fill(order.ehr_order_id)
    page.get_by_role("button", name="Search").click()
    expect(page.locator("table.orders tbody tr")).to_have_count(1)
    page.get_by_role("link", name="Samplepatient, Testy").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Samplepatient, Testy")
    page.get_by_role("link", name="Upload a note").click()
    page.get_by_label("Clinical note (PDF)").set_input_files(SAMPLE_PDF)
    page.get_by_role("button", name="Upload and review").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Check before sending")
    summary = page.locator(".review-side .summary")
    expect(summary).to_contain_text("Samplepatient, Testy")
    expect(summary).to_contain_text("Feb 29, 1948")
    expect(summary).to_contain_text(order.ehr_order_id)
    expect(page.get_by_role("img", name="Page 1 of 1 of the note")).to_be_visible()
    pdf = page.request.get(page.get_by_role("link", name="Open the PDF in a new tab").get_attribute("href"))
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
    # The reviewer sees the clean copy rebuilt from the upload, which is what will be sent.
    note = ClinicalNote.objects.get(order=order)
    assert pdf.body() == note_content.read(note)
    assert note.original_sha256 == hashlib.sha256(SAMPLE_PDF.read_bytes()).hexdigest()

    page.get_by_role("button", name="Send to Cascade Health").click()
    page.wait_for_url(f"**/orders/{order.pk}/")
    expect(page.get_by_role("status").first).to_contain_text("queued for delivery")
    delivery_entry = page.locator(".timeline .event-delivery")
    expect(delivery_entry).to_contain_text("Sent for delivery by ursula")
    expect(delivery_entry.locator(".state")).to_have_text("Pending")
    expect(page.locator(".timeline .event-note")).to_contain_text("clinical-note.pdf")

    delivery = Delivery.objects.get(order=order)
    assert delivery.status == Delivery.Status.PENDING and delivery.created_by.username == "ursula"
    assert not page.problems, page.problems
    for url in page.requested_urls:
        for value in IN_URL_FORBIDDEN:
            assert value not in url, url


def test_a_rejected_upload_shows_its_error(page, order, tmp_path):
    UserFactory(username="ursula", role="uploader")
    fake = tmp_path / "note.pdf"
    fake.write_bytes(b"This is a text file wearing a PDF name.\n")
    sign_in(page, "ursula")
    page.goto(f"/orders/{order.pk}/notes/new/")
    page.get_by_label("Clinical note (PDF)").set_input_files(fake)
    page.get_by_role("button", name="Upload and review").click()
    error = page.locator("#id_file_error")
    expect(error).to_contain_text("This file is not a PDF")
    expect(page.get_by_label("Clinical note (PDF)")).to_be_visible()
    assert not order.notes.exists()


def test_a_viewer_cannot_upload(page, order):
    UserFactory(username="vera", role="viewer")
    sign_in(page, "vera")
    page.goto(f"/orders/{order.pk}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Samplepatient, Testy")
    expect(page.get_by_role("link", name="Upload a note")).to_have_count(0)
    response = page.goto(f"/orders/{order.pk}/notes/new/")
    assert response.status == 403
    assert not order.notes.exists()


def test_sign_out(page, order):
    UserFactory(username="vera", role="viewer")
    sign_in(page, "vera")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    page.goto(f"/orders/{order.pk}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
