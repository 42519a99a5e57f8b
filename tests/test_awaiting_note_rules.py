"""One "awaiting a note" (Order.objects.awaiting_note()): the worklist's first part and the
usage page's backlog count the same orders."""

import pytest

from orders.models import Order
from orders.usage import awaiting_backlog
from orders.worklist import worklist_counts
from tests.factories import OrderFactory

pytestmark = pytest.mark.django_db


def test_awaiting_note_is_the_orders_no_note_was_sent_for(partner, second_partner):
    waiting = [OrderFactory(partner=partner), OrderFactory(partner=second_partner)]
    for state in Order.State:
        if state != Order.State.AWAITING_NOTE:
            OrderFactory(partner=partner, state=state)

    assert set(Order.objects.awaiting_note()) == set(waiting)
    assert worklist_counts().awaiting == 2
    assert sum(item.awaiting_note for item in awaiting_backlog(include_test=True)) == 2
