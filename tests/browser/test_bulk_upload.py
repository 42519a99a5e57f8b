"""Dispatch's visit in a real browser: twenty-one notes for twenty-two awaiting orders dropped at once.

Some files name their order id, some carry only the patient's MRN and date of birth in their
text; two are ambiguous (one patient's two orders; two patients of one name and date of
birth), one is a weak match by name only and one matches nothing (issue 13's Done-when).
The page must pre-select exactly the strong matches and ask about the rest; after one Send,
each confirmed order shows its note and its delivery, and the other files were not sent.
"""

import pytest
from playwright.sync_api import expect

from orders.models import BatchFile, Delivery, Order
from tests.browser.conftest import sign_in
from tests.factories import UserFactory, other_patient_order
from tests.pdf_text import text_pdf

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

BY_NAME, BY_TEXT = range(10), range(10, 17)


def note(name, text):
    return {"name": name, "mimeType": "application/pdf", "buffer": text_pdf([text])}


@pytest.fixture
def visit(partner):
    """Twenty-two awaiting orders, and the twenty-one files Dispatch brings for them."""
    orders = [other_patient_order(number, partner=partner) for number in range(18)]
    # Orders 17 and 18 are one patient's: her note, found by MRN and date of birth, fits both.
    twin = orders[17]
    same_patient = {
        field: getattr(twin, field)
        for field in ("patient_mrn", "patient_first_name", "patient_last_name", "patient_dob")
    }
    orders.append(other_patient_order(18, partner=partner, **same_patient))
    orders.append(other_patient_order(19, partner=partner))
    # Orders 20 and 21 are two patients with one name and date of birth (their MRNs differ).
    orders.append(other_patient_order(20, partner=partner))
    namesake = orders[20]
    same_name_and_birth = {
        field: getattr(namesake, field) for field in ("patient_first_name", "patient_last_name", "patient_dob")
    }
    orders.append(other_patient_order(21, partner=partner, **same_name_and_birth))
    files = [note(f"{orders[n].ehr_order_id}.pdf", "Clinical note\nProgress note, signed.") for n in BY_NAME]
    files += [
        note(f"scan-{n}.pdf", f"Clinical note\nMRN: {orders[n].patient_mrn}\nDOB: {orders[n].patient_dob:%m/%d/%Y}")
        for n in BY_TEXT
    ]
    files.append(note("scan-twin.pdf", f"MRN: {twin.patient_mrn}\nDOB: {twin.patient_dob:%m/%d/%Y}"))
    name_only = orders[19]
    files.append(note("scan-name.pdf", f"Patient: {name_only.patient_first_name} {name_only.patient_last_name}"))
    files.append(
        note(
            "scan-namesakes.pdf",
            f"Patient: {namesake.patient_first_name} {namesake.patient_last_name}\n"
            f"DOB: {namesake.patient_dob:%m/%d/%Y}",
        )
    )
    files.append(note("scan-nobody.pdf", "Patient: Nobody Atall\nMRN: 1234567"))
    return orders, files


def file_block(page, name):
    """A file's block on the batch page, found by its row's id: no file name in an attribute."""
    return page.locator(f"#file-{BatchFile.objects.get(file_name=name).pk}")


def test_a_visits_files_matched_confirmed_and_sent_in_one_go(page, visit):
    orders, files = visit
    UserFactory(username="ursula", role="uploader")
    sign_in(page, "ursula")

    page.get_by_role("link", name="Bulk upload").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Bulk upload")
    page.get_by_label("Clinical notes (PDFs)").set_input_files(files)
    # Checking, matching and rendering twenty-one files takes a while on a busy machine.
    page.get_by_role("button", name="Upload and match").click(timeout=120_000)
    expect(page.get_by_role("heading", level=1)).to_have_text("Match each file to its order", timeout=120_000)

    strong = {n: orders[n] for n in (*BY_NAME, *BY_TEXT)}
    for n, order in strong.items():
        name = f"{order.ehr_order_id}.pdf" if n in BY_NAME else f"scan-{n}.pdf"
        block = file_block(page, name)
        expect(block.locator("input[type=radio]:checked")).to_have_value(str(order.pk))
        expect(block).to_contain_text(order.patient_name)
        expect(block).to_contain_text(order.ehr_order_id)
    for name in ("scan-twin.pdf", "scan-namesakes.pdf", "scan-name.pdf", "scan-nobody.pdf"):
        block = file_block(page, name)
        expect(block.locator("input[type=radio]:checked")).to_have_value("")
    # The twin's file offers both of her orders; the name-only file offers its weak match.
    expect(file_block(page, "scan-twin.pdf").locator("input[type=radio]")).to_have_count(4)
    # The namesakes' file offers both patients, neither chosen for the person.
    namesakes = file_block(page, "scan-namesakes.pdf")
    expect(namesakes.locator("input[type=radio]")).to_have_count(4)
    for order in (orders[20], orders[21]):
        expect(namesakes.locator(f'input[type=radio][value="{order.pk}"]')).not_to_be_checked()
        expect(namesakes).to_contain_text(order.ehr_order_id)
    expect(file_block(page, "scan-name.pdf")).to_contain_text("name only")
    expect(file_block(page, "scan-nobody.pdf")).to_contain_text("No order awaiting a note matches")
    expect(page.locator("[data-file]")).to_have_count(0)

    # Every preview is an image the server rendered: no PDF plug-in involved.
    previews = page.locator(".batch-preview img")
    expect(previews).to_have_count(21)
    for index in range(21):
        previews.nth(index).scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=previews.nth(index).element_handle())

    page.reload()  # the batch is stored: a reload loses nothing
    expect(page.locator("fieldset.batch-file")).to_have_count(21)

    page.get_by_role("button", name="Send the chosen notes").click()
    expect(page.locator(".message-success")).to_have_text("17 notes queued for delivery.", timeout=60_000)
    expect(page.locator("fieldset.batch-file")).to_have_count(4)
    expect(page.locator(".batch-done tbody tr")).to_have_count(17)

    for order in strong.values():
        page.goto(f"/orders/{order.pk}/")
        expect(page.locator(".timeline .event-note")).to_have_count(1)
        expect(page.locator(".timeline .event-delivery")).to_contain_text("Sent for delivery by ursula")
    for order in (orders[17], orders[18], orders[19], orders[20], orders[21]):
        assert not order.notes.exists() and not Delivery.objects.filter(order=order).exists()
    assert Delivery.objects.count() == 17
    assert set(Order.objects.filter(state=Order.State.SENDING)) == set(strong.values())
    assert set(BatchFile.objects.filter(decision=BatchFile.Decision.PENDING).values_list("file_name", flat=True)) == {
        "scan-twin.pdf",
        "scan-namesakes.pdf",
        "scan-name.pdf",
        "scan-nobody.pdf",
    }
    assert not page.problems, page.problems
