# The two commands a new developer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

# Local development: DEBUG on, SQLite unless DATABASE_URL says otherwise, and the
# Redox client pointed at the local sandbox (manage.py redox_sandbox) on port 8001.
# Retries start at 5 s instead of 30 s so a demo of the retry path takes seconds.
DEV_ENV := DEBUG=true \
	REDOX_API_BASE_URL=http://127.0.0.1:8001 \
	REDOX_UPLOAD_URL=http://127.0.0.1:8001/upload \
	REDOX_API_KEY=sandbox-api-key \
	REDOX_API_SECRET=sandbox-api-secret \
	DELIVERY_RETRY_BASE_SECONDS=5

# `check --deploy` sees what Aptible gives the app and nothing from this shell:
# DEBUG off, a fresh strong key, real host names, PostgreSQL over TLS.
DEPLOY_CHECK_ENV := env -i PATH="$$PATH" HOME="$$HOME" \
	DEBUG=false \
	SECRET_KEY="$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
	ALLOWED_HOSTS=hcoint.example.org \
	CSRF_TRUSTED_ORIGINS=https://hcoint.example.org \
	DATABASE_URL='postgres://hcoint:unused@db.example.internal:5432/hcoint?sslmode=require' \
	REDOX_API_KEY=deploy-check-unused \
	REDOX_API_SECRET=deploy-check-unused \
	DD_TRACE_ENABLED=false

.PHONY: run test lint drills bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

# Web server, delivery worker and Redox sandbox together (Procfile.dev); Ctrl-C stops all three.
run: $(INSTALLED)
	$(DEV_ENV) $(BIN)/python manage.py migrate --no-input
	$(DEV_ENV) $(BIN)/python manage.py demo_setup
	$(DEV_ENV) PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho -f Procfile.dev start

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	DEBUG=true $(BIN)/python manage.py makemigrations --check --dry-run
	$(DEPLOY_CHECK_ENV) $(BIN)/python manage.py check --deploy --fail-level WARNING
	$(BIN)/check-jsonschema --builtin-schema vendor.circle-ci .circleci/config.yml
	$(BIN)/pytest --cov --cov-report=term --cov-report=xml --junitxml=test-results/junit.xml

# Only the operations drills (tests marked `drill`, which `make test` also runs on PostgreSQL):
# kill -9 a delivery worker mid-send and start another; restart PostgreSQL under a running
# worker (a private throwaway cluster, never the shared server). They need PostgreSQL.
drills: $(INSTALLED)
	@case "$$DATABASE_URL" in postgres*) ;; *) echo "make drills needs DATABASE_URL=postgres://..."; exit 2;; esac
	$(BIN)/pytest -m drill --no-cov

# Benchmarks, not tests (docs/performance.md): ingest against a bare-Django anchor, pages at
# 1,000 and 100,000 orders, and large notes, over HTTP against gunicorn as the Procfile runs
# it, on PostgreSQL (DATABASE_URL's server, else 127.0.0.1:5432, else a private throwaway
# one). One table on stdout, the same figures in bench/results/latest.json; about 5-10 minutes.
bench: $(INSTALLED)
	cd bench && ../$(BIN)/python bench.py

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles .coverage coverage.xml test-results
