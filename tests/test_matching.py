"""A note's file is matched to the awaiting order it belongs to from its file name and the
text of its first pages, read out of PDFs made here; only an unambiguous strong match is
pre-selected, and a weak or ambiguous one always asks a person."""

import datetime

import pytest

from orders.matching import MAX_CANDIDATES, STRONG, awaiting_orders, propose, propose_all
from orders.models import Order
from orders.notes import note_send
from orders.pdf.preview import first_pages_text
from tests.factories import ClinicalNoteFactory, DeliveryFactory, OrderFactory, UserFactory
from tests.pdf_text import text_pdf

pytestmark = pytest.mark.django_db

DOB = datetime.date(1980, 3, 7)


def patient(**values):
    """An awaiting order for one made-up patient; `values` override."""
    fields = {
        "ehr_order_id": "ORD-55501",
        "patient_mrn": "0048213",
        "visit_number": "VIS-2026-000731",
        "patient_last_name": "Quincey",
        "patient_first_name": "Harriet",
        "patient_dob": DOB,
        **values,
    }
    return OrderFactory(**fields)


def proposal_for(*pages, file_name="scan.pdf"):
    """What `propose` makes of a PDF holding `pages`, its text read as the batch upload reads it."""
    return propose(file_name, first_pages_text(text_pdf(list(pages)), pages=len(pages)))


def test_the_order_id_in_the_file_name_is_preselected():
    order = patient()
    patient(ehr_order_id="ORD-55502", patient_mrn="999111", patient_last_name="Other")

    proposal = propose("ORD-55501 discharge.pdf", "")

    assert proposal.preselected == order
    [best] = proposal.candidates
    assert best.order == order
    assert best.score >= STRONG
    assert best.reasons == ("order id in the file name",)


@pytest.mark.parametrize(
    "mrn_text",
    ["MRN: 0048213", "MRN#48213", "MRN 048213", "mrn48213", "Medical record number (MRN): 00048213"],
)
def test_mrn_with_a_prefix_and_date_of_birth_in_the_text_is_preselected(mrn_text):
    order = patient()
    patient(ehr_order_id="ORD-1", patient_mrn="7700012", patient_last_name="Other", patient_first_name="Person")

    proposal = proposal_for(f"Clinic note\n{mrn_text}\nDOB: 03/07/1980")

    assert proposal.preselected == order
    assert proposal.candidates[0].reasons == ("MRN and date of birth on page 1",)


@pytest.mark.parametrize(
    "written",
    ["1980-03-07", "03/07/1980", "3/7/1980", "03-07-1980", "7 Mar 1980", "07-MAR-1980", "7th March 1980",
     "March 7, 1980", "Mar. 7 1980", "07.03.1980", "03.07.1980", "03/07/80"],
)  # fmt: skip
def test_the_date_of_birth_is_read_in_each_form(written):
    order = patient()

    proposal = proposal_for("Note", f"MRN 48213, born {written}")

    assert proposal.preselected == order
    assert proposal.candidates[0].reasons == ("MRN and date of birth on page 2",)


def test_a_date_in_another_form_or_another_date_does_not_count_as_the_date_of_birth():
    order = patient()

    # 1980-07-03 read month first is another day; "7/3" has no year.
    proposal = proposal_for("MRN 48213 seen 07/03/1980 and 7/3")

    assert proposal.preselected is None
    assert [(c.order, c.reasons) for c in proposal.candidates] == [(order, ("MRN on page 1",))]


@pytest.mark.parametrize(
    ("stored", "written"),
    [
        (("Nguyễn", "Văn"), "NGUYEN, VAN"),
        (("Nguyen", "Van"), "Nguyễn Văn"),
        (("O'Brien", "Mary"), "OBrien, Mary"),
        (("OBrien", "Mary"), "Mary O’Brien"),
        (("Müller-Lüdenscheidt", "Zoë"), "Zoe Muller Ludenscheidt"),
        (("Dvořák", "Đức"), "DVORAK DUC"),
    ],
)
def test_names_match_whatever_their_case_accents_and_apostrophes(stored, written):
    order = patient(patient_last_name=stored[0], patient_first_name=stored[1])

    proposal = proposal_for(f"Patient: {written}\nVisit: VIS-2026-000731")

    assert [(c.order, c.reasons) for c in proposal.candidates] == [(order, ("visit number and name on page 1",))]


@pytest.mark.parametrize(
    ("text", "reason"),
    [("Harriet Quincey", "name only"), ("Born 7 March 1980", "date of birth only")],
)
def test_a_weak_match_is_offered_but_never_preselected(text, reason):
    order = patient()

    proposal = proposal_for(text)

    assert proposal.preselected is None
    [weak] = proposal.candidates
    assert (weak.order, weak.reasons) == (order, (reason,))
    assert weak.score < STRONG


