"""What a note's file name and text say that could identify its order: identifiers, dates
and words, each with where it was first seen (the file name, or page N). No database here;
orders/matching.py compares these with the awaiting orders.

Identifiers are compared as keys: letters and digits only, upper case, leading zeros
dropped, so "MRN: 00123", "MRN#123", "mrn123" and an order's MRN "000123" all meet at
"123". A label glued to the number ("MRN123", "ORD-2024-7") is also tried without it.
Keys shorter than MIN_ID_CHARS are ignored on the order's side: a page number or a dose
would otherwise "match" a short MRN.

Dates are read in these forms: 1980-03-07 and 1980/03/07 (year first); 03/07/1980 and
03-07-1980 (month first, the United States convention of the hospitals Redox connects);
7 Mar 1980, 07-MAR-1980, 7th March 1980, March 7, 1980 and Mar. 7 1980 (English month
names). Dotted dates are the ambiguous ones: 07.03.1980 is day first where dots are the
custom, month first in some US systems, so both readings are kept when both are dates. A
date only ever agrees or not with an order's date of birth, and a date of birth alone is
weak evidence, so the second reading costs little and missing half the notes would cost
more. Two-digit years are taken in the last hundred years (03/07/80 is 1980).
"""

import datetime
import functools
import re
from dataclasses import dataclass, field
from typing import NamedTuple

from orders.pdf.render import PAGE_BREAK
from orders.search import search_fold

MIN_ID_CHARS = 3
# Labels that may be glued to an identifier ("MRN123", "ORD000123", "V12345").
ID_LABELS = re.compile(r"^(?:MRN|MR|ORDER|ORD|VISIT|VIS|VN|V|ACCT|ACC|FIN|CSN|ENC|ID|NO)(?=\d)")
# A run of letters and digits, possibly joined by - _ . / (an identifier, a file name).
ID_RUN = re.compile(r"[^\W_]+(?:[-_./][^\W_]+)*")
ID_SEPARATORS = re.compile(r"[-_./]")
# Up to this many neighbouring pieces of a run are joined ("ORD-2024-0001_smith" holds "ORD-2024-0001").
MAX_PIECES = 4
APOSTROPHES = re.compile("['\u2018\u2019\u02bc`\u00b4]")
NON_WORD = re.compile(r"[\W_]+")

MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sept", "sep"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ),
        start=1,
    )
    for name in names
}
_MONTH = "(?P<month_name>" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_ORDINAL = r"(?:st|nd|rd|th)?"
DATE_FORMS = (
    # (pattern with groups a, b, c in written order, readings): a reading names the groups
    # year, month, day. One separator throughout: "1980-03/07" is no date.
    (re.compile(r"(?<![\d/.-])(?P<a>\d{4})(?P<sep>[-/])(?P<b>\d{1,2})(?P=sep)(?P<c>\d{1,2})(?![\d/])"), ("abc",)),
    (re.compile(r"(?<![\d.])(?P<a>\d{1,2})\.(?P<b>\d{1,2})\.(?P<c>\d{4}|\d{2})(?![\d.])"), ("cba", "cab")),
    (re.compile(r"(?<![\d/])(?P<a>\d{1,2})(?P<sep>[/-])(?P<b>\d{1,2})(?P=sep)(?P<c>\d{4}|\d{2})(?![\d/])"), ("cab",)),
)
NAMED_DATE_FORMS = (
    re.compile(rf"(?<!\w)(?P<day>\d{{1,2}}){_ORDINAL}[\s-]+{_MONTH}[\s,-]+(?P<year>\d{{4}})(?!\d)", re.IGNORECASE),
    re.compile(rf"(?<!\w){_MONTH}\s+(?P<day>\d{{1,2}}){_ORDINAL},?\s+(?P<year>\d{{4}})(?!\d)", re.IGNORECASE),
)


class Place(NamedTuple):
    """Where a fact was first seen; sorts file name first, then pages in order."""

    rank: int
    words: str


FILE_NAME = Place(0, "in the file name")


def page(number):
    return Place(number, f"on page {number}")


