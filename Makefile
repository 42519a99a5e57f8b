# The two commands a new developer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

# Local development: DEBUG on, SQLite unless DATABASE_URL says otherwise, and the
# Redox client pointed at the local sandbox (manage.py redox_sandbox) on port 8001.
DEV_ENV := DEBUG=true \
	REDOX_API_BASE_URL=http://127.0.0.1:8001 \
	REDOX_UPLOAD_URL=http://127.0.0.1:8001/upload \
	REDOX_API_KEY=sandbox-api-key \
	REDOX_API_SECRET=sandbox-api-secret

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

run: $(INSTALLED)
	$(DEV_ENV) $(BIN)/python manage.py migrate --no-input
	$(DEV_ENV) $(BIN)/python manage.py demo_setup
	$(DEV_ENV) $(BIN)/python manage.py runserver 127.0.0.1:8000

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/pytest --cov --cov-report=term --cov-report=xml --junitxml=test-results/junit.xml

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles .coverage coverage.xml test-results
