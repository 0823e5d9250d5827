# Two set-up commands: `make demo` and `make test`. Both create .venv from pyproject.toml.

# The first Python that is 3.11 or newer (override with `make PYTHON=/path/to/python3.12`).
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
DEVSERVER := tests/devserver

.PHONY: demo test test-couchdb test-cluster fuzz lint typecheck bench devserver venv clean docs linkcheck peer-suite

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is needed (python3 --version); install it, or run make PYTHON=/path/to/python3.11" >&2; exit 1; }
	@# A venv left by an older Python (or a failed first run) is rebuilt, not reused.
	@test ! -x $(PY) || $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# compat mode: a plain .pth entry, which type checkers of other projects can follow.
	$(PY) -m pip install --quiet -e '.[dev,js,docs]' --config-settings editable_mode=compat
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
test: venv lint typecheck docs
	@$(MAKE) --no-print-directory devserver || echo "make devserver failed: tests that need the CouchDB-compatible server will fail" >&2
	@# Tests marked couchdb (the differential fuzzer) need Apache CouchDB itself and tests marked
	@# cluster need a 3-node cluster: `make test-couchdb` and `make test-cluster` run them.
	$(PY) -m pytest tests -m "not couchdb and not cluster"

# The server suites again on the Apache CouchDB 3.x that COUCHDB_URL names (loopback only), e.g.
#   docker run -d -p 127.0.0.1:5984:5984 -e COUCHDB_USER=admin -e COUCHDB_PASSWORD=pw couchdb:3.5
#   make test-couchdb COUCHDB_URL=http://admin:pw@127.0.0.1:5984
test-couchdb: venv
	@test -n "$(COUCHDB_URL)" || { echo "set COUCHDB_URL to a CouchDB 3.5 on loopback, e.g. COUCHDB_URL=http://admin:pw@127.0.0.1:5984" >&2; exit 2; }
	COUCHDB_URL="$(COUCHDB_URL)" $(PY) -m pytest tests -m "(server or couchdb) and not cluster"

# A local 3-node CouchDB 3.5 cluster whose nodes the tests kill and restart. COUCHDB_CLUSTER names
# a script with the interface `cluster start|restart|stop DIR` (see docs/backends.md).
test-cluster: venv
	@test -n "$(COUCHDB_CLUSTER)" || { echo "set COUCHDB_CLUSTER to the path of a cluster start|restart|stop script (see docs/backends.md)" >&2; exit 2; }
	COUCHDB_CLUSTER="$(COUCHDB_CLUSTER)" $(PY) -m pytest tests/cluster -m cluster

# The differential fuzzer (memory engine against Apache CouchDB) with many more examples.
fuzz: venv
	@test -n "$(COUCHDB_URL)" || { echo "set COUCHDB_URL to a CouchDB 3.5 on loopback" >&2; exit 2; }
	COUCHDB_URL="$(COUCHDB_URL)" FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-1000} $(PY) -m pytest tests/differential -m couchdb

bench: venv devserver
	$(PY) -m tests.benchmarks

clean:
	rm -rf $(VENV) $(DEVSERVER)/node_modules .mypy_cache .ruff_cache .pytest_cache .hypothesis
	rm -rf docs/_build docs/_static/vendor $(DOCS_JS)/node_modules

# python-couchdb 1.2's own test suite (from its sdist) against `couchmapper serve` and Apache
# CouchDB 3.5; COUCHDB_RUN names a script `run --port P --dir D --admin user:pass` that starts
# a CouchDB 3.5 node. Prints the table (test, CouchDB, serve); not part of `make test`.
peer-suite: venv
	@test -n "$(COUCHDB_RUN)" || { echo "set COUCHDB_RUN to a CouchDB 3.5 run script (run --port P --dir D --admin user:pass)" >&2; exit 2; }
	COUCHDB_RUN="$(COUCHDB_RUN)" $(PY) -m tests.peer

# The documentation site, in docs/_build/html (open docs/_build/html/index.html; it works
# offline, from file:// too). Sphinx warnings are errors (-W), every cross-reference must
# resolve (-n), and docs/_ext/check_site.py checks every link, image and #anchor of the built
# HTML. External links are counted, not fetched (no network needed): `make linkcheck`.
# Diagrams are drawn in the browser by mermaid, vendored from the npm package pinned in
# docs/_mermaid (no CDN).
DOCS_JS := docs/_mermaid

docs: venv $(DOCS_JS)/node_modules/.installed
	@mkdir -p docs/_static/vendor
	cp $(DOCS_JS)/node_modules/mermaid/dist/mermaid.min.js docs/_static/vendor/mermaid.min.js
	rm -rf docs/_build/html docs/_build/doctrees
	$(PY) -m sphinx -b html -W --keep-going -n -q -d docs/_build/doctrees docs docs/_build/html
	$(PY) docs/_ext/check_site.py docs/_build/html

$(DOCS_JS)/node_modules/.installed: $(DOCS_JS)/package.json $(DOCS_JS)/package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: install Node.js 20 (with npm) to build the docs" >&2; exit 1; }
	cd $(DOCS_JS) && npm ci --no-audit --no-fund --loglevel=error --ignore-scripts
	touch $@

# External links of the site, fetched (needs a network).
linkcheck: docs
	$(PY) -m sphinx -b linkcheck -q -d docs/_build/doctrees docs docs/_build/linkcheck
