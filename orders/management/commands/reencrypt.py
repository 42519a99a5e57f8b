"""Bring every encrypted column under the newest key of FIELD_ENCRYPTION_KEYS.

    manage.py reencrypt --dry-run      # counts only: rows in plaintext, rows under an older key
    manage.py reencrypt [--batch-size N]
    manage.py reencrypt --decrypt      # back to plaintext, only to roll back past migration 0018

Rewrites legacy plaintext (rows stored before migration 0018) and values under an older
key; values already under the newest key, and empty ones, are left alone, so a second run
does nothing and an interrupted run just continues. Which rows need work is decided in the
database from each value's first 8 bytes (the envelope header, hcoint/encryption.py), so
nothing is decrypted to find them. Each batch is one transaction that locks its rows and
rewrites them one at a time (a note can be 25 MB), so a concurrent purge or reprocess
waits for it rather than being overwritten. The plaintext never changes, so the sha256
columns stay right.

Prints and logs counts only: never a key, a key's value or a row's content.
"""

import logging

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import models, transaction
from django.db.models.functions import Substr

from hcoint.encryption import HEADER_BYTES, MAGIC
from hcoint.events import log_event
from hcoint.fields import EncryptedBinaryField, keyring

logger = logging.getLogger(__name__)

BATCH_SIZE = 100


def encrypted_columns():
    """(model, field) for every EncryptedBinaryField of every installed model."""
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, EncryptedBinaryField):
                yield model, field


def _head(field, length):
    return Substr(field.name, 1, length, output_field=models.BinaryField())


def pending_rows(model, field, *, decrypt):
    """The rows `reencrypt` still has to rewrite, annotated `enveloped` (under some key) or not."""
    rows = (
        model._base_manager.filter(**{f"{field.name}__isnull": False})
        .exclude(**{field.name: b""})
        .annotate(_magic=_head(field, len(MAGIC)), _header=_head(field, HEADER_BYTES))
    )
    if decrypt:
        return rows.filter(_magic=MAGIC)
    return rows.exclude(_header=keyring().primary_header)


class Command(BaseCommand):
    help = "Re-encrypt note PDFs and raw bodies under the newest FIELD_ENCRYPTION_KEYS key (--dry-run: counts only)."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count what would be rewritten; change nothing.")
        parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help=f"Rows per transaction ({BATCH_SIZE}).")
        parser.add_argument(
            "--decrypt",
            action="store_true",
            help="Write every value back as plaintext: only before rolling back to a release without encryption.",
        )

    def handle(self, *args, dry_run, batch_size, decrypt, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be 1 or more.")
        for model, field in encrypted_columns():
            column = f"{model._meta.db_table}.{field.column}"
            pending = pending_rows(model, field, decrypt=decrypt)
            if dry_run:
                self._count(column, pending, decrypt=decrypt)
                continue
            rewritten = self._rewrite(model, field, pending, batch_size=batch_size, decrypt=decrypt)
            verb = "decrypted" if decrypt else "re-encrypted"
            self.stdout.write(f"{column}: {rewritten} row(s) {verb}.")
            log_event(logger, "encryption.reencrypted", column=column, rows=rewritten, decrypt=decrypt)

    def _count(self, column, pending, *, decrypt):
        """--dry-run: print and log what a run would rewrite (a real run counts nothing ahead;
        a count scans the column's first bytes, once per column)."""
        plaintext = older_key = encrypted = 0
        if decrypt:
            # Every pending row is enveloped (pending_rows): one count.
            encrypted = pending.count()
            self.stdout.write(f"{column}: {encrypted} encrypted row(s) would be written back as plaintext.")
        else:
            # One scan of the column for both figures.
            figures = pending.aggregate(
                plaintext=models.Count("pk", filter=~models.Q(_magic=MAGIC)),
                older_key=models.Count("pk", filter=models.Q(_magic=MAGIC)),
            )
            plaintext, older_key = figures["plaintext"], figures["older_key"]
            self.stdout.write(
                f"{column}: {plaintext} plaintext row(s) and {older_key} under an older key would be "
                "re-encrypted under the newest key."
            )
        log_event(
            logger,
            "encryption.reencrypt_dry_run",
            column=column,
            plaintext_rows=plaintext,
            older_key_rows=older_key,
            encrypted_rows=encrypted,
            decrypt=decrypt,
        )

    def _rewrite(self, model, field, pending, *, batch_size, decrypt):
        rewritten, last_pk = 0, None
        rows = model._base_manager
        while True:
            batch = pending.order_by("pk")
            if last_pk is not None:
                batch = batch.filter(pk__gt=last_pk)
            pks = list(batch.values_list("pk", flat=True)[:batch_size])
            if not pks:
                return rewritten
            last_pk = pks[-1]
            with transaction.atomic():
                # Locked and asked again: a row rewritten or emptied since the batch was listed is skipped.
                locked = pending.filter(pk__in=pks).select_for_update().order_by("pk").values_list("pk", flat=True)
                for pk in locked:
                    value = rows.filter(pk=pk).values_list(field.name, flat=True).get()  # decrypted by the field
                    if decrypt:
                        # A plain BinaryField value: the SQL parameter bypasses the field's encryption.
                        value = models.Value(bytes(value), output_field=models.BinaryField())
                    rows.filter(pk=pk).update(**{field.name: value})
                    rewritten += 1
