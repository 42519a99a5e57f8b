"""Every value redox.inbound hands on (read through redox.values) can be stored by PostgreSQL and read back by Python.

What cannot is dropped field by field (None or ""), or replaced, never the whole message.
"""

import json
from datetime import UTC, date, datetime

import pytest

from redox import inbound, values
from tests.conftest import sample_json
from tests.test_inbound_parsing import order_message, refusal


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # Converted to UTC, so the offset never reaches the database.
        ("2026-10-05T17:04:15+14:00", datetime(2026, 10, 5, 3, 4, 15, tzinfo=UTC)),
        ("2026-10-05T17:04:15+15:59", datetime(2026, 10, 5, 1, 5, 15, tzinfo=UTC)),
        ("2026-10-05T17:04:15-15:59", datetime(2026, 10, 6, 9, 3, 15, tzinfo=UTC)),
        # PostgreSQL refuses these offsets, and no zone uses them.
        ("2026-10-05T17:04:15+16:00", None),
        ("2026-10-05T17:04:15-23:59", None),
        # Outside the sane range, and outside Python's once in UTC or local time.
        ("9999-12-31T23:59:00-05:00", None),
        ("9999-12-31T23:59:59Z", None),
        ("0001-01-01T00:00:00+01:00", None),
        ("0001-01-01T00:00:00Z", None),
        ("1899-12-31T23:59:59Z", None),
        ("2200-01-01T00:00:00Z", None),
        # The bounds themselves.
        ("1900-01-01T00:00:00Z", datetime(1900, 1, 1, tzinfo=UTC)),
        ("2199-12-31T23:59:59Z", datetime(2199, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("1900-01-01T00:00:00+01:00", None),
        ("22000101", None),
        ("2026-10-05T17:04\ud800", None),
    ],
)
def test_times_are_utc_within_the_sane_range_or_none(value, expected):
    parsed = values.parse_datetime(value)
    assert parsed == expected
    if parsed is not None:
        assert parsed.utcoffset().total_seconds() == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1850-01-01", date(1850, 1, 1)),
        ("1849-12-31", None),
        ("2199-12-31", date(2199, 12, 31)),
        ("2200-01-01", None),
        ("9999-12-31T23:59:00-05:00", None),
        ("0001-01-01T00:00:00+01:00", None),
        # A timestamp's own date: a birth date is not shifted to UTC.
        ("1948-02-29T23:00:00-05:00", date(1948, 2, 29)),
        ("18000101", None),
    ],
)
def test_dates_of_birth_are_bounded(value, expected):
    assert values.parse_date(value) == expected


def test_lone_surrogates_are_replaced_in_text_keys_and_json_values():
    data = sample_json("order-new.json")
    data["Patient"]["Demographics"]["LastName"] = "Smith\ud800"
    data["Patient"]["Demographics"]["\udfffKey"] = ["a\udc00b", {"x\ud800": "\x00y"}]
    data["Order"]["Comments"] = "ok\ud83d"
    data["Order"]["ID"] = "ORD\ud800-1"
    data["Meta"]["Logs"][0]["ID"] = "log\udfff"
    message = order_message(data)
    assert message.patient.last_name == "Smith\ufffd"
    assert message.patient.demographics["\ufffdKey"] == ["a\ufffdb", {"x\ufffd": "y"}]
    assert message.orders[0].comments == "ok\ufffd"
    assert message.orders[0].ehr_order_id == "ORD\ufffd-1"
    assert message.meta.log_id == "log\ufffd"
    # Everything now encodes as UTF-8, which is all PostgreSQL needs.
    json.dumps(message.patient.demographics, ensure_ascii=False).encode()
    assert inbound.dedupe_key(b"{}", message.meta).startswith("log:")


def test_a_real_astral_character_is_kept():
    assert values.clean_text("Zo\U0001f600\u00eb") == "Zo\U0001f600\u00eb"


def test_json_nested_deeper_than_the_bound_is_dropped_in_stored_blobs():
    deep = "leaf"
    for _ in range(900):
        deep = [deep]
    data = sample_json("order-new.json")
    data["Patient"]["Demographics"]["Deep"] = deep
    message = order_message(json.loads(json.dumps(data)))
    kept, depth = message.patient.demographics["Deep"], 1
    while isinstance(kept, list):
        kept, depth = kept[0], depth + 1
    assert kept is None
    assert depth == values.JSON_MAX_DEPTH


@pytest.mark.parametrize(
    "body",
    [b'{"a": 1e999}', b'{"a": -1e999}', b'{"a": Infinity}', b'{"a": ' + b"9" * 5000 + b"}"],
    ids=["huge float", "huge negative float", "Infinity", "5000-digit int"],
)
def test_numbers_jsonb_or_python_cannot_hold_make_the_body_invalid(body):
    assert inbound.read(body).error == "The body is not valid JSON."


def test_an_order_id_is_kept_whole_up_to_the_bound_and_refused_beyond():
    data = sample_json("order-new.json")
    data["Order"]["ID"] = "9" * inbound.ORDER_ID_MAX_CHARS
    assert order_message(data).orders[0].ehr_order_id == "9" * inbound.ORDER_ID_MAX_CHARS
    data["Order"]["ID"] = "9" * (inbound.ORDER_ID_MAX_CHARS + 1)
    assert refusal(data) == "Order.ID is longer than 500 characters; HCOINT does not cut ids."
