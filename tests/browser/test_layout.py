"""Readable at 1280 px and on a phone: no page scrolls sideways, the stylesheet loads under
the strict CSP, and states carry a word as well as a colour."""

import pytest
from playwright.sync_api import expect

from orders.models import Delivery
from tests.browser.conftest import sign_in
from tests.factories import BatchFileFactory, ClinicalNoteFactory, DeliveryFactory, OrderFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.mark.parametrize("width", [1280, 390])
def test_pages_fit_the_screen(page, partner, width):
    user = UserFactory(username="ursula", role="uploader")
    order = OrderFactory(partner=partner)
    DeliveryFactory(
        order=OrderFactory(partner=partner),
        created_by=user,
        status=Delivery.Status.FAILED,
        last_error="Redox answered 500",
    )
    note = ClinicalNoteFactory(order=order, uploaded_by=user)
    batch = BatchFileFactory(batch__created_by=user, proposed_order=order).batch
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, "ursula")
    pages = ("/", "/orders/", "/usage/", f"/orders/{order.pk}/", f"/notes/{note.pk}/", f"/orders/{order.pk}/notes/new/")
    for path in (*pages, "/batches/", f"/batches/{batch.pk}/"):
        page.goto(path)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at {width}px"
    assert not page.problems, page.problems


def test_stylesheet_applies_and_states_have_words(page, partner):
    UserFactory(username="vera", role="viewer")
    OrderFactory(partner=partner)
    sign_in(page, "vera")
    state = page.locator("table.orders .state").first
    expect(state).to_have_text("Awaiting note")
    colour = state.evaluate("element => getComputedStyle(element).backgroundColor")
    assert colour not in ("rgba(0, 0, 0, 0)", "transparent")
    assert not page.problems, page.problems
