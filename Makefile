# Two entry points, each self-contained on a fresh machine:
#   make demo   set up .venv and run the quick reproduction (one HTML report)
#   make test   set up .venv and run the test suite (in parallel: pytest-xdist, one worker per core)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
# Tested versions (torch 2.13.0 is a CPU build); the package itself accepts a range.
CONSTRAINTS := -c constraints.txt

.PHONY: demo test lint bench bench-gpu clean browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.demo-installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) install -q $(CONSTRAINTS) -e '.[bench]'
	touch $@

$(VENV)/.dev-installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) install -q $(CONSTRAINTS) -e '.[dev,bench]'
	touch $@

demo: $(VENV)/.demo-installed
	$(BIN)/geodyn reproduce --quick --out runs/demo

# The report test drives Debian's Chromium; where it cannot be installed that one test is skipped with a reason.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "note: no Chromium available; the browser test of the report will be skipped"

test: $(VENV)/.dev-installed browser
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -n auto --dist loadgroup

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

# make bench: the step-cost, structured-cost, simulator and Schrödinger benchmarks (a few minutes on an idle
# machine), then docs/performance.md from their JSON (benchmarks/report.py). BENCH_DIR keeps the raw JSON.
BENCH_DIR := runs/bench
bench: $(VENV)/.dev-installed
	mkdir -p $(BENCH_DIR)
	$(BIN)/python benchmarks/step_cost.py --repeats 5 --steps 20 --json $(BENCH_DIR)/step_cost.json
	$(BIN)/python benchmarks/structured_cost.py --repeats 2 --window 100 --json $(BENCH_DIR)/structured_cost.json
	$(BIN)/python benchmarks/simulator_cost.py --walkers 1000000 --steps 3 --repeats 3 --grid 256 \
	  --json $(BENCH_DIR)/simulator_cost.json
	$(BIN)/python benchmarks/schrodinger_cost.py --points 16384 --t-final 0.25 --repeats 3 \
	  --json $(BENCH_DIR)/schrodinger_cost.json
	$(BIN)/python benchmarks/evolution_rate.py --repeats 5 --json $(BENCH_DIR)/evolution_rate.json
	$(BIN)/python benchmarks/report.py $(BENCH_DIR)/step_cost.json $(BENCH_DIR)/structured_cost.json \
	  $(BENCH_DIR)/simulator_cost.json $(BENCH_DIR)/evolution_rate.json $(BENCH_DIR)/schrodinger_cost.json \
	  --out docs/performance.md

# make bench-gpu: on a machine with a CUDA build of torch (GPU_PYTHON: this venv's python if there is one, else
# python3), benchmarks/gpu_check.py checks every optimizer path on the GPU against the CPU reference and times the
# step-cost tables there (about 5 minutes, compiles included), then docs/performance-gpu.md; it fails if a check
# fails (the document is written either way).
GPU_PYTHON ?= $(shell test -x $(BIN)/python && echo $(BIN)/python || echo python3)
bench-gpu:
	mkdir -p $(BENCH_DIR)
	PYTHONPATH=$(CURDIR)/src$${PYTHONPATH:+:$$PYTHONPATH} $(GPU_PYTHON) benchmarks/gpu_check.py --device cuda \
	  --max-seconds 210 --json $(BENCH_DIR)/gpu_check.json; status=$$?; \
	  PYTHONPATH=$(CURDIR)/src$${PYTHONPATH:+:$$PYTHONPATH} $(GPU_PYTHON) benchmarks/report.py \
	  $(BENCH_DIR)/gpu_check.json --out docs/performance-gpu.md && exit $$status

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
