"""HCOINT settings: one file, every value from the environment.

`.env.example` lists each variable with a comment. The readers (`hcoint/env.py`) are
strict on purpose: a boolean is true or false, an integer is an integer, and a
production process refuses to start when something it needs is missing.
"""

import hashlib
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from hcoint.encryption import KeyConfigurationError, parse_keys
from hcoint.env import SMTP, email_settings_from_url, env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent


DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "dev-only-not-secret-" + "x" * 40

# Aptible's health checker sends `Host: containers`; it is accepted for
# /healthcheck only (see hcoint.middleware.HealthcheckMiddleware), not added here.
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    # django.contrib.admin with a site the admin role can open without is_staff.
    "hcoint.apps.HcointAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",  # allauth's passkey list
    "axes",
    # Sign-in, its MFA stage and company sign-in (OIDC): see "Sign-in" below.
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "orders",
    "redox",
]

MIDDLEWARE = [
    "hcoint.middleware.HealthcheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "hcoint.middleware.RequestIdMiddleware",
    # Below WhiteNoise (static files stay cacheable), above everything that may answer
    # on its own (sign-in redirects, CSRF failures, axes' lockout page, error pages).
    "hcoint.middleware.NoStoreMiddleware",
    # Redox's webhook needs nothing below: it is answered here (hcoint/middleware.py).
    "hcoint.middleware.WebhookMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # The absolute session lifetime, before anything that acts for the user.
    "hcoint.signin.SessionLifetimeMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    # Once the user is known: enrol or pass a second factor before any other page.
    "hcoint.signin.MfaRequiredMiddleware",
    # Last, as django-axes asks: it turns a lockout into the lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "hcoint.urls"
WSGI_APPLICATION = "hcoint.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "hcoint.admin.admin_link",
                "hcoint.signin.signin_context",
                "orders.context_processors.reconcile_nav",
            ],
        },
    },
]

# PostgreSQL in production and CI. With DEBUG off the app refuses to start without
# DATABASE_URL, rather than quietly write to a SQLite file inside a container that the
# next deploy throws away. In development (DEBUG on) it defaults to SQLite in the
# checkout, so `make run` needs nothing installed.
if not env_str("DATABASE_URL") and not DEBUG:
    raise ImproperlyConfigured("DATABASE_URL must be set when DEBUG is off.")
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and sandbox share the file during `make run`; wait for locks.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # SQLite ignores SELECT ... FOR UPDATE; taking the write lock when a transaction
    # begins keeps the worker's claim (read, then mark sending) atomic against the web.
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    # allauth logs in OIDC users itself; without its backend it would pick axes' backend,
    # which cannot load a user back from the session.
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Sessions end after SESSION_IDLE_MINUTES without a request, and at browser close.
SESSION_COOKIE_AGE = env_int("SESSION_IDLE_MINUTES", 30) * 60
SESSION_SAVE_EVERY_REQUEST = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

# django-axes: lock an account+IP pair out after repeated failed sign-ins.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = env_int("AXES_COOLOFF_MINUTES", 30) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
# Spraying (one address trying many user names) slips under the per-account limit, so
# failures are also limited per client address, over a window as long as the cool-off:
# hcoint.throttle.SignInHandler adds that to axes' database handler. Higher than the
# per-account limit, since several staff may share an office's address.
AXES_HANDLER = "hcoint.throttle.SignInHandler"
SIGN_IN_ADDRESS_FAILURE_LIMIT = env_int("SIGN_IN_ADDRESS_FAILURE_LIMIT", 20)
SIGN_IN_ADDRESS_WINDOW_SECONDS = round(AXES_COOLOFF_TIME * 3600)  # axes counts in hours
# How many proxies in front of the app append to X-Forwarded-For (Aptible's load balancer
# is one). Axes and the audit trail read the client's address by this one rule, in
# hcoint/client_ip.py; without it axes would record the load balancer's address.
PROXY_COUNT = env_int("PROXY_COUNT", 0 if DEBUG else 1)
if PROXY_COUNT < 0:
    raise ImproperlyConfigured(f"PROXY_COUNT must be 0 or more, not {PROXY_COUNT}")
AXES_CLIENT_IP_CALLABLE = "hcoint.client_ip.client_ip"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "America/Los_Angeles")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- Security -------------------------------------------------------------
# Aptible terminates TLS and sets X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthcheck$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_HTTPONLY = True
# No page may be framed, not even the PDF: the review page shows images of its pages
# (orders/views.py, note_page) instead of framing the PDF.
X_FRAME_OPTIONS = "DENY"

