# The image Aptible builds on `git push`. Aptible runs the Procfile's commands in it
# (web: gunicorn, worker: deliver) and the .aptible.yml migration before each
# deploy; CMD below is only for a plain `docker run`.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8000

# ddtrace-run reads these before any of our code runs, so the safe values live in the
# image (aptible config:set can still override them). ddtrace's defaults would tag query
# strings (the staff search puts patient names in ?q=) and the staff user name on spans,
# and let remote configuration switch features on. hcoint/tracing.py scrubs spans as well.
# ddtrace would also print its own log lines (a failed flush to an unreachable agent) as
# plain text on stderr; without that handler they go through the app's JSON logging.
# No span per middleware: the request, view and database spans are what APM shows, and
# the middleware spans were two thirds of a webhook delivery's (docs/performance.md).
ENV DD_SERVICE=hcoint \
    DD_HTTP_SERVER_TAG_QUERY_STRING=false \
    DD_TRACE_HTTP_CLIENT_TAG_QUERY_STRING=false \
    DD_DJANGO_INCLUDE_USER_NAME=false \
    DD_REMOTE_CONFIGURATION_ENABLED=false \
    DD_TRACE_LOG_STREAM_HANDLER=false \
    DD_DJANGO_INSTRUMENT_MIDDLEWARE=false

# The app runs as this unprivileged user; the code it runs stays owned by root,
# so a compromised process cannot rewrite it.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app

WORKDIR /app

# Dependencies first, in their own layer: a code-only change reuses it.
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

COPY . .

# Static files are part of the image (WhiteNoise serves them with hashed names).
# Settings refuse to load without a SECRET_KEY, a DATABASE_URL or FIELD_ENCRYPTION_KEYS
# when DEBUG is off; these throwaway values exist only for this RUN step and are never in
# the image's environment. collectstatic opens no database: an in-memory SQLite one stands in.
RUN SECRET_KEY=collectstatic-build-step-only-not-a-secret \
    FIELD_ENCRYPTION_KEYS="$(python -c 'from hcoint.encryption import generate_key; print(generate_key())')" \
    DATABASE_URL=sqlite://:memory: \
    python manage.py collectstatic --no-input

# Numeric, so a platform can verify without the passwd file that this is not root.
USER 10001:10001

# gunicorn.conf.py binds 0.0.0.0:$PORT; Aptible's endpoint uses the exposed port.
EXPOSE 8000

# Exec form: gunicorn (via ddtrace-run, which execs it) is PID 1 and gets SIGTERM.
CMD ["ddtrace-run", "gunicorn", "hcoint.wsgi:application", "--config", "gunicorn.conf.py"]
