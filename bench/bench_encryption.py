"""Benchmark: what encryption at rest costs (hcoint/encryption.py, hcoint/fields.py). Not a test.

Run alone, in process, or as part of `make bench` (bench/bench.py runs it and adds its
figures to the table and to bench/results/latest.json):

    .venv/bin/python bench/bench_encryption.py            # a table
    .venv/bin/python bench/bench_encryption.py --json     # the figures as JSON

Three measurements, each with encryption on and off ("off" runs the same code with the
field's two conversions replaced by plain BinaryField's, i.e. the code before migration
0018; production has no such switch):

1. The cipher alone, for a 10 MB and a 25 MB note: encrypt and decrypt, best of 5, and the
   peak of Python allocations (tracemalloc) over the note's size.
2. A note through the ORM on the database: its PDF stored in pieces as `note_upload` stores
   it (`orders.note_content.store`) and read back whole as the page renderer reads it
   (`note_content.read`), time and tracemalloc peak, on and off (best of 3, alternating).
3. Webhook ingest in process (Django's test client, an Order.New each time): median and
   best ms over BENCH_ENCRYPTION_POSTS posts, on and off, alternating in blocks of 20.

Uses Django's test database for DATABASE_URL (dropped afterwards). Django is set up only
when the benchmark runs, so bench/bench.py can import `table` without it.
"""

import json
import os
import statistics
import sys
import time
from contextlib import contextmanager

from benchenv import ROOT, scratch_database, setup_django, traced

SIZES_MB = (10, 25)
NOTE_RUNS = 3
POSTS = int(os.environ.get("BENCH_ENCRYPTION_POSTS", "200"))
BLOCK = 20


@contextmanager
def encryption_off():
    """The field as a plain BinaryField, for the "off" figures only."""
    from django.db import models

    from hcoint.fields import EncryptedBinaryField

    saved = EncryptedBinaryField.get_db_prep_value, EncryptedBinaryField.from_db_value
    EncryptedBinaryField.get_db_prep_value = models.BinaryField.get_db_prep_value
    EncryptedBinaryField.from_db_value = lambda self, value, expression, connection: value
    try:
        yield
    finally:
        EncryptedBinaryField.get_db_prep_value, EncryptedBinaryField.from_db_value = saved


@contextmanager
def switched(on):
    if on:
        yield
    else:
        with encryption_off():
            yield


def timed(function, runs=5):
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        function()
        best = min(best, (time.perf_counter() - started) * 1000)
    return best


def cipher(size):
    from hcoint.fields import keyring

    data = os.urandom(size)
    ring = keyring()
    sealed = bytes(ring.encrypt(data))
    _, _, encrypt_peak = traced(lambda: ring.encrypt(data))
    _, _, decrypt_peak = traced(lambda: ring.decrypt(sealed))
    assert ring.decrypt(sealed) == data
    return {
        "encrypt_ms": timed(lambda: ring.encrypt(data)),
        "decrypt_ms": timed(lambda: ring.decrypt(sealed)),
        "encrypt_peak_x": encrypt_peak / size,
        "decrypt_peak_x": decrypt_peak / size,
    }


def note_round_trip(order, user, size, on):
    from orders import note_content
    from orders.models import ClinicalNote

    data = b"%PDF-1.7\n" + os.urandom(size - 9)
    size, sha256 = note_content.measure(data)
    with switched(on):
        # As note_upload stores a note: the row, then its pieces (orders/note_content.py).
        note = ClinicalNote.objects.create(
            order=order, file_name="n.pdf", size=size, sha256=sha256, page_count=1, uploaded_by=user
        )
        _, write_ms, write_peak = traced(lambda: note_content.store(note, data))
        # As the page renderer reads a note whole (orders/previews.py); a delivery and a
        # download read the same pieces one at a time instead.
        content, read_ms, read_peak = traced(lambda: note_content.read(note))
    assert content == data
    ClinicalNote.objects.filter(pk=note.pk).delete()
    return {
        "write_ms": write_ms,
        "write_peak_x": write_peak / size,
        "read_ms": read_ms,
        "read_peak_x": read_peak / size,
    }


def ingest(client, template):
    from bench_webhook import TOKEN, fresh

    times = {True: [], False: []}
    for block in range(POSTS * 2 // BLOCK):
        on = block % 2 == 0
        with switched(on):
            for _ in range(BLOCK):
                body = fresh(template)
                started = time.perf_counter()
                response = client.post(
                    "/redox/webhook/", body, content_type="application/json", HTTP_VERIFICATION_TOKEN=TOKEN
                )
                times[on].append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.status_code
    return {
        "on" if on else "off": {"median_ms": statistics.median(values), "best_ms": min(values), "n": len(values)}
        for on, values in times.items()
    }


def run():
    setup_django()
    from bench_webhook import TOKEN, fresh
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from orders.models import Order, Partner

    results = {"cipher": {}, "note": {}, "ingest": {}, "database": connection.vendor}
    for megabytes in SIZES_MB:
        results["cipher"][str(megabytes)] = cipher(megabytes * 1024 * 1024)
    with scratch_database():
        partner = Partner(name="Bench", destination_id="bench", destination_name="Bench")
        partner.set_tokens(TOKEN)
        partner.save()
        order = Order.objects.create(partner=partner, ehr_order_id="bench-note")
        user = get_user_model().objects.create(username="bench-uploader")
        for megabytes in SIZES_MB:
            size = megabytes * 1024 * 1024
            note_round_trip(order, user, size, True)  # warm up
            runs = {"on": [], "off": []}
            for _ in range(NOTE_RUNS):  # alternating, so the machine's load weighs on both alike
                for state in ("on", "off"):
                    runs[state].append(note_round_trip(order, user, size, state == "on"))
            results["note"][str(megabytes)] = {
                state: {key: min(run[key] for run in values) for key in values[0]} for state, values in runs.items()
            }
        template = json.loads((ROOT / "redox" / "samples" / "order-new.json").read_bytes())
        client = Client()
        for _ in range(20):  # warm up
            body = fresh(template)
            client.post("/redox/webhook/", body, content_type="application/json", HTTP_VERIFICATION_TOKEN=TOKEN)
        results["ingest"] = ingest(client, template)
    return results


def encryption_table(results):
    lines = ["Encryption at rest   encrypt ms  decrypt ms  encrypt peak  decrypt peak   (cipher alone, best of 5)"]
    for megabytes, row in results["cipher"].items():
        lines.append(
            f"  {megabytes:>3} MB            {row['encrypt_ms']:8.1f}    {row['decrypt_ms']:8.1f}"
            f"        {row['encrypt_peak_x']:4.2f}x         {row['decrypt_peak_x']:4.2f}x"
        )
    lines.append(f"  note through the ORM ({results['database']})   write ms (peak)        read ms (peak)")
    for megabytes, row in results["note"].items():
        for state in ("off", "on"):
            cell = row[state]
            lines.append(
                f"  {megabytes:>3} MB, encryption {state:<3}  {cell['write_ms']:7.1f} ({cell['write_peak_x']:3.1f}x)"
                f"          {cell['read_ms']:7.1f} ({cell['read_peak_x']:3.1f}x)"
            )
    off, on = results["ingest"]["off"], results["ingest"]["on"]
    lines.append(
        f"  ingest in process, Order.New: median {off['median_ms']:.2f} ms off, {on['median_ms']:.2f} ms on;"
        f" best {off['best_ms']:.2f} / {on['best_ms']:.2f} ms ({on['n']} posts each)"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    figures = run()
    if "--json" in sys.argv:
        print(json.dumps(figures))
    else:
        print(encryption_table(figures))
