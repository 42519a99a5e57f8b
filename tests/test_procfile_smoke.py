"""The Procfile's lines, run as written, serve the app and deliver a note end to end.

What Aptible does, minus Docker (no engine on the development and CI machines):
1. lay out the build context as `.dockerignore` leaves it, and run the Dockerfile's
   `collectstatic` step exactly as written there;
2. run `.aptible.yml`'s `before_deploy` commands against a fresh PostgreSQL database;
3. start each Procfile line through `/bin/sh -c` (as Aptible does for an image with no
   ENTRYPOINT) with a production-like environment: DEBUG off, a strong SECRET_KEY, real
   ALLOWED_HOSTS, the HTTPS redirect on, Redox pointed at the local sandbox;
4. configure a partner, post an order to the webhook as Redox would (through the proxy
   header), upload and send a note, and wait until the worker has delivered it; and see
   the worker emit the usage report it sends at start and then hourly;
5. send SIGTERM to each process and check it stops, which is what a deploy does;
6. check that every line the web and worker processes printed, on stdout or stderr, from
   start to exit, is a JSON log object: Aptible drains both streams to Datadog, and a
   plain line there is unparsed text that no monitor or PHI filter was written for.

Ports are ones the kernel hands out as free (never a fixed range, so tests running side by
side under pytest-xdist cannot pick the same one); every process started here is stopped by
its own id.
"""

import fnmatch
import json
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager, suppress
from pathlib import Path

import psycopg2
import pytest
from django.db import connection
from psycopg2 import sql

from hcoint.encryption import generate_key

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="the Procfile smoke test runs the app on PostgreSQL, as on Aptible; set DATABASE_URL to run it",
)

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
TOKEN = "smoke-verification-token-" + "0" * 16
HOST = "hcoint.example.org"
WAIT_SECONDS = 90


# --- The image, as the Dockerfile and .dockerignore would build it ---------------------


def dockerignore_patterns():
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def ignored(path, patterns):
    """Docker's rule: the last matching pattern wins, `!` re-includes, and a pattern that
    matches a parent folder covers everything in it; `**/` matches at any depth."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    result = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = (raw[1:] if negate else raw).strip("/")
        anywhere = pattern.startswith("**/")
        core = pattern[3:] if anywhere else pattern
        for prefix in prefixes:
            segments = prefix.split("/")
            forms = ["/".join(segments[i:]) for i in range(len(segments))] if anywhere else [prefix]
            if any(fnmatch.fnmatchcase(form, core) for form in forms):
                result = not negate
                break
    return result


def build_context(destination):
    """Copy the checkout's files (tracked, or new and not git-ignored) that .dockerignore keeps."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    patterns = dockerignore_patterns()
    copied = []
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if not source.is_file() or ignored(name, patterns):
            continue
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
        copied.append(name)
    return copied


def dockerfile_instructions():
    """(instruction, argument) pairs, with backslash continuations joined."""
    joined = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, argument = line.partition(" ")
            yield instruction.upper(), argument.strip()


def dockerfile_env():
    env = {}
    for instruction, argument in dockerfile_instructions():
        if instruction == "ENV":
            for pair in shlex.split(argument):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def dockerfile_run(needle):
    runs = [argument for instruction, argument in dockerfile_instructions() if instruction == "RUN"]
    return next(run for run in runs if needle in run)


