"""`make bench`: HCOINT's performance figures side by side, in one run. Not a test.

    make bench                                   # PostgreSQL on 127.0.0.1:5432, or a private one
    DATABASE_URL=postgres://user@host:5432/x make bench    # that server (databases hcoint_bench_*)

1. Ingest: Order.New webhooks over HTTP, 1 connection then 32, into HCOINT and into
   the bare-Django anchor (bench/anchor), both under the Procfile's web line.
2. Pages: seed 1,000 and 100,000 orders (bench/seed.py), time each page kind.
3. Large notes: a 10 MB and a 25 MB PDF uploaded, sent, and delivered by the worker to
   the Redox sandbox; time, and peak memory growth of the web and worker processes.
4. Encryption at rest (bench/bench_encryption.py, in its own process): the cipher alone,
   a note through the ORM and ingest in process, each with encryption on and off.

5. Matching and previews (bench/bench_matching.py), on each seeded database: 50 PDFs of
   5 pages read and matched to the awaiting orders, and a page rendered to an image.

Everything above runs with FIELD_ENCRYPTION_KEYS set (bench/harness.py), as production does.

Prints one table and writes the same figures to bench/results/latest.json. docs/performance.md
explains each figure. Every server listens on 127.0.0.1 only; every database is dropped
at the end (BENCH_KEEP=1 keeps them).
"""

import contextlib
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import psycopg2
from bench_encryption import encryption_table
from bench_pages import PASSWORD, measure, prepare
from harness import (
    PYTHON,
    ROOT,
    Postgres,
    Server,
    Session,
    app_env,
    free_port,
    gunicorn,
    percentile,
    procfile_command,
    reset_peak,
    rss_kib,
)

sys.path.insert(0, str(ROOT))  # the project's packages, for the one sample-making function (no Django)
from redox.sample_messages import fresh_copy  # noqa: E402

SIZES = [int(n) for n in os.environ.get("BENCH_SIZES", "1000,100000").split(",")]
INGEST_SEQUENTIAL = int(os.environ.get("BENCH_INGEST_SEQUENTIAL", "300"))
INGEST_CONCURRENT = int(os.environ.get("BENCH_INGEST_CONCURRENT", "1280"))
CONNECTIONS = 32
NOTE_SIZES_MB = [int(n) for n in os.environ.get("BENCH_NOTE_MB", "10,25").split(",")]
# BENCH_ONLY=ingest: the ingest figures alone (about a minute), e.g. to compare a change;
# BENCH_ONLY=notes: the large notes alone (on the 1,000-order database).
ONLY = os.environ.get("BENCH_ONLY", "")
TOKEN = "bench-verification-token-0123456789"  # noqa: S105 (seed.py's first partner)
SAMPLE = json.loads((ROOT / "redox" / "samples" / "order-new.json").read_bytes())
RESULTS = ROOT / "bench" / "results" / "latest.json"  # ignored by git


def fresh_order():
    return json.dumps(fresh_copy(SAMPLE, new_order_id=True)).encode()


