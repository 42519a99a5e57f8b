"""Encryption at rest for the columns that hold patient data verbatim (docs/security.md).

The rebuilt note PDFs (`ClinicalNote.content`) and Redox's raw bodies
(`InboundMessage.body`, `Redelivery.body`) are encrypted by the application before they
reach PostgreSQL, on top of Aptible's disk encryption: a database dump, a backup copied
elsewhere or a read-only SQL session shows only ciphertext. `hcoint/fields.py` does it
transparently; this module is the cipher and the keys, and imports nothing from Django's
models, so the settings can check the keys when they load.

AES-256-GCM (`cryptography`'s AESGCM), not Fernet: Fernet base64-encodes its tokens (a
25 MB note would be stored as 33 MB) and builds several copies of the value in memory,
and note uploads already cost the web process many times the file (docs/performance.md).
A stored value is one small binary envelope around the ciphertext:

    MAGIC (3) | VERSION (1) | key id (4) | nonce (12) | ciphertext | GCM tag (16)

36 bytes more than the plaintext, built in one allocation (`encrypt_into`). The key id is
the first 4 bytes of the key's SHA-256, so a value names the key that reads it and
rotation needs no trial decryption. The 8-byte header is the associated data, so the
version and key id are authenticated too. The nonce is random: 96 bits is safe for far
more values than HCOINT will ever write under one key (NIST SP 800-38D, section 8.3,
bounds random nonces at 2^32 encryptions per key:
https://nvlpubs.nist.gov/nistpubs/Legacy/SP/nistspecialpublication800-38d.pdf).

Values stored before encryption existed are still read: a value that does not begin with
MAGIC is legacy plaintext, returned as it is, until `manage.py reencrypt` rewrites it.
MAGIC begins with 0x8E, a UTF-8 continuation byte that no UTF-8 text (every JSON body
Redox sends) can begin with, and no PDF can either (they begin with `%PDF`).

Keys never appear in a message, a log line or a `repr`: errors name keys by position in
FIELD_ENCRYPTION_KEYS or by key id (which says nothing about the key).
"""

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"\x8eHC"
VERSION = 1
KEY_BYTES = 32
KEY_ID_BYTES = 4
NONCE_BYTES = 12
TAG_BYTES = 16
HEADER_BYTES = len(MAGIC) + 1 + KEY_ID_BYTES
OVERHEAD = HEADER_BYTES + NONCE_BYTES + TAG_BYTES
SETTING = "FIELD_ENCRYPTION_KEYS"


class KeyConfigurationError(ValueError):
    """FIELD_ENCRYPTION_KEYS cannot be used; the message names the key by position, never its value."""

    log_safe_message = True  # hcoint/phi.py shows it in logs: written here, no key, no patient data


class DecryptionError(Exception):
    """A stored value cannot be decrypted with the configured keys; the message names key ids only."""

    log_safe_message = True  # the key id it names is what the operator needs (docs/runbook.md)


def generate_key():
    """A new key as FIELD_ENCRYPTION_KEYS holds it: 32 random bytes, URL-safe base64 (44 characters)."""
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def parse_key(text, position=1):
    """The 32 bytes of one key written as URL-safe base64 (padding optional)."""
    problem = (
        f"{SETTING}: key {position} is not 32 bytes of URL-safe base64 (make one with manage.py generate_field_key)"
    )
    try:
        ascii_text = text.strip().encode("ascii")
        raw = base64.b64decode(ascii_text + b"=" * (-len(ascii_text) % 4), altchars=b"-_", validate=True)
    except (UnicodeEncodeError, binascii.Error):
        # `from None`: the underlying error can quote characters of the key.
        raise KeyConfigurationError(problem) from None
    if len(raw) != KEY_BYTES:
        raise KeyConfigurationError(problem)
    return raw


def key_id(key):
    return hashlib.sha256(key).digest()[:KEY_ID_BYTES]


def is_envelope(value):
    return len(value) >= OVERHEAD and bytes(value[: len(MAGIC)]) == MAGIC


class KeyRing:
    """The configured keys: encrypts with the first (newest), decrypts with whichever a value names."""

    __slots__ = ("_ciphers", "_primary")

    def __init__(self, keys: Sequence[bytes]):
        if not keys:
            raise KeyConfigurationError(f"{SETTING} holds no key.")
        self._ciphers: dict[bytes, AESGCM] = {}
        for position, key in enumerate(keys, start=1):
            kid = key_id(key)
            if kid in self._ciphers:
                raise KeyConfigurationError(f"{SETTING}: key {position} repeats an earlier key.")
            self._ciphers[kid] = AESGCM(key)
        self._primary = key_id(keys[0])

    def __repr__(self):
        return f"<KeyRing key ids {', '.join(kid.hex() for kid in self._ciphers)}>"

    @property
    def primary_header(self):
        """The first bytes of every value the newest key encrypts: what `reencrypt` looks for."""
        return MAGIC + bytes([VERSION]) + self._primary

    @property
    def key_ids(self):
        return [kid.hex() for kid in self._ciphers]

    def encrypt(self, data):
        """`data` (any bytes-like) as an envelope under the newest key, built in one allocation."""
        header = self.primary_header
        nonce = os.urandom(NONCE_BYTES)
        out = bytearray(OVERHEAD + len(data))
        out[:HEADER_BYTES] = header
        out[HEADER_BYTES : HEADER_BYTES + NONCE_BYTES] = nonce
        with memoryview(out) as view:
            self._ciphers[self._primary].encrypt_into(nonce, data, header, view[HEADER_BYTES + NONCE_BYTES :])
        return out

    def decrypt(self, value):
        """The plaintext of a stored value: an envelope decrypted, anything else (legacy plaintext) as it is."""
        if not is_envelope(value):
            return value
        with memoryview(value) as view:
            header = bytes(view[:HEADER_BYTES])
            if header[len(MAGIC)] != VERSION:
                raise DecryptionError(f"Encrypted value of unknown format version {header[len(MAGIC)]}.")
            kid = header[len(MAGIC) + 1 :]
            cipher = self._ciphers.get(kid)
            if cipher is None:
                raise DecryptionError(
                    f"Value encrypted with key id {kid.hex()}, which {SETTING} does not hold "
                    f"(it holds {', '.join(self.key_ids)}). Was a key removed before `manage.py reencrypt` ran?"
                )
            nonce = view[HEADER_BYTES : HEADER_BYTES + NONCE_BYTES]
            try:
                return cipher.decrypt(nonce, view[HEADER_BYTES + NONCE_BYTES :], header)
            except InvalidTag:
                raise DecryptionError(
                    f"Value under key id {kid.hex()} failed authentication: altered or truncated in storage."
                ) from None

    def needs_reencrypting(self, value):
        """Whether `value`, as stored, is legacy plaintext or under an older key."""
        return bool(value) and bytes(value[:HEADER_BYTES]) != self.primary_header


def parse_keys(texts):
    """The keys of FIELD_ENCRYPTION_KEYS (a list of strings, newest first), checked; raises KeyConfigurationError."""
    keys = [parse_key(text, position) for position, text in enumerate(texts, start=1)]
    KeyRing(keys)  # refuses an empty list and repeated keys
    return keys


@lru_cache(maxsize=8)
def keyring_for(texts: tuple[str, ...]) -> KeyRing:
    """The KeyRing for these key strings; cached, so each value costs no key parsing."""
    return KeyRing(parse_keys(texts))
