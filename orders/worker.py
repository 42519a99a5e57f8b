"""The delivery worker's loop (`manage.py deliver`): the Delivery table is its queue.

Each turn claims the most urgent due delivery (orders/delivery.py: `SELECT … FOR UPDATE
SKIP LOCKED`, then SENDING with a lease, committed), sends it with the lease renewed by a
heartbeat thread, and records the outcome. With nothing due it sleeps for
DELIVERY_IDLE_POLL_SECONDS, or less: on PostgreSQL a committed delivery NOTIFYs the
`hcoint_delivery` channel, which wakes it at once. Several workers may run side by side;
SKIP LOCKED and the lease keep each delivery with one of them.

What it survives:
- The database going away (a PostgreSQL restart or failover): every database touch is
  inside the turn, a connection error closes the connection and the loop retries with
  capped, jittered backoff. It logs `worker.db_unavailable` once per outage and
  `worker.db_recovered` when it is back. It never exits for it.
- Its own death mid-send: the lease (DELIVERY_LEASE_SECONDS) runs out and another worker
  sends the delivery again with the same delivery id. If the first send reached Redox,
  that is one extra copy, which `hcoint-delivery-<id>` lets the partner recognise.
- SIGTERM or SIGINT (a deploy, Ctrl-C): the current send finishes and is recorded, then it exits 0.

Periodic jobs run between turns (`Worker.periodic`), so they need no process or thread of
their own: the hourly usage report (what `manage.py report_usage` emits), the confirmer
(every REDOX_CONFIRM_POLL_SECONDS it asks Redox what became of accepted notes;
orders/confirm.py), the digest email (orders/digest.py, once per period), the retention
purge (every RETENTION_PURGE_INTERVAL_SECONDS; orders/retention.py, whose SKIP LOCKED
batches let several workers run it at once) and the purge of expired bulk uploads
(orders/batches.py). A job that must run once across several workers claims a row for it.
"""

import logging
import os
import random
import select
import threading
import time
from contextlib import contextmanager, suppress

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, InterfaceError, OperationalError, connection, connections
from django.db import close_old_connections as _close_old_connections
from django.utils import timezone

from hcoint.events import log_event
from orders.batches import batch_purge
from orders.confirm import confirm_due
from orders.delivery import NOTIFY_CHANNEL, delivery_send_once
from orders.digest import digest_send_if_due
from orders.retention import purge
from orders.usage import usage_report
from orders.usage_rollup import refresh_usage_rollup

logger = logging.getLogger(__name__)
usage_logger = logging.getLogger("orders.usage")
digest_logger = logging.getLogger("orders.digest")
batch_logger = logging.getLogger("orders.batches")

# What a lost or restarting database raises (Django wraps the driver's errors in these).
DB_ERRORS = (InterfaceError, OperationalError)
BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0


def report_usage():
    """The usage report, as `manage.py report_usage` runs it, on a fresh connection."""
    close_old_connections()
    try:
        usage_report(weeks=2, include_test=False)
    finally:
        close_old_connections()


def retention_purge():
    """One retention pass, bounded to RETENTION_MAX_BATCHES per kind (orders/retention.py)."""
    purge(max_batches=settings.RETENTION_MAX_BATCHES)


def close_old_connections():
    """Drop a connection that is broken or past CONN_MAX_AGE; never raises (the next query reconnects)."""
    if connection.in_atomic_block:
        return  # called inside a test's transaction: closing would discard it
    try:
        _close_old_connections()
    except DatabaseError:
        _close_quietly(connection)


def backoff_delays(first=BACKOFF_FIRST_SECONDS, cap=BACKOFF_MAX_SECONDS, rand=random.random):
    """Waits between reconnection tries: doubling from `first` up to `cap`, each a random point in its upper half."""
    ceiling = first
    while True:
        yield ceiling / 2 + rand() * ceiling / 2
        ceiling = min(cap, ceiling * 2)


