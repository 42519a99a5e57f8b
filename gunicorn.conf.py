"""Gunicorn settings for the `web` process (see Procfile).

Every knob reads the environment so Aptible can tune it with `aptible config:set`
without a rebuild. Settings reference: https://docs.gunicorn.org/en/stable/settings.html
"""

import os

from hcoint import settings as app_settings
from hcoint.env import env_bool, env_int, env_str
from hcoint.logging import gunicorn_logconfig

# Aptible's endpoint reaches the container on the port the Dockerfile EXPOSEs, on
# the container's own interface, so bind every interface (127.0.0.1 would fail
# the health check).
bind = f"0.0.0.0:{env_int('PORT', 8000)}"

# Threads, not more processes: requests mostly wait on PostgreSQL, and the
# container has little memory to spare for extra copies of Django.
workers = env_int("WEB_CONCURRENCY", 2)
threads = env_int("GUNICORN_THREADS", 4)
worker_class = "gthread"

# A worker that stops heart-beating this long is killed. With gthread the
# heartbeat comes from the main loop, so a slow upload on one thread does not
# trip it; this catches a worker that is truly stuck.
timeout = env_int("GUNICORN_TIMEOUT", 30)
# On SIGTERM (a deploy, a restart), requests in progress get this long to finish.
graceful_timeout = env_int("GUNICORN_GRACEFUL_TIMEOUT", 20)
# Longer than the load balancer's idle timeout (60 s by default), so the proxy
# closes idle connections first; the other order shows up as sporadic 502s.
keepalive = env_int("GUNICORN_KEEPALIVE", 75)

# Recycle workers now and then so a slow leak cannot grow without bound; the
# jitter stops every worker restarting at the same moment.
max_requests = env_int("GUNICORN_MAX_REQUESTS", 1000)
max_requests_jitter = env_int("GUNICORN_MAX_REQUESTS_JITTER", 100)

# Request-size limits, consistent with the app. The request line carries the
# order search (`?q=`) and Redox's GET verification (`?challenge=…&verification-token=…`),
# both short, so gunicorn's maximum line length is ample. Headers stay at
# gunicorn's defaults. Bodies are not limited here (gunicorn has no such setting):
# Django refuses webhook bodies over REDOX_WEBHOOK_MAX_BYTES (DATA_UPLOAD_MAX_MEMORY_SIZE),
# the upload form refuses PDFs over NOTE_MAX_BYTES, and the bulk upload refuses a request
# over UPLOAD_BATCH_MAX_BYTES before reading it (orders/views_batch.py). A bulk upload of 50
# files takes tens of seconds on one thread; with gthread the heartbeat (`timeout` above)
# comes from the main loop, so that is no reason to raise it.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190

# gunicorn's own lines go through the app's logging (hcoint.logging.gunicorn_logconfig):
# one JSON object per line on stdout in production, PHI filter included, like every
# other line Datadog receives. The settings module is read, not copied, so LOG_FORMAT
# and LOG_LEVEL mean the same here as in Django, and a missing SECRET_KEY or
# DATABASE_URL stops gunicorn before it forks.
#
# Access logs are off: a request line holds the query string, and the order
# search puts patient names there. Turn on only for debugging; the format
# below logs the path without the query string (%(U)s) all the same.
logconfig_dict = gunicorn_logconfig(app_settings.LOGGING, access_log=env_bool("GUNICORN_ACCESS_LOG"))
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
loglevel = env_str("GUNICORN_LOG_LEVEL", "info")

# The heartbeat file lives in memory: a disk-backed /tmp can stall workers
# (https://docs.gunicorn.org/en/stable/faq.html#blocking-os-fchmod).
_SHM = "/dev/shm"  # noqa: S108 (gunicorn creates its own unique file inside)
worker_tmp_dir = _SHM if os.path.isdir(_SHM) else None

# Nothing drives gunicorn's control socket here, and the non-root user's home
# need not be writable.
control_socket_disable = True

# No preload_app: each worker loads the Django application after the fork, which
# keeps database connections and tracer threads per process. The master reads only
# the settings module and hcoint.logging (with hcoint.phi and hcoint.env), for its
# log lines; it sets up no app and opens no connection.
preload_app = False
