"""The webhook's partner lookup (orders/partner_lookup.py) is `Partner.objects.for_token`
with its SQL compiled once: the same statement, the same partner, checked on every delivery."""

import logging
from unittest import mock

import pytest
from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders import partner_lookup
from orders.models import InboundMessage, Partner, PartnerQuerySet, hash_token
from orders.partner_lookup import partner_for_token
from tests.conftest import PARTNER_TOKEN, SECOND_PARTNER_TOKEN, sample_bytes

NEXT_TOKEN = "next-token-for-the-lookup-0123456789"


@pytest.fixture(autouse=True)
def fresh_statements():
    """Each test compiles for_token's statement afresh (and leaves no statement from a patched for_token)."""
    partner_lookup._statements.clear()
    yield
    partner_lookup._statements.clear()


def fields(partner):
    return {field.attname: getattr(partner, field.attname) for field in Partner._meta.concrete_fields}


def sent(lookup, token):
    """The statements `lookup(token)` sends, with their parameters."""
    with CaptureQueriesContext(connection) as captured:
        lookup(token)
    return [query["sql"] for query in captured.captured_queries]


def test_it_answers_what_for_token_answers(partner, second_partner):
    partner.set_tokens(second_token=NEXT_TOKEN)
    partner.save()
    for token in (PARTNER_TOKEN, NEXT_TOKEN, SECOND_PARTNER_TOKEN, "unknown-token-0123456789", ""):
        expected = Partner.objects.for_token(token)
        for _ in range(2):  # the first lookup compiles the statement, the second reuses it
            found = partner_for_token(token)
            assert found == expected
            if expected is not None:
                assert fields(found) == fields(expected)
                assert not found._state.adding and found._state.db == "default"


def test_it_sends_for_token_s_own_statement_and_nothing_else(partner):
    partner_for_token(PARTNER_TOKEN)  # compiled, caught before the database
    assert sent(partner_for_token, PARTNER_TOKEN) == sent(Partner.objects.for_token, PARTNER_TOKEN)
    assert len(sent(partner_for_token, PARTNER_TOKEN)) == 1
    assert sent(partner_for_token, "") == []
    # The token's hash is a parameter, never in the text; the token itself is nowhere.
    seen = []

    def record(execute, sql, params, many, context):
        seen.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        partner_for_token(PARTNER_TOKEN)
    ((sql, params),) = seen
    assert hash_token(PARTNER_TOKEN) in params and hash_token(PARTNER_TOKEN) not in sql
    assert PARTNER_TOKEN not in sql and PARTNER_TOKEN not in params


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the lookup's SQL is compiled once on PostgreSQL only")
def test_after_the_first_lookup_the_orm_is_not_asked(partner):
    partner_for_token(PARTNER_TOKEN)
    with mock.patch.object(PartnerQuerySet, "for_token", side_effect=AssertionError("compiled again")):
        assert partner_for_token(PARTNER_TOKEN) == partner
        assert partner_for_token("unknown-token-0123456789") is None


def test_the_partner_is_not_cached_a_deactivation_or_a_rotation_counts_at_once(client, partner):
    assert partner_for_token(PARTNER_TOKEN) == partner
    partner.set_tokens(NEXT_TOKEN, clear_second_token=True)
    partner.save()
    assert partner_for_token(PARTNER_TOKEN) is None
    assert partner_for_token(NEXT_TOKEN) == partner
    partner.is_active = False
    partner.save()
    assert partner_for_token(NEXT_TOKEN) is None
    # And so through the webhook: refused, nothing stored.
    answer = client.post(
        "/redox/webhook/",
        sample_bytes("order-new.json"),
        content_type="application/json",
        headers={"verification-token": NEXT_TOKEN},
    )
    assert answer.status_code == 401
    assert not InboundMessage.objects.exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the lookup's SQL is compiled once on PostgreSQL only")
def test_a_statement_with_a_time_in_it_is_not_reused(partner, caplog):
    # A rule that compares with "now" would be frozen at the first request: not reused.
    def for_token_with_a_time(self, token):
        if not token:
            return None
        presented = hash_token(token)
        rows = self.filter(Q(token_hash=presented) | Q(second_token_hash=presented), created_at__lte=timezone.now())
        return rows.order_by("pk").first()

    with mock.patch.object(PartnerQuerySet, "for_token", for_token_with_a_time), caplog.at_level(logging.WARNING):
        assert partner_for_token(PARTNER_TOKEN) == partner
        assert partner_for_token("unknown-token-0123456789") is None
        assert partner_lookup._statements[("default", connection.vendor)] is None
    assert [r.event for r in caplog.records if hasattr(r, "event")] == ["webhook.partner_lookup_uncached"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the lookup's SQL is compiled once on PostgreSQL only")
def test_a_statement_that_does_not_use_the_token_s_hash_is_not_reused(partner):
    def for_token_keyed_otherwise(self, token):
        return self.filter(name="Cascade Health").first() if token == PARTNER_TOKEN else None

    with mock.patch.object(PartnerQuerySet, "for_token", for_token_keyed_otherwise):
        assert partner_for_token(PARTNER_TOKEN) == partner
        assert partner_lookup._statements[("default", connection.vendor)] is None
