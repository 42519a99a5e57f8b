"""`manage.py db_worker`: django-tasks-db's worker, plus the periodic delivery sweep.

The Procfile's `worker:` line stays the library's command name; this subclass replaces it
because "orders" comes before "django_tasks_db" in INSTALLED_APPS (the earlier app wins).

Why a thread in the worker rather than a self-rescheduling task: a sweep job is itself
a row that can vanish or be left RUNNING by a dead worker, which is exactly what the sweep
exists to repair. A thread lives as long as the worker process does.
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

logger = logging.getLogger("orders.delivery")


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


def run_sweeper(stop, interval):
    """Sweep every `interval` seconds until `stop` is set."""
    try:
        while not stop.wait(interval):
            sweep_once()
    finally:
        connection.close()


class Command(db_worker.Command):
    help = "Run the background worker: deliveries, and a sweep for lost or stuck ones every few minutes."

    def handle(self, *args, **options):
        # With --reload (the default under DEBUG) this method runs twice: in a parent that
        # only restarts the worker on code changes, and in the child that does the work.
        reloader_parent = options["reload"] and not options["batch"] and os.environ.get(DJANGO_AUTORELOAD_ENV) != "true"
        stop = threading.Event()
        if not reloader_parent:
            # Whatever a previous worker left behind is picked up before the first job.
            sweep_once()
            if not options["batch"]:
                threading.Thread(
                    target=run_sweeper,
                    args=(stop, settings.DELIVERY_SWEEP_INTERVAL_SECONDS),
                    name="delivery-sweep",
                    daemon=True,
                ).start()
        try:
            super().handle(*args, **options)
        finally:
            stop.set()
