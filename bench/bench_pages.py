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
from harness import PYTHON, ROOT, Postgres, Session, app_env, free_port, gunicorn, manage, percentile

RUNS = int(os.environ.get("BENCH_PAGE_RUNS", "60"))
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


KINDS = (
    "worklist",
    "list",
    "search: MRN",
    "search: order id",
    "search: name fragment",
    "search: no match",
    "state filter",
    "order page",
    "usage page",
)


def _requests(url):
    """Each page kind's (path, query) on the database at `url`."""
    pk, ehr_order_id, mrn = sample(url)
    return dict(
        zip(
            KINDS,
            (
                ("/", None),  # an admin's home: the worklist
                ("/orders/", None),
                ("/orders/", {"q": mrn}),
                ("/orders/", {"q": ehr_order_id}),
                ("/orders/", {"q": "ngu"}),
                ("/orders/", {"q": "zzqxj"}),
                ("/orders/", {"state": "awaiting_note"}),
                (f"/orders/{pk}/", None),
                ("/usage/", None),
            ),
            strict=True,
        )
    )


def measure(urls, runs=RUNS, warm=3):
    """{url: {kind: figures}}, the databases measured side by side: one gunicorn each, and
    for every page kind the requests alternate between them, so a moment when the machine
    is busy slows both columns alike rather than one."""
    servers, sessions, requests = {}, {}, {}
    try:
        for url in urls:
            port = free_port()
            servers[url] = gunicorn(app_env(url), port)
            sessions[url] = Session(port)
            sessions[url].sign_in("bench-admin", PASSWORD)
            requests[url] = _requests(url)
        times = {url: {kind: [] for kind in KINDS} for url in urls}
        for kind in KINDS:
            for url in urls:
                for _ in range(warm):
                    sessions[url].get(*requests[url][kind])
            for _ in range(runs):
                for url in urls:
                    started = time.perf_counter()
                    status, _ = sessions[url].get(*requests[url][kind])
                    times[url][kind].append((time.perf_counter() - started) * 1000)
                    if status != 200:
                        raise SystemExit(f"{kind} answered {status}")
        return {
            url: {
                kind: {"p50": percentile(values, 0.5), "p95": percentile(values, 0.95), "n": runs}
                for kind, values in by_kind.items()
            }
            for url, by_kind in times.items()
        }
    finally:
        for server in servers.values():
            server.stop()


def main():
    orders = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    pg = Postgres()
    try:
        url, seeded = prepare(pg, orders, seed=os.environ.get("BENCH_SEED", "1") == "1")
        if seeded:
            print(f"seeded {orders} orders in {seeded:.1f} s")
        for label, figures in measure([url])[url].items():
            print(f"  {label:<24} p50 {figures['p50']:7.1f} ms   p95 {figures['p95']:7.1f} ms")
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
