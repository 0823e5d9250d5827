# Two set-up commands: `make demo` and `make test`. Both create .venv from pyproject.toml.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEVSERVER := tests/devserver

.PHONY: demo test lint typecheck unit bench devserver venv clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,js]'
	touch $@

devserver: $(DEVSERVER)/node_modules/.installed

$(DEVSERVER)/node_modules/.installed: $(DEVSERVER)/package.json $(DEVSERVER)/package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: install Node.js 20 (with npm) to run the test server" >&2; exit 1; }
	cd $(DEVSERVER) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: venv
	$(PY) examples/quickstart.py

lint: venv
	$(VENV)/bin/ruff check couchmapper tests examples
	$(VENV)/bin/ruff format --check couchmapper tests examples

typecheck: venv
	$(VENV)/bin/mypy

test: venv devserver lint typecheck
	$(PY) -m pytest tests

bench: venv devserver
	$(PY) -m tests.benchmarks

clean:
	rm -rf $(VENV) $(DEVSERVER)/node_modules .mypy_cache .ruff_cache .pytest_cache .hypothesis
