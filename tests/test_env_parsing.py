"""One reading of the environment: settings, gunicorn.conf.py and metrics agree on what a value means."""

import re
import runpy
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from hcoint import metrics
from hcoint.env import env_bool, env_int, env_list, env_str

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("raw", ["true", "TRUE", " yes ", "1", "on"])
def test_every_spelling_of_true_is_true(monkeypatch, raw):
    monkeypatch.setenv("HCOINT_TEST_FLAG", raw)
    assert env_bool("HCOINT_TEST_FLAG") is True


@pytest.mark.parametrize("raw", ["false", "False", "0", "no", "off"])
def test_every_spelling_of_false_is_false(monkeypatch, raw):
    monkeypatch.setenv("HCOINT_TEST_FLAG", raw)
    assert env_bool("HCOINT_TEST_FLAG", default=True) is False


def test_unset_or_empty_means_the_default(monkeypatch):
    monkeypatch.delenv("HCOINT_TEST_FLAG", raising=False)
    assert env_bool("HCOINT_TEST_FLAG", default=True) is True
    assert env_int("HCOINT_TEST_FLAG", 7) == 7
    monkeypatch.setenv("HCOINT_TEST_FLAG", "")
    assert env_bool("HCOINT_TEST_FLAG", default=True) is True
    assert env_str("HCOINT_TEST_FLAG", "x") == "x"
    assert env_list("HCOINT_TEST_FLAG", ["a"]) == ["a"]


def test_a_typo_stops_the_process_instead_of_meaning_off(monkeypatch):
    monkeypatch.setenv("HCOINT_TEST_FLAG", "ture")
    with pytest.raises(ImproperlyConfigured, match="HCOINT_TEST_FLAG must be true or false"):
        env_bool("HCOINT_TEST_FLAG")
    monkeypatch.setenv("HCOINT_TEST_FLAG", "ten")
    with pytest.raises(ImproperlyConfigured, match="HCOINT_TEST_FLAG must be a whole number"):
        env_int("HCOINT_TEST_FLAG", 1)


def test_lists_are_comma_separated_with_blanks_dropped(monkeypatch):
    monkeypatch.setenv("HCOINT_TEST_FLAG", " a.example , ,b.example,")
    assert env_list("HCOINT_TEST_FLAG") == ["a.example", "b.example"]


def test_gunicorn_reads_the_same_spellings_as_settings(monkeypatch):
    monkeypatch.setenv("GUNICORN_ACCESS_LOG", "on")
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert config["workers"] == 3
    assert config["logconfig_dict"]["loggers"]["gunicorn.access"]["handlers"] == ["console"]
    monkeypatch.setenv("GUNICORN_ACCESS_LOG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="GUNICORN_ACCESS_LOG"):
        runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def test_metrics_read_the_same_spellings_as_settings(monkeypatch):
    monkeypatch.setenv("DD_AGENT_HOST", "127.0.0.1")
    monkeypatch.setenv("DD_DOGSTATSD_DISABLE", "on")
    assert metrics.enabled() is False
    monkeypatch.setenv("DD_DOGSTATSD_DISABLE", "off")
    assert metrics.enabled() is True


# Not configuration: Django's autoreloader marks its child process with this variable.
NOT_SETTINGS = {("orders/management/commands/db_worker.py", "DJANGO_AUTORELOAD_ENV")}


def test_nothing_in_the_app_reads_the_environment_but_the_helper():
    readers = set()
    for path in [ROOT / "gunicorn.conf.py", *(ROOT / "hcoint").rglob("*.py"), *(ROOT / "orders").rglob("*.py")]:
        if path.name == "env.py" or "migrations" in path.parts:
            continue
        for name in re.findall(r"os\.(?:environ\.get|getenv)\(\s*([^,)]+)", path.read_text(encoding="utf-8")):
            readers.add((str(path.relative_to(ROOT)), name.strip().strip("\"'")))
    assert readers <= NOT_SETTINGS, f"read these through hcoint.env instead: {sorted(readers - NOT_SETTINGS)}"
