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

.PHONY: all install test test-fast demo bench clean-venv

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
$(VENV)/.install-stamp: $(VENV)/.fairseq-stamp setup.py
	$(PIP) install -q -e ".[test,viz]"
	$(PIP) uninstall -y -q torchaudio 2>/dev/null || true
	touch $@

install: $(VENV)/.install-stamp

# The tiers (tests/README.md): unit (pure torch / Python, no subprocess: `make test-fast`),
# integration (fairseq in-process and subprocesses), e2e (make demo, benchmarks, long training).
# pytest exits 5 when it collected nothing; that is a failure here, not a pass.
PYTEST = $(PY) -m pytest
define run_pytest
	@$(PYTEST) $(1) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests in $(1): failing" >&2; exit 1; fi; exit $$rc
endef

test: install
	$(call run_pytest,tests)

test-fast: install
	$(call run_pytest,tests/unit)

demo: install
	bash scripts/demo.sh

bench: install
	$(PY) -m benchmarks.topk

clean-venv:
	rm -rf $(VENV)
