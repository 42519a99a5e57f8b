"""EncryptedBinaryField: a BinaryField whose value is encrypted in the database (hcoint/encryption.py).

Transparent to the code that uses it: bytes in, bytes out. `get_db_prep_value` encrypts
with the newest key of FIELD_ENCRYPTION_KEYS on every write (save, create, update,
bulk_create); `from_db_value` decrypts on every read through the ORM, `.values()` and
`.values_list()` included. A raw cursor sees the ciphertext: read these columns through
the ORM.

Encryption is randomised, so the database cannot compare two values: equality and every
other lookup on the column are refused with a FieldError, except `isnull` and equality
with empty bytes (an empty value is stored empty, so a purged column stays findable).
Compare the sha256 column stored beside each of these fields instead.
"""

from django.conf import settings
from django.core.exceptions import FieldError
from django.db import models
from django.db.models.lookups import Exact

from hcoint.encryption import keyring_for


def keyring():
    """The KeyRing for the current FIELD_ENCRYPTION_KEYS (read each time, so tests can override it)."""
    return keyring_for(tuple(settings.FIELD_ENCRYPTION_KEYS))


class EncryptedBinaryField(models.BinaryField):
    description = "Binary data, encrypted at rest (AES-256-GCM)"

    def get_db_prep_value(self, value, connection, prepared=False):
        if not prepared:
            value = self.get_prep_value(value)
        if value is not None and len(value):
            value = keyring().encrypt(value)
        return super().get_db_prep_value(value, connection, prepared=True)

    def from_db_value(self, value, expression, connection):
        if value is None:
            return value
        return keyring().decrypt(value)

    def get_lookup(self, lookup_name):
        if lookup_name not in ("exact", "isnull"):
            return None
        return super().get_lookup(lookup_name)


@EncryptedBinaryField.register_lookup
class EmptyOnlyExact(Exact):
    """`field=b""` only: any other value would be compared with randomised ciphertext and never match."""

    def get_prep_lookup(self):
        if isinstance(self.rhs, bytes | bytearray | memoryview) and not len(self.rhs):
            return super().get_prep_lookup()
        raise FieldError(
            f"{self.lhs.target.model.__name__}.{self.lhs.target.name} is encrypted: it cannot be compared "
            "in the database (compare its SHA-256 column instead)."
        )