@dataclass
class Facts:
    ids: dict[str, Place] = field(default_factory=dict)
    dates: dict[datetime.date, Place] = field(default_factory=dict)
    # (place, its words folded by fold_words, with a space at each end)
    texts: list[tuple[Place, str]] = field(default_factory=list)
    # Every folded word of every place: most orders' names are ruled out by a set lookup.
    words: set[str] = field(default_factory=set)

    def where_id(self, value):
        """Where an order's identifier `value` was first seen, or None."""
        places = [self.ids[key] for key in order_id_keys(value) if key in self.ids]
        return min(places) if places else None

    def where_words(self, phrase):
        """Where the words of `phrase` (a name_key) first appear together, or None."""
        if not all(word in self.words for word in phrase.split(" ")):
            return None
        needle = f" {phrase} "
        for place, text in self.texts:
            if needle in text:
                return place
        return None


def find_facts(file_name, text, *, today=None):
    today = today or datetime.date.today()
    facts = Facts()
    places = [(FILE_NAME, file_name or "")]
    places += [(page(number), page_text) for number, page_text in enumerate((text or "").split(PAGE_BREAK), start=1)]
    for place, content in places:
        for key in id_keys(content):
            facts.ids.setdefault(key, place)
        for date in dates_in(content, today=today):
            facts.dates.setdefault(date, place)
        folded = fold_words(content)
        facts.texts.append((place, f" {folded} "))
        facts.words.update(folded.split())
    return facts


# The order's side is normalised by these cached functions: a batch compares the same
# awaiting orders with every file, and their values change rarely (a cache keyed by the
# value itself cannot go stale).
@functools.lru_cache(maxsize=50_000)
def order_id_keys(value):
    """An order's identifier as compared: letters and digits, upper case, no leading zeros;
    with and without a label it starts with ("MRN0048213" is also "48213")."""
    key = NON_WORD.sub("", (value or "").upper())
    keys = {key.lstrip("0"), ID_LABELS.sub("", key).lstrip("0")}
    return frozenset(key for key in keys if len(key) >= MIN_ID_CHARS)


def id_keys(content):
    keys = set()
    for run in ID_RUN.findall(content):
        pieces = ID_SEPARATORS.split(run)
        for start in range(len(pieces)):
            for end in range(start + 1, min(start + MAX_PIECES, len(pieces)) + 1):
                joined = "".join(pieces[start:end]).upper()
                keys.add(joined.lstrip("0"))
                keys.add(ID_LABELS.sub("", joined).lstrip("0"))
    keys.discard("")
    return keys


@functools.lru_cache(maxsize=50_000)
def name_key(value):
    """A name as compared (see fold_words). "O'Brien" and "OBRIEN" both give "obrien"."""
    return fold_words(value)


@functools.lru_cache(maxsize=50_000)
def first_word(value):
    """The first word of a name as compared, or "" (which no text's words hold)."""
    return name_key(value).partition(" ")[0]


def fold_words(text):
    """Text as compared: case, accents and apostrophes gone, every other run of
    punctuation or space one space."""
    folded = search_fold(text or "")  # NFKD inside, so any normalisation before it is moot
    return NON_WORD.sub(" ", APOSTROPHES.sub("", folded)).strip()


def dates_in(content, *, today):
    for pattern, readings in DATE_FORMS:
        for match in pattern.finditer(content):
            for year, month, day in readings:
                if date := _date(match[year], int(match[month]), int(match[day]), today):
                    yield date
    for pattern in NAMED_DATE_FORMS:
        for match in pattern.finditer(content):
            # The pattern matches case-insensitively, so also letters that only fold to a
            # month's ("ſep", with a long s): casefold, and skip what still names none.
            month = MONTHS.get(match["month_name"].casefold())
            if month and (date := _date(match["year"], month, int(match["day"]), today)):
                yield date


def _date(year_text, month, day, today):
    year = int(year_text)
    if len(year_text) == 2:
        year += 2000 if 2000 + year <= today.year else 1900
    if not 1880 <= year <= today.year + 1:
        return None
    try:
        return datetime.date(year, month, day)
    except ValueError:
        return None
