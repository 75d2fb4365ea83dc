# Self-documenting: `make help` lists every target with the text after its `##`.
.DEFAULT_GOAL := help
SHELL := /bin/bash

# Any Python 3.10 to 3.13 (`make run PYTHON=python3.12`); the lock holds the versions for each.
PYTHON ?= $(shell command -v python3)
# The resolver `make lock` uses (it writes one lock for every supported Python, from requires-python's lowest).
UV_VERSION := 0.13.9
OLDEST_PYTHON := $(shell sed -n 's/^requires-python = ">=\([0-9.]*\).*/\1/p' pyproject.toml)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# What the targets below need: the installed environment. `make run ENV_READY=1` uses .venv as it is
# (the test suite does this in temporary copies that share the checkout's .venv).
ENV := $(if $(ENV_READY),,$(INSTALLED))

# Never phone home, from any tool the targets start.
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help install run test lint dry-run format docs serve release approve pipeline models validate snapshot render kernel check-python lock clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(INSTALLED): requirements.lock pyproject.toml
	@$(PYTHON) -m amlops.core.kernel --check-python  # standard library only: runs before .venv exists
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing locked dependencies into $(VENV) (first time: about a minute)"
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m pip check
	@touch $@

install: $(INSTALLED) ## Create .venv with the exact versions in requirements.lock

run: $(ENV) ## Run the whole lifecycle locally: pipeline, register, deploy, smoke test, promote, summary
	$(PY) -m amlops run

test: $(ENV) ## Run the whole test suite (installs what it needs first)
	$(PY) -m pytest

lint: $(ENV) ## ruff, the layer contracts (import-linter) and the workflows' security (zizmor), configured in pyproject.toml
	$(PY) -m amlops build lint

dry-run: $(ENV) ## Run the CI build's steps locally, in order, into build/artifact/
	$(PY) -m amlops build all --artifact-dir build/artifact

format: $(ENV) ## Reformat the code with ruff
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

docs: $(ENV) ## Regenerate docs/reference/ (every command and setting) from the code
	$(PY) -m amlops.cli.reference

.PHONY: bench
bench: $(ENV) ## Benchmark the endpoint vs its floor and peers (~10 min, installs wrk); results in build/bench/
	@command -v wrk >/dev/null || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); echo "installing wrk (load generator)"; \
	  $$SUDO apt-get install -y -qq wrk >/dev/null 2>&1 || { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq wrk; } \
	  || echo "wrk could not be installed: the Python load generator is used (it saturates first; see its ceiling)"; }
	$(PY) -m bench --update-docs

serve: $(ENV) ## Serve the production model on 127.0.0.1 in the foreground until Ctrl-C
	$(PY) -m amlops serve

release: $(ENV) ## Local release: the newest registered version to pre-production, smoke-tested (then: make approve)
	$(PY) -m amlops release

approve: $(ENV) ## Release what pre-production serves to production (127.0.0.1:31311), smoke test, promote
	$(PY) -m amlops release --approve

pipeline: $(ENV) ## Run only the training pipeline (prep, train, evaluate, register)
	$(PY) -m amlops pipeline run

models: $(ENV) ## List registered model versions and which one is in production
	$(PY) -m amlops models list

validate: $(ENV) ## Data quality check of the snapshot (or DATA=path.csv)
	$(PY) -m amlops validate $(if $(DATA),--data $(DATA))

snapshot: $(ENV) ## Check the data snapshot (contract.yml: data) and record its sha256, after you replace it
	$(PY) -m amlops snapshot

render: $(ENV) ## Write the Azure ML v2 YAML files (jobs, components, endpoints) into build/azureml (offline)
	$(PY) -m amlops azure render

kernel: $(ENV) ## Register .venv as the notebooks' Jupyter kernel, "Python (amlops .venv)", for this user
	$(PY) -m amlops.core.kernel

check-python: $(ENV) ## The lifecycle and notebook 00 on another Python, in a fresh copy: make check-python PYTHON=python3.10
	PYTHON_UNDER_TEST="$(PYTHON)" $(PY) -m pytest tests/test_python_versions.py

lock: ## Re-resolve requirements.lock from pyproject.toml: one lock, Python 3.10 to 3.13 (uv, in a throw-away venv)
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet uv==$(UV_VERSION)
	grep -v '^#' requirements.lock > .lock-venv/requirements.lock  # today's pins are the preferences
	.lock-venv/bin/uv pip compile pyproject.toml --extra dev --universal --python-version $(OLDEST_PYTHON) \
		--no-header --no-annotate --quiet -o .lock-venv/requirements.lock
	.lock-venv/bin/pip install --quiet -r .lock-venv/requirements.lock && .lock-venv/bin/pip check
	{ grep '^#' requirements.lock; cat .lock-venv/requirements.lock; } > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf .lock-venv

clean: ## Remove local state: the MLflow store, pipeline outputs, staged deployments (keeps .venv)
	rm -rf .mlops build mlruns
