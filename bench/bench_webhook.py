"""Benchmark: answering Redox's webhook. Not a test.

Run alone, in process; `make bench` runs bench/bench.py (over HTTP) instead.

Posts sample orders through the real view (Django's test client, full middleware
stack) into a scratch database (Django's test database for DATABASE_URL, dropped
afterwards) and reports, for a new order, a redelivered duplicate and a grouped
message: the queries each answer takes and its best and median time.

    .venv/bin/python bench/bench_webhook.py
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hcoint_bench .venv/bin/python bench/bench_webhook.py
"""

import json
import os
import statistics
import time

from benchenv import ROOT, scratch_database, setup_django  # noqa: E402

setup_django()

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from orders.models import Partner  # noqa: E402
from redox.sample_messages import fresh_copy  # noqa: E402

TOKEN = "bench-verification-token-0123456789"
RUNS = int(os.environ.get("BENCH_WEBHOOK_RUNS", "200"))
SAMPLES = ROOT / "redox" / "samples"


def fresh(template):
    """The sample as a new delivery of a new order: fresh log id and order id(s), as bytes."""
    return json.dumps(fresh_copy(template, new_order_id=True)).encode()


def measure(label, client, bodies):
    times, queries = [], []
    for body in bodies:
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.post(
                "/redox/webhook/", body, content_type="application/json", HTTP_VERIFICATION_TOKEN=TOKEN
            )
            times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
        queries.append(len(captured))
    print(
        f"  {label:<28} queries {min(queries)}-{max(queries):<3} "
        f"best {min(times):7.2f} ms   median {statistics.median(times):7.2f} ms   ({len(bodies)} posts)"
    )


def main():
    with scratch_database():
        partner = Partner(name="Bench", destination_id="bench", destination_name="Bench")
        partner.set_tokens(TOKEN)
        partner.save()
        client = Client()
        new = json.loads((SAMPLES / "order-new.json").read_bytes())
        grouped = json.loads((SAMPLES / "order-grouped.json").read_bytes())
        print(f"Webhook on {connection.vendor}:")
        new_bodies = [fresh(new) for _ in range(RUNS)]
        measure("Order.New (new order)", client, new_bodies)
        measure("duplicate (redelivery)", client, new_bodies[: RUNS // 2])
        measure("GroupedOrders (2 orders)", client, [fresh(grouped) for _ in range(RUNS // 2)])


if __name__ == "__main__":
    main()