def test_name_and_date_of_birth_are_not_enough_to_preselect():
    order = patient()

    proposal = proposal_for("Harriet Quincey, DOB 1980-03-07")

    assert proposal.preselected is None
    assert [(c.order, c.reasons) for c in proposal.candidates] == [(order, ("name and date of birth on page 1",))]


def test_two_orders_of_one_name_and_birth_date_are_ambiguous():
    first = patient(ehr_order_id="ORD-1", patient_mrn="111222")
    second = patient(ehr_order_id="ORD-2", patient_mrn="333444")

    proposal = proposal_for("Harriet Quincey, DOB 1980-03-07")

    assert proposal.preselected is None
    assert {c.order for c in proposal.candidates} == {first, second}
    assert proposal.candidates[0].score == proposal.candidates[1].score


def test_one_patients_two_awaiting_orders_found_by_mrn_and_birth_date_ask_a_person():
    first = patient(ehr_order_id="ORD-1")
    second = patient(ehr_order_id="ORD-2")

    proposal = proposal_for("MRN: 48213  DOB: 03/07/1980  Harriet Quincey")

    assert proposal.preselected is None
    assert {c.order for c in proposal.candidates} == {first, second}


def test_an_order_id_singles_out_one_of_the_patients_orders():
    first = patient(ehr_order_id="ORD-1001")
    patient(ehr_order_id="ORD-1002")

    proposal = proposal_for("MRN: 48213  DOB: 03/07/1980  Harriet Quincey", file_name="ORD-1001.pdf")

    assert proposal.preselected == first
    assert proposal.candidates[0].reasons == ("order id in the file name", "MRN, name and date of birth on page 1")
    assert proposal.candidates[0].score == 100


def test_only_orders_still_awaiting_a_note_are_candidates():
    awaiting = patient(ehr_order_id="ORD-1")
    # Sent through note_send: its delivery and its new state commit together, so it is no candidate.
    in_flight = patient(ehr_order_id="ORD-2")
    note_send(note=ClinicalNoteFactory(order=in_flight), user=UserFactory())
    accepted = patient(ehr_order_id="ORD-3", state=Order.State.SENT)
    DeliveryFactory(order=accepted, sent=True)
    patient(ehr_order_id="ORD-6", state=Order.State.SENDING)
    patient(ehr_order_id="ORD-4", state=Order.State.CANCELLED)
    patient(ehr_order_id="ORD-5", state=Order.State.FILED)

    proposal = proposal_for("MRN: 48213  DOB: 03/07/1980")

    assert [c.order for c in proposal.candidates] == [awaiting]
    assert list(awaiting_orders()) == [awaiting]


def test_nothing_readable_proposes_nothing():
    patient()

    proposal = proposal_for("Unrelated text 12 mg twice daily, page 1 of 2")

    assert proposal.candidates == ()
    assert proposal.preselected is None


def test_short_identifiers_never_match_stray_numbers():
    patient(patient_mrn="12", visit_number="7")

    assert proposal_for("Take 12 tablets for 7 days").candidates == ()


def test_at_most_five_candidates_best_first_in_two_queries(django_assert_max_num_queries):
    strong = patient(ehr_order_id="ORD-9")
    for number in range(8):
        patient(ehr_order_id=f"ORD-X{number}", patient_mrn=f"55{number}000")
    text = first_pages_text(text_pdf(["Harriet Quincey born 1980-03-07"]))

    with django_assert_max_num_queries(2):
        proposal = propose("ORD-9.pdf", text)

    assert len(proposal.candidates) == MAX_CANDIDATES
    assert proposal.candidates[0].order == strong
    scores = [c.score for c in proposal.candidates]
    assert scores == sorted(scores, reverse=True)


def test_a_caller_may_narrow_the_candidates():
    first = patient(ehr_order_id="ORD-1")
    patient(ehr_order_id="ORD-2")

    proposal = propose("ORD-2.pdf", "", orders=Order.objects.filter(pk=first.pk))

    assert proposal.candidates == ()


def test_a_batch_is_proposed_in_two_queries_as_each_file_alone(django_assert_max_num_queries):
    first = patient(ehr_order_id="ORD-1", patient_mrn="111222")
    second = patient(ehr_order_id="ORD-2", patient_mrn="333444", patient_last_name="Other")
    files = [("ORD-1.pdf", ""), ("scan.pdf", "MRN 333444 born 03/07/1980"), ("scan.pdf", "nothing here")]

    with django_assert_max_num_queries(2):
        proposals = propose_all(files)

    assert proposals == [propose(name, text) for name, text in files]
    assert [proposal.preselected for proposal in proposals] == [first, second, None]
