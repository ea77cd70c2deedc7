# kdsweep: every target sets itself up (`make setup` runs first when needed).
# `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The stamp's name carries pyproject's hash: editing dependencies re-runs the install.
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml 2>/dev/null | cut -c1-12)
DATASET ?= synthetic-wound
PROFILE ?= tiny
EXPERIMENT ?= default
ARGS ?=
HOST ?= 127.0.0.1
PORT ?= 5000
MLFLOW_DB := sqlite:///$(CURDIR)/mlruns/mlflow.db
# No model hub at run time by default; unset it (HF_HUB_OFFLINE=0) to download paper backbones.
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
# `make ui` / `make mlflow-server` without MLflow's job runner (GenAI evaluation jobs and trace
# roll-ups: five more processes polling the store); kdsweep uses none of it
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION ?= false
# where `make ui` serves the local store: the links that sweeps print point there
export KDSWEEP_UI_HOST = $(HOST)
export KDSWEEP_UI_PORT = $(PORT)

.DEFAULT_GOAL := help
SWEEP ?= sweeps/loss.yaml
SEEDS ?=
# VERBOSE=1: Ray's and Ray Tune's own output too (status table, trials' stdout, INFO logs)
VERBOSE ?=
# pytest processes for `make test` (pytest-xdist). Two on a 2-core machine: a test's sweep waits
# on Ray and MLflow a third of the time, and the other process uses that core.
JOBS ?= 2
SWEEP_ARGS = --dataset $(DATASET) --profile $(PROFILE) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(filter-out 0,$(VERBOSE)),--verbose) $(ARGS)

.PHONY: help setup test test-fast lint format data demo run sweep report bench bench-quick sweep-loss sweep-loss-group sweep-fusion sweep-kd sweep-backbone sweep-students sweep-ablation sweep-xlite sweep-mil sweep-brats ui mlflow-server check-store clean

help: ## list the targets with one line each
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-12s %s\n", $$1, $$2}'

setup: $(STAMP) ## create .venv and install the pinned stack and kdsweep (idempotent)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

test: setup ## lint, then the whole test suite on JOBS processes (slow tests included; CI runs this)
	$(PY) -m ruff check .
	$(PY) -m pytest -n $(JOBS)

test-fast: setup ## the test suite without tests marked slow
	$(PY) -m pytest -m "not slow"

lint: setup ## ruff check and format check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: setup ## ruff format and autofix
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

data: setup data/synthetic-medpix/.done data/synthetic-wound/.done data/synthetic-chestxray/.done data/synthetic-brats/.done ## write the synthetic datasets to data/synthetic-{medpix,wound,chestxray,brats}

data/synthetic-chestxray/.done: pipeline/data/synth/chestxray.py
data/synthetic-brats/.done: pipeline/data/synth/brats.py
data/synthetic-wound/.done: pipeline/data/synth/wound.py
data/synthetic-%/.done: pipeline/data/synth/__init__.py pipeline/data/synth/medpix.py $(STAMP)
	rm -rf data/synthetic-$*
	$(PY) -m pipeline.synth $* --out data/synthetic-$*
	@touch $@

demo: check-store data ## set up, generate data, run the loss study (tiny models, CPU) and say where to look
	$(PY) -m pipeline sweep sweeps/loss.yaml --dataset synthetic-wound --profile tiny $(if $(filter-out 0,$(VERBOSE)),--verbose)
	@echo ""
	@echo "Done. The comparison documents are in docs/ (start at docs/index.md: docs/loss_explore.md,"
	@echo "docs/results.csv, plots in docs/img/). Runs are in mlruns/mlflow.db, grouped under the sweep's"
	@echo "parent run: make ui, then open the runs link printed above (the \"Model training\" view)."
	@echo "The data's splits and classes: $(PY) -m pipeline.data describe synthetic-wound"

run: check-store data ## one experiment: make run DATASET=synthetic-wound [PROFILE=tiny EXPERIMENT=default ARGS="loss.name=crd"]
	$(PY) -m pipeline run $(EXPERIMENT) dataset=$(DATASET) profile=$(PROFILE) $(ARGS)

sweep: check-store data ## a study: make sweep SWEEP=sweeps/<file>.yaml [DATASET= PROFILE= SEEDS= VERBOSE=1 ARGS="key=value"]
	$(PY) -m pipeline sweep $(SWEEP) $(SWEEP_ARGS)

sweep-loss: check-store data ## the loss study (seed 000): none/vanilla/combined/crd/rkd/mmd, cross_attention fusion
	$(PY) -m pipeline sweep sweeps/loss.yaml $(SWEEP_ARGS)

sweep-loss-group: check-store data ## the loss study with the group's own definitions: none/group_vanilla/group_combined
	$(PY) -m pipeline sweep sweeps/loss-group.yaml $(SWEEP_ARGS)

sweep-fusion: check-store data ## the fusion study (seed 001): 8 fusions x layers x heads
	$(PY) -m pipeline sweep sweeps/fusion.yaml $(SWEEP_ARGS)

