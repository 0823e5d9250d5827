# Two set-up commands: `make demo` and `make test`. Both create .venv from pyproject.toml.

# The first Python that is 3.11 or newer (override with `make PYTHON=/path/to/python3.12`).
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
DEVSERVER := tests/devserver

.PHONY: demo test lint typecheck bench devserver venv clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is needed (python3 --version); install it, or run make PYTHON=/path/to/python3.11" >&2; exit 1; }
	@# A venv left by an older Python (or a failed first run) is rebuilt, not reused.
	@test ! -x $(PY) || $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# compat mode: a plain .pth entry, which type checkers of other projects can follow.
	$(PY) -m pip install --quiet -e '.[dev,js]' --config-settings editable_mode=compat
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

# When the dev server cannot be installed, the rest still runs: the tests that need the
# server then fail, each saying what to install, and `make test` fails.
test: venv lint typecheck
	@$(MAKE) --no-print-directory devserver || echo "make devserver failed: tests that need the CouchDB-compatible server will fail" >&2
	$(PY) -m pytest tests

bench: venv devserver
	$(PY) -m tests.benchmarks

clean:
	rm -rf $(VENV) $(DEVSERVER)/node_modules .mypy_cache .ruff_cache .pytest_cache .hypothesis
