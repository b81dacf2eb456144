# One command does everything, on a fresh Debian machine too: `make check`.
# It creates .venv, installs the project (again only when pyproject.toml changes), makes sure
# PostgreSQL, Redis and promtool are there (scripts/services.sh), then lints, type-checks and
# runs the tests, among them tests/deploy/test_wheel.py: a wheel built offline and installed
# in a fresh venv outside the checkout serves the dashboard. CI runs exactly this (.ci/run).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp

export DIALER_TEST_POSTGRES_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/test
export DIALER_TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

# The suite runs in TEST_JOBS processes (pytest-xdist, a module per process at a time): most
# of its time is spent waiting on real servers and child processes, not on the CPU. Each
# process has its own database and Redis key prefixes. The browser tests run after, in one
# process of their own: Playwright's sync API keeps an event loop running in the thread
# that later async tests would need. `make check TEST_JOBS=1` runs everything in one line.
TEST_JOBS ?= 2
PYTEST = $(PY) -m pytest -q -n $(TEST_JOBS) --dist loadfile --ignore=tests/web && \
	$(PY) -m pytest -q tests/web

.PHONY: setup services lint typecheck test check demo

check: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy dialer
	$(PYTEST)

setup: $(STAMP) services

# Debian's python3 needs python3-venv for `-m venv`; install it if that is what failed.
$(PY):
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV) && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv </dev/null && \
		$(PYTHON) -m venv $(VENV); }

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

services:
	scripts/services.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy dialer

test: setup
	$(PYTEST)

# The demo needs only the venv: SQLite, the in-process bus and simulated channels.
demo: $(STAMP)
	$(VENV)/bin/dialer demo
