"""datadog_sync: the monitors and dashboard in ops/datadog/ are valid, match what the code logs,
and are created or updated in Datadog by name."""

import ast
import json
import re
from pathlib import Path

import pytest
import responses
from django.core.management import call_command
from django.core.management.base import CommandError

from orders.management.commands.datadog_sync import LOG_QUERY, OPS_DIR, load_all, load_variables

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIRS = ("hcoint", "orders", "redox")
# Attributes every JSON log line has, written by hcoint.logging's JSON formatter.
FORMATTER_FIELDS = {"event", "level", "message", "logger.name", "request_id", "error.kind", "error.message"}
API = "https://api.datadoghq.com"
EVENT_NAME = re.compile(r"^[a-z]+(\.[a-z_]+)+$")


def source_trees():
    for folder in SOURCE_DIRS:
        for path in (ROOT / folder).rglob("*.py"):
            if "migrations" not in path.parts:
                yield path, ast.parse(path.read_text(encoding="utf-8"))


def call_name(node):
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def first_string(args, index):
    if len(args) > index and isinstance(args[index], ast.Constant) and isinstance(args[index].value, str):
        return args[index].value
    return None


@pytest.fixture(scope="module")
def emitted():
    """What the code really emits: event names and fields of log_event calls, gauges, span names."""
    found = {"events": set(), "fields": set(FORMATTER_FIELDS), "gauges": set(), "spans": set()}
    for _, tree in source_trees():
        dynamic = False
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = call_name(node)
            # orders.delivery._log and orders.confirm._log wrap log_event (orders/delivery_log.py).
            if name in ("log_event", "_log"):
                event = first_string(node.args, 1)
                if event:
                    found["events"].add(event)
                elif len(node.args) > 1:
                    dynamic = True
                found["fields"].update(keyword.arg for keyword in node.keywords if keyword.arg)
            elif name == "gauge" and first_string(node.args, 0):
                found["gauges"].add("hcoint." + first_string(node.args, 0))
            elif name == "span" and first_string(node.args, 0):
                found["spans"].add(first_string(node.args, 0))
        if dynamic:
            # A module that logs an event held in a variable (orders.ingest logs, after
            # commit, the "order.created" etc. that orders.order_apply collects) spells the
            # names as constants, in itself or in a project module it imports from.
            for scanned in (tree, *imported_project_trees(tree)):
                found["events"].update(
                    node.value
                    for node in ast.walk(scanned)
                    if isinstance(node, ast.Constant) and isinstance(node.value, str) and EVENT_NAME.match(node.value)
                )
    return found