def post_all(port, bodies, connections):
    """Post `bodies` over `connections` keep-alive connections; latencies (ms) and wall time (s)."""
    import http.client

    latencies, failures = [], []
    share = [bodies[n::connections] for n in range(connections)]
    headers = {"Content-Type": "application/json", "verification-token": TOKEN}

    def run(mine):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for body in mine:
            started = time.perf_counter()
            conn.request("POST", "/redox/webhook/", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status != 200:
                failures.append(response.status)
        conn.close()

    threads = [threading.Thread(target=run, args=(mine,)) for mine in share]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if failures:
        raise SystemExit(f"webhook answered {sorted(set(failures))}")
    return latencies, wall


def stored_messages(url, table):
    """How many messages `table` holds: the app's or the anchor's, read past the app."""
    with psycopg2.connect(url) as conn, conn.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 (one of two fixed names)
        return cursor.fetchone()[0]


def ingest(port, url, table):
    """Post the ingest runs; each must leave every message it sent answered 200 and stored
    exactly once in `table`, or the figures are for something else than ingest."""
    post_all(port, [fresh_order() for _ in range(20)], 1)  # warm both workers' connections
    figures = {}
    for connections, count in ((1, INGEST_SEQUENTIAL), (CONNECTIONS, INGEST_CONCURRENT)):
        before = stored_messages(url, table)
        latencies, wall = post_all(port, [fresh_order() for _ in range(count)], connections)
        stored = stored_messages(url, table) - before
        if stored != count:
            raise SystemExit(f"{count} messages answered 200 over {connections} connection(s), {stored} stored")
        figures[connections] = {
            "p50": percentile(latencies, 0.5),
            "p95": percentile(latencies, 0.95),
            "per_second": count / wall,
            "n": count,
        }
    return figures


def ingest_hcoint(pg):
    url, _ = prepare(pg, 0, name="hcoint_bench_ingest")
    port = free_port()
    server = gunicorn(app_env(url), port)
    try:
        return ingest(port, url, "orders_inboundmessage")
    finally:
        server.stop()


def ingest_anchor(pg):
    url = pg.recreate("hcoint_bench_anchor")
    with psycopg2.connect(url) as conn, conn.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE anchor_message (id bigserial PRIMARY KEY, log_id varchar(100) UNIQUE NOT NULL,"
            " body bytea NOT NULL, received_at timestamptz NOT NULL)"
        )
    # The app's Procfile line and gunicorn.conf.py, with the anchor's WSGI application.
    args = [word.replace("hcoint.wsgi:application", "anchor.wsgi:application") for word in procfile_command("web")]
    args = [str(ROOT / word) if word.endswith(".conf.py") else word for word in args]
    port = free_port()
    env = app_env(url, PYTHONPATH=f"{ROOT / 'bench' / 'anchor'}:{ROOT}")
    server = Server([*args, "--bind", f"127.0.0.1:{port}"], env, cwd=ROOT / "bench" / "anchor", log_name="anchor")
    server.wait_http(port)
    try:
        return ingest(port, url, "anchor_message")
    finally:
        server.stop()


def ingest_lines(results):
    """The ingest rows of the table, HCOINT beside the anchor."""
    lines = []
    ingest_rows = results["ingest"]
    lines.append(
        "Ingest (Order.New over HTTP)       HCOINT p50/p95 ms   req/s | anchor p50/p95 ms   req/s | HCOINT/anchor"
    )
    for connections in ("1", str(CONNECTIONS)):
        ours, anchor = ingest_rows["hcoint"][connections], ingest_rows["anchor"][connections]
        lines.append(
            f"  {connections:>2} connection(s)                   "
            f"{ours['p50']:6.1f} /{ours['p95']:6.1f} {ours['per_second']:7.0f}"
            f" | {anchor['p50']:6.1f} /{anchor['p95']:6.1f} {anchor['per_second']:7.0f}"
            f" | {ours['per_second'] / anchor['per_second']:5.2f}x"
        )
    return lines


def big_pdf(size):
    """A valid one-page PDF of about `size` bytes: one grey image of random pixels."""
    width = 1000
    height = max(1, (size - 600) // width)
    pixels = os.urandom(width * height)
    content = b"q 612 0 0 792 0 0 cm /Im0 Do Q"
    objects = [
        b"<</Type/Catalog/Pages 2 0 R>>",
        b"<</Type/Pages/Kids[3 0 R]/Count 1>>",
        b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]/Resources<</XObject<</Im0 5 0 R>>>>/Contents 4 0 R>>",
        b"<</Length %d>>stream\n" % len(content) + content + b"\nendstream",
        b"<</Type/XObject/Subtype/Image/Width %d/Height %d/ColorSpace/DeviceGray/BitsPerComponent 8/Length %d>>stream\n"
        % (width, height, len(pixels))
        + pixels
        + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def multipart(fields, file_field, file_name, content):
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{file_name}"\r\n'
        "Content-Type: application/pdf\r\n\r\n".encode()
    )
    parts.append(content)
    parts.append(f"\r\n--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def large_notes(pg, url):
    sandbox_port = free_port()
    redox = {
        "REDOX_API_BASE_URL": f"http://127.0.0.1:{sandbox_port}",
        "REDOX_UPLOAD_URL": f"http://127.0.0.1:{sandbox_port}/upload",
        "REDOX_API_KEY": "sandbox-api-key",
        "REDOX_API_SECRET": "sandbox-api-secret",
        # Room for the largest note; the app still caps it at Redox's file limit.
        "NOTE_MAX_BYTES": str(max(NOTE_SIZES_MB) * 1024 * 1024 + 1024 * 1024),
        "DELIVERY_IDLE_POLL_SECONDS": "1",
    }
    env = app_env(url, **redox)
    sandbox = Server([PYTHON, "manage.py", "redox_sandbox", "--port", str(sandbox_port)], env, log_name="sandbox")
    worker = Server(procfile_command("worker"), env, log_name="worker")
    port = free_port()
    web = gunicorn(env, port)
    figures = {}
    try:
        session = Session(port)
        session.sign_in("bench-uploader", PASSWORD)
        with psycopg2.connect(url) as conn, conn.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM orders_order WHERE state = 'awaiting_note' AND NOT is_test ORDER BY id DESC LIMIT %s",
                [len(NOTE_SIZES_MB)],
            )
            order_ids = [row[0] for row in cursor.fetchall()]
        time.sleep(3)  # let the worker settle into its idle loop
        for megabytes, order_id in zip(NOTE_SIZES_MB, order_ids, strict=True):
            pdf = big_pdf(megabytes * 1024 * 1024)
            token = session.csrf(f"/orders/{order_id}/notes/new/")
            body, content_type = multipart({"csrfmiddlewaretoken": token}, "file", "note.pdf", pdf)
            web_pids = web.children()
            before = {pid: rss_kib(pid)[0] for pid in [*web_pids, worker.process.pid]}
            for pid in before:
                reset_peak(pid)
            started = time.perf_counter()
            status, _ = session.request("POST", f"/orders/{order_id}/notes/new/", body, {"Content-Type": content_type})
            upload_s = time.perf_counter() - started
            if status != 302:
                raise SystemExit(f"upload of {megabytes} MB answered {status}; see {web.log.name}")
            location = re.search(r"/notes/(\d+)/", session.last_location).group(1)
            token = session.csrf(f"/notes/{location}/")
            started = time.perf_counter()
            status, _ = session.request(
                "POST",
                f"/notes/{location}/send/",
                urlencode({"csrfmiddlewaretoken": token}),
                {"Content-Type": "application/x-www-form-urlencoded"},
            )
            if status != 302:
                raise SystemExit(f"send of {megabytes} MB answered {status}")
            deadline = time.monotonic() + 180
            while True:
                with psycopg2.connect(url) as conn, conn.cursor() as cursor:
                    cursor.execute("SELECT status FROM orders_delivery WHERE note_id = %s", [int(location)])
                    (delivery,) = cursor.fetchone()
                if delivery in ("sent", "failed", "abandoned", "retry_scheduled") or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            deliver_s = time.perf_counter() - started
            grown = {pid: (rss_kib(pid)[1] - rss) / 1024 for pid, rss in before.items()}
            figures[megabytes] = {
                "upload_s": upload_s,
                "deliver_s": deliver_s,
                "delivery": delivery,
                "web_peak_growth_mb": max(grown[pid] for pid in web_pids),
                "worker_peak_growth_mb": grown[worker.process.pid],
                "size_mb": len(pdf) / 1024 / 1024,
            }
    finally:
        web.stop()
        worker.stop()
        sandbox.stop()
    return figures


def matching(url):
    """bench/bench_matching.py's figures on the seeded database at `url`."""
    finished = subprocess.run(
        [PYTHON, "bench_matching.py"], cwd=ROOT / "bench", env=app_env(url), capture_output=True, text=True
    )
    if finished.returncode != 0:
        raise SystemExit(f"bench_matching.py failed:\n{finished.stderr[-2000:]}")
    return json.loads(finished.stdout.strip().splitlines()[-1])


def machine():
    cpu = ""
    with contextlib.suppress(OSError, AttributeError):
        cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text()).group(1)
    try:
        server = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        server = ""
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "psql": server,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def encryption(pg):
    """bench/bench_encryption.py's figures (it creates and drops its own test database)."""
    # Its ingest posts through Django's test client, whose requests name the host "testserver"
    # (the webhook checks the Host header like every other view).
    env = app_env(
        pg.url("hcoint_bench_encryption"), LOG_LEVEL="WARNING", DD_TRACE_ENABLED="false", ALLOWED_HOSTS="testserver"
    )
    result = subprocess.run(
        [PYTHON, "bench_encryption.py", "--json"], cwd=ROOT / "bench", env=env, capture_output=True, text=True
    )
    if result.returncode:
        raise SystemExit(f"bench_encryption.py failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.splitlines()[-1])


def note_lines(results):
    lines = [
        "Large notes          upload s         send→sent s   delivery   web peak growth MB   worker peak growth MB"
    ]
    for megabytes, row in results["notes"].items():
        lines.append(
            f"  {int(megabytes):>3} MB PDF        {row['upload_s']:8.2f}   {row['deliver_s']:18.2f}"
            f"   {row['delivery']:<8}"
            f"   {row['web_peak_growth_mb']:8.1f} ({row['web_peak_growth_mb'] / row['size_mb']:.1f}x)"
            f"       {row['worker_peak_growth_mb']:8.1f} ({row['worker_peak_growth_mb'] / row['size_mb']:.1f}x)"
        )
    return lines


def table(results):
    lines = ingest_lines(results)
    sizes = list(results["pages"])
    lines.append("")
    header = "Pages, p95 ms (p50)                " + "".join(f"{int(size):>20,}" for size in sizes) + "    ratio"
    lines.append(header)
    kinds = list(results["pages"][sizes[0]]["pages"])
    for kind in kinds:
        cells = "".join(
            f"{figures['p95']:12.1f} ({figures['p50']:5.1f})"
            for figures in (results["pages"][size]["pages"][kind] for size in sizes)
        )
        first, last = (results["pages"][size]["pages"][kind]["p95"] for size in (sizes[0], sizes[-1]))
        lines.append(f"  {kind:<32}{cells}   {last / first:5.2f}x")
    lines.append(
        "  seeded in (s)                   " + "".join(f"{results['pages'][size]['seed_s']:20.1f}" for size in sizes)
    )
    lines.append("")
    lines.extend(note_lines(results))
    if results.get("encryption"):
        lines.append("")
        lines.append(encryption_table(results["encryption"]))
    lines.append("")
    lines.append(
        "Matching 50 PDFs x 5 pages   awaiting   total s   (CPU s)   text s   propose s   batched s (CPU s)"
        "   preselected ok/wrong   asked: listed/not   render p50/max ms (CPU)"
    )
    for size, row in results.get("matching", {}).items():
        outcomes = row["outcomes"]
        lines.append(
            f"  {int(size):>7,} orders       {row['awaiting_orders']:8,}   {row['total_s']:7.2f}"
            f"   ({row['cpu_s']:5.2f})   {row['text_s']:6.2f}   {row['propose_s']:9.2f}"
            f"   {row['batch_s']:9.2f} ({row['batch_cpu_s']:5.2f})"
            f"   {outcomes['preselected right']:>9}/{outcomes['preselected wrong']:<5}"
            f"     {outcomes['asked, right order listed']:>9}/{outcomes['asked, not listed']:<5}"
            f"   {row['render_ms_p50']:8.0f} /{row['render_ms_max']:4.0f} ({row['render_cpu_ms']:3.0f})"
        )
    info = results["machine"]
    lines.append("")
    load = "/".join(f"{value:.1f}" for value in info["load_average"])
    load_end = "/".join(f"{value:.1f}" for value in info.get("load_average_end", ()))
    lines.append(
        f"Machine: {info['cpu']}, {info['cores']} cores, load average {load} at the start and {load_end} at the end,"
        f" {info['psql']}"
    )
    return "\n".join(lines)


def main():
    started = time.perf_counter()
    pg = Postgres()
    results = {"machine": machine(), "ingest": {}, "pages": {}, "notes": {}, "matching": {}}
    names = []
    try:
        if ONLY == "notes":
            print(f"Large notes: seeding {SIZES[0]:,} orders ...", file=sys.stderr)
            url, _ = prepare(pg, SIZES[0])
            names.append(f"hcoint_bench_{SIZES[0]}")
            results["notes"] = {str(k): v for k, v in large_notes(pg, url).items()}
            print("\n".join(note_lines(results)))
            return
        print("Ingest: HCOINT ...", file=sys.stderr)
        results["ingest"]["hcoint"] = {str(k): v for k, v in ingest_hcoint(pg).items()}
        names.append("hcoint_bench_ingest")
        print("Ingest: anchor ...", file=sys.stderr)
        results["ingest"]["anchor"] = {str(k): v for k, v in ingest_anchor(pg).items()}
        names.append("hcoint_bench_anchor")
        if ONLY == "ingest":
            load = "/".join(f"{value:.1f}" for value in os.getloadavg())
            print("\n".join([*ingest_lines(results), f"  (load average {load} at the end)"]))
            return
        urls, seeded = {}, {}
        for size in SIZES:
            print(f"Pages: seeding {size:,} orders ...", file=sys.stderr)
            urls[size], seeded[size] = prepare(pg, size)
            names.append(f"hcoint_bench_{size}")
        print("Pages: measuring ...", file=sys.stderr)
        pages = measure(list(urls.values()))
        for size, url in urls.items():
            results["pages"][str(size)] = {"seed_s": seeded[size], "pages": pages[url]}
        print("Large notes ...", file=sys.stderr)
        results["notes"] = {str(k): v for k, v in large_notes(pg, urls[SIZES[0]]).items()}
        print("Encryption at rest ...", file=sys.stderr)
        results["encryption"] = encryption(pg)
        print("Matching and previews ...", file=sys.stderr)
        results["matching"] = {str(size): matching(url) for size, url in urls.items()}
    finally:
        if os.environ.get("BENCH_KEEP") != "1":
            for name in names:
                pg.drop(name)
        pg.stop()
    results["total_s"] = time.perf_counter() - started
    results["machine"]["load_average_end"] = os.getloadavg()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(table(results))
    print(f"\n{RESULTS.relative_to(ROOT)} written; the whole run took {results['total_s']:.0f} s.")


if __name__ == "__main__":
    main()
