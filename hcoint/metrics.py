"""DogStatsD metrics, on only where an agent is configured.

Metrics are sent when `DD_DOGSTATSD_URL` (`udp://host:8125` or `unix:///path`) or
`DD_AGENT_HOST` (with optional `DD_DOGSTATSD_PORT`) is set, and
`DD_DOGSTATSD_DISABLE` is not true; otherwise every call here does nothing, silently,
so development, tests and CI need no agent. The `datadog` client adds `env`,
`service` and `version` tags from `DD_ENV`, `DD_SERVICE` and `DD_VERSION`.

Names start with `hcoint.`; tags are opaque (`partner_id:3`), never patient data.
A metric is fire-and-forget UDP: a missing or slow agent never blocks the caller.
"""

import threading

from hcoint.env import env_bool, env_str
from hcoint.phi import is_sensitive_key

PREFIX = "hcoint."
_lock = threading.Lock()
_client = None
_client_config = None


def enabled():
    """Whether metrics go anywhere: an agent is named and metrics are not disabled."""
    if env_bool("DD_DOGSTATSD_DISABLE", False):
        return False
    return bool(env_str("DD_DOGSTATSD_URL") or env_str("DD_AGENT_HOST"))


def _statsd():
    """The process's DogStatsd client, created on first use (and again if the env changed)."""
    global _client, _client_config
    if not enabled():
        return None
    config = (env_str("DD_DOGSTATSD_URL"), env_str("DD_AGENT_HOST"), env_str("DD_DOGSTATSD_PORT"))
    with _lock:
        if _client is None or _client_config != config:
            from datadog.dogstatsd import DogStatsd

            _client = DogStatsd(disable_telemetry=True)
            _client_config = config
        return _client


def _tags(tags):
    return [f"{key}:{value}" for key, value in (tags or {}).items() if value is not None and not is_sensitive_key(key)]


def gauge(name, value, **tags):
    client = _statsd()
    if client is not None and value is not None:
        client.gauge(PREFIX + name, value, tags=_tags(tags))


def flush():
    """Send anything buffered; for short-lived commands before they exit."""
    client = _statsd()
    if client is not None:
        client.flush()