def imported_project_trees(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in SOURCE_DIRS:
            path = ROOT / (node.module.replace(".", "/") + ".py")
            if path.exists():
                yield ast.parse(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def definitions():
    monitors, dashboards, errors = load_all(OPS_DIR, load_variables({}))
    assert errors == []
    return monitors, dashboards


def searches(monitors, dashboards):
    for monitor in monitors:
        match = LOG_QUERY.match(monitor["query"])
        yield monitor["name"], match.group("search"), match.group("by")
    for dashboard in dashboards:
        yield from dashboard_searches(dashboard["widgets"])


def dashboard_searches(widgets):
    for widget in widgets:
        definition = widget["definition"]
        if definition["type"] == "group":
            yield from dashboard_searches(definition["widgets"])
        for request in definition.get("requests", []):
            for query in request.get("queries", []):
                if query["data_source"] == "logs":
                    facets = [group["facet"] for group in query.get("group_by", [])]
                    facets.append(query["compute"].get("metric"))
                    for facet in filter(None, facets):
                        yield definition.get("title"), query["search"]["query"], facet
                    yield definition.get("title"), query["search"]["query"], None


def test_every_definition_validates(definitions):
    monitors, _ = definitions
    assert len(monitors) == len(list((OPS_DIR / "monitors").glob("*.json")))
    out = []
    call_command("datadog_sync", stdout=_Collect(out))
    assert f"Validated {len(monitors)} monitor(s) and 1 dashboard(s)" in "".join(out)


def test_there_is_a_monitor_for_each_alert_ops_needs(definitions):
    monitors, _ = definitions
    queries = " ".join(monitor["query"] for monitor in monitors)
    for needed in (
        "status:error",  # (a) any ERROR log
        "@event:delivery.failed",  # (b)
        "@event:message.failed",  # (c)
        "@event:webhook.auth_failed",  # (d)
        "@event:message.received",  # (e) no inbound traffic
        "@event:usage.backlog @oldest_awaiting_days:",  # (f) orders awaiting a note
        "@event:delivery.retry_scheduled @age_minutes:>=60",  # (g) still retrying after an hour
        "@event:auth.throttled",  # (h) sign-in spraying
        "@event:webhook.throttled",  # (i) wrong-token webhook floods
        "@event:message.environment_mismatch",  # (j) Meta.Test contradicts the partner's is_production
        "@event:delivery.failed_downstream",  # (k) Redox's log says failed
        "@event:delivery.filtered",  # (l) Redox's log says filtered
        "@event:delivery.unconfirmed",  # (m) no final status within the window
        "@event:delivery.confirm_failed",  # (n) the confirmer cannot ask Redox
    ):
        assert needed in queries


def test_monitor_and_dashboard_queries_use_only_events_and_fields_the_code_emits(definitions, emitted):
    monitors, dashboards = definitions
    found = list(searches(monitors, dashboards))
    assert len(found) >= len(monitors), "every monitor's query is a log search this test reads"
    for where, search, by in found:
        for event in re.findall(r"@event:([\w.]+)", search):
            assert event in emitted["events"], f"{where}: no log_event emits {event!r}"
        for field in re.findall(r"@([\w.]+):", search):
            assert field in emitted["fields"], f"{where}: no log_event sets {field!r}"
        for term in search.split():
            term = term.removeprefix("-")
            if not term.startswith("@"):
                assert term.split(":")[0] in ("service", "env", "status"), f"{where}: unexpected term {term!r}"
        if by:
            assert by.lstrip("@") in emitted["fields"], f"{where}: no log_event sets {by!r}"


def test_dashboard_metrics_are_ones_the_code_sends(definitions, emitted):
    _, dashboards = definitions
    text = json.dumps(dashboards)
    gauges = set(re.findall(r"\b(hcoint\.[\w.]+)\{", text))
    spans = set(re.findall(r"trace\.([\w.]+?)(?:\.hits|\.errors)?\{", text)) - {"django.request"}
    assert gauges and spans, "the dashboard's metric queries are ones this test can read"
    for gauge in gauges:
        assert gauge in emitted["gauges"], f"no metrics.gauge sends {gauge}"
    for span_name in spans:
        assert span_name in emitted["spans"], f"no tracing.span is named {span_name}"


def test_placeholders_are_filled_from_the_environment(monkeypatch):
    monkeypatch.setenv("DD_ENV", "staging")
    monkeypatch.setenv("MONITOR_NO_TRAFFIC_DAYS", "1")
    monkeypatch.setenv("MONITOR_AUTH_FAILURES", "25")
    monkeypatch.setenv("MONITOR_RUNBOOK_URL", "https://github.example/hcoint/blob/main/docs/runbook.md")
    monitors, dashboards, errors = load_all(OPS_DIR, load_variables())
    assert errors == []
    by_name = {monitor["name"]: monitor for monitor in monitors}
    no_traffic = by_name["[hcoint staging] No inbound Redox traffic"]
    assert '.last("1d") < 1' in no_traffic["query"]
    assert no_traffic["options"]["no_data_timeframe"] == 1440
    auth = by_name["[hcoint staging] Webhook authentication failures"]
    assert auth["query"].endswith("> 25")
    assert auth["options"]["thresholds"]["critical"] == 25
    assert "https://github.example/hcoint/blob/main/docs/runbook.md#rotating-the-verification-token" in auth["message"]
    assert dashboards[0]["title"] == "HCOINT (staging)"
    assert "${" not in json.dumps([monitors, dashboards])


def write(folder, name, data):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)


GOOD_MONITOR = {
    "name": "[hcoint ${DD_ENV}] Delivery failed",
    "type": "log alert",
    "query": 'logs("service:hcoint @event:delivery.failed").index("*").rollup("count").last("5m") > 0',
    "message": "Check the delivery. ${RUNBOOK_URL}#retrying-or-abandoning-deliveries",
    "options": {"thresholds": {"critical": 0}, "enable_logs_sample": False},
}
GOOD_DASHBOARD = {
    "title": "HCOINT",
    "layout_type": "ordered",
    "widgets": [{"definition": {"type": "note", "content": "hello"}}],
}


def test_a_valid_set_in_another_folder_passes(tmp_path):
    write(tmp_path, "monitors/b.json", GOOD_MONITOR)
    write(tmp_path, "dashboard.json", GOOD_DASHBOARD)
    out = []
    call_command("datadog_sync", "--dir", str(tmp_path), stdout=_Collect(out))
    assert "Validated 1 monitor(s) and 1 dashboard(s)" in "".join(out)


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"options": {"thresholds": {"critical": 3}, "enable_logs_sample": False}}, "differs from the query's 0"),
        ({"options": {"thresholds": {"critical": 0}}}, "enable_logs_sample must be false"),
        ({"options": {"thresholds": {"critical": 0}, "enable_logs_sample": True}}, "enable_logs_sample must be false"),
        ({"type": "metric alert"}, 'type must be "log alert"'),
        ({"query": 'logs("@event:delivery.failed").index("*").rollup("count").last("5m") > 0'}, "service:hcoint"),
        ({"query": "avg:system.load.1{*} > 0"}, "query must look like"),
        ({"message": "Check it."}, "must link a runbook section"),
        ({"message": "${RUNBOOK_URL}#no-such-section"}, "the runbook has no section #no-such-section"),
        ({"name": "${NO_SUCH_THING}"}, "unknown placeholder ${NO_SUCH_THING}"),
        ({"colour": "red"}, "unknown keys ['colour']"),
    ],
)
def test_invalid_monitors_are_refused(tmp_path, change, complaint):
    write(tmp_path, "monitors/bad.json", {**GOOD_MONITOR, **change})
    write(tmp_path, "dashboard.json", GOOD_DASHBOARD)
    with pytest.raises(CommandError) as refused:
        call_command("datadog_sync", "--dir", str(tmp_path))
    assert complaint in str(refused.value)


