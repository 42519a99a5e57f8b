"""Orders that are not yet Filed, grouped by why, with the next action: the reconciliation page,
the counts on the orders page and in the nav, and `manage.py reconcile`.

An order is done when its note is Filed in the partner's chart (orders/confirm.py), when the
partner cancelled it, or when it was closed before HCOINT. Every other order is in exactly
one group below; the order's state says which (its delivery keeps it in step).
"""

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from orders.models import Delivery, Order

ROWS_PER_GROUP = 100
# A delivery retrying this long after it was queued needs a person (the worklist, the digest
# email); the "Delivery still retrying after an hour" monitor (ops/datadog/monitors/
# g-delivery-still-retrying.json) alerts at the same age. Younger retries usually succeed alone.
RETRYING_LONG = timedelta(hours=1)


@dataclass(frozen=True)
class Group:
    key: str
    title: str
    action: str  # the next action, in words, for staff
    why: str


GROUPS = (
    Group("awaiting_note", "Awaiting a note", "Upload the note", "No note has been sent for these orders yet."),
    Group(
        "delivery_problem",
        "Delivery retrying or failed",
        "Retry now (or abandon, saying why)",
        "Redox has not accepted the note: it is being retried or the delivery failed.",
    ),
    Group(
        "unconfirmed",
        "Accepted by Redox, not confirmed",
        "Wait for Redox's confirmation; if it gave up, contact Redox with the log id",
        "Redox queued the note but has not (yet) said it reached the partner's chart.",
    ),
    Group(
        "failed_downstream",
        "Failed downstream",
        "Resend a corrected note (contact Redox if the cause is theirs)",
        "Redox accepted the note but could not deliver it to the partner.",
    ),
    Group(
        "filtered",
        "Filtered by Redox",
        "Contact Redox (their configuration filtered it), then resend",
        "Redox's configuration stopped the note before the partner.",
    ),
)
GROUP_BY_KEY = {group.key: group for group in GROUPS}


def _retrying(queued_before=None):
    return Exists(Delivery.objects.retrying(queued_before=queued_before).filter(order=OuterRef("pk")))


def group_filter(key):
    """The Q selecting the (retrying-annotated) orders in group `key`."""
    return {
        "awaiting_note": Q(state=Order.State.AWAITING_NOTE),
        "delivery_problem": Q(state=Order.State.FAILED) | Q(state=Order.State.SENDING, retrying=True),
        "unconfirmed": Q(state__in=[Order.State.SENT, Order.State.UNCONFIRMED]),
        "failed_downstream": Q(state=Order.State.FAILED_DOWNSTREAM),
        "filtered": Q(state=Order.State.FILTERED),
    }[key]


# The orders that need a person now, whatever page or email counts them (the worklist, the
# digest, the nav's number): a delivery that failed, that Redox accepted but whose
# confirmation we gave up on (contact Redox), that failed downstream or that Redox filtered,
# and a delivery retrying for RETRYING_LONG (younger retries usually succeed alone). The
# reconcile page's groups are something else: every order not yet Filed, by why.
NEEDS_PERSON_STATES = (
    Order.State.FAILED,
    Order.State.UNCONFIRMED,
    Order.State.FAILED_DOWNSTREAM,
    Order.State.FILTERED,
)


def _retrying_long(now):
    return _retrying(queued_before=now - RETRYING_LONG)


def needs_person_filter(now):
    """The Q selecting the orders that need a person at `now` (NEEDS_PERSON_STATES, long retries)."""
    return Q(state__in=NEEDS_PERSON_STATES) | Q(_retrying_long(now), state=Order.State.SENDING)


def needs_person(now):
    """Orders whose delivery needs a person at `now` (see NEEDS_PERSON_STATES)."""
    return Order.objects.filter(needs_person_filter(now))


def needs_person_count(now):
    """needs_person(now).count(), in two index-only counts: the states (`order_state_newest`)
    and, among the few orders still sending, the long retries. One query with the retry
    test ORed in must read every counted row's heap page for its id: it grew with the backlog."""
    in_states = Order.objects.filter(state__in=NEEDS_PERSON_STATES).count()
    return in_states + Order.objects.filter(_retrying_long(now), state=Order.State.SENDING).count()


def open_orders():
    return Order.objects.exclude(state__in=Order.CLOSED_STATES).annotate(retrying=_retrying())


