"""Benchmark: the Usage page's figures over 100,000 orders. Not a test.

Run alone, in process; `make bench` runs bench/bench.py (over HTTP) instead.

Seeds a scratch database (Django's test database for DATABASE_URL: in-memory SQLite by
default, `test_<name>` on PostgreSQL, dropped afterwards) with three years of orders,
notes and deliveries through bulk_create, then times `usage_figures` for 12, 52 and 260
weeks, computed live and read from the rollup the worker keeps (after one
`refresh_usage_rollup`, also timed), and the backlog query, best and median of several runs.

    .venv/bin/python bench/bench_usage.py
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hcoint_bench .venv/bin/python bench/bench_usage.py
    BENCH_ORDERS=20000 .venv/bin/python bench/bench_usage.py
"""

import os
import random
import statistics
import time
from datetime import timedelta

from benchenv import scratch_database, setup_django  # noqa: E402

setup_django()

from django.contrib.auth.models import User  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import F  # noqa: E402
from django.utils import timezone  # noqa: E402

from orders.models import ClinicalNote, Delivery, Order, Partner  # noqa: E402
from orders.usage import awaiting_backlog, usage_figures  # noqa: E402
from orders.usage_rollup import refresh_usage_rollup  # noqa: E402

ORDERS = int(os.environ.get("BENCH_ORDERS", "100000"))
DAYS = 3 * 365
BATCH = 5000
RUNS = 5


def seed(now):
    rng = random.Random(42)
    user = User.objects.create_user("bench", password="bench-password-not-used")
    partners = [
        Partner.objects.create(name=f"Partner {n}", destination_id=f"dest-{n}", destination_name=f"Dest {n}")
        for n in range(3)
    ]
    made = 0
    while made < ORDERS:
        size = min(BATCH, ORDERS - made)
        plans = []
        for n in range(size):
            received = now - timedelta(days=rng.uniform(0, DAYS))
            roll = rng.random()
            outcome = "sent" if roll < 0.85 else "failed" if roll < 0.87 else "awaiting"
            if outcome == "sent" and received + timedelta(hours=72) > now:
                outcome = "awaiting"
            plans.append((made + n, received, outcome, rng.uniform(0.25, 72), rng.choice(partners)))
        orders = Order.objects.bulk_create(
            Order(
                partner=partner,
                ehr_order_id=f"B{number}",
                first_received_at=received,
                state={"sent": "sent", "failed": "failed", "awaiting": "awaiting_note"}[outcome],
                is_test=number % 50 == 0,
            )
            for number, received, outcome, _, partner in plans
        )
        with_notes = [(order, plan) for order, plan in zip(orders, plans, strict=True) if plan[2] != "awaiting"]
        notes = ClinicalNote.objects.bulk_create(
            ClinicalNote(
                order=order,
                file_name="note.pdf",
                content=b"%PDF-1.4 bench",
                size=14,
                sha256="0" * 64,
                page_count=1,
                uploaded_by=user,
                uploaded_at=plan[1] + timedelta(hours=plan[3] / 2),
            )
            for order, plan in with_notes
        )
        Delivery.objects.bulk_create(
            Delivery(
                order=order,
                note=note,
                status=Delivery.Status.SENT if plan[2] == "sent" else Delivery.Status.FAILED,
                created_by=user,
                created_at=plan[1] + timedelta(hours=plan[3] / 2),
                sent_at=plan[1] + timedelta(hours=plan[3]) if plan[2] == "sent" else None,
                attempt_count=1,
            )
            for (order, plan), note in zip(with_notes, notes, strict=True)
        )
        made += size
    # Each order last saved when its note went out (or when it arrived), as in production;
    # bulk_create stamps them all "now", which would look like a history import just done.
    Order.objects.update(updated_at=F("first_received_at") + timedelta(hours=72))
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


def timed(label, function):
    function()  # warm the caches once, as a page someone reloads would
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    print(f"  {label:<34} best {min(times):8.1f} ms   median {statistics.median(times):8.1f} ms")


def main():
    with scratch_database():
        now = timezone.now()
        started = time.perf_counter()
        seed(now)
        print(
            f"Seeded {Order.objects.count():,} orders, {Delivery.objects.count():,} deliveries over "
            f"{DAYS} days on {connection.vendor} in {time.perf_counter() - started:.1f} s."
        )
        for weeks in (12, 52, 260):
            timed(f"live, weeks={weeks}", lambda weeks=weeks: usage_figures(weeks=weeks, now=now, rollup=False))
        started = time.perf_counter()
        rolled = refresh_usage_rollup(now)
        print(f"  rollup of {rolled} weeks (the worker's first pass) in {time.perf_counter() - started:.2f} s")
        timed("rollup pass, nothing changed", lambda: refresh_usage_rollup(now))
        for weeks in (12, 52, 260):
            timed(f"from the rollup, weeks={weeks}", lambda weeks=weeks: usage_figures(weeks=weeks, now=now))
        # The worst case: every order saved since the rollup (a bulk change), until the
        # worker's next pass rolls the weeks up again: every week is computed live.
        Order.objects.update(updated_at=now)
        timed("from the rollup, all changed, 12", lambda: usage_figures(weeks=12, now=now))
        timed("awaiting_backlog()", lambda: awaiting_backlog(now=now))


if __name__ == "__main__":
    main()
