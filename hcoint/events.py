"""Business events as log lines: an event name plus opaque ids, never patient data.

    log_event(logger, "order.created", order_id=order.pk, partner_id=order.partner_id)

The message is the event name itself, so even a plain-text log line carries nothing
but the name and the ids. Monitors in ops/datadog/ match on `@event`.
"""

import logging


def log_event(logger, event, *, level=logging.INFO, exc_info=None, **ids):
    logger.log(level, event, extra={"event": event, **ids}, exc_info=exc_info)
