"""connect() with http URLs against the test server (pouchdb-server or COUCHDB_URL)."""

from __future__ import annotations

import uuid

import pytest

from couchmapper.backends.couchdb import CouchDBBackend, CouchDBServer
from couchmapper.connect import connect
from couchmapper.exceptions import NotFoundError


def test_http_url_opens_an_existing_database(server_url: str, db_name: str) -> None:
    """connect(url) gives a working CouchDBBackend for an existing database."""
    backend = connect(f"{server_url}/{db_name}", timeout=30)
    assert isinstance(backend, CouchDBBackend)
    assert backend.name == db_name
    rev = backend.put({"_id": "a", "v": 1})["rev"]
    assert backend.get("a")["_rev"] == rev
    backend.close()


def test_http_url_creates_the_database(server_url: str) -> None:
    """connect(url) creates a missing database unless create=False."""
    name = f"cm-test-{uuid.uuid4().hex}"
    url = f"{server_url}/{name}"
    with pytest.raises(NotFoundError):
        connect(url, create=False, timeout=30)
    server = CouchDBServer(server_url, timeout=30)
    try:
        backend = connect(url, timeout=30)
        assert backend.info()["doc_count"] == 0
        assert name in server.list_databases()
    finally:
        server.delete_database(name, missing_ok=True)
        server.close()
