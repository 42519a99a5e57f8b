"""Compare two PostgreSQL databases table by table, to prove a dump and restore lost nothing.

    python manage.py compare_databases SOURCE_URL TARGET_URL

For every table in either database it compares the row count, a checksum of the
primary keys, and a checksum of every row's full contents, each taken in primary-key
order inside one read-only snapshot per database; it also compares every sequence's
position, since a sequence restored behind its table would hand out ids that already
exist. It prints one line per table and exits non-zero on any difference.

Only counts and checksums leave the database server: no row content is ever printed,
because the rows hold patient data. The URLs are not printed either (they hold passwords).
"""

import psycopg2
from django.core.management.base import BaseCommand, CommandError
from psycopg2 import sql

# Row-to-text output depends on these session settings; pin them on both sides so
# two servers with different defaults (RDS and Aptible) render equal rows equally.
SESSION_SETTINGS = {
    "TimeZone": "UTC",
    "DateStyle": "ISO, YMD",
    "IntervalStyle": "postgres",
    "extra_float_digits": "3",
    "bytea_output": "hex",
    "client_encoding": "UTF8",
}

TABLES_SQL = """
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND NOT c.relispartition
  AND n.nspname <> 'information_schema'
  AND n.nspname !~ '^pg_'
ORDER BY 1, 2
"""

# The primary-key columns in key order, and whether each is collatable (text-like).
PRIMARY_KEY_SQL = """
SELECT a.attname, a.attcollation <> 0
FROM pg_index i
JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, position) ON true
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = %s::regclass AND i.indisprimary
ORDER BY k.position
"""

SEQUENCES_SQL = """
SELECT schemaname, sequencename, last_value
FROM pg_sequences
WHERE schemaname <> 'information_schema' AND schemaname !~ '^pg_'
ORDER BY 1, 2
"""


def connect(url, role):
    try:
        conn = psycopg2.connect(url)
    except psycopg2.Error as exc:
        # Name the server from the parsed URL, never the URL itself (it holds a password).
        try:
            params = psycopg2.extensions.parse_dsn(url)
        except psycopg2.Error:
            params = {}
        where = f"{params.get('host', '?')}:{params.get('port', '5432')}/{params.get('dbname', '?')}"
        # libpq's own first line (refused, authentication failed, SSL required) never
        # repeats the password, and it is what tells the operator what to fix.
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CommandError(f"Could not connect to the {role} database at {where}: {reason}") from None
    conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
    with conn.cursor() as cur:
        for name, value in SESSION_SETTINGS.items():
            cur.execute("SELECT set_config(%s, %s, false)", [name, value])
    return conn


def describe(conn):
    """`host/dbname` for the report: enough to tell the two apart, no credentials."""
    params = conn.get_dsn_parameters()
    return f"{params.get('host', '?')}:{params.get('port', '?')}/{params.get('dbname', '?')}"


def list_tables(cur):
    cur.execute(TABLES_SQL)
    return [(schema, name) for schema, name in cur.fetchall()]


def order_by(cur, qualified):
    """ORDER BY the primary key (bytewise for text, so collations cannot reorder rows),
    or by the whole row's text for a table without one."""
    cur.execute(PRIMARY_KEY_SQL, [qualified.as_string(cur)])
    columns = cur.fetchall()
    if not columns:
        return [sql.SQL('t::text COLLATE "C"')], sql.SQL("t::text")
    terms = [
        sql.SQL('{} COLLATE "C"').format(sql.Identifier(name)) if collatable else sql.Identifier(name)
        for name, collatable in columns
    ]
    key = sql.SQL("ROW({})::text").format(sql.SQL(", ").join(sql.Identifier(name) for name, _ in columns))
    return terms, key


