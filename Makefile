# The venv is made here, from plain Python; torch is pinned to the CPU build on this machine's
# disk so that no CUDA build is ever pulled.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
STAMP := $(VENV)/.installed-$(TORCH)

.PHONY: install test test-all gate counts data lint

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check $(TORCH)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,triton,ray,mnist,mlflow,tensorboard]'
	touch $(STAMP)

install: $(STAMP)

# Fashion-MNIST's four IDX files: Debian's dataset-fashion-mnist puts them in /usr/share/datasets/fashion-mnist,
# where `ablate train --dataset fashion-mnist` looks by default. Elsewhere, says where to put them.
FASHION_DIR := /usr/share/datasets/fashion-mnist
data:
	@if [ -f $(FASHION_DIR)/train-images-idx3-ubyte.gz ]; then \
		echo "Fashion-MNIST is in $(FASHION_DIR)"; \
	elif command -v apt-get >/dev/null 2>&1; then \
		$$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y dataset-fashion-mnist; \
	else \
		echo "No apt-get here: put train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz"; \
		echo "and t10k-labels-idx1-ubyte.gz (github.com/zalandoresearch/fashion-mnist, data/fashion) in a folder"; \
		echo "and pass it as --data-dir (or put them in $(FASHION_DIR))."; \
	fi

# CI's fast lane: the lint first (below), then everything but the tests marked slow, spread over the cores
# (pytest-xdist). At most 5 minutes on 2 cores.
test: lint
	$(BIN)/python -m pytest -q -m "not slow" -n auto

# ruff (style and imports), mypy (the whole package's types) and import-linter (the layers of docs/layout.md).
lint: install
	$(BIN)/ruff check ablate tests
	$(BIN)/mypy
	$(BIN)/lint-imports

# Every test, the slow ones included (the compiled variant's whole matrix, real training, the gate's own A/B runs).
test-all: install
	$(BIN)/python -m pytest -q -n auto

# The performance gate against GATE_AGAINST (default: the parent commit; empty: the scaling laws only): work
# counts, instructions under valgrind, wall clock A/B, the scaling laws. CI's wall-clock threshold and law slack
# are looser than a user's defaults on a shared machine (see docs/performance.md, the gate).
GATE_AGAINST ?= HEAD~1
GATE_FLAGS ?= --threshold 0.25 --law-slack 1.5
gate: install
	$(BIN)/python -m ablate gate run $(if $(GATE_AGAINST),--against $(GATE_AGAINST)) $(GATE_FLAGS)

# Rewrites ablate/gate/expected_counts.json from this tree; commit it with the reason for the change.
counts: install
	$(BIN)/python -m ablate gate counts --write

# The fused Triton kernels compiled and run on CUDA, on the GPU machine (no venv); CI runs the same
# tests on the CPU under Triton's interpreter.
.PHONY: test-fused-gpu
test-fused-gpu:
	TRITON_INTERPRET=0 PYTHONPATH=. python3 -m pytest -q tests/kernels/test_fused.py

# The standard CPU study into runs/bench/, then its report. TRITON_INTERPRET=1 lets the fused kernel
# join the numerics (correctness only); it is not timed on the CPU.
.PHONY: bench bench-gpu bench-baseline
bench: install
	TRITON_INTERPRET=1 $(BIN)/python -m ablate bench run --suite cpu --device cpu --out runs/bench
	$(BIN)/python -m ablate report runs/bench --out reports/bench.html

# The GPU study, on a machine with its own torch and no package registry: no venv, no install.
# Under 8 minutes on one H200. Rerun with the same GPU_RUN to resume an interrupted run.
GPU_RUN ?= runs/gpu/$(shell date +%Y%m%d-%H%M%S)
bench-gpu:
	PYTHONPATH=. python3 -m ablate bench run --suite gpu --device cuda --out $(GPU_RUN)

# Records this machine's entry in ablate/gate/baseline.json: time ratios that inform, never fail.
bench-baseline: install
	@echo "Refresh the baseline only when a change is meant to change speed (a new algorithm, an accepted"
	@echo "trade-off) or the reference machine changed; never to silence an unexplained slowdown."
	@echo "Commit ablate/gate/baseline.json with the reason in the message."
	$(BIN)/python -m ablate gate baseline

# The HTML report of the standard ablation run (runs/ablation), written to reports/ablation.html; prints its path.
# REPORT_RUNS adds run folders to it, e.g. REPORT_RUNS=runs/bench.
.PHONY: ablation-report
ablation-report: install
	$(BIN)/python -m ablate report runs/ablation $(REPORT_RUNS) --out reports/ablation.html

# The default grid (lambda x alpha x rule x 10 seeds on digits, and every variant on a subset) into
# runs/ablation/, two cells at a time, then its report. TRITON_INTERPRET=1 lets the fused variant's
# cells run on the CPU. Rerun to resume: finished cells are kept.
.PHONY: ablation
ablation: install
	TRITON_INTERPRET=1 $(BIN)/python -m ablate grid default --workers 2 --out runs/ablation
	$(MAKE) --no-print-directory ablation-report

# The bundled contest (ablate/grids/contest.toml): every head with and without center loss, and contrastive and
# triplet, at 64-D and 2-D on digits and on Fashion-MNIST (make data), each tuned with the same budget on validation
# data and its selected setting scored on 10 fresh seeds, into runs/contest/; then its report, reports/contest.html.
# With two workers on 2 shared CPU cores the digits half took 5 min 8 s (measured); the Fashion-MNIST half about
# 6-7 hours (estimated from a measured trial's and final cell's time: each trial scores validation every epoch).
# Rerun to resume: finished trials and cells are kept. CONTEST_FLAGS='--set dataset=digits' runs the digits half.
# The report is written when the tune exits 1 too (an objective none of whose trials finished, a final cell that
# raised: outcomes the report shows), and make then fails with the tune's status.
CONTEST_FLAGS ?=
.PHONY: contest
contest: install
	$(BIN)/python -m ablate tune contest --workers 2 --out runs/contest $(CONTEST_FLAGS); status=$$?; \
	if [ $$status -le 1 ]; then $(BIN)/python -m ablate report runs/contest --out reports/contest.html || exit $$?; fi; \
	exit $$status
