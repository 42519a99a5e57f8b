"""A delivery of new orders, stored and applied in one SQL statement: ingest's common case.

Most deliveries are a New (or GroupedOrders) event for orders we do not hold yet. For
those, the message row, the order rows and the links between them are one
`INSERT … RETURNING` statement with data-modifying CTEs
(https://www.postgresql.org/docs/current/queries-with.html#QUERIES-WITH-MODIFYING):

    WITH message AS (INSERT INTO orders_inboundmessage … RETURNING id),
         orders AS (INSERT INTO orders_order … RETURNING id, ehr_order_id),
         links AS (INSERT INTO orders_inboundmessage_orders … SELECT … FROM message, orders)
    SELECT (SELECT id FROM message), id, ehr_order_id FROM orders

A statement is atomic, and outside a transaction PostgreSQL commits it on its own: one
round trip where `BEGIN`, the three inserts, a savepoint and `COMMIT` took seven
(docs/performance.md, "Ingest"). Either everything is stored or nothing is. Each
INSERT is the one the ORM builds (Django's SQL compiler, with every field's own
preparation of its value), so the rows are what `Model.save()` would write. The text of
the common statement (one message, one order) is built by the compiler once per process
and reused; each message still prepares every value through its field (`_statement`).

Anything else is left to the general path in orders/ingest.py (`store_new_orders`
returns None and has written nothing): another event type, a body that cannot be read
or applied, an order we hold already (the unique (partner, ehr_order_id) constraint
refuses the statement), a value the database refuses, or a crash while building the
rows. The general path then stores the raw body whatever happens to applying it, as
before. A redelivery (the unique (partner, dedupe_key) constraint) raises
IntegrityError, as the general path's insert does, for the caller to count it.
"""

import functools
import logging

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.db.models.sql import InsertQuery

from hcoint.events import log_event
from orders.models import InboundMessage, Order
from orders.order_apply import NEW_ORDER_EVENTS, created_events, new_order
from orders.partner_lookup import verified_id_sql

logger = logging.getLogger(__name__)

# The constraint a redelivery meets (orders/models.py, InboundMessage.Meta).
DEDUPE_CONSTRAINT = "message_unique_per_partner"
NOT_NULL_VIOLATION = "23502"  # PostgreSQL's SQLSTATE


class PartnerNotVerified(Exception):
    """The token no longer names the partner the statement was given: nothing was stored."""


def applies(read):
    """Whether `read` (a reading of a body, or the exception reading it raised) can take this path."""
    return (
        not isinstance(read, Exception)
        and read.error is None
        and read.order_message is not None
        and read.meta.event_type in NEW_ORDER_EVENTS
        and connections[DEFAULT_DB_ALIAS].vendor == "postgresql"
    )


def store_new_orders(message, read, *, token=None):
    """Insert `message` (unsaved, already marked processed), its new orders and their links
    in one statement. Returns (orders, events to log) with primary keys set, or None when
    nothing was stored and the general path must take the message. Raises IntegrityError
    for a redelivery (the message's dedupe key is taken).

    `token`: the message's partner was not verified for this delivery; the statement does
    it. The message row's partner is then the partner's id only if `token` names that
    partner now (for_token's own statement, as a subquery: orders/partner_lookup.py), else
    NULL, which the column refuses: nothing is stored and PartnerNotVerified is raised.
    Returns None, having stored nothing, when the statement cannot verify.
    """
    parsed = read.order_message
    verify = None
    if token is not None:
        verify = verified_id_sql(token, message.partner_id)
        if verify is None:
            return None
    try:
        orders = [new_order(message, parsed, info) for info in parsed.orders]
        for order in orders:
            order.fill_derived()  # as Order.save() does
        statement = _statement(message, orders, verify)
        if statement is None:
            return None
        rows = _execute(*statement)
    except IntegrityError as exc:
        if _constraint(exc) == DEDUPE_CONSTRAINT:
            raise
        if verify is not None and _partner_refused(exc):
            raise PartnerNotVerified from exc
        return None  # an order we hold already (as a rule): the general path updates it
    except Exception as exc:
        # A value the database refused, or a bug in building the rows: the general path
        # keeps the body whatever applying does. Said once, by kind only (database errors
        # quote the values they refused), so a path that always falls back is seen.
        log_event(
            logger,
            "message.one_statement_refused",
            level=logging.WARNING,
            partner_id=message.partner_id,
            error_kind=type(exc).__name__,
        )
        return None
    message_id = rows[0][0]
    ids = {ehr_order_id: pk for _, pk, ehr_order_id in rows}
    _saved(message, message_id)
    logged = []
    for order in orders:
        _saved(order, ids[order.ehr_order_id])
        event_ids = {"order_id": order.pk, "partner_id": message.partner_id, "message_id": message_id}
        logged.extend((event, event_ids) for event in created_events(order))
    return orders, logged


@functools.cache
def _insert_fields(model):
    """The columns the ORM's INSERT of `model` writes: every concrete field but the primary key."""
    meta = model._meta
    return [field for field in meta.local_concrete_fields if not field.generated and field is not meta.auto_field]


def _insert_sql(model, objs, returning, connection, *, raw=False):
    """The ORM's own INSERT of `objs`, returning `returning`. `raw`: the values are read as
    they stand, without the fields' pre_save (already run: see `_statement`)."""
    meta = model._meta
    query = InsertQuery(model)
    query.insert_values(_insert_fields(model), objs, raw=raw)
    compiler = query.get_compiler(connection=connection)
    compiler.returning_fields = [meta.get_field(name) for name in returning]
    ((sql, params),) = compiler.as_sql()
    return sql, params


