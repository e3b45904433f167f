# Two entry points for a fresh machine: `make run` (the main job) and `make test` (the tests).
# Both create .venv with tfpvi installed editable, and fetch the data sets into the cache.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
OUTPUT_DIR ?=
ARGS ?=

.PHONY: setup data run test lint format bench docs docs-serve docs-look docs-results tutorials clean

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

# The documentation site into site/, from the docstrings and the notebooks; any warning fails the build.
$(VENV)/.docs: pyproject.toml $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[docs]"
	touch $@

docs: $(VENV)/.docs
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

docs-serve: $(VENV)/.docs
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

# Screenshots of three pages in headless Chromium (Debian: apt install chromium), into site/screenshots/.
docs-look: docs
	mkdir -p site/screenshots
	for page in index api/objectives/index tutorials/tfpvi_quickstart/index experiments/iwae/index benchmarks/index; do \
	  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,1600 \
	    --virtual-time-budget=10000 --allow-file-access-from-files \
	    --screenshot=site/screenshots/$$(echo $$page | tr / _).png file://$(CURDIR)/site/$$page.html; \
	done

# Copies finished runs' results.json and figures into docs/results/ for the experiment pages:
# make docs-results RUNS="runs/iwae runs/flows"
docs-results: setup
	$(PY) docs/experiment_pages.py collect $(RUNS)

# Runs the Colab notebooks at full size and stores their outputs (the tutorial pages show them).
tutorials: data
	$(PY) docs/run_tutorials.py

# The core benchmarks; the optional PyTorch peer needs the bench extra (pip install -e ".[bench]").
bench: setup
	$(PY) -m benchmarks.core

clean:
	rm -rf $(VENV) runs site
