"""A duplicate whose bytes differ from the original is kept verbatim, and still changes no order."""

import hashlib
import importlib
import json
from datetime import UTC, datetime
from types import SimpleNamespace

from django.apps import apps
from django.db import connection
from django.urls import reverse

from hcoint.phi import scrub_record
from orders.ingest import message_ingest
from orders.models import InboundMessage, Order, Redelivery
from tests.conftest import PARTNER_TOKEN, events, sample_bytes, sample_json


def retried(attempt_id="another-attempt", **order_changes):
    """order-new.json as Redox sends it again: same log id, a new attempt id, maybe changed content."""
    data = sample_json("order-new.json")
    data["Meta"]["Logs"][0]["AttemptID"] = attempt_id
    data["Order"].update(order_changes)
    return json.dumps(data).encode()


def test_a_retry_with_a_new_attempt_id_is_kept_verbatim_and_changes_no_order(partner, caplog):
    original = message_ingest(partner=partner, body=sample_bytes("order-new.json"), headers={}).message
    body = retried(Priority="Stat")
    when = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
    headers = {"Content-Type": "application/json", "verification-token": PARTNER_TOKEN}
    result = message_ingest(partner=partner, body=body, headers=headers, received_at=when)

    assert result.duplicate and result.message.pk == original.pk
    redelivery = Redelivery.objects.get()
    assert redelivery.message == original
    assert bytes(redelivery.body) == body
    assert redelivery.body_sha256 == hashlib.sha256(body).hexdigest()
    assert redelivery.received_at == when
    assert redelivery.headers == {"content-type": "application/json"}
    assert Order.objects.get().priority == "Routine"
    assert InboundMessage.objects.get().times_seen == 2
    assert bytes(InboundMessage.objects.get().body) == sample_bytes("order-new.json")
    (record,) = events(caplog, "message.duplicate")
    assert record.body_differs is True
    assert scrub_record(record).body_differs is True  # a yes/no survives the PHI filter


def test_an_identical_duplicate_keeps_nothing_more(partner, caplog):
    body = sample_bytes("order-new.json")
    message_ingest(partner=partner, body=body, headers={})
    message_ingest(partner=partner, body=body, headers={})
    assert not Redelivery.objects.exists()
    (record,) = events(caplog, "message.duplicate")
    assert record.body_differs is False


def test_the_same_differing_bytes_are_kept_once_and_other_ones_again(partner):
    message_ingest(partner=partner, body=sample_bytes("order-new.json"), headers={})
    for _ in range(2):
        message_ingest(partner=partner, body=retried("attempt-2"), headers={})
    message_ingest(partner=partner, body=retried("attempt-3"), headers={})
    kept = [bytes(r.body) for r in Redelivery.objects.order_by("id")]
    assert kept == [retried("attempt-2"), retried("attempt-3")]
    assert InboundMessage.objects.get().times_seen == 4


def test_the_original_body_is_hashed_at_ingest(partner):
    message = message_ingest(partner=partner, body=sample_bytes("order-new.json"), headers={}).message
    message.refresh_from_db()
    assert message.body_sha256 == hashlib.sha256(sample_bytes("order-new.json")).hexdigest()


def test_a_message_stored_without_its_hash_is_compared_by_its_body(partner):
    """Rows the previous release wrote while this one migrated have no hash yet."""
    body = sample_bytes("order-new.json")
    message = message_ingest(partner=partner, body=body, headers={}).message
    InboundMessage.objects.filter(pk=message.pk).update(body_sha256="")

    message_ingest(partner=partner, body=body, headers={})
    assert not Redelivery.objects.exists()
    message.refresh_from_db()
    assert message.body_sha256 == hashlib.sha256(body).hexdigest()
    message_ingest(partner=partner, body=retried(), headers={})
    assert Redelivery.objects.count() == 1


def test_the_migration_fills_the_hash_of_messages_stored_before_it(partner):
    bodies = [sample_bytes("order-new.json"), b"{broken"]
    for body in bodies:
        message_ingest(partner=partner, body=body, headers={})
    InboundMessage.objects.update(body_sha256="")
    migration = importlib.import_module("orders.migrations.0006_fill_body_sha256")
    migration.fill_body_sha256(apps, SimpleNamespace(connection=connection))
    stored = dict(InboundMessage.objects.values_list("dedupe_key", "body_sha256"))
    assert sorted(stored.values()) == sorted(hashlib.sha256(b).hexdigest() for b in bodies)


def test_a_redelivery_through_the_webhook_is_answered_200_and_kept(client, partner):
    for body in (sample_bytes("order-new.json"), retried()):
        response = client.post(
            "/redox/webhook/", body, content_type="application/json", headers={"verification-token": PARTNER_TOKEN}
        )
        assert response.status_code == 200
    redelivery = Redelivery.objects.get()
    assert bytes(redelivery.body) == retried()
    assert "verification-token" not in redelivery.headers
    assert Order.objects.count() == 1


def test_the_admin_counts_redeliveries_and_shows_their_bodies_only_on_the_message_page(client, partner, admin_user):
    message = message_ingest(partner=partner, body=sample_bytes("order-new.json"), headers={}).message
    message_ingest(partner=partner, body=retried("attempt-7f3e"), headers={})
    client.force_login(admin_user)

    listing = client.get(reverse("admin:orders_inboundmessage_changelist"))
    (row,) = listing.context["cl"].result_list
    assert row.redelivery_count == 1
    assert b"attempt-7f3e" not in listing.content

    page = client.get(reverse("admin:orders_inboundmessage_change", args=[message.pk])).content.decode()
    assert "attempt-7f3e" in page
    assert Redelivery.objects.get().body_sha256 in page
    assert 'name="_save"' not in page
    assert "redeliveries-0-DELETE" not in page
