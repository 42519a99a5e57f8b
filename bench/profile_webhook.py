"""Profile the webhook in one process, as gunicorn calls it: the WSGI application. Not a test.

Posts fresh `Order.New` samples (redox/samples/order-new.json, a new log id and order id
each) straight into `hcoint.wsgi.application`, with the production middleware, JSON logs
at INFO (written to /dev/null) and, with `--trace`, ddtrace patched in as `ddtrace-run`
does, with the image's DD_* values (tracing on, no agent listening: spans are built and dropped). Prints the median and
best wall time per post, the median CPU time of this process per post (less at the mercy
of a busy machine than wall time; the database server's share is not in it), the SQL
statements one post sends, and with `--profile` where the time goes (cProfile, cumulative;
`--dump FILE` keeps it for pstats).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x .venv/bin/python bench/profile_webhook.py [--trace] [--profile]

It creates Django's test database on that server and drops it afterwards.
"""

import argparse
import io
import json
import os
import statistics
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--trace", action="store_true", help="load ddtrace as ddtrace-run does")
parser.add_argument("--profile", action="store_true", help="print a cProfile of the measured posts")
parser.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_WEBHOOK_RUNS", "500")))
parser.add_argument("--top", type=int, default=45)
parser.add_argument("--dump", help="also write the cProfile data to this file (for pstats)")
args = parser.parse_args()

os.environ.setdefault("LOG_LEVEL", "INFO")
os.environ.setdefault("LOG_FORMAT", "json")
os.environ.setdefault("PROXY_COUNT", "0")
if args.trace:
    # The image's DD_* values (the Dockerfile's ENV lines), as `make bench` and production use them.
    from harness import image_tracer_env

    for _name, _value in image_tracer_env().items():
        os.environ.setdefault(_name, _value)
    os.environ["DD_TRACE_ENABLED"] = "true"
    os.environ.setdefault("DD_TRACE_AGENT_URL", "http://127.0.0.1:9")  # nothing listens: spans are dropped
    os.environ.setdefault("DD_INSTRUMENTATION_TELEMETRY_ENABLED", "false")
    os.environ.setdefault("DD_REMOTE_CONFIGURATION_ENABLED", "false")
    os.environ.setdefault("DD_DOGSTATSD_DISABLE", "true")
    import ddtrace.auto  # noqa: F401

# The app logs to stdout: send it to /dev/null, and our figures to stderr.
_report = sys.stderr
sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)

from benchenv import ROOT, scratch_database, setup_django  # noqa: E402

setup_django()

from django.db import connection  # noqa: E402

from hcoint.wsgi import application  # noqa: E402
from orders.models import Partner  # noqa: E402
from redox.sample_messages import fresh_copy  # noqa: E402

TOKEN = "bench-verification-token-0123456789"  # noqa: S105
SAMPLE = json.loads((ROOT / "redox" / "samples" / "order-new.json").read_bytes())


def fresh():
    return json.dumps(fresh_copy(SAMPLE, new_order_id=True)).encode()


def environ(body):
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/redox/webhook/",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "testserver",  # in ALLOWED_HOSTS (benchenv.py): the webhook checks it
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_VERIFICATION_TOKEN": TOKEN,
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def post(body):
    statuses = []
    result = application(environ(body), lambda status, headers, exc_info=None: statuses.append(status))
    b"".join(result)
    result.close()
    if not statuses[0].startswith("200"):
        raise SystemExit(f"webhook answered {statuses[0]}")


def main():
    with scratch_database():
        partner = Partner(name="Bench", destination_id="bench", destination_name="Bench")
        partner.set_tokens(TOKEN)
        partner.save()
        for _ in range(50):  # warm up: imports, caches, the persistent connection
            post(fresh())
        # CaptureQueriesContext is emptied by request_started; a wrapper sees every statement.
        captured, checks = [], []

        def record(execute, sql, params, many, context):
            captured.append(sql)
            return execute(sql, params, many, context)

        is_usable = connection.is_usable
        connection.is_usable = lambda: checks.append("SELECT 1") or is_usable()
        spans = []
        if args.trace:
            from ddtrace.trace import tracer

            finish = tracer._on_span_finish
            tracer._on_span_finish = lambda span: spans.append(span.name) or finish(span)
        with connection.execute_wrapper(record):
            post(fresh())
        connection.is_usable = is_usable
        if args.trace:
            tracer._on_span_finish = finish
        bodies = [fresh() for _ in range(args.runs)]
        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
        times, cpu = [], []
        for body in bodies:
            started, cpu_started = time.perf_counter(), time.thread_time()
            if profiler:
                profiler.enable()
            post(body)
            if profiler:
                profiler.disable()
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.thread_time() - cpu_started) * 1000)
        label = "traced" if args.trace else "untraced"
        print(
            f"Order.New, {label}: median {statistics.median(times):.2f} ms, best {min(times):.2f} ms,"
            f" CPU median {statistics.median(cpu):.2f} ms,"
            f" {len(captured)} statements through the ORM, {len(checks)} health check(s) ({args.runs} posts)",
            file=_report,
        )
        for sql in captured:
            print(f"    {sql[:120]}", file=_report)
        if spans:
            print(f"  {len(spans)} spans: {', '.join(sorted(set(spans)))}", file=_report)
        if profiler:
            import pstats

            pstats.Stats(profiler, stream=_report).sort_stats("cumulative").print_stats(args.top)
            if args.dump:
                profiler.dump_stats(args.dump)


if __name__ == "__main__":
    main()
