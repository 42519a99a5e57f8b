"""Email settings from the environment: EMAIL_URL (or Django's EMAIL_HOST…), and a digest
that stays off in production until SMTP and SITE_URL are set."""

import json

import pytest
from django.core.exceptions import ImproperlyConfigured

from hcoint.env import SMTP, email_settings_from_url
from tests.test_deploy_settings import production_env, run


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "smtp+tls://apikey:p%40ss%2Fword@smtp.example.org:587",
            {
                "EMAIL_HOST": "smtp.example.org",
                "EMAIL_PORT": 587,
                "EMAIL_USE_TLS": True,
                "EMAIL_USE_SSL": False,
                "EMAIL_HOST_USER": "apikey",
                "EMAIL_HOST_PASSWORD": "p@ss/word",
            },
        ),
        ("smtps://u:p@smtp.example.org", {"EMAIL_PORT": 465, "EMAIL_USE_SSL": True, "EMAIL_USE_TLS": False}),
        ("submission://u:p@smtp.example.org", {"EMAIL_PORT": 587, "EMAIL_USE_TLS": True}),
        ("smtp://relay.internal", {"EMAIL_PORT": 25, "EMAIL_USE_TLS": False, "EMAIL_HOST_USER": ""}),
    ],
)
def test_an_smtp_url_gives_djangos_settings(url, expected):
    settings = email_settings_from_url(url)
    assert settings["EMAIL_BACKEND"] == SMTP
    assert {key: settings[key] for key in expected} == expected


def test_console_and_locmem_need_no_host():
    assert email_settings_from_url("console:") == {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}
    assert email_settings_from_url("locmem://")["EMAIL_BACKEND"].endswith("locmem.EmailBackend")


@pytest.mark.parametrize(
    ("url", "says"),
    [("http://smtp.example.org", "EMAIL_URL must start with"), ("smtp://", "names no host"), ("smtp://h:port", "port")],
)
def test_a_bad_url_stops_the_process(url, says):
    with pytest.raises(ImproperlyConfigured, match=says):
        email_settings_from_url(url)


PROBE = """
import json, django
django.setup()
from django.conf import settings as s
print(json.dumps({k: getattr(s, k) for k in ("EMAIL_BACKEND", "EMAIL_HOST", "EMAIL_PORT", "EMAIL_USE_TLS",
    "DIGEST_FREQUENCY", "DIGEST_HOUR", "DIGEST_GROUP", "SITE_URL", "EMAIL_TIMEOUT")}))
"""


def probe(**overrides):
    result = run(["-c", PROBE], production_env(**overrides))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_production_sends_no_mail_until_configured():
    found = probe()
    assert found["DIGEST_FREQUENCY"] == "off"
    assert found["EMAIL_BACKEND"] == "django.core.mail.backends.dummy.EmailBackend"
    assert found["EMAIL_TIMEOUT"] == 20


def test_a_configured_digest_starts():
    found = probe(
        DIGEST_FREQUENCY="weekly",
        DIGEST_HOUR="6",
        EMAIL_HOST="smtp.example.org",
        EMAIL_HOST_USER="hcoint",
        EMAIL_HOST_PASSWORD="secret",
        SITE_URL="https://hcoint.example.org/",
    )
    assert (found["EMAIL_BACKEND"], found["EMAIL_HOST"], found["EMAIL_PORT"], found["EMAIL_USE_TLS"]) == (
        SMTP,
        "smtp.example.org",
        587,
        True,
    )
    assert (found["DIGEST_FREQUENCY"], found["DIGEST_HOUR"], found["SITE_URL"]) == (
        "weekly",
        6,
        "https://hcoint.example.org",
    )


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"DIGEST_FREQUENCY": "daily", "SITE_URL": "https://hcoint.example.org"}, "needs EMAIL_URL or EMAIL_HOST"),
        ({"DIGEST_FREQUENCY": "daily", "EMAIL_URL": "smtps://u:p@smtp.example.org"}, "needs SITE_URL"),
        ({"DIGEST_FREQUENCY": "hourly"}, "DIGEST_FREQUENCY must be off, daily or weekly"),
        ({"DIGEST_HOUR": "24"}, "DIGEST_HOUR must be 0 to 23"),
        (
            {"EMAIL_URL": "smtps://u:p@a.example.org", "EMAIL_HOST": "b.example.org"},
            "EMAIL_URL or EMAIL_HOST, not both",
        ),
    ],
)
def test_production_refuses_a_digest_it_cannot_send(overrides, says):
    result = run(["manage.py", "check"], production_env(**overrides))
    assert result.returncode != 0
    assert says in result.stderr
