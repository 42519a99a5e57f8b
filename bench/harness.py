"""What `make bench` needs around the app: PostgreSQL, gunicorn as the Procfile runs it, an
HTTP client with a session, percentiles and peak memory. Not a test; loopback only.
"""

import base64
import contextlib
import glob
import hashlib
import hmac
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import psycopg2
from psycopg2 import sql

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SECRET_KEY = "bench-secret-key-not-a-secret-0123456789abcdefghijklmnop"  # noqa: S105
# A throwaway key: the benchmarks pay for encryption at rest as production does
# (BENCH_FIELD_ENCRYPTION_KEYS overrides it, e.g. to compare two keys' runs).
FIELD_ENCRYPTION_KEYS = os.environ.get("BENCH_FIELD_ENCRYPTION_KEYS", "W8g0Xh9pJzYbq3l1a6l8n8o2QmYz2c6tKx4rGv7dZ1E=")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Postgres:
    """The server DATABASE_URL names, else 127.0.0.1:5432, else a private throwaway cluster."""

    def __init__(self):
        self.cluster = None
        url = os.environ.get("DATABASE_URL", "")
        if url.startswith("postgres"):
            self.base = url
        elif self._reachable("postgres://postgres@127.0.0.1:5432/postgres"):
            self.base = "postgres://postgres@127.0.0.1:5432/postgres"
        else:
            self.base = self._start_cluster()

    @staticmethod
    def _reachable(url):
        try:
            psycopg2.connect(url, connect_timeout=2).close()
            return True
        except psycopg2.Error:
            return False

    def _start_cluster(self):
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
        initdb = found[-1] if found else shutil.which("initdb")
        if not initdb:
            raise SystemExit("make bench needs PostgreSQL: set DATABASE_URL, run one on 127.0.0.1:5432, or install it")
        bindir = Path(initdb).parent
        self.cluster = Path(tempfile.mkdtemp(prefix="hcoint-bench-pg-"))
        port = free_port()
        data = self.cluster / "data"
        subprocess.run(
            [bindir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"],
            check=True,
            capture_output=True,
        )
        options = f"-p {port} -k {self.cluster} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            [bindir / "pg_ctl", "-D", data, "-o", options, "-l", self.cluster / "log", "-w", "start"],
            check=True,
            capture_output=True,
        )
        self.pg_ctl = bindir / "pg_ctl"
        return f"postgres://postgres@127.0.0.1:{port}/postgres"

    @staticmethod
    def name(name):
        # BENCH_DB_SUFFIX keeps the databases of runs from two checkouts on one server apart:
        # each run drops and recreates its own (WITH (FORCE) ends the other run's connections).
        return name + os.environ.get("BENCH_DB_SUFFIX", "")

    def url(self, name):
        parts = urlsplit(self.base)
        return parts._replace(path=f"/{self.name(name)}").geturl()

    def recreate(self, name):
        conn = psycopg2.connect(self.base)
        conn.autocommit = True
        database = sql.Identifier(self.name(name))
        with conn.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(database))
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(database))
        conn.close()
        return self.url(name)

    def drop(self, name):
        conn = psycopg2.connect(self.base)
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name(name))))
        conn.close()

    def stop(self):
        if self.cluster:
            subprocess.run([self.pg_ctl, "-D", self.cluster / "data", "-m", "immediate", "stop"], capture_output=True)
            shutil.rmtree(self.cluster, ignore_errors=True)


def image_tracer_env(dockerfile=ROOT / "Dockerfile"):
    """The DD_* values the image sets (the Dockerfile's ENV lines), which ddtrace-run reads in production."""
    return dict(re.findall(r"^\s*(?:ENV\s+)?(DD_[A-Z0-9_]+)=(\S+)", dockerfile.read_text(), re.MULTILINE))


def app_env(database_url, **extra):
    """Production settings (DEBUG off, JSON logs, the image's tracer settings, tracing on with
    no agent) on loopback. The anchor gets the same, so both sides pay the same tracer."""
    env = {
        **image_tracer_env(),
        "PATH": f"{Path(PYTHON).parent}:{os.environ.get('PATH', '')}",
        "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108
        "DEBUG": "false",
        "SECRET_KEY": SECRET_KEY,
        "FIELD_ENCRYPTION_KEYS": FIELD_ENCRYPTION_KEYS,
        "DATABASE_URL": database_url,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "PROXY_COUNT": "0",
        # Production runs ddtrace-run with tracing on; no agent listens here, so spans are dropped.
        "DD_TRACE_ENABLED": "true",
        "DD_TRACE_AGENT_URL": f"http://127.0.0.1:{free_port()}",
        "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false",
        "DD_REMOTE_CONFIGURATION_ENABLED": "false",
        "DD_DOGSTATSD_DISABLE": "true",
        "REDOX_API_KEY": "bench",
        "REDOX_API_SECRET": "bench",
    }
    env.update({key: str(value) for key, value in extra.items()})
    return env


