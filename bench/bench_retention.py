"""Benchmark: the retention purge over 100,000 orders of history. Not a test.

Run alone, in process, on PostgreSQL (the purge's row locks and partial indexes are the point):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hcoint_bench .venv/bin/python bench/bench_retention.py
    BENCH_ORDERS=20000 DATABASE_URL=... .venv/bin/python bench/bench_retention.py

Seeds Django's test database for DATABASE_URL (dropped afterwards) with bench/seed.py's
three years of history, then says Redox filed every note it accepted (as the confirmer
would) so that most of the history is past retention. Times the preview (`manage.py purge
--dry-run`), one bounded worker pass, the purge of the whole backlog, and a second purge
that finds nothing, with the default settings (orders/retention.py).
"""

import os
import time

from benchenv import scratch_database, setup_django

setup_django()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402
from seed import seed  # noqa: E402

from orders.retention import purge, purge_preview  # noqa: E402

ORDERS = int(os.environ.get("BENCH_ORDERS", "100000"))


def timed(label, call):
    started = time.perf_counter()
    result = call()
    print(f"{label:<44} {time.perf_counter() - started:8.2f} s   {result}")
    return result


def file_everything_accepted():
    """What the confirmer does once Redox's log says filed: delivery and order both Filed."""
    with connection.cursor() as cursor:
        cursor.execute("UPDATE orders_delivery SET status = 'filed', confirmed_at = sent_at WHERE status = 'sent'")
        cursor.execute("UPDATE orders_order SET state = 'filed' WHERE state = 'sent'")
        cursor.execute("ANALYZE")


def main():
    if connection.vendor != "postgresql":
        raise SystemExit("bench/bench_retention.py needs DATABASE_URL=postgres://...")
    with scratch_database():
        started = time.perf_counter()
        seed(ORDERS)
        file_everything_accepted()
        print(f"Seeded and filed {ORDERS:,} orders in {time.perf_counter() - started:.1f} s.")
        now = timezone.now()
        passes = settings.RETENTION_MAX_BATCHES
        batch = settings.RETENTION_BATCH_SIZE
        timed("preview (manage.py purge --dry-run)", lambda: purge_preview(now))
        timed(f"one worker pass ({passes} x {batch} rows per kind)", lambda: purge(now, max_batches=passes))
        timed("the rest of the backlog (manage.py purge)", lambda: purge(now))
        timed("again: nothing left", lambda: purge(now))


if __name__ == "__main__":
    main()
