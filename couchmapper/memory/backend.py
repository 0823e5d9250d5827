"""The Backend adapter over the in-memory CouchDB engine (the default of ``cm.connect()``).

It behaves like Apache CouchDB 3.5: revision trees with CouchDB's winner rules and conflicts,
``_bulk_docs`` per-document results, ``_all_docs``, ``_changes``, attachments, Mango
(``_find``/``_index``), design-document views (JavaScript through the optional ``quickjs``
package) and partitioned databases. Everything lives in process; each database has its own
lock, so a server may be shared between threads.

Example::

    server = MemoryServer()
    db = server.create("people")
    db.put({"_id": "ann", "age": 31})
    db.get("ann")["_rev"]            # '1-...'

``MemoryBackend.from_url("memory://people")`` opens (or creates) a database on the
process-wide :func:`memory_server`. :class:`~couchmapper.memory.MemoryHTTP` gives the same
engine an HTTP-shaped entry point (``handle(method, path, query, body)``).
"""

from __future__ import annotations

import functools
import io
import json
import threading
from collections.abc import Callable, Sequence
from typing import IO, Any, ParamSpec, TypeVar
from urllib.parse import unquote, urlsplit

from couchmapper._couch.checks import (
    check_attachment,
    check_doc_id,
    check_document,
)
from couchmapper._url import redact_text, redact_url
from couchmapper.backends.base import JSONDict
from couchmapper.exceptions import (
    BackendError,
    NotFoundError,
    PreconditionFailed,
    QueryError,
)
from couchmapper.memory.engine import feeds, find, listing, replication, views
from couchmapper.memory.engine.catalog import Catalog, check_db_name, default_catalog
from couchmapper.memory.engine.docs import Prepared, prepare_body
from couchmapper.memory.engine.options import check_counts
from couchmapper.memory.engine.store import Database


