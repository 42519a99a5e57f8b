"""What matching reads from a file name and text: identifier keys, dates of birth in the
forms notes use (the ambiguous dotted form both ways), and names folded for comparison.
The PDFs these come from are in tests/test_matching.py; here the rules themselves."""

import datetime

import pytest

from orders.matching_text import FILE_NAME, dates_in, find_facts, name_key, order_id_keys, page

TODAY = datetime.date(2026, 11, 30)


def dates(text):
    return set(dates_in(text, today=TODAY))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("07.03.1980", {datetime.date(1980, 3, 7), datetime.date(1980, 7, 3)}),
        ("25.03.1980", {datetime.date(1980, 3, 25)}),  # only one reading is a date
        ("03/07/1980", {datetime.date(1980, 3, 7)}),  # slashes: month first
        ("25/03/1980", set()),  # no 25th month, and slashes are never read day first
        ("02/30/1980", set()),
        ("03/07/80", {datetime.date(1980, 3, 7)}),
        ("03/07/19", {datetime.date(2019, 3, 7)}),
        ("1980/03/07", {datetime.date(1980, 3, 7)}),
        ("Sept 7, 1980", {datetime.date(1980, 9, 7)}),
        ("7-MAR-1980", {datetime.date(1980, 3, 7)}),
        ("1st January 1901", {datetime.date(1901, 1, 1)}),
        ("Marching 7, 1980", set()),
        ("03/07/2030", set()),  # in the future
        ("1.2.3.4", set()),  # a version number, not a date
        ("12/05/1980-01/01/1990", {datetime.date(1980, 12, 5), datetime.date(1990, 1, 1)}),
        ("7 ſep 1980", {datetime.date(1980, 9, 7)}),  # a long s folds to "sep" (it crashed matching)
        ("7 İan 1980", set()),  # matches "jan" case-insensitively but folds to no month
    ],
)
def test_dates(text, expected):
    assert dates(text) == expected


@pytest.mark.parametrize(
    ("value", "keys"),
    [
        ("MRN0048213", {"MRN0048213", "48213"}),
        ("0048213", {"48213"}),
        ("VIS-2026-000731", {"VIS2026000731", "2026000731"}),
        ("ord 00123", {"ORD00123", "123"}),
        ("12", set()),
        ("", set()),
    ],
)
def test_an_orders_identifier_is_compared_without_case_punctuation_leading_zeros_or_label(value, keys):
    assert order_id_keys(value) == keys


def test_identifiers_are_found_with_where_they_were_first_seen():
    facts = find_facts("ORD-2024-0001_scan.pdf", "MRN#: 0048213\fVisit VIS-2026-000731, MRN 48213")
    assert facts.where_id("ORD-2024-0001") == FILE_NAME
    assert facts.where_id("MRN0048213") == page(1)
    assert facts.where_id("VIS-2026-000731") == page(2)
    assert facts.where_id("ORD-2024-0002") is None


@pytest.mark.parametrize(
    ("name", "folded"),
    [("Nguyễn", "nguyen"), ("O'Brien", "obrien"), ("D’Angelo", "dangelo"), ("Van der Berg", "van der berg"),
     ("Abu-Bakr", "abu bakr"), ("Wiśniewska", "wisniewska"), ("ŁUKASZ", "lukasz"), ("Søren", "soren")],
)  # fmt: skip
def test_names_are_folded_alike(name, folded):
    assert name_key(name) == folded


def test_a_name_matches_whole_words_only():
    facts = find_facts("", "Seen by Dr Lee Anderson.\fPatient: van der Berg")
    assert facts.where_words(name_key("Lee")) == page(1)
    assert facts.where_words(name_key("Van der Berg")) == page(2)
    assert facts.where_words(name_key("Anders")) is None
    assert facts.where_words(name_key("Berg Van")) is None
