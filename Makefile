# Quick start: `make demo` (set-up + the main job) and `make test` (set-up + the whole suite).
# The venv is built once: fairseq compiles from source (minutes), so it has its own stamp and is
# not rebuilt when only this package changes.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# The CPU build of torch on this machine's disk; a bare `torch` requirement would pull a CUDA build.
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=
# `make test` runs the suite in this many pytest workers (pytest-xdist; a worker that runs out takes
# tests from the other, so the minutes-long ones do not end up queued on one): most tests wait on
# one single-threaded fairseq process, so two workers on two cores take about 60% of the time of
# one (24 -> 15 min here before work stealing). TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2

.PHONY: all install test test-fast demo bench gpu-check gpu-wheels clean-venv

all: test

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel

# torch first (so nothing pulls a CUDA build), then numpy+cython so fairseq builds without
# an isolated build env (saves most of its build time), then fairseq itself.
$(VENV)/.fairseq-stamp: $(VENV)/bin/python
	$(PIP) install -q "$(TORCH_SPEC)" numpy cython
	if $(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then \
	  $(PIP) install -q --no-build-isolation "fairseq-fixed==0.12.3.1"; \
	else \
	  $(PIP) install -q --no-build-isolation "fairseq==0.12.2"; \
	fi
	touch $@

# fairseq-fixed requires torchaudio, and pip resolves it to a build for another torch that fails
# to load; fairseq's text tasks never import it, but transformers does whenever it is installed
# (the Hugging Face BART tests and the LED benchmark), so it is removed after every install.
# deep_pyramidion/commands.py is the table setup.py makes the console scripts from: a new row
# reinstalls, so its command exists in $(VENV)/bin.
$(VENV)/.install-stamp: $(VENV)/.fairseq-stamp setup.py deep_pyramidion/commands.py
	$(PIP) install -q -e ".[test,viz]"
	$(PIP) uninstall -y -q torchaudio 2>/dev/null || true
	touch $@

install: $(VENV)/.install-stamp

# The tiers (tests/README.md): unit (pure torch / Python, no subprocess: `make test-fast`),
# integration (fairseq in-process and subprocesses), e2e (make demo, benchmarks, long training).
# pytest exits 5 when it collected nothing; that is a failure here, not a pass.
PYTEST = $(PY) -m pytest
define run_pytest
	@$(PYTEST) $(1) $(2) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests in $(1): failing" >&2; exit 1; fi; exit $$rc
endef

WORKER_ARGS = $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist worksteal)

test: install
	$(call run_pytest,tests,$(WORKER_ARGS))

test-fast: install
	$(call run_pytest,tests/unit)

# The suite against the newest torch and transformers on the package registry, so that what they
# break shows here before a user meets it: a venv of its own, built the same way as .venv but with
# those versions pinned: `make test-newest` (not part of `make test`). torch 2.15 is a CUDA build
# (several GB; it runs on the CPU here) above the cap this machine's pip configuration sets
# (/etc/xdg/pip), so every pip call of that venv runs without the configuration; .venv keeps it.
NEWEST_VENV         := .venv-newest
NEWEST_PY           := $(NEWEST_VENV)/bin/python
NEWEST_PIP          := PIP_CONFIG_FILE=/dev/null $(NEWEST_PY) -m pip
NEWEST_PYTHON       ?= python3.11
NEWEST_TORCH_SPEC   ?= torch==2.15.0
NEWEST_HF_SPEC      ?= transformers==5.24.0

.PHONY: test-newest

$(NEWEST_VENV)/bin/python:
	$(NEWEST_PYTHON) -m venv $(NEWEST_VENV)
	$(NEWEST_PIP) install -q --upgrade pip setuptools wheel

# torch is named again in every later install so that no dependency (fairseq-fixed's torchaudio)
# moves it.
$(NEWEST_VENV)/.fairseq-stamp: $(NEWEST_VENV)/bin/python
	$(NEWEST_PIP) install -q "$(NEWEST_TORCH_SPEC)" numpy cython
	$(NEWEST_PIP) install -q --no-build-isolation "fairseq-fixed==0.12.3.1" "$(NEWEST_TORCH_SPEC)"
	touch $@

$(NEWEST_VENV)/.install-stamp: $(NEWEST_VENV)/.fairseq-stamp setup.py deep_pyramidion/commands.py
	$(NEWEST_PIP) install -q -e ".[test,viz]" "$(NEWEST_TORCH_SPEC)" "$(NEWEST_HF_SPEC)"
	$(NEWEST_PIP) uninstall -y -q torchaudio 2>/dev/null || true
	touch $@

test-newest: PYTEST = $(NEWEST_PY) -m pytest
test-newest: $(NEWEST_VENV)/.install-stamp
	$(call run_pytest,tests,$(WORKER_ARGS))

# `make demo` trains a small pyramidion from scratch; `make demo PRETRAINED=DIR` fine-tunes the
# fairseq or Hugging Face BART in DIR instead (scripts/demo.sh, DEMO_PRETRAINED; outputs in demo/bart/).
# `PRETRAINED=` given empty (an unset shell variable: PRETRAINED=$DIR) is refused before anything
# runs, rather than read as "train from scratch"; a path is passed to the shell quoted.
PRETRAINED ?=
ifneq ($(filter demo,$(MAKECMDGOALS)),)
ifeq ($(origin PRETRAINED)|$(strip $(PRETRAINED)),command line|)
$(error PRETRAINED= is empty: give a fairseq or Hugging Face BART folder (make demo PRETRAINED=DIR), or leave PRETRAINED out to train from scratch)
endif
endif
demo: install
	$(if $(PRETRAINED),DEMO_PRETRAINED='$(subst ','\'',$(PRETRAINED))' )bash scripts/demo.sh

bench: install
	$(PY) -m benchmarks.topk

# On a machine with one CUDA GPU: every CUDA check, 480 s (scripts/gpu_check.py); it needs no
# venv there, only gpu_wheels/ from `make gpu-wheels` run where the package registry is reachable.
OUT ?= gpu-check
gpu-check:
	bash scripts/gpu_check.sh $(OUT)

gpu-wheels: install
	bash scripts/gpu_wheels.sh gpu_wheels

clean-venv:
	rm -rf $(VENV)
