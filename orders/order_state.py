"""An order's state follows its deliveries: one rule, used by the worker, the staff actions
and the confirmer.

The order shows where its note is (sending, accepted by Redox, filed, failed downstream…)
as its latest delivery says; a cancelled order stays cancelled whatever its deliveries do.
"""

from orders.models import Delivery, Order


def set_order_state(order_id, state, now):
    """Keep Order.state in step with its delivery. A cancelled order stays cancelled.

    A single-column UPDATE, so it cannot overwrite what the webhook changed meanwhile.
    """
    Order.objects.filter(pk=order_id).exclude(state=Order.State.CANCELLED).update(state=state, updated_at=now)


def order_follows_delivery(delivery, now):
    """After Redox's log settled an accepted delivery: its order takes the matching state.

    Only when it is the order's latest accepted delivery and nothing is on its way, so a
    corrected resend sent meanwhile keeps the order's state its own. Callers hold the row lock.
    """
    deliveries = Delivery.objects.filter(order_id=delivery.order_id).exclude(pk=delivery.pk)
    if deliveries.in_flight().exists():
        return
    if deliveries.accepted().filter(created_at__gt=delivery.created_at).exists():
        return
    set_order_state(delivery.order_id, order_state_for(delivery.status), now)


def order_state_after_abandon(delivery):
    others = Delivery.objects.filter(order_id=delivery.order_id).exclude(pk=delivery.pk)
    if others.in_flight().exists():
        return Order.State.SENDING
    latest_accepted = others.accepted().order_by("-created_at", "-id").first()
    if latest_accepted is not None:
        return order_state_for(latest_accepted.status)
    return Order.State.AWAITING_NOTE


# An accepted delivery's status -> its order's state (the order follows its latest accepted note).
ORDER_STATE_FOR_ACCEPTED = {
    Delivery.Status.SENT: Order.State.SENT,
    Delivery.Status.FILED: Order.State.FILED,
    Delivery.Status.FAILED_DOWNSTREAM: Order.State.FAILED_DOWNSTREAM,
    Delivery.Status.FILTERED: Order.State.FILTERED,
    Delivery.Status.UNCONFIRMED: Order.State.UNCONFIRMED,
}


def order_state_for(delivery_status):
    return ORDER_STATE_FOR_ACCEPTED[delivery_status]
