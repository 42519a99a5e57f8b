"""What README.md, docs/runbook.md and the webhook's docstring claim is what the code and config do.

Each test reads the claim and the code (or runs the code) it describes, so a change to
either side that makes them disagree fails here instead of misleading the next reader.
"""

import ast
import json
import re
from pathlib import Path
from unittest import mock

import pytest
import requests
import yaml

from orders import notes, webhook
from orders.models import AuditEvent, ClinicalNote, Delivery
from redox.errors import PERMANENT_STATUSES, error_from_response
from tests.conftest import sample_bytes
from tests.factories import OrderFactory

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
RUNBOOK = (ROOT / "docs" / "runbook.md").read_text(encoding="utf-8")


def flat(text):
    return " ".join(text.split())


def section(markdown, heading):
    """The text under `heading` up to the next heading of any level."""
    start = markdown.index(heading)
    following = re.search(r"^#{1,6} ", markdown[start + len(heading) :], flags=re.MULTILINE)
    return markdown[start : start + len(heading) + (following.start() if following else len(markdown))]


# --- README: when the delivery is created -------------------------------------


@pytest.mark.django_db
def test_the_delivery_is_created_at_send_with_the_send_audit_record_not_with_the_note(uploader, partner):
    assert (
        "Send creates the `Delivery` row in one transaction with the order's new state and the Send audit record"
        in flat(README)
    )
    assert "same transaction as the note" not in flat(README)

    order = OrderFactory(partner=partner)
    content = sample_bytes("clinical-note.pdf")
    note = notes.note_upload(order=order, file_name="note.pdf", content=content, page_count=1, user=uploader)
    assert ClinicalNote.objects.filter(pk=note.pk).exists()
    assert not Delivery.objects.exists()  # the upload creates none

    # The Send audit record failing takes the delivery (and the state change) with it.
    failing_audit = mock.patch("orders.notes.audit_record", side_effect=RuntimeError("audit store down"))
    with failing_audit, pytest.raises(RuntimeError, match="audit store down"):
        notes.note_send(note=note, user=uploader)
    assert not Delivery.objects.exists()
    order.refresh_from_db()
    assert order.state == order.State.AWAITING_NOTE

    delivery = notes.note_send(note=note, user=uploader)
    sent = AuditEvent.objects.get(action=AuditEvent.Action.SEND_NOTE)
    assert (sent.object_type, sent.object_id) == ("delivery", str(delivery.pk))


# --- README / runbook: CircleCI runs what `make test` runs ---------------------


def make_prerequisites(target):
    match = re.search(rf"^{re.escape(target)}:([^\n]*)$", (ROOT / "Makefile").read_text(), flags=re.MULTILINE)
    assert match, f"the Makefile has no `{target}` target"
    return match.group(1).split()


def circleci_commands():
    config = yaml.safe_load((ROOT / ".circleci" / "config.yml").read_text())
    steps = [step for job in config["jobs"].values() for step in job["steps"]]
    steps += [step for command in config.get("commands", {}).values() for step in command["steps"]]
    return [step["run"]["command"].strip() for step in steps if isinstance(step, dict) and "run" in step]


def test_circleci_runs_the_makefile_targets_that_make_test_runs():
    commands = circleci_commands()
    # No check is spelled out a second time in CI, where it could drift from the Makefile.
    for command in commands:
        for tool in ("pytest", "ruff", "manage.py", "check-jsonschema", "pip install"):
            assert tool not in command or command.startswith("make "), f"CI runs {tool} itself: {command!r}"
    targets = {word for command in commands if command.startswith("make ") for word in command.split()[1:]}
    assert set(make_prerequisites("test")) == {"lint", "checks", "pytest"}
    assert {"lint", "checks", "pytest", "browser-tests"} <= targets
    # The one deliberate split: CI's `tests` job leaves the browser tests to `browser-tests`.
    assert "make pytest PYTEST_ARGS='-m \"not browser\"'" in commands
    assert "make browser-tests" in commands
    claim = flat(README)
    assert (
        "CircleCI runs the same targets (`make lint checks`; `make pytest` without the browser tests;"
        " `make browser-tests` in an image with Chromium)" in claim
    )


