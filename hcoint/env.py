"""Reading the environment: one strict rule for every setting, wherever it is read.

Used by `hcoint/settings.py`, `gunicorn.conf.py`, `hcoint/metrics.py` and the log
formatter, so `DEBUG=yes`, `GUNICORN_ACCESS_LOG=yes` and `DD_DOGSTATSD_DISABLE=yes` mean
the same thing. An empty variable counts as unset. A boolean is one of true/false,
1/0, yes/no, on/off (any case); an integer is a whole number; anything else raises
ImproperlyConfigured naming the variable, so a typo stops the process at start instead
of silently meaning "off".
"""

import os

from django.core.exceptions import ImproperlyConfigured

TRUE = ("true", "1", "yes", "on")
FALSE = ("false", "0", "no", "off")


def env_str(name, default=None):
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    lowered = value.strip().lower()
    if lowered in TRUE:
        return True
    if lowered in FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def env_int(name, default):
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None


def env_list(name, default=()):
    """A comma-separated list; blanks around and between items are dropped."""
    value = os.environ.get(name)
    if value is None or value == "":
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


# EMAIL_URL schemes -> (Django email backend, default port, STARTTLS, implicit TLS).
SMTP = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_SCHEMES = {
    "smtp": (SMTP, 25, False, False),
    "smtp+tls": (SMTP, 587, True, False),  # STARTTLS, the usual submission port
    "submission": (SMTP, 587, True, False),
    "smtps": (SMTP, 465, False, True),  # TLS from the first byte
    "smtp+ssl": (SMTP, 465, False, True),
    "console": ("django.core.mail.backends.console.EmailBackend", None, False, False),
    "locmem": ("django.core.mail.backends.locmem.EmailBackend", None, False, False),
    "dummy": ("django.core.mail.backends.dummy.EmailBackend", None, False, False),
}


def email_settings_from_url(url):
    """Django's EMAIL_* settings from one URL, as DATABASE_URL gives the database's.

    `smtp+tls://USER:PASSWORD@HOST:587` (STARTTLS), `smtps://…@HOST:465` (implicit TLS),
    `smtp://HOST:25` (plain), or `console:` / `locmem:` / `dummy:` (no SMTP). User and
    password are percent-decoded, so a password may hold any character as `%XX`. A small
    parser rather than a dependency: dj-email-url, the usual one, has had no release since 2022.
    """
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in EMAIL_SCHEMES:
        raise ImproperlyConfigured(f"EMAIL_URL must start with one of {', '.join(sorted(EMAIL_SCHEMES))}://")
    backend, default_port, use_tls, use_ssl = EMAIL_SCHEMES[scheme]
    if backend != SMTP:
        return {"EMAIL_BACKEND": backend}
    try:
        port = parts.port or default_port
    except ValueError:
        raise ImproperlyConfigured("EMAIL_URL has a port that is not a number.") from None
    if not parts.hostname:
        raise ImproperlyConfigured("EMAIL_URL names no host.")
    return {
        "EMAIL_BACKEND": backend,
        "EMAIL_HOST": parts.hostname,
        "EMAIL_PORT": port,
        "EMAIL_HOST_USER": unquote(parts.username or ""),
        "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
        "EMAIL_USE_TLS": use_tls,
        "EMAIL_USE_SSL": use_ssl,
    }
