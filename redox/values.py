"""Values from a partner, made storable: text, JSON, times and dates.

Every value `redox/inbound.py` hands on passes through here, so it can be stored by
PostgreSQL and read back by Python: text has no NUL and no lone UTF-16 surrogate, JSON
values are bounded in depth, and times are UTC within `EARLIEST_TIME`..`LATEST_TIME`
(dates of birth within `EARLIEST_DOB`..`LATEST_DOB`). A value outside that is dropped
(None or ""), field by field. The readers are tolerant: a missing key, a `null` or a
number where a string was expected gives an empty value, never an exception.
"""

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

# The one place the sane range of a stored time is decided. Orders and their events
# happen now; anything outside these years is a typo or an attack. The bounds keep
# every stored time far inside what Python's datetime can hold (years 1..9999) even
# after conversion to any local time zone, because psycopg2 cannot read back a
# timestamptz outside that range and the pages convert to TIME_ZONE to display it:
# one such row used to fail every page showing the order. Migration 0009 repairs rows
# stored before these bounds with a frozen copy of them.
EARLIEST_TIME = datetime(1900, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2200, 1, 1, tzinfo=UTC)
# Dates of birth go further back: no living patient was born before 1850.
EARLIEST_DOB = date(1850, 1, 1)
LATEST_DOB = date(2200, 1, 1)
# PostgreSQL refuses a UTC offset of 16 hours or more; no real zone is beyond ±14 hours.
MAX_UTC_OFFSET = timedelta(hours=15, minutes=59)
# JSON kept in a column (demographics, provider, diagnoses, identifiers) is cut below
# this depth: a Redox message nests a few levels, and every walk over it (ours,
# Django's encoder, PostgreSQL's parser) recurses once per level.
JSON_MAX_DEPTH = 32


def as_object(value: object) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


# NUL, which PostgreSQL text and jsonb refuse, and lone UTF-16 surrogates (from a JSON
# escape such as "\ud800"), which cannot be encoded as UTF-8 at all.
_UNSTORABLE = re.compile("\x00|[\ud800-\udfff]")


def _storable_char(match: re.Match[str]) -> str:
    return "" if match.group() == "\x00" else "\ufffd"


def clean_text(value: str) -> str:
    """`value` as text PostgreSQL can store: NUL dropped, lone surrogates shown as U+FFFD."""
    return _UNSTORABLE.sub(_storable_char, value)


def as_text(value: object) -> str:
    """A scalar as text: strings cleaned (`clean_text`) and stripped, numbers as written, anything else ""."""
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, str):
        return clean_text(value).strip()
    if isinstance(value, int | float):
        return str(value)
    return ""


def clean_json(value: object, depth: int = 0) -> Any:
    """A JSON value as stored in a JSON column: text (keys too) cleaned, nesting below JSON_MAX_DEPTH dropped."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict | list) and depth >= JSON_MAX_DEPTH:
        return None
    if isinstance(value, dict):
        return {clean_text(str(k)): clean_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_json(v, depth + 1) for v in value]
    return value


def as_bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def _parse_as_written(text: str) -> datetime | None:
    """A datetime, naive or with the offset as written, or None."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return _parse_compact(text)


def parse_datetime(value: object) -> datetime | None:
    """ISO 8601 as Redox writes it ("2026-10-05T17:04:15.120Z"), in UTC; naive means UTC.

    Bad, an offset beyond MAX_UTC_OFFSET, or outside EARLIEST_TIME..LATEST_TIME → None.
    """
    text = as_text(value)
    if not text:
        return None
    parsed = _parse_as_written(text)
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    offset = parsed.utcoffset()
    if offset is None or abs(offset) > MAX_UTC_OFFSET:
        return None
    try:
        parsed = parsed.astimezone(UTC)
    except OverflowError:
        # 9999-12-31T23:59-05:00 is after year 9999 in UTC.
        return None
    if not EARLIEST_TIME <= parsed < LATEST_TIME:
        return None
    return parsed


def _parse_compact(text: str) -> datetime | None:
    # HL7-flavoured feeds sometimes pass through "20261005170412" or "20261005".
    for fmt in ("%Y%m%d%H%M%S", "%Y%m%d%H%M", "%Y%m%d"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def parse_date(value: object) -> date | None:
    """A date of birth: "YYYY-MM-DD", a full timestamp, or "YYYYMMDD", as written (a
    timestamp's own date, not converted to UTC). Bad or outside EARLIEST_DOB..LATEST_DOB → None."""
    text = as_text(value)
    if not text:
        return None
    parsed: date | None
    try:
        parsed = date.fromisoformat(text[:10])
    except ValueError:
        as_written = _parse_as_written(text)
        parsed = as_written.date() if as_written else None
    if parsed is None or not EARLIEST_DOB <= parsed < LATEST_DOB:
        return None
    return parsed