# django-csp 4.x: a strict policy with no inline script.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'self'"],
        "frame-src": ["'self'"],
        "frame-ancestors": ["'self'"],
        "form-action": ["'self'"],
        "base-uri": ["'none'"],
    }
}

# --- Uploads and the webhook ------------------------------------------------
# The largest webhook body we accept; larger gets 413 (Redox's own API limit is 40 MB).
REDOX_WEBHOOK_MAX_BYTES = env_int("REDOX_WEBHOOK_MAX_BYTES", 10 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = REDOX_WEBHOOK_MAX_BYTES
# Wrong or missing verification tokens allowed per client address per minute before that
# address gets 429 (hcoint/throttle.py); a request with a right token is never refused.
WEBHOOK_BAD_TOKEN_LIMIT = env_int("WEBHOOK_BAD_TOKEN_LIMIT", 30)
WEBHOOK_BAD_TOKEN_WINDOW_SECONDS = 60
# The largest clinical note PDF; never above Redox's 30 MB file limit.
REDOX_FILE_LIMIT_BYTES = 30 * 1024 * 1024
NOTE_MAX_BYTES = min(env_int("NOTE_MAX_BYTES", 10 * 1024 * 1024), REDOX_FILE_LIMIT_BYTES)
# How much work checking one uploaded PDF may take (docs/security.md, "PDF uploads"): what
# its streams unpack to in total, its objects, pages and nesting depth, and the CPU time and
# memory of the child process that does the check.
NOTE_MAX_INFLATED_BYTES = env_int("NOTE_MAX_INFLATED_BYTES", 20 * NOTE_MAX_BYTES)
NOTE_MAX_OBJECTS = env_int("NOTE_MAX_OBJECTS", 50_000)
NOTE_MAX_PAGES = env_int("NOTE_MAX_PAGES", 500)
NOTE_MAX_DEPTH = env_int("NOTE_MAX_DEPTH", 32)
NOTE_CHECK_CPU_SECONDS = env_int("NOTE_CHECK_CPU_SECONDS", 20)
NOTE_CHECK_MEMORY_MB = env_int("NOTE_CHECK_MEMORY_MB", 1024)
# Page previews (orders/pdf/preview.py), rendered in the same limited child process: the
# longer side of a page image in pixels (1400 reads like a 170 dpi letter page), and how
# many pages of a note are shown as images (the PDF link opens the rest).
NOTE_PREVIEW_MAX_PX = env_int("NOTE_PREVIEW_MAX_PX", 1400)
NOTE_PREVIEW_MAX_PAGES = env_int("NOTE_PREVIEW_MAX_PAGES", 20)
if not 200 <= NOTE_PREVIEW_MAX_PX <= 4000:
    raise ImproperlyConfigured(f"NOTE_PREVIEW_MAX_PX must be between 200 and 4000, not {NOTE_PREVIEW_MAX_PX}")
if NOTE_PREVIEW_MAX_PAGES < 1:
    raise ImproperlyConfigured(f"NOTE_PREVIEW_MAX_PAGES must be 1 or more, not {NOTE_PREVIEW_MAX_PAGES}")
# Bulk upload (orders/batches.py): the most files and bytes one upload may carry, and how
# long files nobody sent are kept before the worker deletes them (every
# UPLOAD_BATCH_PURGE_SECONDS). Django's file-count limit is global, so it follows the
# batch's: every other form reads one file and ignores the rest.
UPLOAD_BATCH_MAX_FILES = env_int("UPLOAD_BATCH_MAX_FILES", 100)
UPLOAD_BATCH_MAX_BYTES = env_int("UPLOAD_BATCH_MAX_BYTES", 300 * 1024 * 1024)
UPLOAD_BATCH_EXPIRY_DAYS = env_int("UPLOAD_BATCH_EXPIRY_DAYS", 7)
UPLOAD_BATCH_PURGE_SECONDS = env_int("UPLOAD_BATCH_PURGE_SECONDS", 3600)
DATA_UPLOAD_MAX_NUMBER_FILES = UPLOAD_BATCH_MAX_FILES

# --- Encryption at rest (hcoint/encryption.py, docs/security.md) ---------------
# Note PDFs and Redox's raw bodies are encrypted in the database with these keys:
# comma-separated, newest first; the first encrypts, any of them decrypts. Rotation:
# put a new key first, deploy, run `manage.py reencrypt`, then remove the old key
# (docs/runbook.md, "Rotating the field encryption key"). Refused when malformed, naming
# the key's position and never its value. Development (DEBUG) without keys uses a public
# development key, which is refused with DEBUG off, as the demo token is.
DEV_FIELD_ENCRYPTION_KEY = "yotYSN2xzhgwPWePyHrmXkYhmSP1Vid3hVkwGjCJu8I="  # noqa: S105 - public, development only
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS")
if not FIELD_ENCRYPTION_KEYS:
    if not DEBUG:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS must be set when DEBUG is off (make a key with manage.py generate_field_key)."
        )
    FIELD_ENCRYPTION_KEYS = [DEV_FIELD_ENCRYPTION_KEY]
