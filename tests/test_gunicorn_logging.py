"""gunicorn's own log lines take the app's format and PHI filter, with the access log off by default.

gunicorn logs from its master process, where Django never configures logging, so
gunicorn.conf.py hands it the app's LOGGING (hcoint.logging.gunicorn_logconfig). Each test
loads gunicorn.conf.py the way gunicorn does, in a fresh interpreter with production-like
settings, and logs through gunicorn's own Logger. (tests/test_procfile_smoke.py checks the
same of the real processes, on PostgreSQL.)
"""

import json
import os
from pathlib import Path

from tests.processes import run_python

ROOT = Path(__file__).resolve().parent.parent
PATIENT = "Samplepatient"

SCRIPT = f"""
import datetime
import runpy
import types

from gunicorn.config import Config
from gunicorn.glogging import Logger

# What gunicorn does with --config: every module-level name that is a setting.
cfg = Config()
for name, value in runpy.run_path("gunicorn.conf.py").items():
    if name in cfg.settings:
        cfg.set(name, value)
log = Logger(cfg)

log.info("Booting worker with pid: %s", 4242)
try:
    raise ValueError("bad value {PATIENT}")
except ValueError:
    log.exception("Error handling request /?q={PATIENT}")
response = types.SimpleNamespace(status="200 OK", sent=512, headers=[])
environ = {{
    "REQUEST_METHOD": "GET",
    "RAW_URI": "/?q={PATIENT}",
    "PATH_INFO": "/",
    "QUERY_STRING": "q={PATIENT}",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "10.0.0.1",
}}
log.access(response, [], environ, datetime.timedelta(milliseconds=15))
"""


def run_gunicorn_logger(**env):
    environment = {key: value for key, value in os.environ.items() if not key.startswith("GUNICORN_")}
    environment.update(DEBUG="false", LOG_FORMAT="json", DD_SERVICE="hcoint", **env)
    return run_python(SCRIPT, env=environment, timeout=60)


def json_records(text):
    """Every line as a JSON object with Datadog's standard fields; fails on any other line."""
    records = []
    for line in text.splitlines():
        record = json.loads(line)
        assert isinstance(record, dict), line
        assert {"timestamp", "level", "message", "logger.name"} <= record.keys(), line
        records.append(record)
    return records


def test_gunicorn_lines_are_json_on_stdout_and_carry_no_patient_data():
    result = run_gunicorn_logger()

    assert result.stderr == ""
    assert PATIENT not in result.stdout
    records = json_records(result.stdout)
    booting, error = records
    assert booting["logger.name"] == "gunicorn.error"
    assert booting["level"] == "INFO"
    assert booting["message"] == "Booting worker with pid: 4242"
    assert booting["dd.service"] == "hcoint"
    assert error["level"] == "ERROR"
    assert error["message"] == "Error handling request /?[query withheld]"
    assert error["error.kind"] == "ValueError"


def test_gunicorn_access_log_is_off_unless_asked_for():
    quiet = json_records(run_gunicorn_logger().stdout)
    assert all(record["logger.name"] != "gunicorn.access" for record in quiet)

    result = run_gunicorn_logger(GUNICORN_ACCESS_LOG="true")
    assert result.stderr == ""
    assert PATIENT not in result.stdout
    access = [record for record in json_records(result.stdout) if record["logger.name"] == "gunicorn.access"]
    assert [record["message"] for record in access] == ['10.0.0.1 "GET /" 200 512 15ms']
