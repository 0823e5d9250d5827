"""Shared fixtures: the CouchDB-compatible test server, throwaway databases, backends, a proxy.

The server is the pinned pouchdb-server from ``tests/devserver`` (started once per session, in
memory, on a free loopback port), or the CouchDB that ``COUCHDB_URL`` names (loopback only):

    server_url        (session)  base URL, with credentials if any
    server_kind       (session)  "pouchdb" or "couchdb": branch on it for documented deviations
    db_name           (function) "cm-test-<uuid hex>", created before and deleted after the test
    couchdb_database  (function) a python-couchdb ``couchdb.Database`` for ``db_name``
    couch_backend     (function) a ``CouchDBBackend`` for ``db_name``
    proxy             (function) a ``RecordingProxy`` in front of the server
    proxied_backend   (function) a ``CouchDBBackend`` for ``db_name`` through ``proxy``
    backend           (function, two params) the memory engine, or ``proxied_backend``

Tests using any of these get the ``server`` marker, so ``-m "not server"`` skips them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import unquote, urlsplit, urlunsplit

import couchdb
import pytest
from _proxy import RecordingProxy
from _server import (
    RunningServer,
    ServerSetupError,
    check_loopback_url,
    close_connections,
    server_kind_of,
    start_pouchdb,
)

import couchmapper as cm
from couchmapper.backends.base import Backend
from couchmapper.backends.couchdb import CouchDBBackend, CouchDBServer

SERVER_FIXTURES = frozenset(
    {
        "server_url",
        "server_kind",
        "db_name",
        "couchdb_database",
        "couch_backend",
        "proxy",
        "proxied_backend",
        "test_server",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the server with ``server``."""
    for item in items:
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.server)


@pytest.fixture(scope="session")
def test_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The running test server: COUCHDB_URL's, or a pouchdb-server started for this session."""
    external = os.environ.get("COUCHDB_URL", "").strip()
    if external:
        try:
            check_loopback_url(external)
            url = external.rstrip("/")
            server = CouchDBServer(url, timeout=30)
            try:
                kind = server_kind_of(server.info())
            finally:
                server.close()
        except ServerSetupError as exc:
            pytest.fail(str(exc), pytrace=False)
        yield RunningServer(url, kind)
        return
    try:
        running = start_pouchdb(tmp_path_factory.mktemp("pouchdb-server"))
    except ServerSetupError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def server_url(test_server: RunningServer) -> str:
    """Base URL of the CouchDB-compatible server, with credentials if any."""
    return test_server.url


@pytest.fixture(scope="session")
def server_kind(test_server: RunningServer) -> str:
    """``"pouchdb"`` or ``"couchdb"``: which server the tests talk to."""
    return test_server.kind


@pytest.fixture(scope="session")
def _couch_server(server_url: str) -> Iterator[CouchDBServer]:
    server = CouchDBServer(server_url, timeout=60)
    yield server
    server.close()


@pytest.fixture
def db_name(test_server: RunningServer, _couch_server: CouchDBServer) -> Iterator[str]:
    """A fresh database ``cm-test-<uuid hex>``, created before the test and deleted after."""
    try:
        test_server.check_alive()
    except ServerSetupError as exc:
        pytest.fail(str(exc), pytrace=False)
    name = f"cm-test-{uuid.uuid4().hex}"
    _couch_server.create_database(name).close()
    yield name
    _couch_server.delete_database(name, missing_ok=True)


@pytest.fixture
def couchdb_database(server_url: str, db_name: str) -> Iterator[couchdb.Database]:
    """A python-couchdb ``Database`` for the test's database; its connections closed after."""
    database = couchdb.Server(server_url)[db_name]
    yield database
    close_connections(database)


@pytest.fixture
def couch_backend(server_url: str, db_name: str) -> Iterator[CouchDBBackend]:
    """A ``CouchDBBackend`` for the test's database."""
    backend = CouchDBBackend.from_url(f"{server_url}/{db_name}", timeout=60)
    yield backend
    backend.close()


@pytest.fixture
def proxy(server_url: str) -> Iterator[RecordingProxy]:
    """A recording, fault-injecting proxy in front of the server."""
    parts = urlsplit(server_url)
    assert parts.hostname is not None
    upstream = (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    credentials = None
    if parts.username is not None:
        credentials = (unquote(parts.username), unquote(parts.password or ""))
    with RecordingProxy(upstream, credentials=credentials) as running:
        yield running


@pytest.fixture
def proxied_backend(
    server_url: str, db_name: str, proxy: RecordingProxy
) -> Iterator[CouchDBBackend]:
    """A ``CouchDBBackend`` for the test's database whose requests go through ``proxy``."""
    parts = urlsplit(server_url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{proxy.port}" if userinfo else f"127.0.0.1:{proxy.port}"
    url = urlunsplit(parts._replace(netloc=netloc))
    backend = CouchDBBackend.from_url(f"{url}/{db_name}", timeout=60)
    proxy.clear()  # from_url's existence check is not part of the test
    yield backend
    backend.close()


@pytest.fixture(params=["memory", pytest.param("server", marks=pytest.mark.server)])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """The memory engine, or the test server through the recording proxy."""
    if request.param == "memory":
        memory = cm.connect()
        yield memory
        drop = getattr(memory, "drop", None)
        if drop is not None:
            drop()
    else:
        found: Backend = request.getfixturevalue("proxied_backend")
        yield found