sweep-kd: check-store data ## the KD study (seed 004): temperature x alpha grid
	$(PY) -m pipeline sweep sweeps/kd.yaml $(SWEEP_ARGS)

sweep-backbone: check-store data ## the backbone study: student vision x text backbones
	$(PY) -m pipeline sweep sweeps/backbone.yaml $(SWEEP_ARGS)

sweep-students: PROFILE = group
sweep-students: check-store data ## the group's 16 students x KD/no-KD, ViT-B/16+Bio_ClinicalBERT teacher (hub weights: HF_HUB_OFFLINE=0; GPU in practice)
	$(PY) -m pipeline sweep sweeps/students.yaml $(SWEEP_ARGS)

sweep-ablation: check-store data ## modality ablations over seeds 42-46: image-only, text-only, both; the chosen one under test-time perturbations -> docs/ablation.md
	$(PY) -m pipeline sweep sweeps/ablation.yaml $(SWEEP_ARGS)

sweep-mil: DATASET = synthetic-brats
sweep-mil: PROFILE = mil-tiny
sweep-mil: check-store data ## the dual-stream MIL loss study (seed 002): CE+sampler / focal / LDAM+DRW / KD, 5-fold CV [DATASET=brats PROFILE=mil]
	$(PY) -m pipeline sweep sweeps/mil.yaml $(SWEEP_ARGS)

sweep-brats: DATASET = synthetic-brats
sweep-brats: PROFILE = brats3d-tiny
sweep-brats: check-store data ## seed 002's models: DSMIL, ResNet-3D, Swin-3D, 5-fold CV, a 3-D teacher for DSMIL, the ensemble [DATASET=brats PROFILE=brats3d]
	$(PY) -m pipeline sweep sweeps/brats.yaml $(SWEEP_ARGS)

sweep-xlite: DATASET = synthetic-chestxray
sweep-xlite: PROFILE = xlite-tiny
sweep-xlite: check-store data ## the X-Lite chest X-ray study (seed 004): baselines, KD grid, sensitivity, CV, final [DATASET=chestxray PROFILE=xlite]
	$(PY) -m pipeline sweep sweeps/xlite.yaml $(SWEEP_ARGS)

report: setup ## rebuild docs/*.md, docs/results.csv and docs/img from the MLflow database [SWEEP_ID=run id]
	$(PY) -m reports $(if $(SWEEP_ID),--sweep-id $(SWEEP_ID))

REAL_DATA ?= 1
bench: setup ## benchmarks (~55 min on 2 cores) -> docs/benchmarks.md + .json [REAL_DATA=0 skips the MedPix study]
	$(PY) -m bench $(if $(filter 0,$(REAL_DATA)),--no-real-data)

bench-quick: setup ## the benchmarks' small smoke version, checked (~4 min; numbers mean nothing) -> data/bench-quick/
	KDSWEEP_BENCH_QUICK_OUT=$(CURDIR)/data/bench-quick $(PY) -m pytest -m bench_quick tests/test_bench.py

# run (unless ARGS has --no-track), sweeps and demo ask this first, before `data` or any work
check-store: setup ## can the MLflow store (MLFLOW_TRACKING_URI, else mlruns/) be reached and written? one line in seconds
	@$(if $(findstring --no-track,$(ARGS)),:,$(PY) -m pipeline check-store)

mlflow-server: setup ## an MLflow tracking server (sqlite behind it, artifacts proxied) to try scale-out; AUTH=1: with logins (basic-auth)
	@mkdir -p mlruns/server
	@echo "export MLFLOW_TRACKING_URI=http://$(HOST):$(PORT)   # then any make sweep-* / make run"
	$(if $(AUTH),@printf '[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///$(CURDIR)/mlruns/server/basic_auth.db\nadmin_username = admin\nauthorization_function = mlflow.server.auth:authenticate_request_basic_auth\ngrant_default_workspace_access = true\n' > mlruns/server/basic_auth.ini)
	$(if $(AUTH),MLFLOW_AUTH_CONFIG_PATH=$(CURDIR)/mlruns/server/basic_auth.ini) $(VENV)/bin/mlflow server \
	  --backend-store-uri sqlite:///$(CURDIR)/mlruns/server/mlflow.db $(if $(AUTH),--app-name basic-auth) \
	  --serve-artifacts --artifacts-destination $(CURDIR)/mlruns/server/artifacts --host $(HOST) --port $(PORT)

ui: setup ## the MLflow UI on the local store (HOST=127.0.0.1 PORT=5000)
	@mkdir -p mlruns
	@$(PY) -m pipeline links
	$(VENV)/bin/mlflow ui --backend-store-uri $${MLFLOW_TRACKING_URI:-$(MLFLOW_DB)} --host $(HOST) --port $(PORT)

clean: ## remove generated data and caches (keeps .venv and mlruns/)
	rm -rf data/ .pytest_cache .ruff_cache
