# The commands of the README: `make demo` (the offline demo), `make test` (lint, types,
# tests: what CI runs), `make test-fast` (the inner loop: the tests not marked slow),
# `make bench` (the benchmarks) and `make bench-gateway` (the gateway's). Each creates .venv on
# first use; a fresh machine needs only python3, pip and make. `make demo` installs only the
# package itself (what the demo imports); `make test` adds the development tools; `make bench`
# the peers it measures.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-fast lint bench bench-gateway clean

# The virtual environment, with a current pip.
$(BIN)/.venv-ready:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { \
	  echo "python3 -m venv unavailable; using virtualenv"; \
	  $(PYTHON) -m pip install --user -q virtualenv && $(PYTHON) -m virtualenv -q $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip
	@touch $@

# The package alone: reactivex, aiohttp, msgspec (what `rxllm demo` needs).
$(BIN)/.demo-installed: pyproject.toml | $(BIN)/.venv-ready
	$(BIN)/python -m pip install -q -e .
	@touch $@

# Everything `make test` runs: the test and lint extras (a superset of the demo's).
$(BIN)/.installed: pyproject.toml | $(BIN)/.venv-ready
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@ $(BIN)/.demo-installed

$(BIN)/.bench-installed: $(BIN)/.installed pyproject.toml
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	@touch $@

demo: $(BIN)/.demo-installed
	$(BIN)/rxllm demo

lint: $(BIN)/.installed
	$(BIN)/ruff check rxllm tests benchmarks
	$(BIN)/ruff format --check rxllm tests benchmarks
	$(BIN)/mypy

# Everything, as CI runs it: lint, types and the whole suite (soak, notebooks, matrix, bench
# smoke included: several minutes).
test: lint
	$(BIN)/pytest

# The inner loop (about a minute): the suite without the tests marked `slow` (the soak, the
# notebooks and the README in a kernel, the threads-and-loops matrix, the bench smoke run).
test-fast: $(BIN)/.installed
	$(BIN)/pytest -m "not slow"

# The benchmarks (several minutes): writes benchmarks/results.md, .json and .png.
# BENCH_ARGS="--smoke" for a quick check, "--only per_chunk --clients floor-bulk,rxllm-extract"
# for a quick look (python -m benchmarks --help).
bench: $(BIN)/.bench-installed
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

# The gateway benchmark (about 17 minutes): `rxllm serve` and LiteLLM's proxy side by side on one
# upstream and one config file; writes benchmarks/gateway/results.md, .json and .png.
# BENCH_ARGS="--quick" for a couple of minutes (python -m benchmarks.gateway --help).
bench-gateway: $(BIN)/.bench-installed
	$(BIN)/python -m benchmarks.gateway $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
