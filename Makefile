# Quick start: `make run` starts the exporter, `make test` installs what the tests need and runs them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=
# Debian packages whose programs the tests run for real.
SYSTEM_TOOLS := promtool:prometheus prometheus:prometheus amtool:prometheus-alertmanager \
	prometheus-alertmanager:prometheus-alertmanager wrk:wrk \
	faketime:faketime chromium:chromium haproxy:haproxy
# PostgreSQL's server programs (initdb, pg_ctl) are not on PATH: Debian keeps them per version.
POSTGRES_PROGRAMS := /usr/lib/postgresql/*/bin/pg_ctl

.PHONY: run test lint unit system-deps current-prometheus screenshots bench clean

$(BIN)/sipgate-exporter: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.test-deps: pyproject.toml $(BIN)/sipgate-exporter
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

run: $(BIN)/sipgate-exporter
	$(BIN)/sipgate-exporter $(ARGS)

system-deps:
	@missing=""; for pair in $(SYSTEM_TOOLS); do \
		command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; \
	done; \
	ls $(POSTGRES_PROGRAMS) >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		echo "installing Debian packages:$$missing"; \
		$$sudo apt-get update -qq && $$sudo apt-get install -y -qq $$(echo $$missing | tr ' ' '\n' | sort -u); \
	fi

lint: $(VENV)/.test-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

unit: $(VENV)/.test-deps
	$(BIN)/pytest

# The current Prometheus release, unpacked into .cache/, to check the config against it too.
current-prometheus:
	.ci/current-prometheus-tools

test: system-deps current-prometheus lint unit

# The status page in each state, as docs/status-*.png, taken in Debian's chromium.
screenshots: $(VENV)/.test-deps
	STATUS_PAGE_SCREENSHOTS=docs $(BIN)/pytest -q tests/web/test_status_page.py -k screenshot

# Benchmarks against a bare Bottle-on-waitress baseline, and two replicas on PostgreSQL behind
# haproxy against one exporter; writes bench/RESULTS.md (bench/README.md).
bench: $(BIN)/sipgate-exporter
	@missing=""; command -v wrk >/dev/null 2>&1 || missing="wrk"; \
	command -v haproxy >/dev/null 2>&1 || missing="$$missing haproxy"; \
	ls $(POSTGRES_PROGRAMS) >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		echo "installing Debian packages:$$missing"; \
		$$sudo apt-get update -qq && $$sudo apt-get install -y -qq $$missing; \
	fi
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache .hypothesis
