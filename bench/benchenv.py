"""Shared start-up for the benchmarks: production-like settings on a scratch database.

DEBUG is off (with it on, Django records every query, which production does not do),
logs are quiet, tracing is off. DATABASE_URL picks the database server; each benchmark
creates Django's test database on it and drops it afterwards.
"""

import os
import sys
import time
import tracemalloc
import warnings
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_django():
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hcoint.settings")
    os.environ.setdefault("DEBUG", "false")
    os.environ.setdefault("SECRET_KEY", "bench-only-not-a-secret-0123456789abcdefghijklmnopqrstuvwxyz")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{ROOT / 'db.sqlite3'}")
    os.environ.setdefault("FIELD_ENCRYPTION_KEYS", "W8g0Xh9pJzYbq3l1a6l8n8o2QmYz2c6tKx4rGv7dZ1E=")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
    os.environ.setdefault("LOG_FORMAT", "plain")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DD_TRACE_ENABLED", "false")
    # Static files come from the finders here; collectstatic's output is irrelevant.
    warnings.filterwarnings("ignore", message="No directory at")

    import django

    django.setup()


@contextmanager
def scratch_database():
    """Django's test database on DATABASE_URL's server for the block, dropped afterwards."""
    from django.db import connection

    original = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        yield
    finally:
        connection.close()
        connection.creation.destroy_test_db(original, verbosity=0)


def traced(function):
    """(result, ms, peak bytes of Python allocations while it ran)."""
    tracemalloc.start()
    started = time.perf_counter()
    result = function()
    elapsed = (time.perf_counter() - started) * 1000
    _, top = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, elapsed, top
