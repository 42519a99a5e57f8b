"""`manage.py db_worker`: django-tasks-db's worker, plus the periodic delivery sweep and usage report.

The Procfile's `worker:` line stays the library's command name; this subclass replaces it
because "orders" comes before "django_tasks_db" in INSTALLED_APPS (the earlier app wins).

Why a thread in the worker rather than a self-rescheduling task: a sweep job is itself
a row that can vanish or be left RUNNING by a dead worker, which is exactly what the sweep
exists to repair. A thread lives as long as the worker process does.

The hourly usage report (what `manage.py report_usage` emits) runs here too, so it needs no
container of its own. It has its own thread rather than a turn in the sweep's loop: the
report aggregates weeks of orders, and a slow or stuck report query must never hold up the
recovery of deliveries. Each thread just waits on its own interval; no clock arithmetic.
"""

import logging
import os
import threading

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV
from django_tasks_db.management.commands import db_worker

from hcoint.events import log_event
from orders.delivery import delivery_sweep
from orders.usage import usage_report

logger = logging.getLogger("orders.delivery")
usage_logger = logging.getLogger("orders.usage")


def sweep_once():
    """One sweep, logged. Never raises: a failed sweep is tried again at the next interval."""
    close_old_connections()
    try:
        found = delivery_sweep()
    except Exception as exc:
        log_event(logger, "delivery.sweep_failed", level=logging.ERROR, error_class=type(exc).__name__)
        return None
    finally:
        close_old_connections()
    if found["requeued"] or found["reclaimed"]:
        log_event(logger, "delivery.swept", requeued=len(found["requeued"]), reclaimed=len(found["reclaimed"]))
    return found


def report_usage_once():
    """The usage report, as `manage.py report_usage` runs it. Never raises: the next one comes at the next interval."""
    close_old_connections()
    try:
        usage_report(weeks=2, include_test=False)
    except Exception as exc:
        log_event(usage_logger, "usage.report_failed", level=logging.ERROR, error_class=type(exc).__name__)
        return False
    finally:
        close_old_connections()
    return True


def run_sweeper(stop, interval):
    """Sweep every `interval` seconds until `stop` is set."""
    try:
        while not stop.wait(interval):
            sweep_once()
    finally:
        connection.close()


def run_usage_reporter(stop, interval):
    """Report usage now, then every `interval` seconds until `stop` is set.

    Several workers each report: harmless, because the dashboard reads the gauges and log
    events with `max` and the monitor asks only whether any backlog event is over its limit.
    """
    try:
        report_usage_once()
        while not stop.wait(interval):
            report_usage_once()
    finally:
        connection.close()


class Command(db_worker.Command):
    help = (
        "Run the background worker: deliveries, a periodic sweep for lost or stuck ones, "
        "and the usage report every hour."
    )

    def handle(self, *args, **options):
        # With --reload (the default under DEBUG) this method runs twice: in a parent that
        # only restarts the worker on code changes, and in the child that does the work.
        reloader_parent = options["reload"] and not options["batch"] and os.environ.get(DJANGO_AUTORELOAD_ENV) != "true"
        stop = threading.Event()
        if not reloader_parent:
            # Whatever a previous worker left behind is picked up before the first job.
            sweep_once()
            if not options["batch"]:
                periodic = [
                    ("delivery-sweep", run_sweeper, settings.DELIVERY_SWEEP_INTERVAL_SECONDS),
                    ("usage-report", run_usage_reporter, settings.USAGE_REPORT_INTERVAL_SECONDS),
                ]
                for name, target, interval in periodic:
                    threading.Thread(target=target, args=(stop, interval), name=name, daemon=True).start()
        try:
            super().handle(*args, **options)
        finally:
            stop.set()
