"""Which awaiting order does an uploaded note belong to? A ranked proposal, never a decision.

    proposal = propose(file_name, first_pages_text(data))
    proposal.candidates      # up to 5 Candidates (order, score 0-100, reasons in words), best first
    proposal.preselected     # the order, only for an unambiguous strong match; else None
    proposals = propose_all([(file_name, text), ...])   # a batch: the same, in two queries

What counts (orders/matching_text.py reads it from the file name and the text):
- the order's EHR order id: names the order itself, so it is strong on its own (98);
- the patient's MRN with the date of birth (88): strong, but it names the patient, not the
  order, so two awaiting orders of one patient tie and a person must choose;
- a visit number with the name or the date of birth, or the MRN with the name (75-80);
- the name with the date of birth (65);
- one fact alone: MRN (50), visit number (45), name (30), date of birth (15).
A candidate's score is its best rule above plus 1 for each further fact that agrees (at
most 100). The name counts when both its last and first names appear, compared without
case, accents, apostrophes or hyphens ("Nguyễn" = "NGUYEN", "O'Brien" = "OBRIEN").

Pre-selected only when the best candidate is strong (85 or more) and every other one
scores at least 8 lower: an order id beats the same patient's other orders found by MRN and
date of birth; two orders of one patient found by MRN and date of birth do not pre-select.

Candidates are the orders still awaiting a note, unless the caller passes its own queryset:
note_send (orders/notes.py) creates an order's delivery and moves it out of awaiting_note in
one transaction, so an awaiting order has nothing in flight or accepted.
Two queries per call: the candidates' identifying columns (the awaiting orders are the
backlog, hundreds to a few thousand; they are compared here, where case, accents and
leading zeros are handled the same way on PostgreSQL and SQLite, and set lookups rule out
nearly all of them at once), then the few best orders themselves. `propose_all` does a
batch in those same two queries.
"""

from dataclasses import dataclass

from orders.matching_text import Facts, find_facts, first_word, name_key, order_id_keys
from orders.models import Order

MAX_CANDIDATES = 5
STRONG = 85
CLEAR_MARGIN = 8

ORDER_ID, MRN, VISIT, NAME, DOB = "order id", "MRN", "visit number", "name", "date of birth"
# (facts that must all agree, score), best first; the first rule a candidate meets is its base.
RULES = (
    ({ORDER_ID}, 98),
    ({MRN, DOB}, 88),
    ({VISIT, NAME}, 80),
    ({VISIT, DOB}, 78),
    ({MRN, NAME}, 75),
    ({NAME, DOB}, 65),
    ({MRN}, 50),
    ({VISIT}, 45),
    ({NAME}, 30),
    ({DOB}, 15),
)
# The order facts are named in reasons in this order.
FACT_ORDER = (ORDER_ID, MRN, VISIT, NAME, DOB)
WEAK_ALONE = {NAME: "name only", DOB: "date of birth only"}


@dataclass(frozen=True)
class Candidate:
    order: Order
    score: int  # 0-100 confidence
    reasons: tuple[str, ...]  # plain words: "order id in the file name", "name only"


@dataclass(frozen=True)
class Proposal:
    candidates: tuple[Candidate, ...]  # ranked best first, at most MAX_CANDIDATES
    preselected: Order | None  # set only for an unambiguous strong match


def awaiting_orders():
    """Orders a new note may go to: those awaiting a note. Unordered: propose ranks."""
    return Order.objects.awaiting_note().order_by()


def propose(file_name, text, orders=None):
    """Rank the orders in `orders` (default: `awaiting_orders()`) for a file named
    `file_name` whose first pages read `text` (pages separated by a form feed)."""
    [proposal] = propose_all([(file_name, text)], orders)
    return proposal


def propose_all(files, orders=None):
    """`propose` for each (file name, text) of a batch, in order, reading the candidates
    once for the whole batch: two queries however many files."""
    orders = awaiting_orders() if orders is None else orders
    rows = list(orders.values_list(*ROW_FIELDS))
    ranked = [_rank(find_facts(file_name, text), rows) for file_name, text in files]
    by_pk = Order.objects.select_related("partner").in_bulk({pk for best in ranked for _, _, pk, _ in best})
    proposals = []
    for best in ranked:
        candidates = tuple(
            Candidate(order=by_pk[pk], score=score, reasons=_reasons(found))
            for score, _, pk, found in best
            if pk in by_pk
        )
        proposals.append(Proposal(candidates=candidates, preselected=_preselected(candidates)))
    return proposals


ROW_FIELDS = (
    "pk",
    "ehr_order_id",
    "patient_mrn",
    "visit_number",
    "patient_last_name",
    "patient_first_name",
    "patient_dob",
    "first_received_at",
)


def _rank(facts: Facts, rows):
    """The best MAX_CANDIDATES rows for `facts`: (score, received at, pk, found), best first."""
    scored = []
    id_keys, words, dates = facts.ids.keys(), facts.words, facts.dates
    for pk, order_id, mrn, visit, last_name, first_name, dob, received_at in rows:
        # Most awaiting orders share nothing with the file: rule them out with set lookups
        # (order_id_keys and first_word are cached) before looking at where facts were seen.
        if not (
            (dob is not None and dob in dates)
            or first_word(last_name) in words
            or not id_keys.isdisjoint(order_id_keys(order_id))
            or not id_keys.isdisjoint(order_id_keys(mrn))
            or not id_keys.isdisjoint(order_id_keys(visit))
        ):
            continue
        found = _facts_for(facts, order_id, mrn, visit, last_name, first_name, dob)
        if found:
            scored.append((_score(found), received_at, pk, found))
    # Best first; among equals the order that has waited longest.
    scored.sort(key=lambda entry: (-entry[0], entry[1], entry[2]))
    return scored[:MAX_CANDIDATES]


def _facts_for(facts: Facts, order_id, mrn, visit, last_name, first_name, dob):
    """{fact: where it was found} for one order."""
    found = {}
    for fact, value in ((ORDER_ID, order_id), (MRN, mrn), (VISIT, visit)):
        where = facts.where_id(value)
        if where:
            found[fact] = where
    last, first = name_key(last_name), name_key(first_name)
    if last and first:
        last_at, first_at = facts.where_words(last), facts.where_words(first)
        if last_at and first_at:
            found[NAME] = max(last_at, first_at)
    if dob is not None and dob in facts.dates:
        found[DOB] = facts.dates[dob]
    return found


def _score(found):
    for needed, base in RULES:
        if needed <= found.keys():
            return min(100, base + len(found) - len(needed))
    return 0


def _reasons(found):
    """Plain words: "order id in the file name", "MRN and date of birth on page 1", "name only"."""
    if len(found) == 1 and next(iter(found)) in WEAK_ALONE:
        return (WEAK_ALONE[next(iter(found))],)
    by_place = {}
    for fact in FACT_ORDER:
        if fact in found:
            by_place.setdefault(found[fact], []).append(fact)
    reasons = []
    for place in sorted(by_place):
        names = by_place[place]
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        reasons.append(f"{listed} {place.words}")
    return tuple(reasons)


def _preselected(candidates):
    if not candidates or candidates[0].score < STRONG:
        return None
    if len(candidates) > 1 and candidates[1].score > candidates[0].score - CLEAR_MARGIN:
        return None
    return candidates[0].order
