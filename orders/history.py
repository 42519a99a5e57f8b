"""History from the old system: orders it already answered are not HCOINT's backlog.

The old system's messages come in through the ordinary intake (import_redox_messages),
so every old order lands "awaiting note", although its note went out through the old
system. Closing those orders keeps them findable, with their history, while the usage
backlog and the "orders awaiting a note" monitor, which count only AWAITING_NOTE, skip them.
"""

from django.db import transaction
from django.utils import timezone

from orders.models import Order


def orders_close_before(*, partner, before):
    """Move `partner`'s orders still awaiting a note, first received before `before`, to CLOSED.

    Returns how many were moved. Orders in any other state (a note on its way, sent,
    failed, cancelled) keep it: HCOINT already acted on those.
    """
    with transaction.atomic():
        return Order.objects.filter(
            partner=partner, state=Order.State.AWAITING_NOTE, first_received_at__lt=before
        ).update(state=Order.State.CLOSED, updated_at=timezone.now())
