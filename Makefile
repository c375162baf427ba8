# The venv is made here, from plain Python; torch is pinned to the CPU build on this machine's
# disk so that no CUDA build is ever pulled.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
STAMP := $(VENV)/.installed-$(TORCH)

.PHONY: install test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check $(TORCH)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,triton]'
	touch $(STAMP)

install: $(STAMP)

test: install
	$(BIN)/python -m pytest -q
