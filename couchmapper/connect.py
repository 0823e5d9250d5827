"""``connect()``: one call from a URL (or nothing) to a :class:`~couchmapper.backends.Backend`.

::

    db = connect()                                   # a fresh in-memory database
    db = connect("memory://people")                  # the in-memory database "people"
    db = connect("http://admin:pw@127.0.0.1:5984/people", timeout=(5, 30))   # CouchDB

Memory databases live on the process-wide :func:`~couchmapper.backends.memory.memory_server`,
so two ``connect("memory://people")`` calls share their documents. Errors never show the
password of an http URL.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

from couchmapper._url import redact_url
from couchmapper.backends.base import Backend
from couchmapper.memory import MemoryBackend, memory_server

__all__ = ["connect"]


def connect(
    url: str | None = None,
    *,
    create: bool = True,
    # backends.couchdb.DEFAULT_TIMEOUT, not imported: memory databases need no python-couchdb.
    timeout: float | tuple[float | None, float | None] | None = (10.0, 120.0),
) -> Backend:
    """Open a database: in memory by default, or on a CouchDB server for an http(s) URL.

    Args:
        url: None for a fresh, uniquely named memory database (``db-<uuid hex>``);
            ``memory://name`` for the memory database ``name``; or
            ``http(s)://[user:password@]host:port/dbname`` for a CouchDB database.
        create: create the database when it does not exist (for a fresh memory database it
            is always created).
        timeout: for a CouchDB server, seconds to connect and to wait for each answer, or
            ``(connect, read)``: by default ``(10, 120)``; None waits forever (ignored for
            memory). A server that does not answer in time raises ``BackendUnavailable``
            naming it (host:port).

    Raises:
        ValueError: the URL has another scheme or names no database.
        NotFoundError: the database does not exist and ``create`` is false.
        BackendError: an illegal database name (400 ``illegal_database_name``).
        BackendUnavailable: the CouchDB server did not answer.
    """
    if url is None:
        return memory_server().create(f"db-{uuid.uuid4().hex}")
    scheme = urlsplit(url).scheme.lower()
    if scheme == "memory":
        parts = urlsplit(url)
        if not (parts.netloc + parts.path).strip("/"):
            msg = f"the URL names no database: {url!r} (expected memory://dbname)"
            raise ValueError(msg)
        return MemoryBackend.from_url(url, create=create)
    if scheme in ("http", "https"):
        from couchmapper.backends.couchdb import CouchDBBackend

        return CouchDBBackend.from_url(url, create=create, timeout=timeout)
    msg = (
        f"unsupported database URL {redact_url(url)!r}: "
        "expected memory://name or http(s)://host:port/dbname"
    )
    raise ValueError(msg)