def _prepared(model, obj, connection):
    """`obj`'s INSERT parameters as Django's compiler prepares them (each field's pre_save, then
    get_db_prep_save: the body is encrypted here), or None when a value would change the
    statement's text: an expression, or a placeholder other than the plain `%s` (a field's
    get_placeholder, as BinaryField's, may choose one by the value; on PostgreSQL it is `%s`)."""
    fields = _insert_fields(model)
    values = [field.pre_save(obj, add=True) for field in fields]
    if any(hasattr(value, "resolve_expression") for value in values):
        return None
    params = tuple(
        field.get_db_prep_save(value, connection=connection) for field, value in zip(fields, values, strict=True)
    )
    compiler = None
    for field, param in zip(fields, params, strict=True):
        if hasattr(param, "as_sql"):
            return None
        if hasattr(field, "get_placeholder"):
            compiler = compiler or InsertQuery(model).get_compiler(connection=connection)
            if field.get_placeholder(param, compiler, connection) != "%s":
                return None
    return params


# The one statement's SQL text for one message and one order, per database and way of giving
# the message its partner: built by Django's compiler the first time and reused; only the
# parameters change from one message to the next.
_statement_sql: dict[tuple[str, str, str], str] = {}


def _statement(message, orders, verify=None):
    """The one statement and its parameters; None if `verify` cannot be written into it.

    Its text is the compiler's and does not depend on the values, as long as none is an
    expression and no field makes a placeholder of its own, so for the common case (one
    message, one order) it is built once and each message only prepares its values,
    every field by its own get_db_prep_save as the compiler would (the body is still
    encrypted each time; tests/test_ingest_one_statement.py compares the rows). Several
    orders (GroupedOrders: PostgreSQL's compiler then writes UNNEST arrays), or a value
    the text depends on, take the compiler every time.

    `verify`: (sql, params) of the subquery that gives the message row its partner
    (`store_new_orders`), in place of the partner's id.
    """
    connection = connections[DEFAULT_DB_ALIAS]
    if len(orders) == 1:
        message_params = _prepared(InboundMessage, message, connection)
        order_params = _prepared(Order, orders[0], connection) if message_params is not None else None
        if order_params is not None:
            key = (connection.alias, connection.vendor, verify[0] if verify else "")
            sql = _statement_sql.get(key)
            if sql is None:
                # The values were prepared above; the compiler reads them as they stand.
                compiled = _compiled_statement(message, orders, connection, raw=True, verify=verify)
                if compiled is None:
                    return None
                sql, params = compiled
                if len(params) != len(_verified(message_params, verify)) + len(order_params):
                    return _compiled_statement(message, orders, connection, verify=verify)
                _statement_sql[key] = sql
            return sql, (*_verified(message_params, verify), *order_params)
    return _compiled_statement(message, orders, connection, verify=verify)


def _partner_at():
    """Where the message's partner is among its INSERT's columns."""
    return _insert_fields(InboundMessage).index(InboundMessage._meta.get_field("partner"))


def _verified(message_params, verify):
    """The message's parameters with the verifying subquery's in place of the partner's id."""
    if verify is None:
        return message_params
    at = _partner_at()
    return (*message_params[:at], *verify[1], *message_params[at + 1 :])


def _compiled_statement(message, orders, connection, *, raw=False, verify=None):
    qn = connection.ops.quote_name
    message_sql, message_params = _insert_sql(InboundMessage, [message], ["id"], connection, raw=raw)
    if verify is not None:
        # The one row's VALUES, every placeholder the plain `%s` (one message: no UNNEST);
        # the partner's becomes the subquery. Anything else is not rewritten.
        count = len(_insert_fields(InboundMessage))
        values = f"VALUES ({', '.join(['%s'] * count)})"
        if message_sql.count(values) != 1 or len(message_params) != count:
            return None
        placeholders = ["%s"] * count
        placeholders[_partner_at()] = verify[0]
        message_sql = message_sql.replace(values, f"VALUES ({', '.join(placeholders)})")
        message_params = _verified(message_params, verify)
    orders_sql, orders_params = _insert_sql(Order, orders, ["id", "ehr_order_id"], connection, raw=raw)
    link = InboundMessage.orders.through._meta
    # Only the ORM's own SQL and quoted table and column names; every value is a parameter.
    sql = (
        f"WITH message AS ({message_sql}), orders AS ({orders_sql}), "  # noqa: S608
        f"links AS (INSERT INTO {qn(link.db_table)} ({qn(link.get_field('inboundmessage').column)}, "
        f"{qn(link.get_field('order').column)}) SELECT message.id, orders.id FROM message, orders) "
        "SELECT (SELECT id FROM message), id, ehr_order_id FROM orders"
    )
    return sql, (*message_params, *orders_params)


def _execute(sql, params):
    """Run the statement atomically: on its own (autocommit) it is its own transaction; inside
    a caller's transaction (an import, a test) it runs under a savepoint, so a refusal leaves
    that transaction usable for the general path."""
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.get_autocommit():
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _constraint(exc):
    diag = getattr(exc.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None)


def _partner_refused(exc):
    """Whether `exc` is the message row's partner column refusing NULL: the token did not verify."""
    cause = exc.__cause__
    diag = getattr(cause, "diag", None)
    return (
        getattr(cause, "pgcode", None) == NOT_NULL_VIOLATION
        and getattr(diag, "table_name", None) == InboundMessage._meta.db_table
        and getattr(diag, "column_name", None) == InboundMessage._meta.get_field("partner").column
    )


def _saved(instance, pk):
    """Mark `instance` as `Model.save()` leaves a row it inserted."""
    instance.pk = pk
    instance._state.adding = False
    instance._state.db = DEFAULT_DB_ALIAS
