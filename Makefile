# The venv is made here, from plain Python; torch is pinned to the CPU build on this machine's
# disk so that no CUDA build is ever pulled.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
STAMP := $(VENV)/.installed-$(TORCH)

.PHONY: install test test-all

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check $(TORCH)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,triton]'
	touch $(STAMP)

install: $(STAMP)

# CI's command: everything but the tests marked slow.
test: install
	$(BIN)/python -m pytest -q -m "not slow"

test-all: install
	$(BIN)/python -m pytest -q
