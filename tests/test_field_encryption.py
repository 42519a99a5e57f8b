"""Note PDFs and raw Redox bodies are encrypted in the database, and read back unchanged.

The columns are EncryptedBinaryField (hcoint/fields.py): what PostgreSQL holds, read with a
raw cursor as a dump or a SQL session would see it, is an AES-256-GCM envelope, never the
plaintext; the ORM reads the plaintext back. Rows stored before encryption (plaintext)
still read. Keys never appear in an error or a repr.
"""

import hashlib
import json

import pytest
from django.conf import settings
from django.core.exceptions import FieldError
from django.db import connection

from hcoint.encryption import (
    HEADER_BYTES,
    MAGIC,
    OVERHEAD,
    DecryptionError,
    KeyConfigurationError,
    KeyRing,
    generate_key,
    key_id,
    parse_key,
)
from hcoint.fields import keyring
from hcoint.phi import safe_exception_message
from orders.models import BatchFile, ClinicalNote, InboundMessage, NoteChunk, NotePreview, Redelivery
from tests.conftest import PARTNER_TOKEN, sample_bytes, sample_json
from tests.factories import SAMPLE_PDF, TINY_PNG, BatchFileFactory, ClinicalNoteFactory, InboundMessageFactory

# Run on SQLite too (BLOBs hold the same envelopes); CI runs them on PostgreSQL.

BODY = b'{"Meta": {"DataModel": "Order", "EventType": "New"}, "Patient": {"Demographics": {"LastName": "Testpatient"}}}'


def stored(model, column, pk):
    """The column's bytes as PostgreSQL holds them (no ORM, so no decryption)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {model._meta.db_table} WHERE id = %s", [pk])  # noqa: S608 (our names)
        return bytes(cursor.fetchone()[0])


def store_raw(model, column, pk, value):
    """Write bytes straight into the column, as a release without encryption did."""
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {model._meta.db_table} SET {column} = %s WHERE id = %s", [value, pk])  # noqa: S608


def keyring_texts():
    return settings.FIELD_ENCRYPTION_KEYS


def redelivery(message, body=BODY):
    return Redelivery.objects.create(message=message, body=body, body_sha256=hashlib.sha256(body).hexdigest())


def encrypted_row(column):
    """(row, model, column name, plaintext) for each column that holds a patient's document or message."""
    if column == "note":
        return ClinicalNoteFactory().chunks.get(), NoteChunk, "data", SAMPLE_PDF
    if column == "message":
        return InboundMessageFactory(body=BODY), InboundMessage, "body", BODY
    if column == "redelivery":
        return redelivery(InboundMessageFactory()), Redelivery, "body", BODY
    if column == "page image":
        return (
            NotePreview.objects.create(note=ClinicalNoteFactory(), page_index=0, png=TINY_PNG),
            NotePreview,
            "png",
            TINY_PNG,
        )
    if column == "batch file":
        return BatchFileFactory(), BatchFile, "content", SAMPLE_PDF
    return BatchFileFactory(), BatchFile, "preview_png", TINY_PNG


@pytest.mark.parametrize("column", ["note", "message", "redelivery", "page image", "batch file", "batch preview"])
def test_each_column_is_ciphertext_in_the_database_and_plaintext_through_the_orm(db, column):
    row, model, name, plaintext = encrypted_row(column)

    raw = stored(model, name, row.pk)
    assert raw.startswith(MAGIC + b"\x01" + key_id(parse_key(keyring_texts()[0])))
    assert len(raw) == len(plaintext) + OVERHEAD
    assert plaintext[:16] not in raw and b"Testpatient" not in raw and b"%PDF" not in raw and b"PNG" not in raw

    assert bytes(getattr(model.objects.get(pk=row.pk), name)) == plaintext
    assert bytes(model.objects.values_list(name, flat=True).get(pk=row.pk)) == plaintext
    assert bytes(model.objects.values(name).get(pk=row.pk)[name]) == plaintext


def test_the_same_bytes_encrypt_differently_each_time(db):
    first, second = InboundMessageFactory(body=BODY), InboundMessageFactory(body=BODY, dedupe_key="another")
    assert stored(InboundMessage, "body", first.pk) != stored(InboundMessage, "body", second.pk)


def test_a_row_stored_in_plaintext_before_encryption_still_reads(db):
    note, message = ClinicalNoteFactory(), InboundMessageFactory()
    store_raw(ClinicalNote, "content", note.pk, SAMPLE_PDF)
    store_raw(InboundMessage, "body", message.pk, BODY)
    assert stored(InboundMessage, "body", message.pk) == BODY

    assert bytes(ClinicalNote.objects.get(pk=note.pk).content) == SAMPLE_PDF
    assert bytes(InboundMessage.objects.get(pk=message.pk).body) == BODY


