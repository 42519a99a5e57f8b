"""Validate the Datadog monitors and dashboard in ops/datadog/ and, with --apply, push them.

    python manage.py datadog_sync            # validate every file (CI runs this)
    python manage.py datadog_sync --apply    # and create or update them in Datadog

Files are Datadog API payloads (POST /api/v1/monitor, POST /api/v1/dashboard) with
`${NAME}` placeholders filled from the environment, so one set of files serves every
environment and the thresholds can be tuned without editing JSON:

| placeholder          | environment variable          | default           |
|----------------------|-------------------------------|-------------------|
| `DD_ENV`             | `DD_ENV`                      | `production`      |
| `RUNBOOK_URL`        | `MONITOR_RUNBOOK_URL`         | `docs/runbook.md` |
| `NOTIFY`             | `MONITOR_NOTIFY`              | (none)            |
| `AUTH_FAILURES`      | `MONITOR_AUTH_FAILURES`       | `10`              |
| `NO_TRAFFIC_DAYS`    | `MONITOR_NO_TRAFFIC_DAYS`     | `2`               |
| `AWAITING_NOTE_DAYS` | `MONITOR_AWAITING_NOTE_DAYS`  | `3`               |

(`NO_TRAFFIC_MINUTES` is derived from `NO_TRAFFIC_DAYS`.) Set `MONITOR_RUNBOOK_URL` to the
web address of docs/runbook.md in the repository so the links in alerts open it, and
`MONITOR_NOTIFY` to the handles to page (`@pagerduty-hcoint @slack-hcoint-ops`).

Every monitor must be a log alert on `service:hcoint` whose critical threshold equals the
number in its query, with `enable_logs_sample` off (a sample would copy log lines into
notifications) and a link to a section of the runbook that exists. With `DD_API_KEY`,
`DD_APP_KEY` and `--apply`, each monitor and the dashboard is matched by name (title) and
updated, or created when there is none, so running it twice changes nothing the second
time. `DD_SITE` picks the Datadog site (default `datadoghq.com`).
API: https://docs.datadoghq.com/api/latest/monitors/ and /api/latest/dashboards/
"""

import json
import os
import re
from pathlib import Path

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from hcoint.env import env_str

OPS_DIR = Path(settings.BASE_DIR) / "ops" / "datadog"
RUNBOOK = Path(settings.BASE_DIR) / "docs" / "runbook.md"

VARIABLES = {
    # placeholder: (environment variable, default, type)
    "DD_ENV": ("DD_ENV", "production", str),
    "RUNBOOK_URL": ("MONITOR_RUNBOOK_URL", "docs/runbook.md", str),
    "NOTIFY": ("MONITOR_NOTIFY", "", str),
    "AUTH_FAILURES": ("MONITOR_AUTH_FAILURES", "10", int),
    "NO_TRAFFIC_DAYS": ("MONITOR_NO_TRAFFIC_DAYS", "2", int),
    "AWAITING_NOTE_DAYS": ("MONITOR_AWAITING_NOTE_DAYS", "3", int),
}
# The runbook sections monitors may link to when docs/runbook.md is not there to read.
RUNBOOK_SECTIONS = (
    "Reading the Datadog monitors",
    "Retrying or abandoning deliveries",
    "Re-processing failed messages",
    "Rotating the verification token",
)
MONITOR_KEYS = {"name", "type", "query", "message", "tags", "priority", "options", "restricted_roles"}
LOG_QUERY = re.compile(
    r'^logs\("(?P<search>[^"]+)"\)\.index\("[^"]+"\)\.rollup\("count"\)'
    r'(?:\.by\("(?P<by>@?[\w.]+)"\))?\.last\("(?P<window>\d+[mhd])"\)\s*'
    r"(?P<op><=|>=|<|>|==|!=)\s*(?P<threshold>\d+(?:\.\d+)?)$"
)
PLACEHOLDER = re.compile(r"\$\{([A-Z_]+)\}")
FORMULA_NAME = re.compile(r"[A-Za-z_]\w*")


def github_anchor(heading):
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def runbook_anchors():
    if RUNBOOK.exists():
        headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", RUNBOOK.read_text(encoding="utf-8"), flags=re.MULTILINE)
        return {github_anchor(heading) for heading in headings}
    return {github_anchor(heading) for heading in RUNBOOK_SECTIONS}


def load_variables(environ=None):
    environ = os.environ if environ is None else environ
    values = {}
    for name, (variable, default, kind) in VARIABLES.items():
        raw = environ.get(variable) or default
        if kind is int:
            try:
                values[name] = int(raw)
            except ValueError:
                raise CommandError(f"{variable} must be a whole number, not {raw!r}") from None
            if values[name] < 0:
                raise CommandError(f"{variable} must not be negative")
        else:
            values[name] = raw
    values["NO_TRAFFIC_MINUTES"] = values["NO_TRAFFIC_DAYS"] * 24 * 60
    return values