elif DEV_FIELD_ENCRYPTION_KEY in FIELD_ENCRYPTION_KEYS and not DEBUG:
    raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS holds the public development key; production needs its own.")
try:
    parse_keys(FIELD_ENCRYPTION_KEYS)
except KeyConfigurationError as exc:
    raise ImproperlyConfigured(str(exc)) from None

# --- Development and demos --------------------------------------------------
# The demo partner's verification token. Public on purpose (it is in this repository):
# demo_setup gives it to the demo partner, redox_send_test_order sends it by default, and
# outside DEBUG no partner may be configured with it (orders.models.Partner.token_problems).
DEMO_VERIFICATION_TOKEN = "demo-verification-token-0123456789abcdef"  # noqa: S105
REDOX_TEST_VERIFICATION_TOKEN = env_str("REDOX_TEST_VERIFICATION_TOKEN", DEMO_VERIFICATION_TOKEN)

# --- Redox (outbound) -------------------------------------------------------
REDOX_API_BASE_URL = env_str("REDOX_API_BASE_URL", "https://api.redoxengine.com").rstrip("/")
REDOX_UPLOAD_URL = env_str("REDOX_UPLOAD_URL", "https://blob.redoxengine.com/upload")
REDOX_CLIENT_ID = env_str("REDOX_CLIENT_ID")
REDOX_KEY_ID = env_str("REDOX_KEY_ID")
REDOX_PRIVATE_KEY = env_str("REDOX_PRIVATE_KEY")
REDOX_PRIVATE_KEY_FILE = env_str("REDOX_PRIVATE_KEY_FILE")
REDOX_API_KEY = env_str("REDOX_API_KEY")
REDOX_API_SECRET = env_str("REDOX_API_SECRET")
REDOX_SOURCE_ID = env_str("REDOX_SOURCE_ID")
REDOX_INLINE_MAX_BYTES = env_int("REDOX_INLINE_MAX_BYTES", 200_000)
REDOX_CONNECT_TIMEOUT = env_int("REDOX_CONNECT_TIMEOUT_SECONDS", 5)
REDOX_READ_TIMEOUT = env_int("REDOX_READ_TIMEOUT_SECONDS", 60)

# --- Redox Platform API: confirming that accepted notes were filed (orders/confirm.py) ---
# Optional. A user-level API key (signed-JWT flow, token from REDOX_API_BASE_URL/v2/auth/token);
# without it the confirmer is off and accepted deliveries stay "Accepted by Redox".
REDOX_PLATFORM_BASE_URL = env_str("REDOX_PLATFORM_BASE_URL", "https://api.redoxengine.com/platform").rstrip("/")
REDOX_PLATFORM_CLIENT_ID = env_str("REDOX_PLATFORM_CLIENT_ID")
REDOX_PLATFORM_KEY_ID = env_str("REDOX_PLATFORM_KEY_ID")
REDOX_PLATFORM_PRIVATE_KEY = env_str("REDOX_PLATFORM_PRIVATE_KEY")
REDOX_PLATFORM_PRIVATE_KEY_FILE = env_str("REDOX_PLATFORM_PRIVATE_KEY_FILE")
REDOX_ORGANIZATION_ID = env_str("REDOX_ORGANIZATION_ID")
# The schedule of checks: first this long after Redox accepted, then 5 min, 15 min, then every
# REDOX_CONFIRM_MAX_WAIT_SECONDS, until a final status or REDOX_CONFIRM_WINDOW_DAYS (then Unconfirmed).
REDOX_CONFIRM_FIRST_CHECK_SECONDS = env_int("REDOX_CONFIRM_FIRST_CHECK_SECONDS", 60)
REDOX_CONFIRM_MAX_WAIT_SECONDS = env_int("REDOX_CONFIRM_MAX_WAIT_SECONDS", 3600)
REDOX_CONFIRM_WINDOW_DAYS = env_int("REDOX_CONFIRM_WINDOW_DAYS", 7)
# Log look-ups per minute across every worker (counted in the database), so a backlog never
# breaks Redox's rate limits.
REDOX_CONFIRM_MAX_PER_MINUTE = env_int("REDOX_CONFIRM_MAX_PER_MINUTE", 60)
# How often a worker looks for deliveries due a check.
REDOX_CONFIRM_POLL_SECONDS = env_int("REDOX_CONFIRM_POLL_SECONDS", 10)

