# kdsweep: every target sets itself up (`make setup` runs first when needed).
# `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The stamp's name carries pyproject's hash: editing dependencies re-runs the install.
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml 2>/dev/null | cut -c1-12)
DATASET ?= synthetic-wound
export HF_HUB_OFFLINE ?= 1

.DEFAULT_GOAL := help
.PHONY: help setup test test-fast lint format data demo clean

help: ## list the targets with one line each
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-12s %s\n", $$1, $$2}'

setup: $(STAMP) ## create .venv and install the pinned stack and kdsweep (idempotent)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

test: setup ## lint, then the whole test suite (slow tests included; CI runs this)
	$(PY) -m ruff check .
	$(PY) -m pytest

test-fast: setup ## the test suite without tests marked slow
	$(PY) -m pytest -m "not slow"

lint: setup ## ruff check and format check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: setup ## ruff format and autofix
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

data: setup ## write the synthetic datasets to data/synthetic-medpix and data/synthetic-wound
	$(PY) -m pipeline.synth medpix --out data/synthetic-medpix
	$(PY) -m pipeline.synth wound --out data/synthetic-wound

demo: data ## set up, generate the synthetic data and describe both datasets
	$(PY) -m pipeline.data describe synthetic-medpix
	$(PY) -m pipeline.data describe synthetic-wound
	@echo "Datasets are in data/; their configs in sweeps/datasets/. Next: make test"

clean: ## remove generated data and caches (keeps .venv and mlruns/)
	rm -rf data/ .pytest_cache .ruff_cache