def test_invalid_dashboards_and_files_are_refused(tmp_path):
    write(tmp_path, "monitors/a.json", GOOD_MONITOR)
    write(tmp_path, "monitors/b.json", GOOD_MONITOR)
    write(tmp_path, "monitors/c.json", "{not json")
    unfiltered = {
        "definition": {
            "type": "timeseries",
            "requests": [
                {
                    "queries": [{"data_source": "metrics", "name": "q", "query": "avg:system.load.1{*}"}],
                    "formulas": [{"formula": "q + r"}],
                }
            ],
        }
    }
    write(tmp_path, "dashboard.json", {**GOOD_DASHBOARD, "layout_type": "grid", "widgets": [unfiltered]})
    with pytest.raises(CommandError) as refused:
        call_command("datadog_sync", "--dir", str(tmp_path))
    text = str(refused.value)
    assert "c.json: not valid JSON" in text
    assert "two monitors are named" in text
    assert 'layout_type must be "ordered" or "free"' in text
    assert "must filter service:hcoint" in text
    assert "formula uses unknown queries ['r']" in text


class FakeDatadog:
    """Datadog's monitor and dashboard endpoints, keeping what was created, for `responses`."""

    def __init__(self, rsps, existing_monitors=(), existing_dashboards=()):
        self.monitors = {item["id"]: item for item in existing_monitors}
        self.dashboards = {item["id"]: item for item in existing_dashboards}
        self.next_id = 1000
        self.writes = []
        monitor_id = re.compile(rf"{API}/api/v1/monitor/\d+")
        dashboard_id = re.compile(rf"{API}/api/v1/dashboard/[\w-]+")
        rsps.add_callback(responses.GET, f"{API}/api/v1/monitor", callback=self.list_monitors)
        rsps.add_callback(responses.POST, f"{API}/api/v1/monitor", callback=self.create(self.monitors, "monitor"))
        rsps.add_callback(responses.PUT, monitor_id, callback=self.update(self.monitors, "monitor"))
        rsps.add_callback(responses.GET, f"{API}/api/v1/dashboard", callback=self.list_dashboards)
        rsps.add_callback(responses.POST, f"{API}/api/v1/dashboard", callback=self.create(self.dashboards, "dashboard"))
        rsps.add_callback(responses.PUT, dashboard_id, callback=self.update(self.dashboards, "dashboard"))

    def check_keys(self, request):
        assert request.headers["DD-API-KEY"] == "api-key"
        assert request.headers["DD-APPLICATION-KEY"] == "app-key"

    def list_monitors(self, request):
        self.check_keys(request)
        wanted = request.params.get("name", "")
        return 200, {}, json.dumps([item for item in self.monitors.values() if wanted in item["name"]])

    def list_dashboards(self, request):
        self.check_keys(request)
        listed = [{"id": key, "title": item["title"]} for key, item in self.dashboards.items()]
        return 200, {}, json.dumps({"dashboards": listed})

    def create(self, store, kind):
        def callback(request):
            self.check_keys(request)
            body = json.loads(request.body)
            self.next_id += 1
            store[self.next_id] = {**body, "id": self.next_id}
            self.writes.append(("POST", kind, body))
            return 200, {}, json.dumps(store[self.next_id])

        return callback

    def update(self, store, kind):
        def callback(request):
            self.check_keys(request)
            key = request.url.rstrip("/").rsplit("/", 1)[1]
            key = int(key) if key.isdigit() else key
            assert key in store
            body = json.loads(request.body)
            store[key] = {**body, "id": key}
            self.writes.append(("PUT", kind, body))
            return 200, {}, json.dumps(store[key])

        return callback


