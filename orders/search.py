"""The order search: one normalised column, one trigram index, a count that stops early.

Every search word must appear, in any of the order's patient names, identifiers, MRN,
EHR order id or visit number, as part of the text. On PostgreSQL the seven columns are
folded into `Order.search_text` when the order is saved (lower case, accents stripped:
"nguyen" finds "Nguyễn"), and a GIN trigram index (pg_trgm, migration 0013) serves
`search_text LIKE '%word%'`, so a search reads the index instead of scanning every order.
`unaccent()` is not IMMUTABLE and cannot sit in an index expression, hence the column,
filled in Python with the same `search_fold` the query applies to the words.

SQLite (development only) keeps the original query: each word in any of the seven
columns, case-insensitively (ASCII only there, as before).

The paginator counts at most COUNT_LIMIT + 1 rows: a broad word ("a") no longer counts
the whole table a second time; past the limit the page says "1,000+" and pages on by
"Older →" links.
"""

import unicodedata
from functools import cached_property

from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator
from django.db import connection, transaction
from django.db.models import Q

# The order's fields a search word may match, as before this module existed.
SEARCH_FIELDS = (
    "patient_last_name",
    "patient_first_name",
    "patient_middle_name",
    "identifiers_text",
    "patient_mrn",
    "ehr_order_id",
    "visit_number",
)

# Letters NFKD does not decompose into a base letter and an accent.
_FOLD_EXTRA = str.maketrans({"ø": "o", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"})

COUNT_LIMIT = 1000


def search_fold(text):
    """`text` lower-cased (casefold) with accents stripped: what `search_text` holds and words become."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    stripped = "".join(char for char in decomposed if not unicodedata.combining(char))
    return stripped.casefold().translate(_FOLD_EXTRA)


def order_search_text(order):
    """The value of `order.search_text`: the searchable fields, folded, one per line.

    A search word holds no whitespace, so it can never match across two fields.
    """
    return "\n".join(search_fold(getattr(order, name)) for name in SEARCH_FIELDS)


def search_orders(orders, query):
    """`orders` narrowed to those matching every word of `query`."""
    for word in (query or "").split():
        if connection.vendor == "postgresql":
            orders = orders.filter(search_text__contains=search_fold(word))
        else:
            match = Q()
            for name in SEARCH_FIELDS:
                match |= Q(**{f"{name}__icontains": word})
            orders = orders.filter(match)
    return orders


def fill_search_text(order_model, *, batch=2000, using="default"):
    """Fill `search_text` where it is still "" (rows older than migration 0013, or saved by
    the previous release while it still served). Batches in their own transactions, so
    the webhook never waits long behind them; safe to run again. Returns the rows filled.
    """
    filled = 0
    last_pk = 0
    fields = ("pk", *SEARCH_FIELDS)
    while True:
        with transaction.atomic(using=using):
            rows = list(
                order_model.objects.using(using)
                .filter(search_text="", pk__gt=last_pk)
                .order_by("pk")
                .only(*fields)[:batch]
            )
            for row in rows:
                row.search_text = order_search_text(row)
            order_model.objects.using(using).bulk_update(rows, ["search_text"])
        if not rows:
            return filled
        filled += len(rows)
        last_pk = rows[-1].pk


class BoundedPage(Page):
    """A page of a count that stopped at the limit: whether there is more comes from the rows."""

    def __init__(self, object_list, number, paginator, *, more):
        super().__init__(object_list, number, paginator)
        self.more = more

    def has_next(self):
        return self.more

    def end_index(self):
        return self.start_index() + len(self.object_list) - 1


class BoundedPaginator(Paginator):
    """A Paginator whose count reads at most `limit` + 1 rows.

    Up to the limit it behaves as Django's. Past it, `capped` is true, `count_text` is
    "1,000+", `num_pages` is a lower bound, and any page that has rows can be opened:
    each page reads one row more than it shows to know whether another follows.
    """

    def __init__(self, object_list, per_page, *, limit=None):
        super().__init__(object_list, per_page)
        self.limit = COUNT_LIMIT if limit is None else limit

    @cached_property
    def count(self):
        # Unordered, primary keys only, stopped after limit + 1: never the whole table.
        return len(self.object_list.order_by().values_list("pk", flat=True)[: self.limit + 1])

    @property
    def capped(self):
        return self.count > self.limit

    @property
    def count_text(self):
        return f"{self.limit:,}+" if self.capped else str(self.count)

    def validate_number(self, number):
        if not self.capped:
            return super().validate_number(number)
        # Django's checks without the upper bound, which past the limit is unknown.
        try:
            number = int(number)
        except (TypeError, ValueError):
            raise PageNotAnInteger(self.error_messages["invalid_page"]) from None
        if number < 1:
            raise EmptyPage(self.error_messages["min_page"])
        return number

    def get_page(self, number):
        try:
            return super().get_page(number)
        except EmptyPage:
            # Past the rows of a capped count: the last page counted, as Django does.
            return self.page(self.num_pages)

    def page(self, number):
        if not self.capped:
            return super().page(number)
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        rows = list(self.object_list[bottom : bottom + self.per_page + 1])
        if not rows and number > 1:
            raise EmptyPage(self.error_messages["no_results"])
        return BoundedPage(rows[: self.per_page], number, self, more=len(rows) > self.per_page)