def test_an_empty_value_is_stored_empty_and_can_be_found(db):
    message = InboundMessageFactory(body=b"")
    assert stored(InboundMessage, "body", message.pk) == b""
    assert list(InboundMessage.objects.filter(body=b"").values_list("pk", flat=True)) == [message.pk]


def test_comparing_an_encrypted_column_in_the_database_is_refused(db):
    with pytest.raises(FieldError, match="encrypted.*SHA-256"):
        InboundMessage.objects.filter(body=BODY).exists()
    with pytest.raises(FieldError):
        InboundMessage.objects.filter(body__contains=b"Meta").exists()


def test_a_value_under_a_key_no_longer_configured_says_which_key_id_and_never_the_key(db, settings):
    message = InboundMessageFactory(body=BODY)
    old = settings.FIELD_ENCRYPTION_KEYS[0]
    other = generate_key()
    settings.FIELD_ENCRYPTION_KEYS = [other]

    with pytest.raises(DecryptionError) as raised:
        InboundMessage.objects.get(pk=message.pk)
    text = str(raised.value)
    assert key_id(parse_key(old)).hex() in text and "FIELD_ENCRYPTION_KEYS" in text
    assert old not in text and other not in text and old.rstrip("=") not in text
    # The log filter shows this message (it names a key id, which the operator needs).
    assert safe_exception_message(raised.value) == text


def test_an_altered_value_is_refused_not_returned(db):
    message = InboundMessageFactory(body=BODY)
    raw = bytearray(stored(InboundMessage, "body", message.pk))
    raw[-1] ^= 1
    store_raw(InboundMessage, "body", message.pk, bytes(raw))
    with pytest.raises(DecryptionError, match="failed authentication"):
        InboundMessage.objects.get(pk=message.pk)


def test_the_header_is_authenticated_too():
    ring = KeyRing([parse_key(generate_key())])
    value = bytearray(ring.encrypt(BODY))
    value[HEADER_BYTES - 1] ^= 1  # another key id: refused before any key is tried
    with pytest.raises(DecryptionError, match="does not hold"):
        ring.decrypt(bytes(value))
    value = bytearray(ring.encrypt(BODY))
    value[len(MAGIC)] = 2
    with pytest.raises(DecryptionError, match="version 2"):
        ring.decrypt(bytes(value))


def test_the_keyring_repr_and_key_errors_never_show_a_key():
    text = generate_key()
    ring = KeyRing([parse_key(text)])
    assert text not in repr(ring) and key_id(parse_key(text)).hex() in repr(ring)
    assert text not in repr(keyring()) and all(t not in repr(keyring()) for t in keyring_texts())

    secretish = "not-a-key-but-secret-é-" + text[:10]
    with pytest.raises(KeyConfigurationError) as raised:
        parse_key(secretish, 2)
    assert "key 2" in str(raised.value) and secretish[:10] not in str(raised.value)
    assert raised.value.__suppress_context__
    with pytest.raises(KeyConfigurationError, match="key 1 is not 32 bytes"):
        parse_key(text[:20])
    with pytest.raises(KeyConfigurationError, match="repeats"):
        KeyRing([parse_key(text), parse_key(text)])


def test_a_key_without_padding_is_the_same_key():
    text = generate_key()
    assert parse_key(text.rstrip("=")) == parse_key(text)


def test_legacy_plaintext_can_never_look_like_an_envelope():
    # JSON is UTF-8 text and no UTF-8 text begins with the byte 0x8E; PDFs begin with %PDF.
    with pytest.raises(UnicodeDecodeError):
        MAGIC.decode("utf-8")
    ring = KeyRing([parse_key(generate_key())])
    for legacy in (SAMPLE_PDF, BODY, b" \n\t" + BODY, "ünïcode".encode() * 10, b"\x00" * 64):
        assert ring.decrypt(legacy) is legacy
        assert ring.needs_reencrypting(legacy)


def test_the_webhook_stores_ciphertext_and_still_keeps_differing_redeliveries_once(client, partner):
    # Duplicates are compared by body_sha256, never by the (randomised) stored bytes.
    def post(body):
        response = client.post(
            "/redox/webhook/", body, content_type="application/json", HTTP_VERIFICATION_TOKEN=PARTNER_TOKEN
        )
        assert response.status_code == 200

    original = sample_bytes("order-new.json")
    retried = sample_json("order-new.json")
    retried["Meta"]["Logs"][0]["AttemptID"] = "another-attempt"
    retried = json.dumps(retried).encode()
    for body in (original, original, retried, retried):
        post(body)

    message = InboundMessage.objects.get()
    assert message.times_seen == 4 and bytes(message.body) == original
    assert MAGIC in stored(InboundMessage, "body", message.pk)[:3]
    (kept,) = Redelivery.objects.all()
    assert bytes(kept.body) == retried
    raw = stored(Redelivery, "body", kept.pk)
    assert raw.startswith(MAGIC) and b"another-attempt" not in raw
