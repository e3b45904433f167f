# Two entry points for a fresh machine: `make run` (the main job) and `make test` (the tests).
# Both create .venv with tfpvi installed editable, and fetch the data sets into the cache.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
OUTPUT_DIR ?=
ARGS ?=

.PHONY: setup data run test lint format bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,plot]"
	touch $@

setup: $(VENV)/.installed

data: setup
	$(PY) -m tfpvi.data fetch mnist fashion_mnist

# The main job needs MNIST only.
run: setup
	$(PY) -m tfpvi.data fetch mnist
	$(PY) -m experiments.iwae $(if $(OUTPUT_DIR),--output_dir $(OUTPUT_DIR)) $(ARGS)

test: data
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m pytest -n 2 --dist loadfile tests

lint: setup
	$(VENV)/bin/ruff check tfpvi experiments tests benchmarks
	$(VENV)/bin/ruff format --check tfpvi experiments tests benchmarks

# Applies the formatter that `make lint` (and CI) checks.
format: setup
	$(VENV)/bin/ruff format tfpvi experiments tests benchmarks

bench: setup
	$(PY) -m benchmarks.core

clean:
	rm -rf $(VENV) runs
