"""Rotating FIELD_ENCRYPTION_KEYS: a new key first, `manage.py reencrypt`, then the old key removed.

With the new key first, rows under the old key still read; `reencrypt` rewrites them, and
legacy plaintext rows, under the new key, is idempotent and resumable, counts only with
--dry-run, and never prints or logs a key. After the old key is removed everything reads.
`--decrypt` writes plaintext back, for a rollback past migration 0018.
"""

import io
import logging

import pytest
from django.core.management import call_command

from hcoint.encryption import MAGIC, generate_key, key_id, parse_key
from orders import note_content
from orders.management.commands.reencrypt import encrypted_columns
from orders.models import ClinicalNote, InboundMessage, NoteChunk
from tests.factories import SAMPLE_PDF, ClinicalNoteFactory, InboundMessageFactory
from tests.test_field_encryption import BODY, redelivery, store_raw, stored

# Run on SQLite too (BLOBs hold the same envelopes); CI runs them on PostgreSQL.


def reencrypt(*args):
    out = io.StringIO()
    call_command("reencrypt", *args, stdout=out)
    return out.getvalue()


def header_key_id(raw):
    return raw[len(MAGIC) + 1 : len(MAGIC) + 5]


@pytest.fixture
def old_rows(db, settings):
    """Under the old key: two messages, a redelivery and a note; plus one legacy plaintext message."""
    old = settings.FIELD_ENCRYPTION_KEYS[0]
    messages = [InboundMessageFactory(body=BODY + bytes([n]), dedupe_key=f"k{n}") for n in range(2)]
    legacy = InboundMessageFactory(body=BODY, dedupe_key="legacy")
    store_raw(InboundMessage, "body", legacy.pk, BODY)
    return {
        "old": old,
        "messages": messages,
        "legacy": legacy,
        "redelivery": redelivery(messages[0]),
        "note": ClinicalNoteFactory(),
    }


def test_rotation_new_key_first_then_reencrypt_then_old_key_removed(old_rows, settings):
    new = generate_key()
    settings.FIELD_ENCRYPTION_KEYS = [new, old_rows["old"]]
    # Old rows still read, new rows go under the new key.
    assert bytes(InboundMessage.objects.get(pk=old_rows["messages"][0].pk).body) == BODY + b"\x00"
    fresh = InboundMessageFactory(body=BODY, dedupe_key="fresh")
    assert header_key_id(stored(InboundMessage, "body", fresh.pk)) == key_id(parse_key(new))

    out = reencrypt()
    assert "orders_inboundmessage.body: 3 row(s) re-encrypted" in out  # two old, one legacy; not the fresh one
    assert "orders_redelivery.body: 1 row(s) re-encrypted" in out
    assert "orders_notechunk.data: 1 row(s) re-encrypted" in out
    for message in [*old_rows["messages"], old_rows["legacy"], fresh]:
        assert header_key_id(stored(InboundMessage, "body", message.pk)) == key_id(parse_key(new))
    assert header_key_id(stored(NoteChunk, "data", old_rows["note"].chunks.get().pk)) == key_id(parse_key(new))

    settings.FIELD_ENCRYPTION_KEYS = [new]
    assert [bytes(b) for b in InboundMessage.objects.order_by("pk").values_list("body", flat=True)] == [
        BODY + b"\x00",
        BODY + b"\x01",
        BODY,
        BODY,
    ]
    assert bytes(old_rows["redelivery"].__class__.objects.get().body) == BODY
    assert note_content.read(ClinicalNote.objects.get()) == SAMPLE_PDF


def test_reencrypt_twice_rewrites_nothing_the_second_time(old_rows, settings):
    settings.FIELD_ENCRYPTION_KEYS = [generate_key(), old_rows["old"]]
    reencrypt()
    before = stored(InboundMessage, "body", old_rows["legacy"].pk)
    out = reencrypt()
    columns = list(encrypted_columns())
    assert len(columns) >= 6  # notes, bodies, redeliveries, page images, batch files and their previews
    assert out.count(": 0 row(s) re-encrypted") == len(columns)
    assert "re-encrypted" in out and " 1 row(s)" not in out
    assert stored(InboundMessage, "body", old_rows["legacy"].pk) == before


def test_an_interrupted_run_continues_where_it_stopped(old_rows, settings, monkeypatch):
    settings.FIELD_ENCRYPTION_KEYS = [generate_key(), old_rows["old"]]
    from orders.management.commands import reencrypt as command

    original = command.Command._rewrite
    calls = []

    def die_after_first_batch(self, model, field, pending, **kwargs):
        if model is InboundMessage:
            calls.append(model)
            kwargs["batch_size"] = 1
            pks = list(pending.order_by("pk").values_list("pk", flat=True)[:1])
            original(self, model, field, pending.filter(pk__in=pks), **kwargs)
            raise KeyboardInterrupt
        return original(self, model, field, pending, **kwargs)

    monkeypatch.setattr(command.Command, "_rewrite", die_after_first_batch)
    with pytest.raises(KeyboardInterrupt):
        reencrypt("--batch-size", "1")
    monkeypatch.setattr(command.Command, "_rewrite", original)

    assert "orders_inboundmessage.body: 2 plaintext" not in reencrypt("--dry-run")
    assert "orders_inboundmessage.body: 1 plaintext row(s) and 1 under an older key" in reencrypt("--dry-run")
    assert "orders_inboundmessage.body: 2 row(s) re-encrypted" in reencrypt("--batch-size", "1")


def test_dry_run_counts_and_changes_nothing(old_rows, settings):
    settings.FIELD_ENCRYPTION_KEYS = [generate_key(), old_rows["old"]]
    before = stored(InboundMessage, "body", old_rows["messages"][0].pk)
    out = reencrypt("--dry-run")
    assert "orders_inboundmessage.body: 1 plaintext row(s) and 2 under an older key would be re-encrypted" in out
    assert "orders_notechunk.data: 0 plaintext row(s) and 1 under an older key" in out
    assert stored(InboundMessage, "body", old_rows["messages"][0].pk) == before
    assert stored(InboundMessage, "body", old_rows["legacy"].pk) == BODY


def test_a_run_prints_and_logs_counts_but_no_key_and_no_content(old_rows, settings, caplog):
    new = generate_key()
    settings.FIELD_ENCRYPTION_KEYS = [new, old_rows["old"]]
    caplog.set_level(logging.DEBUG)
    out = reencrypt("--dry-run") + reencrypt()
    logged = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert "encryption.reencrypted" in logged and "encryption.reencrypt_dry_run" in logged
    for text in (out, logged):
        for key in (new, old_rows["old"]):
            assert key not in text and key.rstrip("=")[:20] not in text
            assert parse_key(key).hex() not in text
        assert "Testpatient" not in text and "%PDF" not in text


def test_decrypt_writes_plaintext_back_for_a_rollback(old_rows):
    out = reencrypt("--decrypt")
    assert "orders_inboundmessage.body: 2 row(s) decrypted" in out  # the legacy row already was
    assert stored(InboundMessage, "body", old_rows["messages"][1].pk) == BODY + b"\x01"
    assert stored(NoteChunk, "data", old_rows["note"].chunks.get().pk) == SAMPLE_PDF
    assert "0 encrypted row(s)" in reencrypt("--decrypt", "--dry-run")


def test_generate_field_key_prints_a_new_usable_key(db):
    first, second = io.StringIO(), io.StringIO()
    call_command("generate_field_key", stdout=first)
    call_command("generate_field_key", stdout=second)
    assert first.getvalue() != second.getvalue()
    assert len(parse_key(first.getvalue().strip())) == 32
