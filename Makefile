# Two entry points for a fresh machine: `make demo` (main job) and `make test` (full suite).
# Both create .venv and install the project with its dev extras on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(VENV)/.installed: pyproject.toml setup.py src/pascal_snn/_kernel.c src/pascal_snn/_kernel_impl.h
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/pascal-snn demo --out runs/demo

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

# one pytest worker per core (at most 4), each with one torch thread (tests/conftest.py);
# worksteal keeps both busy to the end (the long end-to-end tests would otherwise tail alone)
test: lint
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist worksteal

clean:
	rm -rf $(VENV) runs
