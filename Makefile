# leadpipe: `make run` starts the whole pipeline, `make test` runs every test.
# Both install what they need (uv, the locked Python deps, Debian packages) on first use.
SHELL := /bin/bash
.DEFAULT_GOAL := help
TOOLS := .leadpipe/tools
UV := $(TOOLS)/bin/uv
UV_VERSION := 0.13.9
PY := .venv/bin/python
# The interpreter: the distribution's python3.11 where there is one (Debian's is built with PGO and
# LTO, and is what the leadpipe image runs), else the first 3.11 on PATH. On a pyenv build without
# --enable-optimizations, first on PATH here, nurture took 0.78-0.89 CPU ms per lead against
# 0.67-0.77 on Debian's (bench/nurture_bench.py, alternating; #13, round 17).
# The stamp below depends on this Makefile, so a venv made before this choice is made again with it.
export UV_PYTHON ?= $(or $(wildcard /usr/bin/python3.11),3.11)
export UV_PYTHON_DOWNLOADS ?= never
# Bytecode: starting a service imports ~700 modules, about 1.4 s of CPU to compile them when no
# .pyc is kept (PYTHONDONTWRITEBYTECODE=1, as some shells set to keep __pycache__ out of the tree).
# There, every make target keeps the bytecode under .leadpipe/ instead (git-ignored, gone with
# make clean): each later start, test stack, restart and chaos recovery skips the compile.
ifneq ($(strip $(PYTHONDONTWRITEBYTECODE)),)
unexport PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX ?= $(CURDIR)/.leadpipe/pycache
endif

.PHONY: help run test install lint typecheck contracts test-unit test-integration test-contract test-e2e chaos bench schemas clean \
	image compose-up compose-down test-containers

help: ## show this help
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(UV):
	@mkdir -p $(TOOLS)
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q uv==$(UV_VERSION)

.venv/.synced: $(UV) pyproject.toml uv.lock Makefile
	$(UV) sync --frozen --all-groups
	@touch $@

install: .venv/.synced ## install locked dependencies (uv.lock), Debian packages and the pinned Kafka
	@./scripts/system-deps.sh
	@$(PY) -m leadpipe.devstack.kafka fetch >/dev/null

run: .venv/.synced ## run Kafka, Redis and every service locally (Ctrl-C stops all)
	@./scripts/system-deps.sh --run-only
	$(PY) -m leadpipe.cli dev up $(ARGS)

test: install ## the whole suite: lint, types, import contracts, every test (3 lanes at once, containers when podman works)
	$(MAKE) --no-print-directory lint typecheck contracts
	./scripts/test-suite.sh

lint: .venv/.synced ## ruff lint and format check
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

typecheck: .venv/.synced ## mypy (strict for schemas/ and domain/)
	.venv/bin/mypy schemas services leadpipe

contracts: .venv/.synced ## import-linter: no service imports another; domain imports no I/O
	.venv/bin/lint-imports

test-unit: install ## unit tests only
	$(PY) -m pytest tests/unit
test-integration: install ## integration tests across the broker and Redis
	$(PY) -m pytest tests/integration
test-contract: install ## broker contract suite and schema compatibility
	$(PY) -m pytest tests/contract
test-e2e: install ## end-to-end journeys on the embedded stack
	$(PY) -m pytest tests/e2e
test-faust-tables: install ## the Faust table-recovery contract (flaky beside other load; not in make test)
	$(PY) -m pytest tests/contract/test_broker_contract.py -k faust_table_recovers
test-containers: install ## the compose stack in podman: form -> rep alert, kill -9 + restart policy, worker cut from Redis, broker partition
	./scripts/test-containers.sh
image: .venv/.synced ## build the leadpipe image (podman or docker) and print its size
	./scripts/images.sh leadpipe
compose-up: .venv/.synced ## run deploy/compose.yml: 3 KRaft brokers, Redis, services x2, exporter, Prometheus
	./scripts/compose.sh up
compose-down: ## stop and remove the compose stack (containers, network, volumes)
	./scripts/compose.sh down
chaos: install ## the long chaos run
	LEADPIPE_CHAOS_LONG=1 $(PY) -m pytest -m chaos

schemas: .venv/.synced ## re-export schemas/json from the models
	$(PY) -m leadpipe.cli schemas export

clean: ## remove local state (.leadpipe/) and the virtualenv
	rm -rf .leadpipe .venv
