"""The webhook's partner lookup: `Partner.objects.for_token`'s own SQL, compiled once per process.

The webhook finds the partner on every delivery. Through the ORM (the filter, the
compiler, the row made into a Partner) that cost about 0.5 ms of CPU, five times the
query's round trip on this machine (docs/performance.md, "Ingest"). The SQL text is the
same for every token; only the token's hash, a parameter, changes. So the text is taken
once from `for_token` itself, which stays the one place that says which partner a token
names: asked for a random sentinel token, its statement is caught before it reaches the
database. Each lookup then runs that text with its own hash in the sentinel's place,
through Django's cursor (the SQL span, the connection's error handling and the
webhook's use of this query as its connection check are unchanged), and makes the row a
Partner as the ORM does (`Model.from_db`, with the fields' converters).

Nothing about the partner is cached: every delivery asks the database, so a partner
deactivated or a token rotated counts from the next delivery on.

The statement is reused only when that is plainly safe: one statement, the sentinel's
hash among its parameters and not in its text, every other parameter a constant
(a boolean, a number, a string: not a time, which would be frozen), and the model's
own columns selected. Otherwise every lookup goes through `for_token`, as before.

The same statement, as a subquery (`verified_id_sql`), lets the webhook's one statement
check a token itself; `remember`/`remembered` keep, for a minute, whom this process last
found for a token, the guess that statement checks (orders/webhook.py,
`_new_orders_in_one_round_trip`).
"""

import contextlib
import logging
import secrets
import time

from django.db import connection
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from orders.models import Partner, hash_token

logger = logging.getLogger(__name__)

# Parameters that mean the same on every request. A datetime (a "now") would not.
_CONSTANT_TYPES = (bool, int, str)

# (alias, vendor) -> _Statement, or None when for_token's statement cannot be reused.
_statements: dict[tuple[str, str], "_Statement | None"] = {}


class _Caught(Exception):
    """Stops the sentinel's lookup before the database sees it."""


class _Statement:
    """for_token's SQL, with the places its token hash goes, ready to run for any token."""

    def __init__(self, sql, params, hash_at, attnames, converters):
        self.sql = sql
        self.params = list(params)
        self.hash_at = hash_at
        self.attnames = attnames
        self.converters = converters

    def params_for(self, token):
        params = list(self.params)
        presented = hash_token(token)
        for index in self.hash_at:
            params[index] = presented
        return params

    def run(self, token):
        with connection.cursor() as cursor:
            cursor.execute(self.sql, self.params_for(token))
            row = cursor.fetchone()
        if row is None:
            return None
        if self.converters:
            row = list(row)
            for index, (converters, expression) in self.converters.items():
                for converter in converters:
                    row[index] = converter(row[index], expression, connection)
        return Partner.from_db(connection.alias, self.attnames, row)


def partner_for_token(token):
    """What `Partner.objects.for_token(token)` returns, by its SQL compiled once (see above)."""
    if not token:
        return Partner.objects.for_token(token)  # None, without a query
    statement = _statement()
    if statement is None:
        return Partner.objects.for_token(token)
    return statement.run(token)


def _capture():
    """for_token's statement as a reusable _Statement, or None (logged once) when it is not one."""
    sentinel = secrets.token_urlsafe(32)
    caught = []

    def catch(execute, sql, params, many, context):
        caught.append((sql, params))
        raise _Caught

    # Django's debug cursor (DEBUG, or a test capturing queries) would list the caught
    # statement as a query that ran (as None): it never reaches the database.
    debug_cursor, connection.force_debug_cursor = connection.force_debug_cursor, False
    try:
        with connection.execute_wrapper(catch), contextlib.suppress(_Caught):
            Partner.objects.for_token(sentinel)
    finally:
        connection.force_debug_cursor = debug_cursor
    statement = _reusable(caught, hash_token(sentinel))
    if statement is None:
        logger.warning(
            "Partner.objects.for_token's SQL cannot be reused; each webhook lookup builds it",
            extra={"event": "webhook.partner_lookup_uncached"},
        )
    return statement


def _reusable(caught, sentinel_hash):
    if len(caught) != 1:
        return None
    sql, params = caught[0]
    params = list(params or ())
    hash_at = [index for index, value in enumerate(params) if value == sentinel_hash]
    if not hash_at or sentinel_hash in sql:
        return None
    others = (value for index, value in enumerate(params) if index not in hash_at)
    if not all(value is None or type(value) in _CONSTANT_TYPES for value in others):
        return None
    # The columns a plain query of the model selects, in order: for_token's must be those.
    compiler = Partner.objects.order_by().query.get_compiler(connection=connection)
    plain_sql, _ = compiler.as_sql()
    if not sql.startswith(f"{plain_sql} "):
        return None
    columns = [column for column, _, _ in compiler.select]
    attnames = [column.target.attname for column in columns]
    if attnames != [field.attname for field in Partner._meta.concrete_fields]:
        return None
    return _Statement(sql, params, hash_at, attnames, compiler.get_converters(columns))


def _statement():
    # PostgreSQL only, where production runs and the time matters. Other backends (SQLite,
    # `make run`) hand the driver adapted parameters (a time as text), which the constant
    # check above cannot tell from a constant: they always go through for_token.
    if connection.vendor != "postgresql":
        return None
    key = (connection.alias, connection.vendor)
    if key not in _statements:
        _statements[key] = _capture()
    return _statements[key]


def verified_id_sql(token, partner_id):
    """(sql, params) of a subquery giving `partner_id` if `token` names that partner now, else
    NULL: for_token's own statement, for the webhook's one statement to verify the token in
    (orders/ingest_statement.py). None when for_token's statement cannot be reused."""
    statement = _statement()
    if statement is None:
        return None
    pk = connection.ops.quote_name(Partner._meta.pk.column)
    sql = f'(SELECT "named".{pk} FROM ({statement.sql}) AS "named" WHERE "named".{pk} = %s)'  # noqa: S608
    return sql, [*statement.params_for(token), partner_id]


# Partners this process found by their token, for the webhook's one round trip
# (orders/ingest.py, `new_orders_ingest`): the hash of the token -> (when, the row's values).
# Not proof of anything: a remembered partner is only a guess at whom a token names, which
# the statement that stores the delivery checks against the database (verified_id_sql).
# The expiry bounds how stale the rest of the row may be (is_production, for the
# environment warning) and how long a revoked token can make us read a body before refusing it.
REMEMBER_SECONDS = 60
_REMEMBER_MAX = 256
_remembered: dict[str, tuple[float, list]] = {}


def remember(token, partner):
    if len(_remembered) >= _REMEMBER_MAX:
        _remembered.clear()
    values = [getattr(partner, field.attname) for field in Partner._meta.concrete_fields]
    _remembered[hash_token(token)] = (time.monotonic(), values)


def remembered(token):
    """A fresh Partner for the row this process last found for `token`, if recent; else None."""
    if not token:
        return None
    entry = _remembered.get(hash_token(token))
    if entry is None or time.monotonic() - entry[0] > REMEMBER_SECONDS:
        return None
    return Partner.from_db(connection.alias, [field.attname for field in Partner._meta.concrete_fields], entry[1])


def forget(token):
    _remembered.pop(hash_token(token), None)


@receiver(post_save, sender=Partner, dispatch_uid="partner_lookup.forget_on_save")
@receiver(post_delete, sender=Partner, dispatch_uid="partner_lookup.forget_on_delete")
def _forget_every_partner(**kwargs):
    """A partner changed in this process (a rotation, a deactivation, a new flag): drop every
    guess at once. Other processes keep theirs until the statement refuses one or it expires."""
    _remembered.clear()
