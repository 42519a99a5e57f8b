"""The order list at `/`: newest first, the columns staff tell orders apart by, filters,
search, pagination, and a query count that does not grow with the page size."""

import datetime
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from orders import views
from orders.models import Order
from tests.factories import OrderFactory

pytestmark = pytest.mark.django_db


def rows(response):
    return list(response.context["page"].object_list)


def test_lists_orders_newest_first_with_columns(client, viewer, partner):
    older = OrderFactory(partner=partner, first_received_at=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC))
    newer = OrderFactory(
        partner=partner, first_received_at=datetime.datetime(2026, 2, 1, tzinfo=datetime.UTC), state=Order.State.FAILED
    )
    client.force_login(viewer)
    response = client.get(reverse("order_list"))
    assert response.status_code == 200
    assert rows(response) == [newer, older]
    html = response.content.decode()
    for text in ("Samplepatient, Testy", "MRN MRN0048213", "Feb 29, 1948", "Request for outside clinical notes"):
        assert text in html
    for text in ("Alex Exampledoc", "Cascade Health", "Test", "Failed", "Awaiting note"):
        assert text in html
    assert f'href="/orders/{newer.pk}/"' in html


def test_state_shown_with_word_and_colour_class(client, viewer, partner):
    OrderFactory(partner=partner, state=Order.State.SENT)
    client.force_login(viewer)
    html = client.get(reverse("order_list")).content.decode()
    assert '<span class="state state-sent">Accepted by Redox</span>' in html


def test_filters_by_state(client, viewer, partner):
    failed = OrderFactory(partner=partner, state=Order.State.FAILED)
    OrderFactory(partner=partner, state=Order.State.SENT)
    client.force_login(viewer)
    assert rows(client.get(reverse("order_list"), {"state": "failed"})) == [failed]


def test_filters_by_closed_before_hcoint_and_shows_it_in_words(client, viewer, partner):
    closed = OrderFactory(partner=partner, state=Order.State.CLOSED)
    OrderFactory(partner=partner)
    client.force_login(viewer)
    response = client.get(reverse("order_list"), {"state": "closed"})
    assert rows(response) == [closed]
    html = response.content.decode()
    assert '<option value="closed" selected>Closed before HCOINT</option>' in html
    assert '<span class="state state-closed">Closed before HCOINT</span>' in html


def test_every_order_state_has_a_badge_style():
    css = (Path(settings.BASE_DIR) / "static" / "css" / "app.css").read_text(encoding="utf-8")
    styled = set(re.findall(r"\.state-([a-z_]+)", css))
    assert set(Order.State.values) - styled == set()


def test_filters_by_partner(client, viewer, partner, second_partner):
    theirs = OrderFactory(partner=second_partner)
    OrderFactory(partner=partner)
    client.force_login(viewer)
    assert rows(client.get(reverse("order_list"), {"partner": second_partner.pk})) == [theirs]


def test_filters_by_test_or_production(client, viewer, partner):
    test_order = OrderFactory(partner=partner, is_test=True)
    production_order = OrderFactory(partner=partner, is_test=False)
    client.force_login(viewer)
    assert rows(client.get(reverse("order_list"), {"kind": "test"})) == [test_order]
    assert rows(client.get(reverse("order_list"), {"kind": "production"})) == [production_order]


@pytest.mark.parametrize(
    "query",
    ["Samplepatient", "samplepat", "Testy Samplepatient", "EPI77120", "MRN0048213", "157720311", "VIS-2026-000731"],
)
def test_search_finds_by_name_identifier_order_id_and_visit(client, viewer, partner, query):
    wanted = OrderFactory(partner=partner, ehr_order_id="157720311")
    OrderFactory(
        partner=partner,
        patient_first_name="Other",
        patient_last_name="Person",
        patient_mrn="MRN999",
        identifiers_text="MRN999 EPI999",
        visit_number="VIS-1",
        ehr_order_id="ORD-OTHER",
    )
    client.force_login(viewer)
    assert rows(client.get(reverse("order_list"), {"q": query})) == [wanted]


def test_search_with_no_match_says_so(client, viewer, partner):
    OrderFactory(partner=partner)
    client.force_login(viewer)
    response = client.get(reverse("order_list"), {"q": "Nobody"})
    assert rows(response) == []
    assert "No orders match" in response.content.decode()


def test_search_keeps_its_input(client, viewer, partner):
    client.force_login(viewer)
    html = client.get(reverse("order_list"), {"q": "Sample", "state": "sent"}).content.decode()
    assert 'value="Sample"' in html
    assert '<option value="sent" selected>' in html


def test_paginates(client, viewer, partner, monkeypatch):
    monkeypatch.setattr(views, "ORDERS_PER_PAGE", 2)
    made = [OrderFactory(partner=partner) for _ in range(5)]
    client.force_login(viewer)
    first = client.get(reverse("order_list"))
    third = client.get(reverse("order_list"), {"page": 3})
    assert rows(first) == made[::-1][:2]
    assert rows(third) == [made[0]]
    assert "Page 1 of 3" in first.content.decode()


def test_pagination_links_keep_the_filters(client, viewer, partner, monkeypatch):
    monkeypatch.setattr(views, "ORDERS_PER_PAGE", 1)
    OrderFactory(partner=partner, state=Order.State.SENT)
    OrderFactory(partner=partner, state=Order.State.SENT)
    client.force_login(viewer)
    html = client.get(reverse("order_list"), {"state": "sent"}).content.decode()
    assert 'href="?state=sent&amp;page=2"' in html


def test_query_count_does_not_grow_with_page_size(client, viewer, partner, monkeypatch, django_assert_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(12):
        OrderFactory(partner=partner)
    client.force_login(viewer)
    monkeypatch.setattr(views, "ORDERS_PER_PAGE", 2)
    client.get(reverse("order_list"))  # warm the session and permission caches the same way for both
    with CaptureQueriesContext(connection) as small:
        response = client.get(reverse("order_list"))
    assert len(rows(response)) == 2

    monkeypatch.setattr(views, "ORDERS_PER_PAGE", 10)
    with django_assert_num_queries(len(small.captured_queries)):
        response = client.get(reverse("order_list"))
    assert len(rows(response)) == 10


def test_unknown_filter_values_are_ignored_not_an_error(client, viewer, partner):
    order = OrderFactory(partner=partner)
    client.force_login(viewer)
    response = client.get(reverse("order_list"), {"state": "bogus", "partner": "999999", "page": "x"})
    assert response.status_code == 200
    assert rows(response) == [order]


def test_an_unknown_value_drops_only_its_own_filter(client, viewer, partner):
    sent = OrderFactory(partner=partner, state=Order.State.SENT)
    OrderFactory(partner=partner, state=Order.State.FAILED)
    client.force_login(viewer)
    assert rows(client.get(reverse("order_list"), {"state": "sent", "partner": "999999"})) == [sent]
