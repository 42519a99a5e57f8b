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