# --- Deliveries -------------------------------------------------------------
DELIVERY_MAX_AGE_HOURS = env_int("DELIVERY_MAX_AGE_HOURS", 24)
DELIVERY_RETRY_BASE_SECONDS = env_int("DELIVERY_RETRY_BASE_SECONDS", 30)
DELIVERY_RETRY_MAX_SECONDS = env_int("DELIVERY_RETRY_MAX_SECONDS", 3600)
# A worker holds a delivery it is sending for this long, and renews the hold every
# DELIVERY_LEASE_RENEW_SECONDS while the send lasts; a delivery whose lease ran out lost its
# worker and is claimed again by another (orders/worker.py). Renew well inside the lease.
DELIVERY_LEASE_SECONDS = env_int("DELIVERY_LEASE_SECONDS", 60)
DELIVERY_LEASE_RENEW_SECONDS = env_int("DELIVERY_LEASE_RENEW_SECONDS", 20)
# An idle worker looks for due deliveries this often; on PostgreSQL a new delivery also
# wakes it at once (LISTEN/NOTIFY), so this bounds how late a due retry can start.
DELIVERY_IDLE_POLL_SECONDS = env_int("DELIVERY_IDLE_POLL_SECONDS", 5)
# How often the worker emits the usage figures (orders.usage.usage_report); the "orders
# awaiting a note" monitor looks back 2 hours, so keep it well under that.
USAGE_REPORT_INTERVAL_SECONDS = env_int("USAGE_REPORT_INTERVAL_SECONDS", 3600)

# --- Email and the digest (orders/digest.py) ----------------------------------
# SMTP from EMAIL_URL (`smtp+tls://USER:PASSWORD@HOST:587`; hcoint.env.email_settings_from_url)
# or from Django's usual EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD,
# EMAIL_USE_TLS, EMAIL_USE_SSL. With neither, mail goes nowhere (the console in DEBUG).
EMAIL_URL = env_str("EMAIL_URL")
if EMAIL_URL and env_str("EMAIL_HOST"):
    raise ImproperlyConfigured("Set EMAIL_URL or EMAIL_HOST, not both.")
if EMAIL_URL:
    _email = email_settings_from_url(EMAIL_URL)
elif env_str("EMAIL_HOST"):
    _email = {
        "EMAIL_BACKEND": SMTP,
        "EMAIL_HOST": env_str("EMAIL_HOST"),
        "EMAIL_PORT": env_int("EMAIL_PORT", 587),
        "EMAIL_HOST_USER": env_str("EMAIL_HOST_USER", ""),
        "EMAIL_HOST_PASSWORD": env_str("EMAIL_HOST_PASSWORD", ""),
        "EMAIL_USE_TLS": env_bool("EMAIL_USE_TLS", True),
        "EMAIL_USE_SSL": env_bool("EMAIL_USE_SSL", False),
    }
else:
    _email = {
        "EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"
        if DEBUG
        else "django.core.mail.backends.dummy.EmailBackend"
    }
