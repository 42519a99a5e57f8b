"""Support for the worker drills (tests marked `drill`, run by `make test` on PostgreSQL and by `make drills`).

A drill does to a real `manage.py deliver` process what operations would: kill it mid-send,
restart its database. Every process started here is stopped by its own id, every wait is bounded.
"""

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager, suppress
from pathlib import Path

import psycopg2
import pytest
from django.db import connection

from redox.sandbox.server import SandboxHandler
from tests.sandbox_server import base_url, start_in_thread

ROOT = Path(__file__).resolve().parent.parent

requires_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="worker drills run against PostgreSQL (SKIP LOCKED, LISTEN/NOTIFY, restarts); set DATABASE_URL to run them",
)


def wait_for(what, condition, *, timeout, every=0.2, alive=()):
    """Poll `condition` until it is truthy; fail after `timeout` seconds or if a watched process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in alive:
            if process.poll() is not None:
                pytest.fail(
                    f"{process.name} exited with {process.returncode} while waiting for {what}\n{process.tail()}"
                )
        result = condition()
        if result:
            return result
        time.sleep(every)
    pytest.fail(f"timed out after {timeout} s waiting for {what}\n" + "\n".join(p.tail() for p in alive))


class Process:
    """A child process with its output in a file, in its own session, stopped by its own id."""

    def __init__(self, name, args, *, env, log_dir, cwd=ROOT):
        self.name = name
        self.log_path = Path(log_dir) / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.popen = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.pid = self.popen.pid

    @property
    def returncode(self):
        return self.popen.returncode

    def poll(self):
        return self.popen.poll()

    def output(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines=40):
        return f"--- {self.name} ---\n" + "\n".join(self.output().splitlines()[-lines:])

    def kill_hard(self):
        """SIGKILL, as the OOM killer or a lost host would: no handler, no cleanup."""
        os.kill(self.pid, signal.SIGKILL)
        return self.popen.wait(10)

    def terminate(self, timeout=20):
        """SIGTERM, as a deploy sends it; the exit code, or None if it did not stop in time."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        if self.popen.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait(10)
        self._log.close()


def worker_env(database_url, sandbox, **overrides):
    """The environment of a `manage.py deliver` process: this run's settings, a short lease."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DEBUG": "false",
        "LOG_FORMAT": "plain",
        "REDOX_API_BASE_URL": base_url(sandbox),
        "REDOX_UPLOAD_URL": f"{base_url(sandbox)}/upload",
        "REDOX_API_KEY": "sandbox-api-key",
        "REDOX_API_SECRET": "sandbox-api-secret",
        # A drill's lease is seconds, not a minute, so it ends in seconds; same mechanism.
        "DELIVERY_LEASE_SECONDS": "3",
        "DELIVERY_LEASE_RENEW_SECONDS": "1",
        "DELIVERY_IDLE_POLL_SECONDS": "1",
    }
    env.update(overrides)
    return env


def start_worker(name, env, log_dir):
    return Process(name, [sys.executable, "manage.py", "deliver"], env=env, log_dir=log_dir)


def database_url(settings_dict, name=None):
    user = settings_dict["USER"] or "postgres"
    if settings_dict["PASSWORD"]:
        user += f":{settings_dict['PASSWORD']}"
    host = settings_dict["HOST"] or "127.0.0.1"
    port = settings_dict["PORT"] or 5432
    return f"postgres://{user}@{host}:{port}/{name or settings_dict['NAME']}"


class HoldingHandler(SandboxHandler):
    """The sandbox, except that the first /endpoint call is held until the drill releases it.

    The held call has its whole body: released, it is accepted and recorded like any other,
    which is what Redox does with a request whose sender died waiting for the answer.
    """

    def endpoint(self, body):
        server = self.server
        with server.hold_lock:
            hold = not server.held.is_set()
            server.held.set()
        if hold:
            server.release.wait(60)
        # The sender may be gone; the message is recorded before the answer is written.
        with suppress(OSError):
            super().endpoint(body)


@contextmanager
def sandbox(*, hold_first_send=False):
    """The local Redox sandbox on a free port, in this process; optionally holding the first send."""
    server = start_in_thread(port=0)
    server.held = threading.Event()
    server.release = threading.Event()
    server.hold_lock = threading.Lock()
    if hold_first_send:
        server.RequestHandlerClass = HoldingHandler
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


def accepted_refs(server):
    return [m.delivery_ref for m in server.state.messages() if m.outcome == "accepted"]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def postgres_bin():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


class PrivateCluster:
    """A throwaway PostgreSQL server in a temporary directory, so a drill can restart *a*
    database without touching the machine's shared one. PostgreSQL refuses to run as root,
    so as root the server runs as the `postgres` user (runuser)."""

    def __init__(self, bindir):
        self.bindir = bindir
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="hcoint-drill-pg-"))
        self.data = self.dir / "data"
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")

    def _run(self, *args, timeout=60):
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=True, capture_output=True, timeout=timeout)

    def init(self):
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")

    def start(self):
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "server.log"), "-w", "start")

    def stop(self, mode="fast"):
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def create_database(self, name):
        admin = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        admin.autocommit = True
        try:
            with admin.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            admin.close()
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def destroy(self):
        with suppress(subprocess.SubprocessError, OSError):
            self.stop(mode="immediate")
        shutil.rmtree(self.dir, ignore_errors=True)
