"""Production settings, proven the way Aptible will load them: from the environment only.

Each check runs in a fresh `python` process with a production-like environment (DEBUG
off, a strong SECRET_KEY, real host names), because the settings module is evaluated
once at import and the test process itself runs with test defaults.
"""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from hcoint.encryption import generate_key

ROOT = Path(__file__).resolve().parent.parent
HOST = "hcoint.example.org"
POSTGRES_URL = "postgres://hcoint:secret@db-hcoint.aptible.in:25432/db?sslmode=require"


def production_env(**overrides):
    """What Aptible gives the container: no test defaults, no DEBUG, nothing from this shell."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DJANGO_SETTINGS_MODULE": "hcoint.settings",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "FIELD_ENCRYPTION_KEYS": generate_key(),
        "ALLOWED_HOSTS": HOST,
        "CSRF_TRUSTED_ORIGINS": f"https://{HOST}",
        "DATABASE_URL": POSTGRES_URL,
        "REDOX_API_BASE_URL": "https://api.redoxengine.com",
        "REDOX_UPLOAD_URL": "https://blob.redoxengine.com/upload",
        "REDOX_API_KEY": "prod-like-api-key",
        "REDOX_API_SECRET": "prod-like-api-secret",
        # No agent here: keep the tracer and metrics quiet, as the test suite does.
        "DD_TRACE_ENABLED": "false",
        "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false",
        "DD_REMOTE_CONFIGURATION_ENABLED": "false",
        "DD_DOGSTATSD_DISABLE": "true",
    }
    env.update(overrides)
    return env


def run(args, env):
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_check_deploy_reports_no_warnings_with_production_settings():
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_fails_when_debug_is_on():
    # Guards the test above: it would pass vacuously if warnings never failed the command.
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env(DEBUG="true"))
    assert result.returncode != 0
    assert "security.W018" in result.stdout + result.stderr


DATABASE_PROBE = """
import json, django
django.setup()
from django.conf import settings
db = settings.DATABASES["default"]
print(json.dumps({"engine": db["ENGINE"], "host": db["HOST"], "port": db["PORT"], "options": db.get("OPTIONS", {})}))
"""


def test_postgres_url_with_sslmode_require_is_accepted():
    result = run(["-c", DATABASE_PROBE], production_env())
    assert result.returncode == 0, result.stderr
    db = json.loads(result.stdout)
    assert db["engine"] == "django.db.backends.postgresql"
    assert db["host"] == "db-hcoint.aptible.in"
    assert db["port"] == 25432
    assert db["options"]["sslmode"] == "require"


@pytest.mark.parametrize(
    ("variable", "says"),
    [
        ("SECRET_KEY", "SECRET_KEY"),
        # Not a quiet fallback to a SQLite file inside the container, lost at the next deploy.
        ("DATABASE_URL", "DATABASE_URL must be set when DEBUG is off."),
    ],
)
def test_production_refuses_to_start_without(variable, says):
    env = production_env()
    del env[variable]
    result = run(["manage.py", "check"], env)
    assert result.returncode != 0
    assert says in result.stderr


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        # Every role sees patient data: a second factor can be off only in development.
        ({"MFA_REQUIRED": "false"}, "MFA_REQUIRED can be false only with DEBUG on"),
        ({"OIDC_ISSUER_URL": "https://idp.example.org"}, "Set all of OIDC_ISSUER_URL"),
        ({"OIDC_ROLE_MAP": "hcoint-admins=superuser"}, "OIDC_ROLE_MAP roles must be"),
        ({"OIDC_ROLE_MAP": "hcoint-admins"}, "OIDC_ROLE_MAP is group=role pairs"),
        ({"SESSION_MAX_HOURS": "0"}, "SESSION_MAX_HOURS must be 1 or more"),
    ],
)
def test_production_refuses_to_start_with(overrides, says):
    result = run(["manage.py", "check"], production_env(**overrides))
    assert result.returncode != 0
    assert says in result.stderr


def test_mfa_can_be_off_in_development():
    env = production_env(DEBUG="true", MFA_REQUIRED="false")
    result = run(
        ["-c", "import django; django.setup(); from django.conf import settings; print(settings.MFA_REQUIRED)"], env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_development_without_database_url_uses_sqlite():
    env = production_env(DEBUG="true")
    del env["DATABASE_URL"]
    result = run(["-c", DATABASE_PROBE], env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["engine"] == "django.db.backends.sqlite3"


def test_production_refuses_to_start_without_field_encryption_keys():
    env = production_env()
    del env["FIELD_ENCRYPTION_KEYS"]
    result = run(["manage.py", "check"], env)
    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEYS must be set when DEBUG is off" in result.stderr


@pytest.mark.parametrize(
    ("keys", "says"),
    [
        # A typo or a truncated paste: named by position, never echoed.
        ("{good},not-a-key-{secret}", "FIELD_ENCRYPTION_KEYS: key 2 is not 32 bytes"),
        ("{good},{good}", "FIELD_ENCRYPTION_KEYS: key 2 repeats an earlier key"),
        # The development key is in this repository: production needs its own.
        ("{dev}", "holds the public development key"),
    ],
)
def test_production_refuses_unusable_field_encryption_keys_without_showing_them(keys, says):
    good, secret = generate_key(), secrets.token_hex(8)
    value = keys.format(good=good, secret=secret, dev=settings.DEV_FIELD_ENCRYPTION_KEY)
    result = run(["manage.py", "check"], production_env(FIELD_ENCRYPTION_KEYS=value))
    assert result.returncode != 0
    assert says in result.stderr
    assert good not in result.stderr and secret not in result.stderr


def test_development_without_field_encryption_keys_uses_the_development_key():
    env = production_env(DEBUG="true")
    del env["FIELD_ENCRYPTION_KEYS"]
    probe = "import django; django.setup(); from django.conf import settings; print(settings.FIELD_ENCRYPTION_KEYS)"
    result = run(["-c", probe], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str([settings.DEV_FIELD_ENCRYPTION_KEY])


# Requests through the whole middleware stack, as Aptible's proxy sends them. A
# throwaway SQLite file stands in for PostgreSQL: the behaviour under test is
# HTTP, not SQL, and the database host above does not exist.
HTTP_PROBE = """
import json, django
django.setup()
from django.core.management import call_command
from django.contrib.auth.models import User
from django.test import Client

