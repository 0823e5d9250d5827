"""Fixtures of the differential fuzzer: it needs Apache CouchDB itself, never pouchdb-server."""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder carries the ``couchdb`` marker."""
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.couchdb)


@pytest.fixture
def couchdb_url(server_url: str, server_kind: str) -> str:
    """The base URL (with credentials) of Apache CouchDB; fails on any other server."""
    if server_kind != "couchdb":
        pytest.fail(
            "needs Apache CouchDB: run make test-couchdb or make fuzz with COUCHDB_URL",
            pytrace=False,
        )
    return server_url
