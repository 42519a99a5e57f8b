"""The order search finds what the seven-column query found, through one folded column.

Every case is checked against the original query (each word `icontains` in any of the
seven fields, ORed) run on the same rows, on whichever database the tests run on, and
against the orders that query found, written out (on SQLite the search is that query); on
PostgreSQL it also folds accents ("nguyen" finds "Nguyễn") and is served by the trigram
index. The count stops at a limit and the pages go on past it.
"""

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import Q
from django.urls import reverse

from orders import search
from orders.models import Order
from orders.search import SEARCH_FIELDS, BoundedPaginator, search_fold, search_orders
from tests.factories import OrderFactory

pytestmark = pytest.mark.django_db

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="accent folding and the trigram index are PostgreSQL's; SQLite keeps the original query",
)

PATIENTS = [
    # last, first, middle, MRN, identifiers, order id, visit
    ("Nguyễn", "Thị", "Minh", "MRN0048213", "MRN0048213 EPI77120", "157720311", "VIS-2026-000731"),
    ("O'Brien", "Seán", "", "MRN0000042", "MRN0000042", "ORD-0042", "V42"),
    ("McDonald", "Zoë", "Anne-Marie", "A-17", "A-17 EPI99", "20240101-7", ""),
    ("Smith", "John", "", "MRN1157720", "MRN1157720", "ORD-77", "VIS-2025-000001"),
    ("Müller", "Jürgen", "", "", "", "X%_1", ""),
    ("", "", "", "", "", "ORD-EMPTY", ""),
]


def original_search(orders, query):
    """The query before this change, word for word."""
    for word in query.split():
        match = Q()
        for name in SEARCH_FIELDS:
            match |= Q(**{f"{name}__icontains": word})
        orders = orders.filter(match)
    return orders


@pytest.fixture
def patients(partner):
    return [
        OrderFactory(
            partner=partner,
            patient_last_name=last,
            patient_first_name=first,
            patient_middle_name=middle,
            patient_mrn=mrn,
            identifiers_text=identifiers,
            ehr_order_id=order_id,
            visit_number=visit,
        )
        for last, first, middle, mrn, identifiers, order_id, visit in PATIENTS
    ]


# Each query with the EHR order ids it finds, as the original query found them on PostgreSQL.
EXPECTED = {
    # Names: accents, apostrophes, mixed case, partial words, several words.
    "Nguyễn": {"157720311"},
    "NGUYỄN": {"157720311"},
    "nguyễn thị": {"157720311"},
    "O'Brien": {"ORD-0042"},
    "o'brien": {"ORD-0042"},
    "'bri": {"ORD-0042"},
    "mcdonald": {"20240101-7"},
    "McD": {"20240101-7"},
    "Anne-Marie": {"20240101-7"},
    "zoë": {"20240101-7"},
    "Müller": {"X%_1"},
    "smith john": {"ORD-77"},
    "mith": {"ORD-77"},
    # Ids: whole and partial, MRN, order id, visit number, other identifiers.
    "MRN0048213": {"157720311"},
    "mrn0048213": {"157720311"},
    "0048": {"157720311"},
    "157720311": {"157720311"},
    "15772": {"157720311", "ORD-77"},
    "EPI77120": {"157720311"},
    "epi": {"157720311", "20240101-7"},
    "VIS-2026-000731": {"157720311"},
    "vis-2025": {"ORD-77"},
    "A-17": {"20240101-7"},
    "20240101-7": {"20240101-7"},
    "ORD": {"ORD-0042", "ORD-77", "ORD-EMPTY"},
    # LIKE's wildcards are literal characters here.
    "X%_1": {"X%_1"},
    "%": {"X%_1"},
    "_": {"X%_1"},
    # Nothing.
    "Nobody": set(),
    "smith nobody": set(),
}
QUERIES = list(EXPECTED)


@pytest.mark.parametrize("query", QUERIES)
def test_finds_the_same_orders_as_the_original_query(patients, query):
    found = set(search_orders(Order.objects.all(), query))
    assert found == set(original_search(Order.objects.all(), query))
    expected = EXPECTED[query]
    if connection.vendor == "sqlite" and query == "NGUYỄN":
        expected = set()  # SQLite's LIKE folds ASCII case only (the make run fallback)
    assert {order.ehr_order_id for order in found} == expected


@pytest.mark.parametrize("query", ["Nguyễn", "157720311", "o'brien", "ORD"])
def test_the_order_list_shows_the_same_orders(client, viewer, patients, query):
    client.force_login(viewer)
    response = client.get(reverse("order_list"), {"q": query})
    expected = original_search(Order.objects.all(), query).order_by("-first_received_at", "-id")
    assert list(response.context["page"].object_list) == list(expected)