def build_image(app, *, home):
    """The image at `app`: the Docker context copied and the Dockerfile's build step run, with
    only the image's ENV around it. Returns the files copied and that environment."""
    copied = build_context(app)
    image_env = {**dockerfile_env(), "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home)}
    build = subprocess.run(
        ["/bin/sh", "-c", dockerfile_run("collectstatic")],
        cwd=app,
        env=image_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    return copied, image_env


def app_env(image_env, *, port, database_url):
    """The image's environment plus what `aptible config:set` would add for the web process."""
    return {
        **image_env,
        "PORT": str(port),
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "FIELD_ENCRYPTION_KEYS": generate_key(),
        "ALLOWED_HOSTS": f"{HOST},127.0.0.1",
        "CSRF_TRUSTED_ORIGINS": f"https://{HOST}",
        "DATABASE_URL": database_url,
    }


def procfile():
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if line.strip() and not line.startswith("#"))


def before_deploy_commands():
    """The `before_deploy` list of .aptible.yml (a flat YAML list of strings)."""
    commands, inside = [], False
    for line in (ROOT / ".aptible.yml").read_text().splitlines():
        if line.startswith("before_deploy:"):
            inside = True
        elif inside and line.strip().startswith("- "):
            commands.append(line.strip()[2:].strip())
        elif inside and line.strip() and not line.startswith(" "):
            inside = False
    return commands


# --- Processes, ports, the database ----------------------------------------------------


def free_ports(count):
    """`count` distinct ports that were free a moment ago, chosen by the kernel.

    All the probes stay bound until all are chosen, so the ports differ from each other;
    the kernel hands out ephemeral ports in turn, so another test's probe gets others.
    """
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


class Processes:
    """Processes started here, each stopped by its own process id (and its own group)."""

    def __init__(self, logs):
        self.logs = logs
        self.running = {}

    def start(self, name, args, *, cwd, env):
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 (closed in stop_all)
        process = subprocess.Popen(args, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.running[name] = (process, log)
        return process

    def tail(self, name, lines=40):
        path = self.logs / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return f"--- {name} ---\n" + "\n".join(text.splitlines()[-lines:])

    def tails(self):
        return "\n".join(self.tail(name) for name in self.running)

    def check_alive(self):
        for name, (process, _) in self.running.items():
            if process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode}\n{self.tails()}")

    def terminate(self, name, timeout=30):
        """SIGTERM to the process itself (as a deploy sends it); its exit code, or None if it hung."""
        process, _ = self.running[name]
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop_all(self):
        for process, log in self.running.values():
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(15)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    with suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait(5)
            log.close()


def server_connection(dbname):
    settings = connection.settings_dict
    conn = psycopg2.connect(
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        user=settings["USER"] or None,
        password=settings["PASSWORD"] or None,
        dbname=dbname,
    )
    conn.autocommit = True
    return conn


@contextmanager
def fresh_database():
    """An empty database named after this run's own, dropped afterwards; yields its URL."""
    settings = connection.settings_dict
    name = f"{settings['NAME']}_procfile"
    admin = server_connection("postgres")
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    try:
        with admin.cursor() as cur:
            cur.execute(drop)
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        credentials = settings["USER"] or "postgres"
        if settings["PASSWORD"]:
            credentials += f":{settings['PASSWORD']}"
        yield name, f"postgres://{credentials}@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(drop)
        admin.close()


def listening_on_all_interfaces(port):
    """Whether some socket listens on 0.0.0.0:port (state 0A in /proc/net/tcp)."""
    wanted = f"00000000:{port:04X}"
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return any(row.split()[1] == wanted and row.split()[3] == "0A" for row in rows)


def http(method, url, *, body=None, headers=None, timeout=10):
    """(status, headers, body) without following redirects."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


LOG_FIELDS = ("timestamp", "level", "message", "logger.name")


def log_records(path):
    """The JSON objects a process printed (stdout and stderr share the file), and every line that is not one."""
    records, strays = [], []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict) and all(field in record for field in LOG_FIELDS):
            records.append(record)
        else:
            strays.append(line)
    return records, strays


def wait_until(what, condition, processes, timeout=WAIT_SECONDS):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        processes.check_alive()
        try:
            result = condition()
        except (OSError, urllib.error.URLError):
            result = None
        if result:
            return result
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}\n{processes.tails()}")


NOTE_SCRIPT = """
from pathlib import Path
from django.contrib.auth.models import Group, User
from orders.models import Order
from orders.notes import note_send, note_upload

user = User.objects.create_user("smoke-uploader", password="smoke-password-not-used-0123")
user.groups.add(Group.objects.get(name="uploader"))
order = Order.objects.get()
content = Path("redox/samples/clinical-note.pdf").read_bytes()
note = note_upload(order=order, file_name="clinical-note.pdf", content=content, page_count=1, user=user)
delivery = note_send(note=note, user=user)
print("delivery", delivery.pk)
"""


# --- The test ----------------------------------------------------------------------------


def test_procfile_processes_serve_the_app_and_deliver_a_note(tmp_path):
    app = tmp_path / "app"
    logs = tmp_path / "logs"
    logs.mkdir()
    copied, image_env = build_image(app, home=tmp_path)
    assert "manage.py" in copied and "Procfile" in copied
    assert not any(name.startswith((".git/", ".venv/")) or name == "db.sqlite3" for name in copied)
    assert (app / "staticfiles" / "staticfiles.json").exists()

    sandbox_port, web_port = free_ports(2)
    sandbox = f"http://127.0.0.1:{sandbox_port}"
    web = f"http://127.0.0.1:{web_port}"

    with fresh_database() as (dbname, database_url):
        # What `aptible config:set` would hold.
        env = {
            **app_env(image_env, port=web_port, database_url=database_url),
            "REDOX_API_BASE_URL": sandbox,
            "REDOX_UPLOAD_URL": f"{sandbox}/upload",
            "REDOX_API_KEY": "smoke-api-key",
            "REDOX_API_SECRET": "smoke-api-secret",
            "DD_ENV": "smoke",
            "DD_SERVICE": "hcoint",
            "DD_TRACE_ENABLED": "false",
            "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false",
            "DD_REMOTE_CONFIGURATION_ENABLED": "false",
            "DD_DOGSTATSD_DISABLE": "true",
        }

        def manage(*args):
            result = subprocess.run(
                ["python", "manage.py", *args],
                cwd=app,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert result.returncode == 0, f"manage.py {args[0]}: {result.stdout}{result.stderr}"
            return result.stdout

        for command in before_deploy_commands():
            release = subprocess.run(
                ["/bin/sh", "-c", command], cwd=app, env=env, capture_output=True, text=True, timeout=300, check=False
            )
            assert release.returncode == 0, f"before_deploy {command!r}: {release.stdout}{release.stderr}"

        processes = Processes(logs)
        try:
            processes.start(
                "sandbox", ["python", "manage.py", "redox_sandbox", "--port", str(sandbox_port)], cwd=app, env=env
            )
            lines = procfile()
            web_process = processes.start("web", ["/bin/sh", "-c", lines["web"].strip()], cwd=app, env=env)
            processes.start("worker", ["/bin/sh", "-c", lines["worker"].strip()], cwd=app, env=env)

            # Aptible's health check: plain HTTP, Host "containers", must be exactly 200.
            wait_until(
                "the web process to answer the health check",
                lambda: http("GET", f"{web}/healthcheck", headers={"Host": "containers"})[0] == 200,
                processes,
            )
            wait_until("the sandbox", lambda: http("GET", f"{sandbox}/_sandbox/state")[0] == 200, processes)

            # The `exec` in the Procfile makes gunicorn the process Aptible started, and it
            # listens on every interface (Aptible's proxy is not on the container's loopback).
            assert b"gunicorn" in Path(f"/proc/{web_process.pid}/cmdline").read_bytes()
            assert listening_on_all_interfaces(web_port)

            # Plain HTTP through the proxy is sent to HTTPS; HTTPS pages are served with HSTS.
            status, headers, _ = http("GET", f"{web}/", headers={"Host": HOST, "X-Forwarded-Proto": "http"})
            assert status == 301 and headers["Location"] == f"https://{HOST}/"
            https = {"Host": HOST, "X-Forwarded-Proto": "https"}
            status, headers, page = http("GET", f"{web}/accounts/login/", headers=https)
            assert status == 200, page[:500]
            assert "max-age=" in headers["Strict-Transport-Security"]
            stylesheet = re.search(rb'href="(/static/[^"]+\.css)"', page)
            assert stylesheet, "the sign-in page links no stylesheet"
            assert http("GET", f"{web}{stylesheet.group(1).decode()}", headers=https)[0] == 200

            manage(
                "configure_partner",
                "--name",
                "Smoke Health",
                "--verification-token",
                TOKEN,
                "--destination-id",
                "smoke-destination-id",
                "--destination-name",
                "Smoke Epic",
            )

            # Redox delivers the order; Aptible's proxy adds X-Forwarded-Proto.
            order = (ROOT / "redox" / "samples" / "order-new.json").read_bytes()
            status, _, body = http(
                "POST",
                f"{web}/redox/webhook/",
                body=order,
                headers={**https, "Content-Type": "application/json", "verification-token": TOKEN},
            )
            assert status == 200, body[:500]

            output = manage("shell", "-c", NOTE_SCRIPT)
            delivery_id = int(re.search(r"delivery (\d+)", output).group(1))

            def delivery_status():
                with server_connection(dbname) as conn, conn.cursor() as cur:
                    cur.execute("SELECT status, redox_log_id FROM orders_delivery WHERE id = %s", [delivery_id])
                    row = cur.fetchone()
                conn.close()
                return row if row and row[0] in ("sent", "failed", "abandoned") else None

            status, log_id = wait_until("the worker to deliver the note", delivery_status, processes)
            assert status == "sent", processes.tails()
            assert log_id

            _, _, received = http("GET", f"{sandbox}/_sandbox/messages")
            assert len(json.loads(received)) == 1

            # The worker emits the usage report when it starts, then hourly: no process of its own.
            assert set(lines) == {"web", "worker"}
            wait_until(
                "the worker's usage report",
                lambda: re.search(r'"event":\s*"usage\.weekly"', (logs / "worker.log").read_text(errors="replace")),
                processes,
            )

            # A deploy or restart sends SIGTERM: each stops cleanly, gunicorn with 0.
            assert processes.terminate("web") == 0, processes.tail("web")
            assert processes.terminate("worker") == 0, processes.tail("worker")

            # Everything either process printed, start-up and shut-down included, is a JSON
            # log line: gunicorn's own lines and the worker's start and stop among them, not dropped.
            web_records, web_strays = log_records(logs / "web.log")
            assert not web_strays, "web printed lines that are not JSON log objects:\n" + "\n".join(web_strays[:20])
            worker_records, worker_strays = log_records(logs / "worker.log")
            assert not worker_strays, "worker printed lines that are not JSON log objects:\n" + "\n".join(
                worker_strays[:20]
            )
            web_loggers = {record["logger.name"] for record in web_records}
            assert "gunicorn.error" in web_loggers, processes.tail("web")
            # gunicorn's access log stays off unless GUNICORN_ACCESS_LOG says otherwise.
            assert "gunicorn.access" not in web_loggers, processes.tail("web")
            worker_events = [record.get("event") for record in worker_records]
            assert worker_events.count("worker.started") == 1, processes.tail("worker")
            assert worker_events[-1] == "worker.stopped", processes.tail("worker")
        finally:
            processes.stop_all()
