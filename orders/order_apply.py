"""Applying one Redox Order message to our Order rows: create, update or cancel each order.

`orders/ingest.py` stores the message and calls `apply_orders` inside its transaction;
this module holds the rules for what an event does to an order (a stale event does not
overwrite newer data, a sparse event does not wipe what we hold, a Cancel always cancels).
"""

from django.db import IntegrityError, transaction

from orders.models import Order
from orders.usage_rollup import forget_week_of
from redox import inbound

# Events whose orders are new as a rule: they are inserted without a read first.
NEW_ORDER_EVENTS = ("New", inbound.GROUPED_EVENT)


class OrderExists(Exception):
    """A New event's order is one we already hold: apply the message the general way."""


def fit(model, field_name, value):
    """Cut display text to the column's length, so an over-long value cannot fail the whole message.

    Never for an id we match on (Order.ehr_order_id): redox/inbound.py refuses an id too long to store.
    """
    if isinstance(value, str):
        return value[: model._meta.get_field(field_name).max_length]
    return value


def apply_orders(message, parsed, *, fresh=False):
    """Apply `parsed` to its orders; returns (orders, events to log).

    A New or GroupedOrders event that just arrived is for orders we do not hold yet, as a
    rule: they are inserted straight away (no read first, no savepoint of their own), and
    the unique (partner, ehr_order_id) constraint decides. If one exists after all (a
    resend, another message first), `OrderExists` rolls the caller's savepoint back,
    which undoes only that attempt, and the caller applies the message again the general
    way: read and lock the orders we hold, insert the others.
    """
    if fresh and parsed.meta.event_type in NEW_ORDER_EVENTS:
        try:
            return _create_orders(message, parsed)
        except IntegrityError as exc:
            raise OrderExists from exc
    wanted = [info.ehr_order_id for info in parsed.orders]
    existing = {
        order.ehr_order_id: order
        for order in Order.objects.select_for_update().filter(partner_id=message.partner_id, ehr_order_id__in=wanted)
    }
    orders, logged = [], []
    for info in parsed.orders:
        order, events = _apply_order(message, parsed, info, existing.get(info.ehr_order_id))
        orders.append(order)
        ids = {"order_id": order.pk, "partner_id": message.partner_id, "message_id": message.pk}
        logged.extend((event, ids) for event in events)
    return orders, logged


def _create_orders(message, parsed):
    orders, logged = [], []
    for info in parsed.orders:
        order = new_order(message, parsed, info)
        order.save()
        orders.append(order)
        ids = {"order_id": order.pk, "partner_id": message.partner_id, "message_id": message.pk}
        logged.extend((event, ids) for event in created_events(order))
    return orders, logged


def created_events(order):
    return ["order.created", "order.cancelled"] if order.is_cancelled else ["order.created"]


def _apply_order(message, parsed, info, order):
    """Create the order, or update `order` when we already hold it; returns (order, events)."""
    if order is None:
        order = _create_order(message, parsed, info)
        if order is not None:
            return order, created_events(order)
        # Another message created it between our read and our insert.
        order = Order.objects.select_for_update().get(partner_id=message.partner_id, ehr_order_id=info.ehr_order_id)
    return order, _update_order(order, message, parsed, info)


def new_order(message, parsed, info):
    order = Order(
        partner_id=message.partner_id,
        ehr_order_id=info.ehr_order_id,
        first_received_at=message.received_at,
        last_event_at=parsed.meta.event_at,
        is_test=bool(parsed.meta.is_test),
    )
    _fill(order, parsed, info, replace_blanks=True)
    if parsed.is_cancel:
        order.cancel(when=parsed.meta.event_at)
    return order


def _create_order(message, parsed, info):
    """Insert a new order, or return None when another transaction inserted it first."""
    order = new_order(message, parsed, info)
    try:
        with transaction.atomic():
            order.save()
    except IntegrityError:
        return None
    return order


def _update_order(order, message, parsed, info):
    """Apply an event to a known order; returns the events it caused.

    An event older than the one already applied does not overwrite the newer data
    (the message is still linked, as history). A Cancel cancels even then: an EHR
    does not reinstate a cancelled order, it places a new one.
    """
    event_at = parsed.meta.event_at
    stale = event_at is not None and order.last_event_at is not None and event_at < order.last_event_at
    events = []
    if not stale:
        if _fill(order, parsed, info, replace_blanks=False):
            events.append("order.updated")
        if event_at is not None:
            order.last_event_at = event_at
    if message.received_at < order.first_received_at:
        # An import of older history: the order was first received earlier than we thought.
        # The week it was counted in loses it, which the rollup cannot see by itself.
        forget_week_of(order.first_received_at)
        order.first_received_at = message.received_at
    if parsed.is_cancel and not order.is_cancelled:
        order.cancel(when=event_at)
        events.append("order.cancelled")
    order.save()
    return events


def _fill(order, parsed, info, *, replace_blanks):
    """Copy the event's values onto the order; returns whether anything changed.

    On an existing order a value the event leaves out (missing, null or empty) keeps
    what we had: a sparse Cancel must not wipe the patient staff search by.
    """
    patient = parsed.patient
    values = {
        "patient_demographics": patient.demographics,
        "patient_first_name": patient.first_name,
        "patient_middle_name": patient.middle_name,
        "patient_last_name": patient.last_name,
        "patient_dob": patient.dob,
        "patient_sex": patient.sex,
        "visit_number": parsed.visit_number,
        "procedure_code": info.procedure_code,
        "procedure_codeset": info.procedure_codeset,
        "procedure_description": info.procedure_description,
        "provider": info.provider,
        "provider_npi": info.provider_npi,
        "provider_name": info.provider_name,
        "priority": info.priority,
        "comments": info.comments,
        "diagnoses": info.diagnoses,
        "redox_status": info.status,
        "transaction_at": info.transaction_at,
    }
    if patient.identifiers or replace_blanks:
        # The identifiers, their search text and the MRN always change together.
        values["patient_identifiers"] = patient.identifiers
        values["identifiers_text"] = patient.identifiers_text
        values["patient_mrn"] = patient.mrn
    if parsed.meta.is_test is not None:
        values["is_test"] = parsed.meta.is_test
    changed = False
    for name, value in values.items():
        if not replace_blanks and value in (None, "", [], {}):
            continue
        value = fit(Order, name, value)
        if getattr(order, name) != value:
            setattr(order, name, value)
            changed = True
    return changed
