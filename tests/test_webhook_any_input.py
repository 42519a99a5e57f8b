"""Whatever an authenticated partner posts, the webhook answers 200 and keeps the exact bytes.

Property-based (hypothesis), on PostgreSQL, which is what refuses the values SQLite
lets through (lone surrogates, NUL, timestamps and offsets out of range). Three kinds
of body: arbitrary JSON, arbitrary bytes, and Redox Order messages with leaves swapped
for hostile values, since random JSON rarely gets as far as applying an order. Every
example must also leave no exception in the logs, fail a message only for a reason of
ours (never "HCOINT could not apply this message"), and leave each order it touched
with a detail page that renders.
"""

import copy
import hashlib
import itertools
import json
import logging
from contextlib import contextmanager
from datetime import datetime

import pytest
from django.db import connection
from django.test import Client
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from orders.models import InboundMessage, Redelivery
from tests.conftest import PARTNER_TOKEN, sample_json

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="needs PostgreSQL: SQLite stores the surrogates, NULs and out-of-range times PostgreSQL refuses",
)

URL = "/redox/webhook/"
# Bounded so the file runs in seconds; the edge values are drawn on purpose, not hoped for.
FUZZ = settings(
    max_examples=100,
    deadline=None,
    # The fixtures (partner, staff client) hold no state a single example could spoil.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Any code point, lone surrogates and NUL included (hypothesis leaves surrogates out by default).
any_char = st.characters(exclude_categories=())
any_text = st.text(any_char, max_size=30)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**4000), max_value=10**4000)
    | st.floats(allow_nan=False, allow_infinity=False)
    | any_text
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4),
    max_leaves=25,
)


def _offset(minutes):
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


EDGE_TIMES = [
    "9999-12-31T23:59:00-05:00",
    "9999-12-31T23:59:59.999999Z",
    "0001-01-01T00:00:00+01:00",
    "0001-01-01T00:00:00Z",
    "2026-10-05T17:04:15+16:00",
    "2026-10-05T17:04:15-15:59",
    "2026-10-05T17:04:15+23:59",
    "1899-12-31T23:59:59Z",
    "2200-01-01T00:00:00Z",
    "99991231235959",
    "00010101",
]
times = st.sampled_from(EDGE_TIMES) | st.builds(
    lambda moment, minutes: moment.isoformat() + _offset(minutes),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1),
)
long_text = st.builds(lambda char, count: char * count, any_char, st.integers(min_value=90, max_value=5000))


def _nested(depth, leaf):
    for _ in range(depth):
        leaf = [leaf]
    return leaf


deep = st.builds(_nested, st.integers(min_value=1, max_value=1200), json_scalars)
leaves = json_scalars | times | long_text | deep | json_values
ORDER_IDS = ["ORD-1", "ORD-2", "ORD-\ud800", "ORD-\x00-3", "7" * 500, "7" * 501, "8" * 5000, 157720311]


def _leaf_paths(value, path=()):
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _leaf_paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _leaf_paths(child, (*path, index))
    else:
        yield path


SAMPLE = sample_json("order-new.json")
SAMPLE_LEAVES = list(_leaf_paths(SAMPLE))
_log_ids = itertools.count()


def _set(data, path, value):
    for step in path[:-1]:
        data = data[step]
    data[path[-1]] = value


@st.composite
def almost_valid_orders(draw):
    """order-new.json with a chosen event type and order id, and some leaves swapped for hostile values."""
    data = copy.deepcopy(SAMPLE)
    # A fresh log id by default, so most examples are applied rather than counted as duplicates.
    data["Meta"]["Logs"][0]["ID"] = f"fuzz-{next(_log_ids)}"
    data["Meta"]["EventType"] = draw(st.sampled_from(["New", "Update", "Cancel", "GroupedOrders"]))
    data["Order"]["ID"] = draw(st.sampled_from(ORDER_IDS))
    for path in draw(st.lists(st.sampled_from(SAMPLE_LEAVES), max_size=8, unique=True)):
        _set(data, path, draw(leaves))
    if data["Meta"]["EventType"] == "GroupedOrders":
        data["Orders"] = [data["Order"], {**data["Order"], "ID": draw(st.sampled_from(ORDER_IDS))}]
    return data


def _encoded(value, ascii_only):
    # ensure_ascii writes a lone surrogate as a \ud800 escape; without it, surrogatepass
    # writes it as bytes that are not UTF-8 at all.
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@contextmanager
def _logged():
    handler = _Records()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler.records
    finally:
        root.removeHandler(handler)


def _with_examples(name, values):
    def decorate(test):
        for value in reversed(values):
            test = example(**{name: value})(test)
        return test

    return decorate


@pytest.fixture
def staff_client(admin_user):
    client = Client()
    client.force_login(admin_user)
    return client


