# Chat analytics: the CDK app, the code it ships and the local stack.
# `make demo` and `make test` work on a fresh clone: they install what is missing first.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAGE ?= dev
# The local stack's ports: `make local PORT=4567 CHATBOT_PORT=8788`. Only the command line (or this file) sets
# them: a PORT that happens to be in the environment (many platforms export one) is not the local stack's.
ifeq ($(origin PORT),environment)
PORT := 4566
endif
ifeq ($(origin CHATBOT_PORT),environment)
CHATBOT_PORT := 8787
endif
PORT ?= 4566
CHATBOT_PORT ?= 8787

# Node 20 is past jsii's support window; the CDK still runs on it (see README).
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PATH := $(CURDIR)/$(BIN):$(CURDIR)/node_modules/.bin:$(PATH)
export PYTHONDONTWRITEBYTECODE := 1
export CDK_DISABLE_CLI_TELEMETRY := true

.PHONY: install test test-python test-edge lint format synth ci demo local bench clean deploy integ integ-check

install: $(VENV)/.installed node_modules/.installed $(if $(wildcard edge/package.json),edge/node_modules/.installed)

$(VENV)/.installed: requirements.txt requirements-dev.txt $(wildcard analytics_producer/pyproject.toml) $(wildcard ops/pyproject.toml)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	if [ -f analytics_producer/pyproject.toml ]; then $(BIN)/python -m pip install --quiet -e ./analytics_producer; fi
	if [ -f ops/pyproject.toml ]; then $(BIN)/python -m pip install --quiet -e ./ops; fi
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# edge/ is an npm workspace: the demo Worker, and packages/worker-logger (the package a Worker author installs).
# `npm ci` installs exactly edge/package-lock.json and changes no tracked file; the package's prepare script
# builds its dist/ (JS + .d.ts), which the demo Worker, the tests and the benchmarks import by name.
edge/node_modules/.installed: edge/package.json edge/package-lock.json edge/packages/worker-logger/package.json
	cd edge && npm ci --no-audit --no-fund --loglevel=error
	touch $@

test: install test-python $(if $(wildcard edge/package.json),test-edge)

test-python: install
	$(BIN)/python -m pytest

test-edge: install
	cd edge && npm test

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m mypy
	if [ -f edge/package.json ]; then cd edge && npm run --silent typecheck; fi

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

synth: install
	cdk synth --quiet --no-notices -c stage=$(STAGE)
	@test -s cdk.out/ChatAnalytics-$(STAGE).template.json && echo "wrote cdk.out/ChatAnalytics-$(STAGE).template.json"

deploy: install
	cdk deploy --no-notices -c stage=$(STAGE)

ci: lint test synth

demo: synth
	$(BIN)/python -m local.demo --stage $(STAGE)

# The ports are checked first (one line and exit 2 if one is taken), before the synth and the deployment.
local: install
	@$(BIN)/python -m local.serve --check-ports --port $(PORT) --chatbot-port $(CHATBOT_PORT)
	@$(MAKE) --no-print-directory synth STAGE=$(STAGE)
	$(BIN)/python -m local.serve --stage $(STAGE) --port $(PORT) --chatbot-port $(CHATBOT_PORT)

bench: synth
	$(BIN)/python bench/processor_bench.py
	$(BIN)/python bench/producer_bench.py
	$(BIN)/python bench/e2e_bench.py
	$(BIN)/python bench/cost_bench.py
	$(BIN)/python bench/lake_bench.py
	$(BIN)/python bench/local_lifecycle_bench.py
	$(BIN)/python bench/ops_timeouts_bench.py
	if [ -f edge/package.json ]; then cd edge && npm run --silent bench; fi

# The real-account integration test (docs/integ.md): deploys a throwaway stack, proves the pipeline on AWS,
# destroys it. Needs AWS credentials; never run by CI. `integ-check` compares the committed snapshot (no AWS).
integ: install
	$(BIN)/python -m integ.run deploy

integ-check: install
	$(BIN)/python -m integ.run check

clean:
	rm -rf cdk.out .pytest_cache