def attention_count(now=None):
    """The number in the nav, on every page: orders awaiting a note plus those that need a
    person (the worklist's two totals), in two index-only counts (as needs_person_count).

    Only the states that hold them are counted, never every open order: that would count each
    accepted note until Redox confirms it and, with confirmation off, every note ever sent.
    """
    now = now or timezone.now()
    waiting = Order.objects.filter(state__in=[Order.State.AWAITING_NOTE, *NEEDS_PERSON_STATES]).count()
    return waiting + Order.objects.filter(_retrying_long(now), state=Order.State.SENDING).count()


# The "Accepted by Redox, not confirmed" group holds, with confirmation off, every note ever
# sent: its count stops here (shown "1,000+"), as the order search's does, so the pages that
# show it never count the history.
ACCEPTED_COUNT_LIMIT = 1000


class AtLeast(int):
    """A count that stopped at its limit: there are at least this many. Shown "1,000+"."""

    def __str__(self):
        return f"{int(self):,}+"


@dataclass(frozen=True)
class OpenCounts:
    groups: dict  # {group key: number of orders (an AtLeast where the count stopped)}, every group present
    attention: int  # attention_count(), from the same numbers


def _retrying_counts(now):
    """(retrying, retrying for RETRYING_LONG) among the orders still sending, in one query."""
    counts = Order.objects.filter(state=Order.State.SENDING).aggregate(
        retrying=Count("id", filter=Q(_retrying())), retrying_long=Count("id", filter=Q(_retrying_long(now)))
    )
    return counts["retrying"], counts["retrying_long"]


def _accepted_count():
    """Orders Redox accepted (state sent), counted up to the limit + 1: an AtLeast(limit) past it."""
    limit = ACCEPTED_COUNT_LIMIT
    count = Order.objects.filter(state=Order.State.SENT).order_by()[: limit + 1].count()
    return AtLeast(limit) if count > limit else count


def open_counts(now=None):
    """The groups' counts and the nav's number together, in three small queries.

    The open orders are counted per state (COUNT(*): an index-only scan of
    `order_state_newest`), except those Redox accepted, which grow with the history when
    confirmation is off: that count stops at ACCEPTED_COUNT_LIMIT. Only the few still
    sending are asked whether their delivery is retrying (and since when).
    """
    now = now or timezone.now()
    counted = [state for state in Order.State if state not in Order.CLOSED_STATES and state != Order.State.SENT]
    per_state = dict(Order.objects.filter(state__in=counted).values_list("state").annotate(n=Count("*")).order_by())
    retrying, retrying_long = _retrying_counts(now)
    counts = dict.fromkeys(GROUP_BY_KEY, 0)
    counts["awaiting_note"] = per_state.get(Order.State.AWAITING_NOTE, 0)
    counts["delivery_problem"] = per_state.get(Order.State.FAILED, 0) + retrying
    unconfirmed = per_state.get(Order.State.UNCONFIRMED, 0)
    accepted = _accepted_count()
    counts["unconfirmed"] = AtLeast(accepted + unconfirmed) if isinstance(accepted, AtLeast) else accepted + unconfirmed
    counts["failed_downstream"] = per_state.get(Order.State.FAILED_DOWNSTREAM, 0)
    counts["filtered"] = per_state.get(Order.State.FILTERED, 0)
    needing = sum(per_state.get(state, 0) for state in NEEDS_PERSON_STATES) + retrying_long
    return OpenCounts(groups=counts, attention=counts["awaiting_note"] + needing)


def group_counts():
    """{group key: number of orders}, every group present (open_counts' groups)."""
    return open_counts().groups


def reconciliation(now=None, limit=ROWS_PER_GROUP, *, counts=None):
    """Each group with its count (`counts`, default group_counts()) and its oldest `limit`
    orders (age and latest delivery attached)."""
    now = now or timezone.now()
    counts = group_counts() if counts is None else counts
    groups = []
    for group in GROUPS:
        orders = list(
            open_orders()
            .filter(group_filter(group.key))
            .select_related("partner")
            .order_by("first_received_at", "id")[:limit]
        )
        latest = latest_deliveries([order.pk for order in orders])
        for order in orders:
            order.age_days = (now - order.first_received_at).days
            order.latest_delivery = latest.get(order.pk)
        groups.append({"group": group, "count": counts[group.key], "orders": orders})
    return groups


def latest_deliveries(order_ids):
    """{order id: its newest delivery} for `order_ids` (a list, or a queryset of ids; one query)."""
    latest = {}
    for delivery in Delivery.objects.filter(order_id__in=order_ids).order_by("order_id", "created_at", "id"):
        latest[delivery.order_id] = delivery
    return latest