@on_postgresql
@pytest.mark.parametrize(
    ("query", "wanted"),
    [("nguyen", "Nguyễn"), ("NGUYEN THI", "Nguyễn"), ("sean", "O'Brien"), ("zoe", "McDonald"), ("muller", "Müller")],
)
def test_accents_and_case_fold_on_postgresql(patients, query, wanted):
    assert [order.patient_last_name for order in search_orders(Order.objects.all(), query)] == [wanted]


def test_fold_strips_accents_and_case():
    assert search_fold("Nguyễn Thị") == "nguyen thi"
    assert search_fold("ØRSTED Æsir Łódź") == "orsted aesir lodz"
    assert search_fold("O'Brien") == "o'brien"
    assert search_fold("") == ""


def test_save_keeps_the_search_text_in_step(partner):
    order = OrderFactory(partner=partner, patient_last_name="Nguyễn", ehr_order_id="A1")
    assert "nguyen" in order.search_text.split("\n")
    order.patient_last_name = "Trần"
    order.save(update_fields=["patient_last_name"])
    order.refresh_from_db()
    assert "tran" in order.search_text.split("\n")
    assert "nguyen" not in order.search_text
    # A save that touches no searchable field leaves the column alone.
    Order.objects.filter(pk=order.pk).update(search_text="stale")
    order.state = Order.State.SENT
    order.save(update_fields=["state"])
    order.refresh_from_db()
    assert order.search_text == "stale"


def test_fill_search_text_fills_orders_saved_without_it(partner):
    order = OrderFactory(partner=partner, patient_last_name="Đặng", ehr_order_id="A2")
    already = OrderFactory(partner=partner, patient_last_name="Lê", ehr_order_id="A3")
    # As the previous release inserts it: the column's database default.
    Order.objects.filter(pk=order.pk).update(search_text="")
    call_command("fill_search_text", "--batch", "1", stdout=(out := __import__("io").StringIO()))
    order.refresh_from_db()
    assert "dang" in order.search_text.split("\n")
    assert "Filled the search text of 1 orders." in out.getvalue()
    assert Order.objects.get(pk=already.pk).search_text == search.order_search_text(already)


@on_postgresql
def test_the_trigram_index_serves_the_search():
    # As the bounded count asks it: unordered, so the index alone decides the plan.
    query = search_orders(Order.objects.order_by(), "nguyen").values("pk")
    sql, params = query.query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        # On an empty table the planner would scan it; forbid that to see whether the index fits.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "order_search_trgm" in plan


class TestBoundedCount:
    @pytest.fixture
    def seven(self, partner):
        return [OrderFactory(partner=partner) for _ in range(7)][::-1]  # newest first

    def paginator(self):
        return BoundedPaginator(Order.objects.order_by("-first_received_at", "-id"), 2, limit=3)

    def test_under_the_limit_it_is_django_s_paginator(self, partner):
        made = [OrderFactory(partner=partner) for _ in range(3)]
        paginator = self.paginator()
        assert (paginator.count, paginator.capped, paginator.count_text, paginator.num_pages) == (3, False, "3", 2)
        assert list(paginator.get_page(9).object_list) == [made[0]]

    def test_past_the_limit_it_counts_no_further(self, seven, django_assert_num_queries):
        paginator = self.paginator()
        with django_assert_num_queries(1) as queries:
            assert paginator.count == 4
        assert "LIMIT 4" in queries.captured_queries[0]["sql"]
        assert (paginator.capped, paginator.count_text) == (True, "3+")

    def test_past_the_limit_every_page_with_rows_opens(self, seven):
        paginator = self.paginator()
        pages = [paginator.get_page(number) for number in (1, 2, 3, 4)]
        assert [list(page.object_list) for page in pages] == [seven[0:2], seven[2:4], seven[4:6], seven[6:7]]
        assert [page.has_next() for page in pages] == [True, True, True, False]
        assert [(page.start_index(), page.end_index()) for page in pages] == [(1, 2), (3, 4), (5, 6), (7, 7)]
        # Beyond the rows, or not a number: as Django's get_page, the last counted page or the first.
        assert list(paginator.get_page(99).object_list) == seven[2:4]
        assert list(paginator.get_page("x").object_list) == seven[0:2]
        assert list(paginator.get_page(0).object_list) == seven[2:4]

    def test_the_page_says_1000_plus(self, client, viewer, seven, monkeypatch):
        monkeypatch.setattr(search, "COUNT_LIMIT", 3)
        monkeypatch.setattr("orders.views.ORDERS_PER_PAGE", 2)
        client.force_login(viewer)
        first = client.get(reverse("order_list")).content.decode()
        assert "3+ orders, showing 1–2." in first
        assert "Page 1</span>" in first
        assert 'href="?page=2" rel="next"' in first
        last = client.get(reverse("order_list"), {"page": 4}).content.decode()
        assert "showing 7–7" in last
        assert 'rel="next"' not in last