def substitute(value, variables, errors, where):
    """Fill `${NAME}` placeholders; a string that is only a numeric placeholder becomes the number."""
    if isinstance(value, dict):
        return {key: substitute(item, variables, errors, where) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, variables, errors, where) for item in value]
    if not isinstance(value, str):
        return value
    whole = PLACEHOLDER.fullmatch(value)
    if whole and isinstance(variables.get(whole.group(1)), int):
        return variables[whole.group(1)]

    def replace(match):
        if match.group(1) not in variables:
            errors.append(f"{where}: unknown placeholder ${{{match.group(1)}}}")
            return match.group(0)
        return str(variables[match.group(1)])

    return PLACEHOLDER.sub(replace, value).strip()


def load(path, variables, errors):
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        errors.append(f"{path.name}: not valid JSON ({exc.msg}, line {exc.lineno})")
        return None
    return substitute(raw, variables, errors, path.name)


def validate_monitor(name, monitor, *, anchors, runbook_url):
    errors = []
    if not isinstance(monitor, dict):
        return [f"{name}: a monitor is a JSON object"]
    unknown = set(monitor) - MONITOR_KEYS
    if unknown:
        errors.append(f"{name}: unknown keys {sorted(unknown)}")
    if not isinstance(monitor.get("name"), str) or not monitor["name"]:
        errors.append(f"{name}: needs a name")
    if monitor.get("type") != "log alert":
        errors.append(f'{name}: type must be "log alert"')
    options = monitor.get("options") if isinstance(monitor.get("options"), dict) else {}
    if options.get("enable_logs_sample") is not False:
        errors.append(f"{name}: options.enable_logs_sample must be false (a sample copies log lines into alerts)")
    match = LOG_QUERY.match(str(monitor.get("query", "")))
    if not match:
        errors.append(f'{name}: query must look like logs("...").index("*").rollup("count").last("5m") > N')
    else:
        if "service:hcoint" not in match.group("search").split():
            errors.append(f"{name}: the log search must include service:hcoint")
        critical = (options.get("thresholds") or {}).get("critical")
        if not isinstance(critical, int | float) or isinstance(critical, bool):
            errors.append(f"{name}: options.thresholds.critical must be a number")
        elif float(critical) != float(match.group("threshold")):
            errors.append(
                f"{name}: options.thresholds.critical ({critical}) differs from the query's {match.group('threshold')}"
            )
    if options.get("notify_no_data"):
        timeframe = options.get("no_data_timeframe")
        if not isinstance(timeframe, int) or timeframe <= 0:
            errors.append(f"{name}: notify_no_data needs no_data_timeframe in minutes")
    message = monitor.get("message")
    if not isinstance(message, str) or not message.strip():
        errors.append(f"{name}: needs a message that says what to check")
    else:
        linked = re.findall(re.escape(runbook_url) + r"#([\w-]+)", message)
        if not linked:
            errors.append(f"{name}: the message must link a runbook section ({runbook_url}#...)")
        for anchor in linked:
            if anchor not in anchors:
                errors.append(f"{name}: the runbook has no section #{anchor}")
    return errors


def _widgets(widgets):
    for widget in widgets or []:
        yield widget
        definition = widget.get("definition", {}) if isinstance(widget, dict) else {}
        if definition.get("type") == "group":
            yield from _widgets(definition.get("widgets"))


def validate_dashboard(name, dashboard):
    errors = []
    if not isinstance(dashboard, dict):
        return [f"{name}: a dashboard is a JSON object"]
    if not isinstance(dashboard.get("title"), str) or not dashboard["title"]:
        errors.append(f"{name}: needs a title")
    if dashboard.get("layout_type") not in ("ordered", "free"):
        errors.append(f'{name}: layout_type must be "ordered" or "free"')
    if not isinstance(dashboard.get("widgets"), list) or not dashboard["widgets"]:
        errors.append(f"{name}: needs widgets")
        return errors
    for widget in _widgets(dashboard["widgets"]):
        definition = widget.get("definition") if isinstance(widget, dict) else None
        if not isinstance(definition, dict) or not isinstance(definition.get("type"), str):
            errors.append(f"{name}: every widget needs a definition with a type")
            continue
        title = definition.get("title", definition["type"])
        for request in definition.get("requests") or []:
            names = set()
            for query in request.get("queries") or []:
                names.add(query.get("name"))
                if query.get("data_source") == "logs":
                    search = (query.get("search") or {}).get("query", "")
                else:
                    search = query.get("query", "")
                if "service:hcoint" not in search:
                    errors.append(f"{name}: widget {title!r}: query {query.get('name')!r} must filter service:hcoint")
            for formula in request.get("formulas") or []:
                missing = set(FORMULA_NAME.findall(formula.get("formula", ""))) - names
                if missing:
                    errors.append(f"{name}: widget {title!r}: formula uses unknown queries {sorted(missing)}")
    return errors


