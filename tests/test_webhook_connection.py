"""The webhook's first query checks the database connection in place of Django's `SELECT 1`
(orders/webhook.py): no extra round trip per delivery, and a connection the server dropped
while idle is replaced, so the delivery is still stored and answered 200."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orders.models import InboundMessage
from tests.conftest import PARTNER_TOKEN, end_this_connection, sample_bytes

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="drops a PostgreSQL backend"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def health_checks(settings):
    """Persistent connections with Django's health checks on, as hcoint/settings.py has them."""
    saved = connection.health_check_enabled, connection.settings_dict["CONN_MAX_AGE"]
    connection.health_check_enabled = True
    connection.settings_dict["CONN_MAX_AGE"] = 60
    yield
    connection.health_check_enabled, connection.settings_dict["CONN_MAX_AGE"] = saved


def post(client):
    # What close_old_connections does when a request starts (Django's test client skips it).
    connection.health_check_done = False
    return client.post(
        "/redox/webhook/",
        sample_bytes("order-new.json"),
        content_type="application/json",
        headers={"verification-token": PARTNER_TOKEN},
    )


def health_checks_sent(monkeypatch):
    sent = []
    is_usable = connection.is_usable
    monkeypatch.setattr(connection, "is_usable", lambda: sent.append(True) or is_usable())
    return sent


def test_a_delivery_on_a_reused_connection_sends_no_separate_health_check(client, partner, health_checks, monkeypatch):
    connection.ensure_connection()
    sent = health_checks_sent(monkeypatch)
    with CaptureQueriesContext(connection) as captured:
        assert post(client).status_code == 200
    assert sent == []
    assert len(captured.captured_queries) == 2  # the partner, then the message and its order
    # Any other first query of a request still gets Django's check.
    connection.health_check_done = False
    InboundMessage.objects.count()
    assert sent == [True]


def test_a_delivery_on_a_connection_the_server_dropped_is_stored(client, partner, health_checks):
    pid = end_this_connection()
    assert post(client).status_code == 200
    assert connection.connection.info.backend_pid != pid
    assert InboundMessage.objects.get().status == InboundMessage.Status.PROCESSED