# --- runbook: which Redox answers are permanent --------------------------------


def statuses_in(sentence):
    return {int(code) for code in re.findall(r"\b([1-5]\d\d)\b", sentence)}


def classify(status):
    response = requests.Response()
    response.status_code = status
    response._content = b"{}"
    return error_from_response(response, "test").retryable


def test_the_runbook_lists_the_permanent_and_transient_statuses_the_client_applies():
    text = flat(section(RUNBOOK, "### Retrying or abandoning deliveries"))
    transient = text.split("A delivery retries transient failures", 1)[1].split("A permanent error", 1)[0]
    permanent = text.split("A permanent error fails it at once", 1)[1].split(")", 1)[0]

    assert statuses_in(permanent) == set(PERMANENT_STATUSES)
    assert all(classify(status) is False for status in statuses_in(permanent))
    assert "any other 4xx" in permanent
    assert all(classify(status) is False for status in (405, 409, 422))  # "any other 4xx"

    assert statuses_in(transient) == {408, 429, 401}
    assert all(classify(status) is True for status in (401, 408, 429, 500, 502, 503, 504))
    assert "5xx" in transient and "timeouts" in transient and "connection errors" in transient
    assert "re-authenticated once" in transient


# --- runbook: what each monitor matches ------------------------------------------


def monitors():
    for path in sorted((ROOT / "ops" / "datadog" / "monitors").glob("*.json")):
        yield json.loads(path.read_text())


@pytest.mark.parametrize("monitor", list(monitors()), ids=lambda monitor: monitor["name"])
def test_the_runbook_describes_what_each_monitor_query_matches(monitor):
    title = monitor["name"].split("] ", 1)[1]
    rows = [line for line in RUNBOOK.splitlines() if line.startswith(f"| **{title}** |")]
    assert len(rows) == 1, f"docs/runbook.md's monitor table has no row for {title!r}"
    fires_when = rows[0].split("|")[2]
    search = re.match(r'logs\("([^"]+)"\)', monitor["query"]).group(1)
    for excluded in re.findall(r"-@event:([\w.]+)", search):
        assert f"except `{excluded}`" in fires_when or f"and `{excluded}`" in fires_when, excluded
    for event in re.findall(r"(?<!-)@event:([\w.]+)", search):
        assert f"`{event}`" in fires_when, event
    if "status:error" in search:
        assert "status `error`" in fires_when and "CRITICAL" in fires_when
    window = re.search(r'\.last\("(\d+)m"\)', monitor["query"])
    if window:
        assert f"{window.group(1)} minutes" in fires_when


def test_the_monitor_table_has_a_row_per_monitor_and_no_more():
    titles = {monitor["name"].split("] ", 1)[1] for monitor in monitors()}
    table = section(RUNBOOK, "### Reading the Datadog monitors")
    rows = set(re.findall(r"^\| \*\*(.+?)\*\* \|", table, flags=re.MULTILINE))
    assert rows == titles


# --- runbook: what --test / --production do ---------------------------------------


def test_the_runbook_says_what_test_and_production_mean_and_the_code_does_it():
    text = flat(section(RUNBOOK, "### 4.1 The QA/UAT destination (staging)"))
    assert "HCOINT compares it with every message's `Meta.Test`" in text
    assert "`message.environment_mismatch`" in text
    ingest = (ROOT / "orders" / "ingest.py").read_text()
    assert '"message.environment_mismatch"' in ingest and "environment_mismatch(meta.is_test)" in ingest


# --- the webhook's docstring: the statuses it answers with -------------------------


def test_the_webhook_docstring_names_exactly_the_statuses_the_view_returns():
    source = (ROOT / "orders" / "webhook.py").read_text()
    documented = {int(code) for code in re.findall(r"^- (\d{3}):", webhook.__doc__, flags=re.MULTILINE)}
    returned = {200}  # _text's default
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.keyword) and node.arg == "status" and isinstance(node.value, ast.Constant):
            returned.add(node.value.value)
    if "require_http_methods" in source:
        returned.add(405)
    assert documented == returned
