"""The sandbox's control page at `/`, rendered from `templates/sandbox.html`.

Django's template engine, used standalone (its own `Engine`, not the project's TEMPLATES):
the page autoescapes every value, and the sandbox shares nothing with the app's pages.
Every value handed to the template is already text, so rendering needs no settings.
"""

from pathlib import Path

from django.template import Context, Engine

from redox.sandbox.state import FAIL_STATUSES, LOG_STATUSES, SandboxState

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
_engine = Engine(dirs=[str(TEMPLATE_DIR)], autoescape=True)


def _mode(snapshot: dict[str, object]) -> str:
    modes = []
    if snapshot["fail_remaining"]:
        modes.append(f"failing the next {snapshot['fail_remaining']} calls with HTTP {snapshot['fail_status']}")
    count = snapshot["reject_remaining"]
    if count:
        plural = "" if count == 1 else "s"
        modes.append(f"rejecting {'every message' if count == 'all' else f'the next {count} message{plural}'}")
    return "; ".join(modes) or "accepting everything"


def render_page(state: SandboxState) -> str:
    snapshot = state.snapshot()
    rows = [
        {
            "outcome": r.outcome,
            "cells": [
                str(r.seq),
                r.at.strftime("%H:%M:%S"),
                r.path,
                f"{r.outcome} ({r.http_status})",
                r.data_model,
                r.order_id,
                r.delivery_ref,
                ", ".join(r.log_ids),
                "; ".join(r.errors),
            ],
        }
        for r in reversed(state.messages())
    ]
    context = {
        "mode": _mode(snapshot),
        "fail_statuses": [str(status) for status in FAIL_STATUSES],
        "reject_text": str(snapshot["reject_text"]),
        "count": str(snapshot["received"]),
        "rows": rows,
        "log_statuses": list(LOG_STATUSES),
        "log_default": str(snapshot["log_default"]),
        "logs": [{"id": log_id, "status": status} for log_id, status in reversed(state.log_list())],
    }
    return _engine.get_template("sandbox.html").render(Context(context))