def post_and_check(client, partner, body):
    """Post `body` with the partner's token and check the promises; returns the message holding it."""
    with _logged() as records:
        response = client.post(
            URL, body, content_type="application/json", headers={"verification-token": PARTNER_TOKEN}
        )
    assert response.status_code == 200
    digest = hashlib.sha256(body).hexdigest()
    messages = InboundMessage.objects.filter(partner=partner, body_sha256=digest)
    redeliveries = Redelivery.objects.filter(message__partner=partner, body_sha256=digest)
    held = [bytes(m.body) for m in messages] + [bytes(r.body) for r in redeliveries]
    assert body in held, "the body was not stored"
    assert not [r for r in records if r.exc_info], "an exception was logged"
    refused = [r for r in records if getattr(r, "event", None) == "message.metadata_refused"]
    assert not refused, "a value read from the body got past the cleaning in redox/values.py"
    crashes = [r for r in records if getattr(r, "event", None) == "message.failed" and hasattr(r, "error_kind")]
    assert not crashes, "a message failed on an unexpected exception, not a reason of ours"
    return messages.first() or InboundMessage.objects.get(redeliveries__in=redeliveries[:1])


@FUZZ
@given(value=json_values, ascii_only=st.booleans())
def test_any_json_is_stored_and_answered_200(client, partner, value, ascii_only):
    post_and_check(client, partner, _encoded(value, ascii_only))


def _order_bytes(**meta):
    data = copy.deepcopy(SAMPLE)
    data["Meta"].update(meta)
    return json.dumps(data).encode()


# The bodies issue 9 names, always tried first, whatever hypothesis draws after them.
NAMED_BODIES = [
    _order_bytes(EventDateTime="\ud800"),
    _order_bytes(Source={"ID": "\ud800", "Name": "\udfff\u0000"}, Logs=[{"ID": "log-\ud800"}]),
    _order_bytes(EventDateTime="2026-10-05T17:04:15+16:00", Logs=[{"ID": "log-offset"}]),
    _order_bytes(EventDateTime="9999-12-31T23:59:00-05:00", Logs=[{"ID": "log-9999"}]),
    _order_bytes(EventDateTime="0001-01-01T00:00:00+01:00", Logs=[{"ID": "log-0001"}]),
    _order_bytes(Logs=[{"ID": "L" * 5000}], DataModel="D" * 5000, EventType="E" * 5000),
    b'{"Meta": {"DataModel": "Order", "DataModel": "Orders"}, "Meta": {"EventType": "New"}, "Order": {"ID": 1}}',
    b'{"Meta": {"DataModel": "Order", "EventType": "New"}, "Order": {"ID": NaN}}',
    b'{"Meta": {"DataModel": "Order", "EventType": "New"}, "Order": {"ID": 1e999}}',
    b'{"Meta": {"DataModel": "Order", "EventType": "New"}, "Order": {"ID": ' + b"9" * 5000 + b"}}",
    b'{"Meta": {"DataModel": "Order", "EventType": "New"}, "Order": {"ID": ' + b"9" * 4300 + b"}}",
    b'{"Meta": {"DataModel": "Order", "EventType": "New"}, "Order": {"ID": "1"}, "x": '
    + b"[" * 1000
    + b"]" * 1000
    + b"}",
    b'{"Meta": {"DataModel": "Order", "EventType": "New"}, "Order": {"ID": "1"}, "x": '
    + b"[" * 900
    + b"]" * 900
    + b"}",
    b'{"Meta": {"DataModel": "Order\xed\xa0\x80"}}',
    b"\xff\xfe{\x00}\x00",
    b"",
]


@FUZZ
@given(body=st.binary(max_size=2000))
@_with_examples("body", NAMED_BODIES)
def test_any_bytes_are_stored_and_answered_200(client, partner, body):
    post_and_check(client, partner, body)


@FUZZ
@given(data=almost_valid_orders(), ascii_only=st.booleans())
def test_a_hostile_order_message_is_stored_and_its_order_still_renders(client, staff_client, partner, data, ascii_only):
    message = post_and_check(client, partner, _encoded(data, ascii_only))
    for order in message.orders.all():
        assert staff_client.get(f"/orders/{order.pk}/").status_code == 200


def test_the_hostile_orders_reach_the_code_that_applies_them(client, partner):
    # Not a property: a guard that the generator above is not so hostile that nothing
    # is ever applied (then the property test would prove little).
    data = copy.deepcopy(SAMPLE)
    data["Patient"]["Demographics"]["DOB"] = "9999-12-31T23:59:00-05:00"
    data["Meta"]["EventDateTime"] = "2026-10-05T17:04:15+16:00"
    data["Order"]["ID"] = "ORD-\ud800"
    message = post_and_check(client, partner, _encoded(data, True))
    assert message.status == InboundMessage.Status.PROCESSED
    order = message.orders.get()
    assert order.patient_dob is None
    assert message.event_at is None
    assert order.ehr_order_id == "ORD-\ufffd"