def _as_query(options: dict[str, Any]) -> dict[str, str]:
    """Options as the query string CouchDB would see (``req.query`` of a filter)."""
    query: dict[str, str] = {}
    for name, value in options.items():
        if value is None or name in ("doc_ids", "selector"):
            continue
        if isinstance(value, bool):
            query[name] = "true" if value else "false"
        else:
            query[name] = value if isinstance(value, str) else json.dumps(value)
    return query


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _query(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """A 400 from a query endpoint is a QueryError, as CouchDBBackend raises it."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(*args, **kwargs)
        except BackendError as exc:
            if exc.status == 400 and not isinstance(exc, QueryError):
                raise QueryError(exc.error, exc.reason) from exc
            raise

    return wrapper


__all__ = ["MemoryAttachmentBody", "MemoryBackend", "MemoryServer", "memory_server"]


class MemoryServer:
    """A set of in-memory databases: create, open, delete, list, uuids.

    The adapter over one engine :class:`~couchmapper.memory.engine.catalog.Catalog`
    (``catalog``): what the catalog hands out as engine databases, this hands out as
    :class:`MemoryBackend` objects.
    """

    def __init__(self, *, uuid_prefix: str | None = None, catalog: Catalog | None = None) -> None:
        self.catalog = catalog if catalog is not None else Catalog(uuid_prefix=uuid_prefix)

    def create(
        self, name: str, *, partitioned: bool = False, q: int = 2, n: int = 1
    ) -> MemoryBackend:
        """``PUT /{db}``: 412 ``file_exists`` when it exists, 400 for an illegal name."""
        database = self.catalog.create(name, partitioned=partitioned, q=q, n=n)
        return MemoryBackend(database, self)

    def database(self, name: str) -> MemoryBackend:
        """Open an existing database; 404 "Database does not exist." otherwise."""
        return MemoryBackend(self.catalog.open(name), self)

    def raw(self, name: str) -> Database:
        """The engine object behind a database name (404 when missing)."""
        return self.catalog.open(name)

    def delete(self, name: str) -> None:
        """``DELETE /{db}``: the data is gone, and every handle to it answers 404 from now on."""
        self.catalog.delete(name)

    def __contains__(self, name: object) -> bool:
        return name in self.catalog

    def all_dbs(self, **options: Any) -> list[str]:
        """``GET /_all_dbs`` with startkey/endkey/limit/skip/descending."""
        return self.catalog.all_dbs(**options)

    def dbs_info(self, keys: Sequence[str]) -> list[JSONDict]:
        """``POST /_dbs_info``."""
        return self.catalog.dbs_info(keys)

    def uuids(self, count: int = 1) -> list[str]:
        """Server ids like CouchDB's sequential algorithm: a shared prefix, a growing tail."""
        return self.catalog.uuids(count)


_default_server: MemoryServer | None = None
_default_lock = threading.Lock()


def _listed(docs: Any) -> list[Any]:
    """``check_docs`` but for the JSON check of each doc (:func:`_checked` does that)."""
    msg = f"bulk_docs() takes a list of documents (dicts), not {type(docs).__name__}"
    if isinstance(docs, str | bytes | dict):
        raise TypeError(msg)
    try:
        return list(docs)
    except TypeError:
        raise TypeError(msg) from None


def _checked(doc: Any) -> Prepared:
    """``check_document`` (a dict of JSON values), fused with the engine's stored copy."""
    if not isinstance(doc, dict):
        check_document(doc)  # raises its TypeError
    return prepare_body(doc)


def memory_server() -> MemoryServer:
    """The process-wide server that ``memory://`` URLs and ``cm.connect()`` use."""
    global _default_server
    with _default_lock:
        if _default_server is None:
            _default_server = MemoryServer(catalog=default_catalog())
        return _default_server


class MemoryBackend:
    """One in-memory CouchDB database implementing :class:`~couchmapper.backends.Backend`."""

    def __init__(self, database: Database, server: MemoryServer | None = None) -> None:
        self._database = database
        self.server = server

    @property
    def _db(self) -> Database:
        """The engine database; 404 "Database does not exist." once it was deleted."""
        if self._database.deleted:
            raise NotFoundError("not_found", "Database does not exist.")
        return self._database

    def drop(self) -> None:
        """Delete this database from its server (``DELETE /{db}``), freeing its memory.

        ``cm.connect()`` creates a new database on the process-wide server each time; tests
        that call it often should drop it afterwards. Later calls on this (or any other)
        handle to it raise NotFoundError("Database does not exist."), as CouchDB answers.
        """
        if self.server is None:
            msg = "this database has no server to be dropped from"
            raise ValueError(msg)
        self.server.delete(self._db.name)

    @classmethod
    def from_url(
        cls, url: str, *, create: bool = True, server: MemoryServer | None = None
    ) -> MemoryBackend:
        """Open ``memory://name`` (creating it when ``create``) on the process-wide server."""
        parts = urlsplit(url)
        if parts.scheme != "memory":
            msg = f"not a memory:// URL: {redact_url(url)!r}"
            raise ValueError(msg)
        name = unquote((parts.netloc + parts.path).strip("/"))
        target = server if server is not None else memory_server()
        try:
            check_db_name(name)
        except BackendError as exc:
            # The name comes from the whole URL: a "user:password@" in it must not show.
            shown = unquote(redact_url(url).split("://", 1)[1].strip("/"))
            secrets = [parts.password] if parts.password else []
            reason = redact_text(exc.reason.replace(name, shown), secrets)
            raise BackendError(exc.status, exc.error, reason) from None
        if create and name not in target:
            try:
                return target.create(name)
            except PreconditionFailed:
                pass
        return target.database(name)

    @property
    def name(self) -> str:
        """The database name."""
        return self._database.name

    @property
    def engine(self) -> Database:
        """The engine object (used by the HTTP facade)."""
        return self._db

    def __repr__(self) -> str:
        return f"<MemoryBackend {self._database.name!r}>"

    def info(self) -> JSONDict:
        """``GET /db``."""
        return self._db.info()

    def get(
        self,
        doc_id: str,
        *,
        rev: str | None = None,
        revs: bool = False,
        conflicts: bool = False,
        attachments: bool = False,
        open_revs: str | list[str] | None = None,
        **options: Any,
    ) -> JSONDict:
        """``GET /db/{doc_id}``; raises DocumentNotFound ("missing" or "deleted")."""
        check_doc_id(doc_id)
        if open_revs is not None:
            options["open_revs"] = open_revs
        found: JSONDict = self._db.get(
            doc_id, rev=rev, revs=revs, conflicts=conflicts, attachments=attachments, **options
        )
        return found

    def put(self, doc: JSONDict, *, new_edits: bool = True) -> JSONDict:
        """``PUT /db/{doc["_id"]}``: ``{"ok", "id", "rev"}``; raises ConflictError."""
        ready = _checked(doc)
        if "_id" not in doc:
            raise BackendError(400, "bad_request", "Document id must be a string")
        return self._db.put(doc, doc["_id"], new_edits=new_edits, prepared=ready)

    def post(self, doc: JSONDict) -> JSONDict:
        """``POST /db``: like put, with a generated id when the doc has none."""
        ready = _checked(doc)
        item = dict(doc)
        if "_id" not in item and self.server is not None:
            item["_id"] = self.server.uuids()[0]
        return self._db.put(item, prepared=ready)

    def delete(self, doc_id: str, rev: str) -> JSONDict:
        """``DELETE /db/{doc_id}?rev=``."""
        check_doc_id(doc_id)
        return self._db.delete(doc_id, rev)

    def bulk_docs(self, docs: Sequence[JSONDict], *, new_edits: bool = True) -> list[JSONDict]:
        """``POST /db/_bulk_docs``: one result per document, in order."""
        docs = _listed(docs)
        ready = [_checked(doc) for doc in docs]  # check_docs' JSON check, fused with the copy
        if self.server is not None:
            docs = [self._with_id(d) for d in docs]
        return self._db.bulk_docs(docs, new_edits=new_edits, prepared=ready)

    def _with_id(self, doc: Any) -> Any:
        if isinstance(doc, dict) and "_id" not in doc and self.server is not None:
            return {"_id": self.server.uuids()[0], **doc}
        return doc

    @_query
    def all_docs(
        self, *, keys: Sequence[str] | None = None, partition: str | None = None, **options: Any
    ) -> JSONDict:
        """``_all_docs``: ``{"total_rows", "offset", "rows"}``.

        ``partition="p"`` is ``/db/_partition/p/_all_docs`` (partitioned databases only).
        """
        if partition is not None:
            options["partition"] = partition
        check_counts(options)
        if keys is not None:
            options["keys"] = list(keys)
        return listing.all_docs(self._db, **options)

    @_query
    def local_docs(self, **options: Any) -> JSONDict:
        """``_local_docs``."""
        return listing.local_docs(self._db, **options)

    @_query
    def design_docs(self, **options: Any) -> JSONDict:
        """``_design_docs``."""
        return listing.all_docs(self._db, _design_only=True, **options)

    @_query
    def changes(self, **options: Any) -> JSONDict:
        """``_changes``; a JavaScript filter sees the other options as ``req.query``.

        ``feed="longpoll"`` waits (up to ``timeout`` ms) for a change when there is none.
        """
        if "query" not in options:
            options["query"] = _as_query(options)
        feed = options.get("feed", "normal")
        if feed == "longpoll":
            return feeds.longpoll(self._db, options)
        if feed != "normal":
            msg = f"changes() supports feed='normal' or 'longpoll', not {feed!r}"
            raise ValueError(msg)
        return listing.changes(self._db, **options)

    @_query
    def find(self, query: JSONDict, *, partition: str | None = None) -> JSONDict:
        """``POST /db/_find``; ``partition="p"`` is ``/db/_partition/p/_find``."""
        return find.find(self._db, query, partition=partition)

    @_query
    def explain(self, query: JSONDict, *, partition: str | None = None) -> JSONDict:
        """``POST /db/_explain``; ``partition="p"`` is ``/db/_partition/p/_explain``."""
        return find.explain(self._db, query, partition=partition)

    @_query
    def create_index(self, index: JSONDict) -> JSONDict:
        """``POST /db/_index``: ``{"result": "created"|"exists", "id", "name"}``."""
        return find.create_index(self._db, index)

    @_query
    def list_indexes(self) -> JSONDict:
        """``GET /db/_index``: ``{"total_rows", "indexes"}``."""
        return find.list_indexes(self._db)

    @_query
    def delete_index(self, ddoc: str, name: str) -> JSONDict:
        """``DELETE /db/_index/{ddoc}/json/{name}``."""
        return find.delete_index(self._db, ddoc, name)

    @_query
    def view(
        self,
        ddoc: str,
        view: str,
        *,
        keys: Sequence[Any] | None = None,
        partition: str | None = None,
        **options: Any,
    ) -> JSONDict:
        """``GET /db/_design/{ddoc}/_view/{view}``.

        ``partition="p"`` is ``/db/_partition/p/_design/{ddoc}/_view/{view}``.
        """
        if partition is not None:
            options["partition"] = partition
        check_counts(options)
        if keys is not None:
            options["keys"] = list(keys)
        return views.query_view(self._db, ddoc, view, **options)

    def get_attachment(
        self, doc_id: str, name: str, *, rev: str | None = None
    ) -> tuple[bytes, str]:
        """``GET /db/{doc_id}/{name}``: the bytes and the content type."""
        check_doc_id(doc_id)
        att = self._db.get_attachment(doc_id, name, rev)
        return att.data, att.content_type

    def put_attachment(
        self, doc_id: str, name: str, data: bytes, content_type: str, *, rev: str | None = None
    ) -> JSONDict:
        """``PUT /db/{doc_id}/{name}?rev=``."""
        check_attachment(doc_id, name, data, content_type)
        return self._db.put_attachment(doc_id, name, bytes(data), content_type, rev)

    def open_attachment(
        self, doc_id: str, name: str, *, rev: str | None = None, accept_gzip: bool = False
    ) -> MemoryAttachmentBody:
        """``GET /db/{doc_id}/{name}?rev=`` as a stream (the gzip bytes, when accepted)."""
        check_doc_id(doc_id)
        att = self._db.get_attachment(doc_id, name, rev)
        if att.gzipped and accept_gzip:
            return MemoryAttachmentBody(att.gzip_bytes(), att.content_type, "gzip")
        return MemoryAttachmentBody(att.data, att.content_type, None)

    def upload_attachment(
        self,
        doc_id: str,
        name: str,
        source: IO[bytes],
        content_type: str,
        *,
        rev: str | None,
        length: int | None = None,
    ) -> JSONDict:
        """``PUT /db/{doc_id}/{name}?rev=``: the engine keeps bodies in memory, so it reads all."""
        data = source.read() if length is None else source.read(length)
        return self.put_attachment(doc_id, name, bytes(data), content_type, rev=rev)

    def delete_attachment(self, doc_id: str, name: str, *, rev: str) -> JSONDict:
        """``DELETE /db/{doc_id}/{name}?rev=``."""
        check_doc_id(doc_id)
        return self._db.delete_attachment(doc_id, name, rev)

    def partition_info(self, partition: str) -> JSONDict:
        """``GET /db/_partition/{partition}``: doc_count and doc_del_count of one partition."""
        return listing.partition_info(self._db, partition)

    def revs_diff(self, revs: JSONDict) -> JSONDict:
        """``POST /db/_revs_diff``: the revs the database lacks (``missing``)."""
        return replication.revs_diff(self._db, revs)

    def purge(self, revs: JSONDict) -> JSONDict:
        """``POST /db/_purge``: ``{"purge_seq", "purged": {id: [rev, ...]}}``."""
        return replication.purge(self._db, revs)


class MemoryAttachmentBody(io.BytesIO):
    """A stored attachment's bytes as a stream (see ``backends.base.AttachmentBody``)."""

    def __init__(self, data: bytes, content_type: str, encoding: str | None) -> None:
        super().__init__(data)
        self.content_type = content_type
        self.encoding = encoding
