# Two commands do all set-up on a fresh machine:
#   make demo   -- create .venv, install, run the main job on the embedded default data
#   make test   -- create .venv, install, run the default test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow test-all lint docs typecheck bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch is pinned to the CPU wheel (2.13.0); install it first so nothing pulls a CUDA build.
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[dev,docs]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/matbackprop demo

# Two test processes with one BLAS/OpenMP thread each: two multi-threaded processes on two
# cores oversubscribe them, and OpenMP's spinning threads then slow small ops down by 100x.
test: $(STAMP)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m "slow or not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts docs

# The documentation site into site/, offline, every warning an error (mkdocs.yml: strict).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# mypy on src/ (configuration and what it leaves out: [tool.mypy] in pyproject.toml).
typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_matrix_functions.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache build dist site src/*.egg-info