class _Collect:
    def __init__(self, lines):
        self.lines = lines

    def write(self, text):
        self.lines.append(text)

    def flush(self):
        pass


@pytest.fixture
def keys(monkeypatch):
    monkeypatch.setenv("DD_API_KEY", "api-key")
    monkeypatch.setenv("DD_APP_KEY", "app-key")
    monkeypatch.delenv("DD_SITE", raising=False)
    monkeypatch.delenv("DD_ENV", raising=False)


def test_apply_creates_what_is_missing_and_updates_what_exists_by_name(keys, definitions):
    monitors, _ = definitions
    existing = {"id": 7, "name": monitors[1]["name"], "query": "old"}
    # Not every endpoint is called: the dashboard exists, so nothing is POSTed for it.
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        datadog = FakeDatadog(
            rsps, existing_monitors=[existing], existing_dashboards=[{"id": "abc-def", "title": "HCOINT (production)"}]
        )
        call_command("datadog_sync", "--apply", stdout=_Collect([]))
    writes = [(method, kind) for method, kind, _ in datadog.writes]
    assert writes.count(("PUT", "monitor")) == 1
    assert writes.count(("POST", "monitor")) == len(monitors) - 1
    assert writes.count(("PUT", "dashboard")) == 1
    assert datadog.monitors[7]["query"] == monitors[1]["query"]
    for _, kind, body in datadog.writes:
        if kind == "monitor":
            assert body["options"]["enable_logs_sample"] is False
            assert "${" not in json.dumps(body)


def test_apply_twice_creates_nothing_the_second_time(keys, definitions):
    with responses.RequestsMock() as rsps:
        datadog = FakeDatadog(rsps)
        call_command("datadog_sync", "--apply", stdout=_Collect([]))
        created = len(datadog.monitors), len(datadog.dashboards)
        datadog.writes.clear()
        call_command("datadog_sync", "--apply", stdout=_Collect([]))
    assert created == (len(definitions[0]), 1)
    assert (len(datadog.monitors), len(datadog.dashboards)) == created
    assert {method for method, _, _ in datadog.writes} == {"PUT"}


def test_apply_uses_the_configured_site(keys, monkeypatch):
    monkeypatch.setenv("DD_SITE", "datadoghq.eu")
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, "https://api.datadoghq.eu/api/v1/monitor", json=[])
        rsps.add(responses.POST, "https://api.datadoghq.eu/api/v1/monitor", json={"id": 1})
        rsps.add(responses.GET, "https://api.datadoghq.eu/api/v1/dashboard", json={"dashboards": []})
        rsps.add(responses.POST, "https://api.datadoghq.eu/api/v1/dashboard", json={"id": "x"})
        call_command("datadog_sync", "--apply", stdout=_Collect([]))


def test_apply_reports_what_datadog_refused(keys):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(responses.GET, f"{API}/api/v1/monitor", json=[])
        rsps.add(responses.POST, f"{API}/api/v1/monitor", status=400, json={"errors": ["The value provided is bad"]})
        with pytest.raises(CommandError, match="Datadog answered 400 to POST /api/v1/monitor"):
            call_command("datadog_sync", "--apply", stdout=_Collect([]))


def test_apply_needs_both_keys(monkeypatch):
    monkeypatch.delenv("DD_API_KEY", raising=False)
    monkeypatch.setenv("DD_APP_KEY", "app-key")
    with pytest.raises(CommandError, match="needs DD_API_KEY and DD_APP_KEY"):
        call_command("datadog_sync", "--apply", stdout=_Collect([]))
