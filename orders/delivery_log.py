"""How a delivery event is logged, wherever it happens (sending, staff actions, the confirmer).

Opaque ids only: the delivery, its order and the order's partner, so a Datadog query can
group by partner without the log carrying anything about the patient.
"""

import logging

from hcoint.events import log_event
from orders.models import Delivery, Order


def delivery_log(delivery, event, *, logger, level=logging.INFO, **fields):
    """Log `event` for `delivery` through `logger`; the order's partner costs no query when the order is loaded."""
    if Delivery.order.is_cached(delivery):
        partner_id = delivery.order.partner_id
    else:
        partner_id = Order.objects.filter(pk=delivery.order_id).values_list("partner_id", flat=True).first()
    log_event(
        logger, event, level=level, delivery_id=delivery.pk, order_id=delivery.order_id, partner_id=partner_id, **fields
    )
