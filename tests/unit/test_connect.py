"""connect(): the default memory database, memory:// URLs, http URLs and bad URLs."""

from __future__ import annotations

import re

import pytest

from couchmapper.backends.base import Backend
from couchmapper.backends.couchdb import CouchDBBackend
from couchmapper.backends.memory import MemoryBackend, memory_server
from couchmapper.connect import connect
from couchmapper.exceptions import BackendError, BackendUnavailable, NotFoundError


def test_no_url_gives_a_fresh_memory_database() -> None:
    """connect() with no URL returns an empty memory database with a unique db-<hex> name."""
    first, second = connect(), connect()
    assert isinstance(first, MemoryBackend)
    assert isinstance(first, Backend)
    assert re.fullmatch(r"db-[0-9a-f]{32}", first.name)
    assert first.name != second.name
    assert first.info()["doc_count"] == 0
    first.put({"_id": "a", "v": 1})
    assert second.all_docs()["rows"] == []
    assert first.name in memory_server()


def test_memory_url_is_shared_by_name() -> None:
    """Two connects to the same memory:// name see the same documents."""
    name = f"shared-{connect().name}"
    writer = connect(f"memory://{name}")
    writer.put({"_id": "doc", "v": 1})
    reader = connect(f"memory://{name}")
    assert reader.name == name
    assert reader.get("doc")["v"] == 1


def test_memory_url_without_create_needs_an_existing_database() -> None:
    """memory:// with create=False raises 404 for a missing database and opens an existing one."""
    name = f"absent-{connect().name}"
    with pytest.raises(NotFoundError) as caught:
        connect(f"memory://{name}", create=False)
    assert caught.value.reason == "Database does not exist."
    connect(f"memory://{name}")
    assert connect(f"memory://{name}", create=False).name == name


def test_memory_url_checks_the_name() -> None:
    """An illegal memory database name gets CouchDB's 400 illegal_database_name."""
    with pytest.raises(BackendError) as caught:
        connect("memory://Upper")
    assert (caught.value.status, caught.value.error) == (400, "illegal_database_name")


def test_memory_url_needs_a_name() -> None:
    """memory:// without a database name is a ValueError."""
    with pytest.raises(ValueError, match="names no database"):
        connect("memory://")


def test_unknown_scheme_is_refused_without_the_password() -> None:
    """An unsupported scheme is a ValueError whose message masks the password."""
    with pytest.raises(ValueError, match="unsupported database URL") as caught:
        connect("ftp://admin:hunter22@example.invalid/db")
    assert "hunter22" not in str(caught.value)
    assert "admin:***@" in str(caught.value)


def test_http_url_without_a_database_is_refused() -> None:
    """An http URL must name a database."""
    with pytest.raises(ValueError, match="names no database"):
        connect("http://127.0.0.1:9/")


def test_unreachable_http_server_hides_the_password() -> None:
    """A refused connection raises BackendUnavailable without the password in its text."""
    with pytest.raises(BackendUnavailable) as caught:
        connect("http://admin:sekret-pw@127.0.0.1:9/people", timeout=2)
    assert "sekret-pw" not in str(caught.value)
    assert "sekret-pw" not in repr(caught.value)


def test_http_url_gives_a_couchdb_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """An http URL goes to CouchDBBackend.from_url with create and timeout passed on."""
    seen: list[tuple[str, bool, object]] = []
    sentinel = connect()

    def fake(url: str, *, create: bool = False, timeout: object = None) -> Backend:
        seen.append((url, create, timeout))
        return sentinel

    monkeypatch.setattr(CouchDBBackend, "from_url", staticmethod(fake))
    assert connect("https://u:p@host:6984/people", create=False, timeout=5.0) is sentinel
    assert connect("HTTP://host:5984/people") is sentinel
    assert seen == [
        ("https://u:p@host:6984/people", False, 5.0),
        ("HTTP://host:5984/people", True, (10.0, 120.0)),  # the default timeouts
    ]


def test_memory_url_credentials_not_shown() -> None:
    """A memory:// URL with user info: the illegal-name reason masks the password."""
    with pytest.raises(BackendError) as caught:
        connect("memory://admin:hunter22pw@x/db")
    assert caught.value.error == "illegal_database_name"
    assert "hunter22pw" not in str(caught.value)
    assert "admin:***@x/db" in caught.value.reason


def test_fresh_database_can_be_dropped() -> None:
    """connect() databases live on the process-wide server until dropped."""
    db = connect()
    assert isinstance(db, MemoryBackend)
    name = db.name
    assert name in memory_server()
    db.drop()
    assert name not in memory_server()