call_command("migrate", verbosity=0)
User.objects.create_user("probe", password="a-long-probe-password-1234")
client = Client(HTTP_HOST=HOST)
https = {"HTTP_X_FORWARDED_PROTO": "https"}
out = {}

def record(name, response):
    out[name] = {
        "status": response.status_code,
        "location": response.get("Location"),
        "hsts": response.get("Strict-Transport-Security"),
        "cookies": {
            name: {"secure": bool(c["secure"]), "httponly": bool(c["httponly"])} for name, c in response.cookies.items()
        },
    }

record("http_page", client.get("/orders/1/?tab=notes"))
record("http_healthcheck", client.get("/healthcheck"))
record("aptible_healthcheck", Client(HTTP_HOST="containers").get("/healthcheck"))
record("https_page", client.get("/orders/1/", **https))
record("https_sign_in", client.post(
    "/accounts/login/", {"username": "probe", "password": "a-long-probe-password-1234"}, **https
))
webhook = {"data": b"{}", "content_type": "application/json"}
record("http_webhook", client.post("/redox/webhook/", **webhook))
record("https_webhook", client.post("/redox/webhook/", **webhook, **https))
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def responses_in_production(tmp_path_factory):
    database = tmp_path_factory.mktemp("deploy") / "probe.sqlite3"
    result = run(
        ["-c", f"HOST = {HOST!r}\n" + HTTP_PROBE],
        production_env(DATABASE_URL=f"sqlite:///{database}"),
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_plain_http_is_redirected_to_https(responses_in_production):
    page = responses_in_production["http_page"]
    assert page["status"] == 301
    assert page["location"] == f"https://{HOST}/orders/1/?tab=notes"


def test_https_behind_the_proxy_gets_hsts(responses_in_production):
    page = responses_in_production["https_page"]
    assert page["status"] == 302  # on to sign-in: the request was not redirected to HTTPS again
    assert page["location"].startswith("/accounts/login/")
    assert "max-age=31536000" in page["hsts"]
    assert "includeSubDomains" in page["hsts"]


def test_plain_http_gets_no_hsts(responses_in_production):
    # Browsers ignore HSTS over plain HTTP; sending it there would only mislead a reader.
    assert responses_in_production["http_page"]["hsts"] is None


def test_cookies_are_secure_and_http_only(responses_in_production):
    # Signing in sets both cookies (Django rotates the CSRF token at sign-in).
    sign_in = responses_in_production["https_sign_in"]
    assert sign_in["status"] == 302
    assert sign_in["cookies"]["sessionid"] == {"secure": True, "httponly": True}
    assert sign_in["cookies"]["csrftoken"] == {"secure": True, "httponly": True}


def test_healthcheck_is_exempt_from_the_https_redirect(responses_in_production):
    # Aptible's checker speaks plain HTTP to the container and fails on a redirect.
    assert responses_in_production["http_healthcheck"]["status"] == 200
    assert responses_in_production["aptible_healthcheck"]["status"] == 200


def test_the_webhook_short_path_keeps_the_https_redirect_and_hsts(responses_in_production):
    # WebhookMiddleware answers below SecurityMiddleware (hcoint/middleware.py); its Host
    # check is in tests/test_webhook_lean_path.py (a 400 page needs collected static files).
    assert responses_in_production["http_webhook"]["status"] == 301
    assert responses_in_production["http_webhook"]["location"] == f"https://{HOST}/redox/webhook/"
    assert responses_in_production["https_webhook"]["status"] == 401  # no partner's token
    assert "max-age=31536000" in responses_in_production["https_webhook"]["hsts"]


def test_the_sign_in_address_window_is_the_axes_cool_off():
    probe = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.SIGN_IN_ADDRESS_WINDOW_SECONDS, settings.AXES_COOLOFF_TIME)"
    )
    result = run(["-c", probe], production_env(AXES_COOLOFF_MINUTES="7"))
    assert result.returncode == 0, result.stderr
    window, cooloff_hours = result.stdout.split()
    assert window == "420"
    assert float(cooloff_hours) * 3600 == pytest.approx(420)