EMAIL_CONFIGURED = bool(EMAIL_URL or env_str("EMAIL_HOST"))
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email.get("EMAIL_HOST", "localhost")
EMAIL_PORT = _email.get("EMAIL_PORT", 25)
EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = _email.get("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = _email.get("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("EMAIL_USE_TLS (STARTTLS) and EMAIL_USE_SSL (implicit TLS) exclude each other.")
# Without a timeout a stalled SMTP server would hold the worker's loop (and its deliveries).
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT_SECONDS", 20)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "HCOINT <hcoint@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# The digest: counts only (never patient data) and a link to the worklist, to the active
# members of DIGEST_GROUP who have an email address, once per period: `daily`, or `weekly`
# (Mondays), at DIGEST_HOUR o'clock in TIME_ZONE (the staff's clock, as on the pages).
# Off by default; on in production only with SMTP and SITE_URL set.
DIGEST_FREQUENCY = env_str("DIGEST_FREQUENCY", "off").lower()
if DIGEST_FREQUENCY not in ("off", "daily", "weekly"):
    raise ImproperlyConfigured(f"DIGEST_FREQUENCY must be off, daily or weekly, not {DIGEST_FREQUENCY!r}")
DIGEST_HOUR = env_int("DIGEST_HOUR", 7)
if not 0 <= DIGEST_HOUR <= 23:
    raise ImproperlyConfigured(f"DIGEST_HOUR must be 0 to 23 (an hour in TIME_ZONE), not {DIGEST_HOUR}")
DIGEST_GROUP = env_str("DIGEST_GROUP", "uploader")
# How often a worker asks whether the digest is due (it is sent once per period whatever this is).
DIGEST_CHECK_SECONDS = env_int("DIGEST_CHECK_SECONDS", 300)
# The address staff open HCOINT at, for links in emails (no trailing slash).
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000" if DEBUG else "").rstrip("/")
if DIGEST_FREQUENCY != "off" and not DEBUG:
    if not EMAIL_CONFIGURED:
        raise ImproperlyConfigured("DIGEST_FREQUENCY needs EMAIL_URL or EMAIL_HOST (SMTP) to send with.")
    if not SITE_URL.startswith("https://"):
        raise ImproperlyConfigured("DIGEST_FREQUENCY needs SITE_URL, the https:// address staff open HCOINT at.")
# --- Retention (orders/retention.py; docs/runbook.md, "Retention and legal hold") ---
# How long each kind of data is kept, in days, counted from when it stopped being needed;
# records under a legal hold (an order, or a whole partner) are never purged.
# PDF bytes: after the note was filed or abandoned, or after its order closed.
RETENTION_PDF_DAYS = env_int("RETENTION_PDF_DAYS", 90)
# Raw inbound payloads (message and redelivery bodies and headers): after their orders closed.
RETENTION_PAYLOAD_DAYS = env_int("RETENTION_PAYLOAD_DAYS", 365)
# The orders' patient fields: after the order closed.
RETENTION_PATIENT_DAYS = env_int("RETENTION_PATIENT_DAYS", 365)
# The audit trail's own rows (no patient data): six years, counting two leap days.
AUDIT_RETENTION_DAYS = env_int("AUDIT_RETENTION_DAYS", 6 * 365 + 2)
# The worker purges this often, in transactions of at most RETENTION_BATCH_SIZE rows and at
# most RETENTION_MAX_BATCHES of them per kind per pass, so a backlog never delays deliveries
# for long; `manage.py purge` goes on until nothing is due.
RETENTION_PURGE_INTERVAL_SECONDS = env_int("RETENTION_PURGE_INTERVAL_SECONDS", 3600)
RETENTION_BATCH_SIZE = env_int("RETENTION_BATCH_SIZE", 200)
RETENTION_MAX_BATCHES = env_int("RETENTION_MAX_BATCHES", 10)
for _name in (
    "RETENTION_PDF_DAYS",
    "RETENTION_PAYLOAD_DAYS",
    "RETENTION_PATIENT_DAYS",
    "AUDIT_RETENTION_DAYS",
    "RETENTION_PURGE_INTERVAL_SECONDS",
    "RETENTION_BATCH_SIZE",
    "RETENTION_MAX_BATCHES",
):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1.")
# The key of the HMAC-SHA256 a purged order keeps of its patient identifiers, so "was this
# MRN ever here" can still be answered. Without it, one derived from SECRET_KEY; set it in
# production so a SECRET_KEY rotation does not orphan the hashes, and never change it after.
RETENTION_HASH_KEY = env_str("RETENTION_HASH_KEY") or hashlib.sha256(f"retention:{SECRET_KEY}".encode()).hexdigest()

# --- Observability ----------------------------------------------------------
# JSON lines on stdout in production (Aptible relays stdout to Datadog), readable
# lines in development. Both go through the PHI scrubber (hcoint/phi.py).
LOG_FORMAT = env_str("LOG_FORMAT", "plain" if DEBUG else "json")
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or plain, not {LOG_FORMAT!r}")
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
# No traceback mail: tracebacks can carry PHI. Errors go to the JSON log.
ADMINS: list[tuple[str, str]] = []
MANAGERS: list[tuple[str, str]] = []
# Applies LOGGING, then installs the trace scrubber when ddtrace is running.
LOGGING_CONFIG = "hcoint.observability.configure_observability"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "hcoint.middleware.RequestIdFilter"},
        "phi": {"()": "hcoint.logging.PhiFilter"},
    },
    "formatters": {
        "plain": {"()": "hcoint.logging.PlainFormatter"},
        "json": {"()": "hcoint.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": LOG_FORMAT,
            "filters": ["request_id", "phi"],
        },
    },
    # Every logger reaches this handler through root. gunicorn
    # takes this configuration too (gunicorn.conf.py, hcoint.logging.gunicorn_logconfig).
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's defaults add a DEBUG-only console handler, an AdminEmailHandler and,
        # for django.server, a handler that bypasses ours; everything goes to root instead.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.request": {"handlers": [], "level": "ERROR", "propagate": True},
        "django.server": {"handlers": [], "level": "INFO" if DEBUG else "WARNING", "propagate": True},
        # SQL statements are logged with their parameters (patient data) in DEBUG.
        "django.db.backends": {"handlers": [], "level": "INFO", "propagate": True},
        # ddtrace gives its logger a plain StreamHandler on stderr (DD_TRACE_LOG_STREAM_HANDLER,
        # on by default), so with no agent reachable each failed flush printed "failed to send,
        # dropping N traces ..." as a plain line beside the JSON one. Naming the logger here
        # removes that handler; its lines reach root, JSON. The image also sets
        # DD_TRACE_LOG_STREAM_HANDLER=false for the moments before this configuration runs.
        "ddtrace": {"handlers": [], "propagate": True},
    },
}