def manage(env, *args):
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True)


def procfile_command(name, procfile=ROOT / "Procfile"):
    for line in procfile.read_text().splitlines():
        if line.startswith(f"{name}:"):
            words = shlex.split(line.split(":", 1)[1])
            return words[1:] if words[0] == "exec" else words
    raise SystemExit(f"no {name}: line in {procfile}")


class Server:
    """A process started from a command line, its output in a log file, stopped with SIGTERM."""

    def __init__(self, args, env, *, cwd=ROOT, log_name="server"):
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (open while the server runs)
            prefix=f"hcoint-bench-{log_name}-", suffix=".log", delete=False
        )
        self.process = subprocess.Popen(args, cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def children(self):
        """Process ids of the server's worker processes (gunicorn's workers), else its own."""
        try:
            found = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        except OSError:
            found = []
        return [int(pid) for pid in found] or [self.process.pid]

    def wait_http(self, port, path="/healthcheck", timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"server exited; see {self.log.name}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", path)
                conn.getresponse().read()
                return
            except OSError:
                time.sleep(0.2)
        raise SystemExit(f"server did not answer on {port}; see {self.log.name}")

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def gunicorn(env, port, procfile=ROOT / "Procfile", cwd=ROOT):
    """The Procfile's web line, bound to loopback (the command line wins over gunicorn.conf.py)."""
    server = Server([*procfile_command("web", procfile), "--bind", f"127.0.0.1:{port}"], env, cwd=cwd, log_name="web")
    server.wait_http(port)
    return server


class Session:
    """One keep-alive connection with cookies, as a browser tab."""

    def __init__(self, port):
        self.port = port
        self.cookies = {}
        self.last_location = ""
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def request(self, method, path, body=None, headers=None):
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                content = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                if attempt:
                    raise
        self.last_location = response.getheader("Location") or ""
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
        return response.status, content

    def get(self, path, params=None):
        return self.request("GET", f"{path}?{urlencode(params)}" if params else path)

    def sign_in(self, username, password):
        """Password, then the authenticator code (seed.py enrols every bench user in TOTP), as
        production asks with MFA_REQUIRED on."""
        self._post_form("/accounts/login/", {"username": username, "password": password})
        if "/2fa/" in self.last_location:
            self._post_form(self.last_location, {"code": totp_code(TOTP_SECRET)})
        if "/2fa/" in self.last_location or "/login" in self.last_location:
            raise SystemExit(f"sign-in failed: sent to {self.last_location}")

    def _post_form(self, path, fields):
        status, page = self.get(path)
        found = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        if not found:
            raise SystemExit(f"no form at {path} ({status}): {page[:300]!r}")
        body = urlencode({**fields, "csrfmiddlewaretoken": found.group(1).decode()})
        status, _ = self.request("POST", path, body, {"Content-Type": "application/x-www-form-urlencoded"})
        if status != 302:
            raise SystemExit(f"{path} answered {status}, not a redirect")

    def csrf(self, path):
        _, page = self.get(path)
        return re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()


# The bench users' authenticator secret (seed.py enrols them; base32, as allauth stores it).
TOTP_SECRET = "BENCHBENCHBENCHBENCHBENCHBENCH23"


def totp_code(secret, now=None):
    """The current six-digit TOTP code (RFC 6238: HMAC-SHA1, 30 s steps), as an authenticator app shows it.

    Here rather than allauth's: this harness signs in over HTTP from bench.py's own
    process, which never sets Django up, and allauth's TOTP module imports its models.
    """
    counter = int(time.time() if now is None else now) // 30
    digest = hmac.new(base64.b32decode(secret), struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    return f"{(struct.unpack('>I', digest[offset : offset + 4])[0] & 0x7FFFFFFF) % 1_000_000:06d}"


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return None
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def rss_kib(pid):
    """(current RSS, peak RSS) of a process in KiB, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    values = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.MULTILINE))
    return int(values["VmRSS"]), int(values["VmHWM"])


def reset_peak(pid):
    """Start a new peak-RSS measurement (Linux 4.0+: writing 5 to clear_refs resets VmHWM)."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def dump(path, data):
    Path(path).write_text(json.dumps(data, indent=2, default=str) + "\n")