def table_summary(cur, schema, name):
    """(row count, checksum of keys, checksum of contents), computed on the server.

    Each row is reduced to md5(row::text) before aggregating, so the aggregate stays
    32 bytes a row however large the row (a PDF) is.
    """
    qualified = sql.Identifier(schema, name)
    terms, key = order_by(cur, qualified)
    ordering = sql.SQL(", ").join(terms)
    cur.execute(
        sql.SQL(
            "SELECT count(*),"
            " md5(coalesce(string_agg(md5({key}), '' ORDER BY {ordering}), '')),"
            " md5(coalesce(string_agg(md5(t::text), '' ORDER BY {ordering}), ''))"
            " FROM {table} AS t"
        ).format(key=key, ordering=ordering, table=qualified)
    )
    return cur.fetchone()


def sequence_positions(cur):
    cur.execute(SEQUENCES_SQL)
    return {f"{schema}.{name}": last_value for schema, name, last_value in cur.fetchall()}


def snapshot(conn):
    with conn.cursor() as cur:
        tables = {f"{schema}.{name}": table_summary(cur, schema, name) for schema, name in list_tables(cur)}
        sequences = sequence_positions(cur)
    conn.rollback()
    return tables, sequences


class Command(BaseCommand):
    help = (
        "Compare two PostgreSQL databases table by table (row counts, checksums of primary keys "
        "and of full contents, sequence positions). Prints no row contents; exits 1 on any difference."
    )

    def add_arguments(self, parser):
        parser.add_argument("source_url", metavar="SOURCE_URL", help="postgres://… of the database copied from")
        parser.add_argument("target_url", metavar="TARGET_URL", help="postgres://… of the database copied to")

    def handle(self, *args, source_url, target_url, **options):
        source = connect(source_url, "source")
        try:
            target = connect(target_url, "target")
        except CommandError:
            source.close()
            raise
        try:
            self.stdout.write(f"source: {describe(source)}\ntarget: {describe(target)}\n")
            source_tables, source_sequences = snapshot(source)
            target_tables, target_sequences = snapshot(target)
        finally:
            source.close()
            target.close()

        differences = self.report_tables(source_tables, target_tables)
        differences += self.report_sequences(source_sequences, target_sequences)
        compared = len(source_tables.keys() | target_tables.keys())
        if differences:
            raise CommandError(f"{differences} difference(s) in {compared} tables and their sequences.")
        self.stdout.write(self.style.SUCCESS(f"All {compared} tables and {len(source_sequences)} sequences match."))

    def report_tables(self, source, target):
        width = max((len(name) for name in source.keys() | target.keys()), default=5)
        self.stdout.write(
            f"{'table':<{width}}  {'source rows':>12}  {'target rows':>12}  {'keys':<7}  {'contents':<8}  result"
        )
        differences = 0
        for name in sorted(source.keys() | target.keys()):
            if name not in target or name not in source:
                rows = source.get(name, target.get(name))[0]
                where = "only in source" if name in source else "only in target"
                left, right = (rows, "-") if name in source else ("-", rows)
                self.stdout.write(f"{name:<{width}}  {left:>12}  {right:>12}  {'-':<7}  {'-':<8}  DIFFERENT ({where})")
                differences += 1
                continue
            (s_rows, s_keys, s_contents), (t_rows, t_keys, t_contents) = source[name], target[name]
            keys = "same" if s_keys == t_keys else "differ"
            contents = "same" if s_contents == t_contents else "differ"
            same = s_rows == t_rows and keys == "same" and contents == "same"
            result = "ok" if same else "DIFFERENT"
            self.stdout.write(f"{name:<{width}}  {s_rows:>12}  {t_rows:>12}  {keys:<7}  {contents:<8}  {result}")
            differences += 0 if same else 1
        return differences

    def report_sequences(self, source, target):
        differences = 0
        for name in sorted(source.keys() | target.keys()):
            left, right = source.get(name, "missing"), target.get(name, "missing")
            if left != right:
                self.stdout.write(f"sequence {name}: source at {left}, target at {right}  DIFFERENT")
                differences += 1
        return differences
