"""The bare-Django anchor for the ingest benchmark (`make bench`): what one webhook costs
with nothing of HCOINT's in the way. One view, no middleware, no apps, the same database
server, gunicorn settings and tracer as the app (bench/bench.py starts it with the
Procfile's web line). Not part of the app.
"""

import os

import dj_database_url

SECRET_KEY = os.environ["SECRET_KEY"]
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "anchor.urls"
INSTALLED_APPS = []
MIDDLEWARE = []
DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=60)}
USE_TZ = True
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
