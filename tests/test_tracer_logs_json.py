"""With tracing on and no Datadog agent reachable, the `web` process still prints JSON only.

ddtrace gives its `ddtrace` logger a plain stderr handler of its own, so each failed flush
to a missing agent ("failed to send, dropping N traces to intake ...") used to reach
Aptible's log drain as a plain line beside the JSON one. Here the Procfile's `web` line
runs as written, with the image's environment (Dockerfile ENV) and production settings,
tracing on and the agent pointed at a closed port, from the build context with the
Dockerfile's collectstatic step run; after a few requests and a failed
flush, every line it printed on stdout or stderr, start-up and shut-down included, must be
a JSON log object.

The processes, ports and log parsing are the Procfile smoke test's (tests/test_procfile_smoke.py).
"""

import pytest
from django.db import connection

from tests.drill_support import database_url
from tests.test_procfile_smoke import (
    HOST,
    Processes,
    app_env,
    build_image,
    free_ports,
    http,
    log_records,
    procfile,
    wait_until,
)

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="the web process runs on PostgreSQL, as on Aptible; set DATABASE_URL to run it",
)

FLUSH_FAILURE = "failed to send, dropping"


def test_web_line_prints_only_json_when_the_agent_is_unreachable(tmp_path, db):
    (web_port, closed_port) = free_ports(2)  # nothing listens on the second: the "agent"
    web = f"http://127.0.0.1:{web_port}"
    app = tmp_path / "app"
    _, image_env = build_image(app, home=tmp_path)
    env = {
        # The test database: its tables exist, committed before this test began.
        **app_env(image_env, port=web_port, database_url=database_url(connection.settings_dict)),
        "DD_ENV": "smoke",
        "DD_TRACE_ENABLED": "true",
        "DD_TRACE_AGENT_URL": f"http://127.0.0.1:{closed_port}",
        "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false",
        "DD_DOGSTATSD_DISABLE": "true",
    }
    processes = Processes(tmp_path)
    try:
        processes.start("web", ["/bin/sh", "-c", procfile()["web"].strip()], cwd=app, env=env)
        wait_until(
            "the web process to answer the health check",
            lambda: http("GET", f"{web}/healthcheck", headers={"Host": "containers"})[0] == 200,
            processes,
        )
        https = {"Host": HOST, "X-Forwarded-Proto": "https"}
        for _ in range(3):
            assert http("GET", f"{web}/accounts/login/", headers=https)[0] == 200
            assert http("GET", f"{web}/?q=Samplepatient", headers=https)[0] == 302

        # The tracer flushes about once a second; wait until a flush has failed.
        wait_until("the tracer to fail a flush", lambda: FLUSH_FAILURE in processes.tail("web", 200), processes)
        assert processes.terminate("web") == 0, processes.tail("web")
    finally:
        processes.stop_all()

    records, strays = log_records(tmp_path / "web.log")
    assert not strays, "web printed lines that are not JSON log objects:\n" + "\n".join(strays[:20])
    failures = [record for record in records if record["message"].startswith(FLUSH_FAILURE)]
    assert failures, processes.tail("web")
    assert all(record["logger.name"].startswith("ddtrace.") for record in failures)
    assert all(record["level"] == "ERROR" for record in failures)
    assert "Samplepatient" not in (tmp_path / "web.log").read_text()
