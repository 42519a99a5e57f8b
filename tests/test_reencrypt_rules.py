"""`manage.py reencrypt` counts what it would rewrite only for --dry-run: a real run goes
straight to its batches (each count scans every row of a column), and --decrypt --dry-run
counts the enveloped rows once, with no plaintext count."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orders.management.commands.reencrypt import encrypted_columns
from tests.test_field_encryption_rotation import old_rows, reencrypt  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db


def counts(*args):
    with CaptureQueriesContext(connection) as captured:
        out = reencrypt(*args)
    return out, [query["sql"] for query in captured.captured_queries if query["sql"].startswith("SELECT COUNT")]


def test_a_real_run_counts_nothing_ahead(old_rows):  # noqa: F811
    out, counting = counts()
    assert "row(s) re-encrypted" in out
    assert counting == []


def test_a_dry_run_counts_plaintext_and_older_key_in_one_scan_per_column(old_rows):  # noqa: F811
    out, counting = counts("--dry-run")
    assert "plaintext row(s)" in out
    assert len(counting) == len(list(encrypted_columns()))


def test_decrypt_dry_run_counts_the_encrypted_rows_once_per_column(old_rows):  # noqa: F811
    out, counting = counts("--decrypt", "--dry-run")
    assert "encrypted row(s) would be written back as plaintext" in out
    assert len(counting) == len(list(encrypted_columns()))
