# The two commands of the README:
#   make run    the chat on http://127.0.0.1:8000 (SQLite, in-memory channel layer unless REDIS_URL is set)
#   make test   lint, then every test (unit, consumer, real server processes, real Chromium)
# Both create .venv and install the pinned requirements on first use.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: run test lint bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

run: $(VENV)/.installed
	$(PY) manage.py migrate --noinput
	$(PY) manage.py runserver $(PORT)

lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# The whole suite on DATABASE_URL (SQLite when unset); when DATABASE_URL names another
# database, the part without server processes and browsers runs on SQLite as well.
# pytest exits non-zero (5) when it collects no test, so an empty run fails here too.
test: lint
	$(PY) -m pytest $(PYTEST_ARGS)
	@if [ -n "$$DATABASE_URL" ]; then \
		echo "--- again on SQLite, without server processes and browsers ---"; \
		DATABASE_URL= $(PY) -m pytest -m "not system and not e2e" $(PYTEST_ARGS); \
	fi

bench: $(VENV)/.installed
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) staticfiles db.sqlite3 .pytest_cache .ruff_cache