# --- Sign-in: allauth, MFA, OIDC ----------------------------------------------
# django-allauth owns sign-in (/accounts/login/, still named `login`), its MFA stage
# (TOTP, passkeys, recovery codes) and company sign-in over OpenID Connect. Local
# passwords stay for break-glass admin accounts and `make run`; nobody signs up: admins
# create local users, and company sign-in creates users without a role. See
# docs/runbook.md "Sign-in, MFA and sessions" and hcoint/signin.py.
ACCOUNT_ADAPTER = "hcoint.signin.AccountAdapter"
SOCIALACCOUNT_ADAPTER = "hcoint.signin.SocialAccountAdapter"
ACCOUNT_FORMS = {"login": "hcoint.signin.LoginForm"}
MFA_FORMS = {
    "authenticate": "hcoint.signin.MfaAuthenticateForm",
    "reauthenticate": "hcoint.signin.MfaReauthenticateForm",
    "activate_totp": "hcoint.signin.ActivateTotpForm",
    "add_webauthn": "hcoint.signin.AddWebAuthnForm",
}
ACCOUNT_LOGIN_METHODS = {"username"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "password1*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_SESSION_REMEMBER = False  # sessions end with the browser (above)
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_PRESERVE_USERNAME_CASING = True
# Failed sign-ins are limited by django-axes and hcoint.throttle (shared tables, every
# process counts together), MFA codes by hcoint.signin.MFA_CODE; allauth's own limits
# live in the per-process cache and would add a second, disagreeing lockout.
ACCOUNT_RATE_LIMITS = False
MFA_RATE_LIMITS = False
MFA_SUPPORTED_TYPES = ["totp", "webauthn", "recovery_codes"]
MFA_PASSKEY_LOGIN_ENABLED = True
MFA_TOTP_ISSUER = "HCOINT"
# allauth would ask for the password again before enrolling or removing a factor, which a
# company-sign-in user (no password) cannot give: enrolment would be refused. Instead, a
# session must have passed a second factor before any factor can be changed
# (hcoint.signin.MfaRequiredMiddleware), and a user without one may only enrol.
MFA_REAUTHENTICATION_REQUIRED = False
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = DEBUG  # passkeys on http://127.0.0.1 under `make run`
# Every role sees PHI, so every signed-in user needs a second factor; only a development
# run may turn that off (the pages then say so).
MFA_REQUIRED = env_bool("MFA_REQUIRED", True)
if not MFA_REQUIRED and not DEBUG:
    raise ImproperlyConfigured("MFA_REQUIRED can be false only with DEBUG on (development).")
# Absolute lifetime of a session, however active (the idle limit is SESSION_COOKIE_AGE).
SESSION_MAX_HOURS = env_int("SESSION_MAX_HOURS", 12)
if SESSION_MAX_HOURS < 1:
    raise ImproperlyConfigured(f"SESSION_MAX_HOURS must be 1 or more, not {SESSION_MAX_HOURS}")
# Pages with a form warn this many seconds before the idle sign-out (static/js/idle.js).
SESSION_IDLE_WARNING_SECONDS = 120

# Company sign-in: on when the three OIDC_* values are set, off otherwise.
OIDC_ISSUER_URL = env_str("OIDC_ISSUER_URL")
OIDC_CLIENT_ID = env_str("OIDC_CLIENT_ID")
OIDC_CLIENT_SECRET = env_str("OIDC_CLIENT_SECRET")
OIDC_ENABLED = bool(OIDC_ISSUER_URL and OIDC_CLIENT_ID and OIDC_CLIENT_SECRET)
if not OIDC_ENABLED and (OIDC_ISSUER_URL or OIDC_CLIENT_ID or OIDC_CLIENT_SECRET):
    raise ImproperlyConfigured("Set all of OIDC_ISSUER_URL, OIDC_CLIENT_ID and OIDC_CLIENT_SECRET, or none.")
OIDC_PROVIDER_NAME = env_str("OIDC_PROVIDER_NAME", "company sign-in")
# A sign-in counts as multi-factor when the ID token's `amr` holds one of these values or
# its `acr` is one of OIDC_MFA_ACR_VALUES; otherwise HCOINT asks for its own second factor.
OIDC_MFA_AMR_VALUES = env_list("OIDC_MFA_AMR_VALUES", ["mfa", "otp", "hwk", "swk"])
OIDC_MFA_ACR_VALUES = env_list("OIDC_MFA_ACR_VALUES")
# Optional: a claim listing the user's IdP groups, and group=role pairs. When both are set
# the IdP decides the roles at every company sign-in; otherwise new users get no role.
OIDC_ROLE_CLAIM = env_str("OIDC_ROLE_CLAIM")
if any("=" not in pair for pair in env_list("OIDC_ROLE_MAP")):
    raise ImproperlyConfigured("OIDC_ROLE_MAP is group=role pairs, comma-separated.")
OIDC_ROLE_MAP = dict(pair.split("=", 1) for pair in env_list("OIDC_ROLE_MAP"))
if set(OIDC_ROLE_MAP.values()) - {"viewer", "uploader", "admin"}:
    raise ImproperlyConfigured("OIDC_ROLE_MAP roles must be viewer, uploader or admin.")
if OIDC_ENABLED:
    # "Sign in with ..." posts to us and we redirect the browser to the IdP; browsers apply
    # the CSP's form-action to that redirect too, so the IdP's origin must be listed.
    from urllib.parse import urlsplit

    _issuer = urlsplit(OIDC_ISSUER_URL)
    CONTENT_SECURITY_POLICY["DIRECTIVES"]["form-action"] += [f"{_issuer.scheme}://{_issuer.netloc}"]
SOCIALACCOUNT_PROVIDERS = {
    "openid_connect": {
        "APPS": (
            [
                {
                    "provider_id": "company",
                    "name": OIDC_PROVIDER_NAME,
                    "client_id": OIDC_CLIENT_ID,
                    "secret": OIDC_CLIENT_SECRET,
                    # allauth appends /.well-known/openid-configuration.
                    "settings": {"server_url": OIDC_ISSUER_URL, "token_auth_method": "client_secret_post"},
                }
            ]
            if OIDC_ENABLED
            else []
        ),
        "SCOPE": ["openid", "email", "profile"],
    }
}
SOCIALACCOUNT_ONLY = False
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_LOGIN_ON_GET = False
SOCIALACCOUNT_STORE_TOKENS = False
# Match an existing user by an email address the IdP marks verified (`email_verified`).
SOCIALACCOUNT_EMAIL_AUTHENTICATION = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True
SOCIALACCOUNT_EMAIL_VERIFICATION = "none"
SOCIALACCOUNT_OPENID_CONNECT_URL_PREFIX = "oidc"
# --- end Sign-in ----------------------------------------------------------------
