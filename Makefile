# One entry point for users and CI. Every target creates .venv when it is absent.
#
# `make setup` installs exactly requirements.lock into .venv with uv (fast, and `uv pip sync` also removes
# whatever the lock does not list), compiling bytecode at install: the tests start many interpreters, and
# without .pyc files each would compile torch and Beam again. The lock pins the CPU build of torch (torch==2.13.0+cpu); it comes from
# PyTorch's CPU index, or from a local wheelhouse when pip is configured with one (find-links). GPU users
# install their own torch build into .venv after `make setup` (see README, "Install").
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements.lock
UV_VERSION = $(shell sed -n 's/^uv==//p' $(LOCK))
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
FIND_LINKS ?= $(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null || echo "$$PIP_FIND_LINKS")
SOURCES = $(if $(strip $(FIND_LINKS)),--find-links $(FIND_LINKS),--extra-index-url $(TORCH_INDEX) --index-strategy unsafe-best-match)
DEMO_OUT ?= build/demo
LATEST := .venv-latest
BENCH_VENV := .venv-bench
BENCH_LOCK := requirements-bench.lock

.PHONY: setup lock demo test test-latest lint bench scale docs clean

setup: $(VENV)/.installed

$(VENV)/.installed: $(LOCK) pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "webtext needs Python >= 3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync -q --compile-bytecode --python $(BIN)/python $(SOURCES) $(LOCK)
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	touch $@

# Re-resolve the lock from pyproject.toml's ranges (newest allowed versions; torch held by constraints.txt).
lock: setup
	$(BIN)/uv pip compile -q pyproject.toml --extra dev -c constraints.txt --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 $(SOURCES) --custom-compile-command "make lock" -o $(LOCK)
	$(BIN)/uv pip compile -q pyproject.toml --extra dev --extra bench -c constraints.txt --excludes bench-excludes.txt --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 $(SOURCES) --custom-compile-command "make lock" -o $(BENCH_LOCK)

demo: setup
	$(BIN)/webtext demo --out $(DEMO_OUT)

lint: setup
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest

# The whole suite against the newest releases pyproject.toml allows: how a lock bump is checked.
test-latest: setup
	rm -rf $(LATEST) && $(PYTHON) -m venv $(LATEST)
	$(BIN)/uv pip install -q --compile-bytecode --python $(LATEST)/bin/python --resolution highest -c constraints.txt \
		$(SOURCES) -e ".[dev]"
	$(LATEST)/bin/python -m pip list --format=freeze 2>/dev/null | grep -iE '^(apache-beam|torch|pyarrow|numpy|transformers|trafilatura)=='
	$(LATEST)/bin/python -m pytest -p no:cacheprovider

# The reference under docs/, built with mkdocs-material in strict mode (a broken link or anchor fails).
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -d build/site

# The benchmarks run in their own environment: the runtime lock plus the peers they compare against
# (pyproject's `bench` extra), resolved together into requirements-bench.lock. Some peers need an older
# transformers than the runtime lock, so the runtime environment never holds them.
$(BENCH_VENV)/.installed: $(BENCH_LOCK) pyproject.toml | setup
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BIN)/uv pip sync -q --compile-bytecode --python $(BENCH_VENV)/bin/python $(SOURCES) $(BENCH_LOCK)
	$(BIN)/uv pip install -q --python $(BENCH_VENV)/bin/python --no-deps -e .
	touch $@

bench: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m pytest tests/benchmarks -q -s -p no:cacheprovider -o addopts=""

# Cost curves (docs/scaling.md, "Cost curves"): every stage and the training loader at 1x, 4x and 16x the base
# input, generated from the repository's real samples; writes build/scale/results.json and scale.png and prints
# the 16x/1x time and memory ratios. SCALE_FACTORS="0.05 0.1" picks other sizes, SCALE_QUICK=1 is a smoke run
# at tiny sizes (one to two minutes). Not part of `make test` or `make bench`: the default sizes take an
# estimated 45 minutes on the busy 2-core machine, less on an idle one.
scale: setup
	$(BIN)/python -m tests.benchmarks.scale.run

clean:
	rm -rf build $(VENV) $(LATEST) $(BENCH_VENV)
