"""``CouchDBServer``: server-level operations (create, delete, list databases) and shortcuts."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import couchdb

from couchmapper._url import split_credentials
from couchmapper.backends.base import JSONDict
from couchmapper.backends.couchdb.backend import CouchDBBackend
from couchmapper.backends.couchdb.transport import (
    DEFAULT_TIMEOUT,
    Requester,
    Timeout,
    database_resource,
    make_resource,
)
from couchmapper.exceptions import NotFoundError

__all__ = ["CouchDBServer", "create_database", "delete_database", "list_databases"]


class CouchDBServer:
    """Server-level operations: create, delete and list databases.

    ``CouchDBServer("http://admin:pw@127.0.0.1:5984")`` keeps one HTTP session; the backends
    it hands out (:meth:`database`, :meth:`create_database`) have their own.
    """

    def __init__(self, url: str, *, timeout: Timeout = DEFAULT_TIMEOUT) -> None:
        clean, credentials = split_credentials(url)
        parts = urlsplit(clean)
        if parts.scheme not in ("http", "https"):
            msg = f"expected an http:// or https:// URL, got scheme {parts.scheme!r}"
            raise ValueError(msg)
        base = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        self._base = base
        self._credentials = credentials
        self._timeout = timeout
        self._http = Requester(make_resource(base, credentials, timeout=timeout), "server")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._http.url!r})"

    @property
    def url(self) -> str:
        """The server URL with the password masked."""
        return self._http.url

    def close(self) -> None:
        """Close the idle pooled connections."""
        self._http.close()

    def info(self) -> JSONDict:
        """``GET /``: the welcome object (``couchdb``/``version``/``vendor``...)."""
        result: JSONDict = self._http.send("GET", [])
        return result

    def list_databases(self) -> list[str]:
        """``GET /_all_dbs``: every database name."""
        result: list[str] = self._http.send("GET", ["_all_dbs"])
        return result

    def database(self, name: str) -> CouchDBBackend:
        """A backend for the database ``name`` (not checked for existence)."""
        resource = database_resource(self._base, name, self._credentials, self._timeout)
        return CouchDBBackend(couchdb.Database(resource, name))

    def create_database(self, name: str) -> CouchDBBackend:
        """``PUT /{name}``; raises PreconditionFailed (``file_exists``) if it exists."""
        self._http.send("PUT", [name])
        return self.database(name)

    def delete_database(self, name: str, *, missing_ok: bool = False) -> None:
        """``DELETE /{name}``; raises NotFoundError naming the database unless ``missing_ok``."""
        try:
            self._http.send("DELETE", [name])
        except NotFoundError as exc:
            if not missing_ok:
                # CouchDB's own reason stays ("Database does not exist.", 01/db-delete-missing);
                # the note says which database.
                exc.add_note(f"database: {name!r}")
                raise


def create_database(
    server_url: str, name: str, *, timeout: Timeout = DEFAULT_TIMEOUT
) -> CouchDBBackend:
    """Create the database ``name`` on the server at ``server_url`` and return its backend."""
    server = CouchDBServer(server_url, timeout=timeout)
    try:
        return server.create_database(name)
    finally:
        server.close()


def delete_database(
    server_url: str, name: str, *, missing_ok: bool = False, timeout: Timeout = DEFAULT_TIMEOUT
) -> None:
    """Delete the database ``name`` on the server at ``server_url``."""
    server = CouchDBServer(server_url, timeout=timeout)
    try:
        server.delete_database(name, missing_ok=missing_ok)
    finally:
        server.close()


def list_databases(server_url: str, *, timeout: Timeout = DEFAULT_TIMEOUT) -> list[str]:
    """The names of every database on the server at ``server_url``."""
    server = CouchDBServer(server_url, timeout=timeout)
    try:
        return server.list_databases()
    finally:
        server.close()