def load_all(ops_dir, variables):
    """(monitors, dashboards, errors): every definition under ops_dir, placeholders filled."""
    errors = []
    anchors = runbook_anchors()
    monitors = []
    for path in sorted((ops_dir / "monitors").glob("*.json")):
        monitor = load(path, variables, errors)
        if monitor is not None:
            errors.extend(validate_monitor(path.name, monitor, anchors=anchors, runbook_url=variables["RUNBOOK_URL"]))
            monitors.append(monitor)
    if not monitors:
        errors.append(f"{ops_dir / 'monitors'}: no monitor definitions")
    names = [monitor.get("name") for monitor in monitors if isinstance(monitor, dict)]
    for duplicate in sorted({name for name in names if names.count(name) > 1}):
        errors.append(f"two monitors are named {duplicate!r}; names must be unique (they are how updates match)")
    dashboards = []
    for path in sorted(ops_dir.glob("dashboard*.json")):
        dashboard = load(path, variables, errors)
        if dashboard is not None:
            errors.extend(validate_dashboard(path.name, dashboard))
            dashboards.append(dashboard)
    return monitors, dashboards, errors


class DatadogApi:
    def __init__(self, *, api_key, app_key, site):
        self.base = f"https://api.{site}"
        self.session = requests.Session()
        self.session.headers.update(
            {"DD-API-KEY": api_key, "DD-APPLICATION-KEY": app_key, "Content-Type": "application/json"}
        )

    def call(self, method, path, **kwargs):
        try:
            response = self.session.request(method, self.base + path, timeout=(10, 60), **kwargs)
        except requests.RequestException as exc:
            raise CommandError(f"Datadog could not be reached for {method} {path}: {type(exc).__name__}") from None
        if response.status_code >= 400:
            raise CommandError(f"Datadog answered {response.status_code} to {method} {path}: {response.text[:500]}")
        return response.json() if response.content else {}

    def upsert_monitor(self, monitor):
        """Update the monitor with this name, or create it. Returns ("created"|"updated", id)."""
        # The name filter matches substrings; only an exact name is the same monitor.
        found = self.call("GET", "/api/v1/monitor", params={"name": monitor["name"]}) or []
        return self._upsert("/api/v1/monitor", monitor, found, key="name", described="monitors named")

    def upsert_dashboard(self, dashboard):
        """Update the dashboard with this title, or create it. Returns ("created"|"updated", id)."""
        listed = self.call("GET", "/api/v1/dashboard").get("dashboards", [])
        return self._upsert("/api/v1/dashboard", dashboard, listed, key="title", described="dashboards titled")

    def _upsert(self, path, definition, existing, *, key, described):
        """PUT over the one item in `existing` whose `key` matches exactly, else POST a new one."""
        same = [item for item in existing if item.get(key) == definition[key]]
        if len(same) > 1:
            raise CommandError(f"Datadog has {len(same)} {described} {definition[key]!r}; delete all but one")
        if same:
            self.call("PUT", f"{path}/{same[0]['id']}", json=definition)
            return "updated", same[0]["id"]
        return "created", self.call("POST", path, json=definition).get("id")


class Command(BaseCommand):
    help = "Validate ops/datadog/ (always) and, with --apply, create or update the monitors and dashboard."

    def add_arguments(self, parser):
        parser.add_argument("--apply", action="store_true", help="Push to Datadog (needs DD_API_KEY and DD_APP_KEY).")
        parser.add_argument(
            "--dir", dest="ops_dir", type=Path, default=OPS_DIR, help="Where the definitions are (ops/datadog)."
        )

    def handle(self, *args, apply, ops_dir, **options):
        variables = load_variables()
        monitors, dashboards, errors = load_all(ops_dir, variables)
        if errors:
            raise CommandError("Invalid Datadog definitions:\n  " + "\n  ".join(errors))
        self.stdout.write(f"Validated {len(monitors)} monitor(s) and {len(dashboards)} dashboard(s) in {ops_dir}.")
        if not apply:
            return
        api_key, app_key = env_str("DD_API_KEY"), env_str("DD_APP_KEY")
        if not api_key or not app_key:
            raise CommandError("--apply needs DD_API_KEY and DD_APP_KEY in the environment.")
        api = DatadogApi(api_key=api_key, app_key=app_key, site=env_str("DD_SITE", "datadoghq.com"))
        for monitor in monitors:
            action, ident = api.upsert_monitor(monitor)
            self.stdout.write(f"Monitor {monitor['name']!r}: {action} ({ident}).")
        for dashboard in dashboards:
            action, ident = api.upsert_dashboard(dashboard)
            self.stdout.write(f"Dashboard {dashboard['title']!r}: {action} ({ident}).")
