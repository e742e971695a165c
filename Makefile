# The front door: every command in README.md is one of these targets.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test test-postgres bench bench-deps lint audit browser-deps screenshots

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime-installed: requirements.txt | $(PY)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $@ $(VENV)/.runtime-installed

## run: set up and serve the studio on http://127.0.0.1:8000, or HOST= PORT= (sandbox mode without an API key)
# Both processes learn the address served here, so with no PUBLIC_BASE_URL or SANDBOX_API_URL
# set the studio calls its own sandbox and webhooks, not whatever runs on port 8000. Only the
# address is exported: an explicit URL in .env must still win (.env never overrides the environment).
run: export STUDIO_ADDRESS = $(HOST):$(PORT)
run: $(VENV)/.runtime-installed
	$(PY) manage.py migrate --noinput
	$(PY) manage.py create_demo_user
	@echo "Kling Studio is starting on http://$(HOST):$(PORT)/ — sign in with the demo account above."
	@# The sync worker runs beside the web server and stops with it.
	@$(PY) manage.py sync_jobs --watch & SYNC=$$!; \
	  trap 'kill $$SYNC 2>/dev/null' EXIT INT TERM; \
	  $(PY) manage.py runserver $(HOST):$(PORT) --noreload

## test: install what the tests need (Python packages, Debian's chromium) and run them all
test: $(VENV)/.dev-installed browser-deps
	$(PY) -m pytest

## test-postgres: the whole suite against a throwaway PostgreSQL server (installed if missing)
test-postgres: $(VENV)/.dev-installed browser-deps
	scripts/with-postgres $(PY) -m pytest

## bench: measure this machine and write docs/benchmarks.md (not part of make test; about 5 minutes, 7 when it must generate the data)
# PostgreSQL runs in its own cluster, kept in BENCH_PGDATA (default /var/tmp/kling-studio-bench)
# with the generated jobs, so a later run copies them instead of generating them again;
# BENCH_DATABASE_URL names a server to use instead. BENCH_LARGE_JOBS sets the large set's size.
bench: $(VENV)/.dev-installed browser-deps bench-deps
	$(PY) scripts/bench/run.py

bench-deps:
	@command -v wrk >/dev/null 2>&1 || { \
	  echo "Installing Debian's wrk for the load tests"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q wrk; }
	@[ -n "$$BENCH_DATABASE_URL" ] || ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 || { \
	  echo "Installing Debian's postgresql for the benchmark's database"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q postgresql; }

## screenshots: every page at 1366×900 and 390×844, light and dark, into docs/screenshots/ (a throwaway database and sandbox; about a minute)
screenshots: $(VENV)/.dev-installed browser-deps
	$(PY) scripts/screenshots.py

## lint: ruff, configured in pyproject.toml
lint: $(VENV)/.dev-installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

## audit: known vulnerabilities in the pinned requirements (needs PyPI's JSON API or OSV)
audit: $(VENV)/.dev-installed
	$(PY) -m pip install --disable-pip-version-check -q pip-audit
	$(PY) -m pip_audit -r requirements.txt --no-deps --disable-pip --strict

browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser tests"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium; }
