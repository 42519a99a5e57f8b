"""A partner's is_production means something: a message whose Meta.Test disagrees is flagged and alerts."""

import json
import logging

import pytest
from django.db import connection
from django.urls import reverse

from orders.ingest import message_ingest
from orders.models import InboundMessage, Partner
from tests.conftest import sample_json


def body(test):
    data = sample_json("order-new.json")
    if test is None:
        del data["Meta"]["Test"]
    else:
        data["Meta"]["Test"] = test
    return json.dumps(data).encode()


def mismatches(caplog):
    return [r for r in caplog.records if getattr(r, "event", None) == "message.environment_mismatch"]


@pytest.mark.parametrize(
    ("is_production", "test", "flagged"),
    [
        (True, True, True),  # a test message on a production connection
        (False, False, True),  # a production message on a test connection
        (True, False, False),
        (False, True, False),
        (True, None, False),  # no Meta.Test: nothing to compare
    ],
)
def test_a_message_whose_environment_disagrees_is_logged_as_a_warning(partner, caplog, is_production, test, flagged):
    partner.is_production = is_production
    partner.save()
    caplog.set_level(logging.INFO)

    ingested = message_ingest(partner=partner, body=body(test), headers={})

    assert ingested.message.status == InboundMessage.Status.PROCESSED  # flagged, never refused
    found = mismatches(caplog)
    assert len(found) == (1 if flagged else 0)
    if flagged:
        (record,) = found
        assert record.levelno == logging.WARNING
        assert (record.message_id, record.partner_id) == (ingested.message.pk, partner.pk)
        assert (record.message_is_test, record.partner_is_production) == (test, is_production)


def test_a_redelivery_of_a_flagged_message_is_not_flagged_again(partner, caplog):
    partner.is_production = True
    partner.save()
    caplog.set_level(logging.INFO)
    message_ingest(partner=partner, body=body(True), headers={})
    message_ingest(partner=partner, body=body(True), headers={})
    assert len(mismatches(caplog)) == 1


def test_the_admin_shows_the_mismatch_on_the_message(client, admin_user, partner):
    partner.is_production = True
    partner.save()
    message = message_ingest(partner=partner, body=body(True), headers={}).message
    client.force_login(admin_user)

    page = client.get(reverse("admin:orders_inboundmessage_change", args=[message.pk])).content.decode()
    assert "Mismatch: A test message (Meta.Test true) arrived on a production connection." in page

    partner.is_production = False
    partner.save()
    page = client.get(reverse("admin:orders_inboundmessage_change", args=[message.pk])).content.decode()
    assert "Test message on a test connection, as expected." in page
    assert "Mismatch" not in page


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="SQLite rebuilds a table to change it, so the previous release's columns are not kept there",
)
def test_the_old_source_columns_stay_for_the_previous_release(partner):
    """Migration 0012 keeps source_id/source_name in the database (old containers read and
    write them during a deploy) with a default, so this release's inserts still work."""
    Partner.objects.create(name="Inserted without the columns", destination_id="d", destination_name="n")
    with connection.cursor() as cursor:
        cursor.execute("SELECT source_id, source_name FROM orders_partner ORDER BY id")
        assert cursor.fetchall() == [("", ""), ("", "")]
        # What the previous release's code does: name the columns in an insert.
        cursor.execute(
            "INSERT INTO orders_partner (name, is_active, is_production, source_id, source_name, destination_id,"
            " destination_name, outbound_model, token_hash, second_token_hash, created_at, updated_at)"
            " VALUES ('Old release', true, false, 'src', 'Src', 'd', 'n', 'results', '', '', %s, %s)",
            [partner.created_at, partner.created_at],
        )
    assert Partner.objects.get(name="Old release").destination_id == "d"