@contextmanager
def lease_heartbeat(delivery, *, lease_seconds, every):
    """Renew `delivery`'s lease every `every` seconds while the block runs (the HTTP calls).

    On its own thread (and so its own database connection), since the send blocks this one.
    A renewal that fails on a connection error is tried again at the next beat; the lease
    outlasts two missed beats. If another worker has taken the row, beating stops.
    """
    done = threading.Event()

    def beat():
        try:
            while not done.wait(every):
                try:
                    if not delivery.renew_lease(timezone.now(), lease_seconds):
                        log_event(logger, "worker.lease_lost", level=logging.WARNING, delivery_id=delivery.pk)
                        return
                except DatabaseError as exc:
                    _close_quietly(connection)
                    log_event(
                        logger,
                        "worker.lease_renew_failed",
                        level=logging.WARNING,
                        delivery_id=delivery.pk,
                        error_class=type(exc).__name__,
                    )
        finally:
            _close_quietly(connection)

    thread = threading.Thread(target=beat, name=f"lease-{delivery.pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=5)


class Listener:
    """A dedicated PostgreSQL connection LISTENing on the delivery channel; None elsewhere.

    Separate from the connection the loop queries with, which Django may close between turns.
    Any failure closes it; the next wait opens a fresh one, and until then polling covers.
    """

    def __init__(self, alias=DEFAULT_DB_ALIAS):
        self.alias = alias
        self.wrapper = None
        self.failing = False  # logged once per run of failures, not at every idle wait

    def fileno(self):
        if connections[self.alias].vendor != "postgresql":
            return None
        try:
            if self.wrapper is None:
                wrapper = connections.create_connection(self.alias)
                wrapper.ensure_connection()
                wrapper.connection.autocommit = True
                with wrapper.connection.cursor() as cursor:
                    cursor.execute(f"LISTEN {NOTIFY_CHANNEL}")
                self.wrapper = wrapper
            fileno = self.wrapper.connection.fileno()
        except Exception as exc:  # noqa: BLE001 (Django's or the driver's error: either way, poll instead)
            self.close()
            if not self.failing:
                self.failing = True
                log_event(logger, "worker.listen_failed", level=logging.WARNING, error_class=type(exc).__name__)
            return None
        self.failing = False
        return fileno

    def drain(self):
        """Consume the notifications that woke us (one wake-up is enough for any number)."""
        try:
            raw = self.wrapper.connection
            raw.poll()
            raw.notifies.clear()
        except Exception:  # noqa: BLE001 (a dead socket reads as readable; reconnect next time)
            self.close()

    def close(self):
        if self.wrapper is not None:
            _close_quietly(self.wrapper)
            self.wrapper = None


class Periodic:
    """A job the worker runs between turns, at most once every `seconds` (monotonic clock).

    The job is a plain function. An ordinary failure is logged as `failed_event` (on `log`),
    by the exception's class name only (its message could carry anything, patient data
    included), and the next interval tries again. A lost database (DB_ERRORS) propagates:
    the turn treats it as the database being away, whichever job met it.
    """

    def __init__(self, job, seconds, *, failed_event, log=logger):
        self.job = job
        self.seconds = seconds
        self.failed_event = failed_event
        self.log = log
        self.due_at = 0.0  # the first turn runs it

    def run_if_due(self):
        """Run the job if its interval has passed: None if not due, else what `run` says."""
        if time.monotonic() < self.due_at:
            return None
        self.due_at = time.monotonic() + self.seconds
        return self.run()

    def run(self):
        """Run the job now: True if it succeeded, False if it failed (logged)."""
        try:
            self.job()
        except DB_ERRORS:
            raise
        except Exception as exc:
            log_event(self.log, self.failed_event, level=logging.ERROR, error_class=type(exc).__name__)
            _close_quietly(connection)
            return False
        return True


class Worker:
    def __init__(self, *, lease_seconds=None, renew_seconds=None, idle_seconds=None, report_seconds=None):
        self.lease_seconds = lease_seconds or settings.DELIVERY_LEASE_SECONDS
        self.renew_seconds = renew_seconds or settings.DELIVERY_LEASE_RENEW_SECONDS
        self.idle_seconds = idle_seconds or settings.DELIVERY_IDLE_POLL_SECONDS
        self.report_seconds = report_seconds or settings.USAGE_REPORT_INTERVAL_SECONDS
        self.stopping = threading.Event()
        self.listener = Listener()
        # The jobs run between turns, each at most once per its interval; the first turn runs them all.
        self.periodic = [
            Periodic(report_usage, self.report_seconds, failed_event="usage.report_failed", log=usage_logger),
            # The Usage page's per-week rollup (orders/usage_rollup.py), on the report's interval.
            Periodic(refresh_usage_rollup, self.report_seconds, failed_event="usage.rollup_failed"),
            Periodic(confirm_due, settings.REDOX_CONFIRM_POLL_SECONDS, failed_event="delivery.confirm_failed"),
            # The class name only: an SMTP error's text can quote addresses.
            Periodic(
                digest_send_if_due, settings.DIGEST_CHECK_SECONDS, failed_event="digest.failed", log=digest_logger
            ),
            Periodic(retention_purge, settings.RETENTION_PURGE_INTERVAL_SECONDS, failed_event="retention.purge_failed"),
            Periodic(
                batch_purge,
                settings.UPLOAD_BATCH_PURGE_SECONDS,
                failed_event="batch.purge_failed",
                log=batch_logger,
            ),
        ]
        self.down_since = None
        self.delays = backoff_delays()
        # While running, a stop writes to this pipe, so it interrupts an idle wait at once.
        self._wake_read = self._wake_write = None

    def stop(self, *_signal_args):
        """Finish the current send, then exit the loop. Safe to call from a signal handler."""
        self.stopping.set()
        # The pipe may be full (already woken), or closed or not yet open (not running).
        with suppress(OSError, TypeError):
            os.write(self._wake_write, b"x")

    def run(self, *, until_idle=False, max_deliveries=None):
        """Deliver until stopped; with `until_idle`, only until nothing is due (and no usage report).

        Returns the number of attempts made.
        """
        attempts = 0
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        log_event(logger, "worker.started", lease_seconds=self.lease_seconds, idle_seconds=self.idle_seconds)
        try:
            while not self.stopping.is_set():
                outcome = self.turn(report=not until_idle)
                if outcome is None:  # the database is away: wait, then try again
                    self._wait(next(self.delays), listen=False)
                elif outcome:
                    attempts += 1
                    if max_deliveries is not None and attempts >= max_deliveries:
                        break
                elif until_idle:
                    break
                else:
                    self._wait(self.idle_seconds, listen=True)
        finally:
            self.listener.close()
            _close_quietly(connection)
            os.close(self._wake_read)
            os.close(self._wake_write)
            self._wake_read = self._wake_write = None
        log_event(logger, "worker.stopped", attempts=attempts)
        return attempts

    def turn(self, *, report=True):
        """One pass: the periodic jobs that are due, then one delivery attempt.

        True when an attempt was made, False when nothing was due, None when the database
        could not be reached (or the pass failed for another reason, logged by class name).
        """
        close_old_connections()
        try:
            if report:
                for job in self.periodic:
                    job.run_if_due()
            delivery = delivery_send_once(lease_seconds=self.lease_seconds, while_sending=self._heartbeat)
        except DB_ERRORS as exc:
            self._database_lost(exc)
            return None
        except Exception as exc:
            # A bug must not stop deliveries for good; its message could carry patient data.
            _close_quietly(connection)
            log_event(logger, "worker.turn_failed", level=logging.ERROR, error_class=type(exc).__name__)
            return None
        self._database_back()
        return delivery is not None

    def _heartbeat(self, delivery):
        return lease_heartbeat(delivery, lease_seconds=self.lease_seconds, every=self.renew_seconds)

    def _database_lost(self, exc):
        _close_quietly(connection)
        self.listener.close()
        if self.down_since is None:
            self.down_since = time.monotonic()
            log_event(logger, "worker.db_unavailable", level=logging.ERROR, error_class=type(exc).__name__)

    def _database_back(self):
        if self.down_since is not None:
            log_event(logger, "worker.db_recovered", outage_seconds=round(time.monotonic() - self.down_since, 1))
            self.down_since = None
        self.delays = backoff_delays()

    def _wait(self, seconds, *, listen):
        """Sleep up to `seconds`; a stop, or (with `listen`) a new delivery, ends it early."""
        if self.stopping.is_set():
            return
        watched = [self._wake_read]
        listening = self.listener.fileno() if listen else None
        if listening is not None:
            watched.append(listening)
        readable, _, _ = select.select(watched, [], [], seconds)
        if listening is not None and listening in readable:
            self.listener.drain()
        if self._wake_read in readable:
            with suppress(BlockingIOError):
                os.read(self._wake_read, 64)


def _close_quietly(wrapper):
    if wrapper.in_atomic_block:
        return  # inside a test's transaction: closing would discard it
    with suppress(DatabaseError):  # closing a connection to a database that is gone
        wrapper.close()
