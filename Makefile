# One entry point for users and CI. Every target creates .venv when it is absent.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch is pinned to the CPU wheel here; on a GPU machine install your own torch build into .venv first.
TORCH ?= torch==2.13.0
DEMO_OUT ?= build/demo

.PHONY: setup demo test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

demo: setup
	$(BIN)/webtext demo --out $(DEMO_OUT)

lint: setup
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python -m pytest tests/benchmarks -q -s -p no:cacheprovider -o addopts=""

clean:
	rm -rf build $(VENV)
