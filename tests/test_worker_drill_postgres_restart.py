"""Drill: restart PostgreSQL under a running worker. It keeps running, reconnects, and delivers
every note exactly once, before and after the restart.

The database restarted is a private throwaway cluster started here (never the machine's
shared server), migrated like a deploy would; the worker and the staff steps run as separate
processes against it, as on Aptible. Run by `make test` on PostgreSQL and by `make drills`.
"""

import os
import shutil
import sys
import time

import psycopg2
import pytest

from tests.drill_support import (
    PrivateCluster,
    Process,
    accepted_refs,
    postgres_bin,
    requires_postgresql,
    sandbox,
    start_worker,
    wait_for,
    worker_env,
)

BINDIR = postgres_bin()

pytestmark = [
    pytest.mark.drill,
    requires_postgresql,
    pytest.mark.skipif(
        BINDIR is None, reason="needs PostgreSQL's server binaries (initdb, pg_ctl) to run a private cluster"
    ),
    pytest.mark.skipif(
        os.geteuid() == 0 and shutil.which("runuser") is None,
        reason="as root, the private cluster runs as user postgres through runuser, which is missing",
    ),
]

SETUP = """
from tests.factories import OrderFactory, PartnerFactory, UserFactory
partner = PartnerFactory(name="Drill Health", token="drill-partner-token-0123456789abcdef")
UserFactory(username="drill-uploader", uploader=True)
for number in ("drill-1", "drill-2"):
    OrderFactory(partner=partner, ehr_order_id=number)
"""

# What the Send button does (orders/notes.py), delivery NOTIFY included.
SEND = """
from pathlib import Path
from django.contrib.auth.models import User
from orders.models import Order
from orders.notes import note_send, note_upload
user = User.objects.get(username="drill-uploader")
order = Order.objects.get(ehr_order_id={ehr_order_id!r})
content = Path("redox/samples/clinical-note.pdf").read_bytes()
note = note_upload(order=order, file_name="note.pdf", content=content, page_count=1, user=user)
print("delivery", note_send(note=note, user=user).pk)
"""


def manage(name, env, log_dir, *args, timeout=120):
    process = Process(name, [sys.executable, "manage.py", *args], env=env, log_dir=log_dir)
    try:
        process.popen.wait(timeout)
    finally:
        process.stop()
    assert process.returncode == 0, process.tail()
    return process.output()


def send_note(env, log_dir, ehr_order_id):
    return manage(f"send-{ehr_order_id}", env, log_dir, "shell", "-c", SEND.format(ehr_order_id=ehr_order_id))


def sent_deliveries(url):
    """How many deliveries the database holds as sent: committed, not just posted to Redox."""
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM orders_delivery WHERE status = 'sent'")
        return cursor.fetchone()[0]


def test_the_worker_survives_a_postgresql_restart_and_keeps_delivering(tmp_path):
    cluster = PrivateCluster(BINDIR)
    worker = None
    try:
        cluster.init()
        cluster.start()
        url = cluster.create_database("hcoint_drill")
        with sandbox() as redox:
            env = worker_env(url, redox)
            manage("migrate", env, tmp_path, "migrate", "--no-input", timeout=180)
            manage("setup", env, tmp_path, "shell", "-c", SETUP)

            worker = start_worker("worker", env, tmp_path)
            send_note(env, tmp_path, "drill-1")
            # Recorded as sent, not only received by Redox: stopping the database between the
            # two would (rightly) send it again once its lease ran out, which is another drill.
            wait_for(
                "the first note to be recorded as sent", lambda: sent_deliveries(url) == 1, timeout=30, alive=[worker]
            )
            assert len(accepted_refs(redox)) == 1

            cluster.stop()
            time.sleep(3)  # the worker meets a database that is gone, several times over
            cluster.start()

            send_note(env, tmp_path, "drill-2")
            wait_for(
                "the second note to be delivered", lambda: len(accepted_refs(redox)) == 2, timeout=45, alive=[worker]
            )
            time.sleep(2)  # long enough for a duplicate to show up, if there were one

            assert worker.poll() is None, worker.tail()
            refs = accepted_refs(redox)
            assert len(refs) == len(set(refs)) == 2, f"each note exactly once: {refs}"
            output = worker.output()
            assert "worker.db_unavailable" in output, worker.tail()
            assert "worker.db_recovered" in output, worker.tail()
            assert worker.terminate() == 0, worker.tail()
    finally:
        if worker is not None:
            worker.stop()
        cluster.destroy()
