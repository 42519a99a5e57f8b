"""`compare_databases` on two real PostgreSQL databases, created and dropped here.

The database names derive from this run's own database name, so parallel runs
(CI, several developers on one server) never touch each other's copies.
"""

import io
import os
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from psycopg2 import sql

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="compare_databases speaks PostgreSQL only; set DATABASE_URL to a PostgreSQL server to run these",
)

ROOT = Path(__file__).resolve().parent.parent
PATIENT_NAME = "Jane Q. Example"
PASSWORD = "hunter2-never-printed"

SCHEMA = """
CREATE TABLE note (
    id bigserial PRIMARY KEY,
    patient text NOT NULL,
    body bytea,
    written_at timestamptz,
    score double precision
);
CREATE TABLE session (key varchar(40) PRIMARY KEY, data text);
CREATE TABLE keyless (a integer, b text);
INSERT INTO note (patient, body, written_at, score) VALUES
    (%(patient)s, '\\x255044462d', '2024-03-01 09:30:00+00', 0.1),
    ('Someone Else', NULL, '2024-03-02 23:59:59.123456+00', 1e-300),
    ('A Third', '\\x00', NULL, NULL);
INSERT INTO session VALUES ('Beta', 'x'), ('alpha', 'y'), ('Zed', 'z');
INSERT INTO keyless VALUES (1, 'one'), (1, 'one'), (2, NULL);
"""


def admin_connection():
    settings = connection.settings_dict
    conn = psycopg2.connect(
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        user=settings["USER"] or None,
        password=settings["PASSWORD"] or None,
        dbname="postgres",
    )
    conn.autocommit = True
    return conn


def database_url(name):
    settings = connection.settings_dict
    user = settings["USER"] or "postgres"
    # The password is only there to prove it is never echoed; trust auth ignores it.
    password = settings["PASSWORD"] or PASSWORD
    return f"postgres://{user}:{password}@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/{name}"


@pytest.fixture
def databases():
    """Two identical databases; yields (source url, target url, a cursor on the target)."""
    base = connection.settings_dict["NAME"]
    names = [f"{base}_cmp_a", f"{base}_cmp_b"]
    admin = admin_connection()
    opened = []
    try:
        with admin.cursor() as cur:
            for name in names:
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
                cur.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
        for name in names:
            conn = psycopg2.connect(database_url(name))
            conn.autocommit = True
            opened.append(conn)
            with conn.cursor() as cur:
                cur.execute(SCHEMA, {"patient": PATIENT_NAME})
        yield database_url(names[0]), database_url(names[1]), opened[1].cursor()
    finally:
        for conn in opened:
            conn.close()
        with admin.cursor() as cur:
            for name in names:
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


def compare(source, target):
    """(output, error message or None) of the command run in-process."""
    out = io.StringIO()
    try:
        call_command("compare_databases", source, target, stdout=out)
    except CommandError as exc:
        return out.getvalue(), str(exc)
    return out.getvalue(), None


def line_for(output, table):
    return next(line for line in output.splitlines() if line.startswith(f"public.{table} "))


def test_identical_databases_match(databases):
    source, target, _ = databases
    output, error = compare(source, target)
    assert error is None
    for table in ("note", "session", "keyless"):
        assert line_for(output, table).split()[-1] == "ok"
    assert "All 3 tables and 1 sequences match." in output


def test_server_display_settings_do_not_change_the_checksums(databases):
    # RDS and Aptible may differ in time zone and date style; equal data must still match.
    source, target, cur = databases
    name = target.rsplit("/", 1)[1]
    cur.execute(sql.SQL("ALTER DATABASE {} SET timezone = 'Pacific/Chatham'").format(sql.Identifier(name)))
    cur.execute(sql.SQL("ALTER DATABASE {} SET datestyle = 'SQL, DMY'").format(sql.Identifier(name)))
    output, error = compare(source, target)
    assert error is None, output


def test_a_missing_row_is_a_difference(databases):
    source, target, cur = databases
    cur.execute("DELETE FROM note WHERE patient = 'A Third'")
    output, error = compare(source, target)
    assert error == "1 difference(s) in 3 tables and their sequences."
    assert line_for(output, "note").split() == ["public.note", "3", "2", "differ", "differ", "DIFFERENT"]
    assert line_for(output, "session").split()[-1] == "ok"


def test_a_changed_value_is_a_difference_even_with_equal_counts(databases):
    source, target, cur = databases
    cur.execute("UPDATE session SET data = 'changed' WHERE key = 'alpha'")
    output, error = compare(source, target)
    assert error is not None
    assert line_for(output, "session").split() == ["public.session", "3", "3", "same", "differ", "DIFFERENT"]


def test_a_changed_byte_in_a_binary_column_is_a_difference(databases):
    source, target, cur = databases
    cur.execute("UPDATE note SET body = '\\x255044462e' WHERE patient = %s", [PATIENT_NAME])
    output, error = compare(source, target)
    assert error is not None
    assert line_for(output, "note").split()[-1] == "DIFFERENT"


def test_a_changed_row_in_a_table_without_primary_key_is_a_difference(databases):
    source, target, cur = databases
    cur.execute("UPDATE keyless SET b = 'two' WHERE a = 2")
    output, error = compare(source, target)
    assert error is not None
    assert line_for(output, "keyless").split()[-1] == "DIFFERENT"


def test_an_extra_table_is_a_difference(databases):
    source, target, cur = databases
    cur.execute("CREATE TABLE leftover (id integer PRIMARY KEY)")
    output, error = compare(source, target)
    assert error is not None
    assert "public.leftover" in output
    assert line_for(output, "leftover").endswith("DIFFERENT (only in target)")


def test_a_sequence_behind_its_table_is_a_difference(databases):
    # Restored rows with a sequence left behind would make the next insert collide.
    source, target, cur = databases
    cur.execute("SELECT setval('note_id_seq', 1)")
    output, error = compare(source, target)
    assert error is not None
    assert "sequence public.note_id_seq: source at 3, target at 1  DIFFERENT" in output


def test_neither_row_contents_nor_passwords_are_printed(databases):
    source, target, cur = databases
    cur.execute("UPDATE note SET patient = 'Jane Q. Exampel' WHERE patient = %s", [PATIENT_NAME])
    output, error = compare(source, target)
    printed = output + error
    for secret in (PATIENT_NAME, "Exampel", "Someone Else", "alpha", connection.settings_dict["PASSWORD"] or PASSWORD):
        assert secret not in printed


def test_exit_status_says_whether_the_databases_match(databases):
    source, target, cur = databases
    command = [sys.executable, "manage.py", "compare_databases", source, target]
    env = {**os.environ, "DEBUG": "true"}
    same = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert same.returncode == 0, same.stderr
    cur.execute("DELETE FROM session WHERE key = 'Zed'")
    different = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert different.returncode == 1
    assert "1 difference(s)" in different.stderr


def test_an_unreachable_database_is_named_without_its_password(databases):
    source, _, _ = databases
    unreachable = f"postgres://postgres:{PASSWORD}@127.0.0.1:1/nowhere"
    output, error = compare(source, unreachable)
    assert error.startswith("Could not connect to the target database at 127.0.0.1:1/nowhere")
    assert PASSWORD not in error
