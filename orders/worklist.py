"""The worklist: what a Dispatch visit is for, on the uploaders' home page and in the digest.

Two parts, each oldest first and bounded (WORKLIST_ROWS, then "N more" and a link):

- orders awaiting a note (reconcile's "awaiting_note" group), each with its age and its
  partner's expectation (`Partner.note_due_days`); past it, the order is overdue;
- orders whose delivery needs a person (reconcile.needs_person: failed, unconfirmed,
  failed downstream, filtered, or retrying for long), each with its latest delivery.

The counts (`worklist_counts`) are the digest email's content too, so the email and the
page always agree. Every query reads an index (`order_state_newest`, `delivery_due`) and
the number of queries does not grow with the rows shown.
"""

from dataclasses import dataclass, field
from functools import reduce
from operator import or_

from django.db.models import Count, Q
from django.utils import timezone

from orders.models import Order, Partner
from orders.reconcile import latest_deliveries, needs_person, needs_person_count

# A visit works down the oldest; 50 rows of each part keep the page quick to read and to
# render (the rest is one click away, in the order list filtered to the same state).
WORKLIST_ROWS = 50


@dataclass(frozen=True)
class WorklistCounts:
    awaiting: int
    overdue: int
    needs_person: int

    @property
    def anything(self):
        return bool(self.awaiting or self.needs_person)

    @property
    def attention(self):
        """The nav's number (reconcile.attention_count): the two totals added."""
        return self.awaiting + self.needs_person


@dataclass
class Worklist:
    counts: WorklistCounts
    awaiting: list = field(default_factory=list)  # Orders, oldest first, with age_days, due_days, overdue
    needs_person: list = field(default_factory=list)  # Orders with latest_delivery and age_days

    @property
    def awaiting_more(self):
        return max(self.counts.awaiting - len(self.awaiting), 0)

    @property
    def needs_person_more(self):
        return max(self.counts.needs_person - len(self.needs_person), 0)


def overdue_filter(now, partners):
    """Q: orders first received before their partner's expectation ran out (one term per partner)."""
    terms = [Q(partner_id=p.pk, first_received_at__lt=p.note_overdue_before(now)) for p in partners]
    return reduce(or_, terms) if terms else Q(pk=None)


def is_overdue(order, now):
    """The row-by-row form of overdue_filter, for an order whose partner is loaded."""
    return order.first_received_at < order.partner.note_overdue_before(now)


def _partners():
    return list(Partner.objects.only("pk", "note_due_days"))


def worklist_counts(now=None):
    """How many orders await a note, how many of them are overdue, how many need a person."""
    now = now or timezone.now()
    partners = _partners()
    # Counting a column of `order_awaiting` (first_received_at, never null), not the id:
    # that small index holds partner and arrival, so the count reads it alone, not the rows.
    awaiting = Order.objects.awaiting_note().aggregate(
        awaiting=Count("first_received_at"), overdue=Count("first_received_at", filter=overdue_filter(now, partners))
    )
    return WorklistCounts(
        awaiting=awaiting["awaiting"], overdue=awaiting["overdue"], needs_person=needs_person_count(now)
    )


def worklist(now=None, *, limit=None):
    """The page's content: the counts, then at most `limit` (WORKLIST_ROWS) rows of each part."""
    now = now or timezone.now()
    limit = WORKLIST_ROWS if limit is None else limit
    counts = worklist_counts(now)
    awaiting = list(Order.objects.awaiting_note().select_related("partner").order_by("first_received_at", "id")[:limit])
    for order in awaiting:
        order.age_days = (now - order.first_received_at).days
        order.due_days = order.partner.note_due_days
        order.overdue = is_overdue(order, now)
        # Whole days past (positive) or left (negative) against the partner's expectation.
        order.days_over = order.age_days - order.due_days
    problems = list(needs_person(now).select_related("partner").order_by("first_received_at", "id")[:limit])
    latest = latest_deliveries([order.pk for order in problems])
    for order in problems:
        order.latest_delivery = latest.get(order.pk)
        since = order.latest_delivery.created_at if order.latest_delivery else order.first_received_at
        order.delivery_age_hours = int((now - since).total_seconds() // 3600)
    return Worklist(counts=counts, awaiting=awaiting, needs_person=problems)
