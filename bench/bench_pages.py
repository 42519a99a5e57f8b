"""Pages over HTTP at a given number of orders (`make bench`). Not a test.

Seeds a database (bench/seed.py), starts gunicorn with the Procfile's web line, signs in
as an admin and times each page kind: p50 and p95 of RUNS sequential requests on one
keep-alive connection after a few warm-up requests.

    python bench/bench_pages.py 100000      # alone, against DATABASE_URL's server
"""

import os
import subprocess
import sys
import time

import psycopg2
from harness import PYTHON, ROOT, Postgres, Session, app_env, free_port, gunicorn, manage, timed_get

RUNS = int(os.environ.get("BENCH_PAGE_RUNS", "40"))
PASSWORD = "bench-password-not-a-secret"  # noqa: S105 (seed.py's)


def prepare(pg, orders, *, name=None, seed=True):
    """A migrated, seeded database; returns its URL and the seed time in seconds."""
    name = name or f"hcoint_bench_{orders}"
    url = pg.recreate(name) if seed else pg.url(name)
    env = app_env(url)
    # As the Dockerfile does: DEBUG off serves the hashed names collectstatic writes.
    manage(env, "collectstatic", "--no-input", "-v0")
    if not seed:
        return url, None
    manage(env, "migrate", "--no-input", "-v0")
    started = time.perf_counter()
    subprocess.run([PYTHON, "bench/seed.py", str(orders)], cwd=ROOT, env=env, check=True, stderr=subprocess.DEVNULL)
    return url, time.perf_counter() - started


def sample(url):
    """An order from the middle of the history: its id, EHR order id and MRN."""
    with psycopg2.connect(url) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM orders_order")
        (count,) = cursor.fetchone()
        cursor.execute(
            "SELECT id, ehr_order_id, patient_mrn FROM orders_order ORDER BY first_received_at OFFSET %s LIMIT 1",
            [count // 2],
        )
        return cursor.fetchone()


def measure(url, runs=RUNS):
    pk, ehr_order_id, mrn = sample(url)
    port = free_port()
    server = gunicorn(app_env(url), port)
    try:
        session = Session(port)
        session.sign_in("bench-admin", PASSWORD)
        kinds = {
            "list": ("/", None),
            "search: MRN": ("/", {"q": mrn}),
            "search: order id": ("/", {"q": ehr_order_id}),
            "search: name fragment": ("/", {"q": "ngu"}),
            "search: no match": ("/", {"q": "zzqxj"}),
            "state filter": ("/", {"state": "awaiting_note"}),
            "order page": (f"/orders/{pk}/", None),
            "usage page": ("/usage/", None),
        }
        return {label: timed_get(session, path, params, runs=runs) for label, (path, params) in kinds.items()}
    finally:
        server.stop()


def main():
    orders = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    pg = Postgres()
    try:
        url, seeded = prepare(pg, orders, seed=os.environ.get("BENCH_SEED", "1") == "1")
        if seeded:
            print(f"seeded {orders} orders in {seeded:.1f} s")
        for label, figures in measure(url).items():
            print(f"  {label:<24} p50 {figures['p50']:7.1f} ms   p95 {figures['p95']:7.1f} ms")
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
