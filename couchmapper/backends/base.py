"""The backend protocol: one CouchDB database, JSON dicts in and out.

A backend never sees Document objects. Every method takes and returns plain JSON values
(``dict``/``list``/``str``/``int``/``float``/``bool``/``None``) and never keeps or mutates the
dicts it is given: callers may reuse them. Errors are couchmapper's exceptions
(:mod:`couchmapper.exceptions`), with CouchDB's status, error name and reason, so the same
code handles the memory engine and a real server alike.

Method names and options follow CouchDB's HTTP API one to one (``all_docs`` is
``GET/POST /db/_all_docs``, its keyword options are the query parameters, already decoded:
``startkey="a"``, ``limit=10``, ``include_docs=True``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO, Any, Protocol, runtime_checkable

__all__ = ["AttachmentBody", "Backend", "JSONDict", "StreamingAttachments"]

JSONDict = dict[str, Any]


@runtime_checkable
class Backend(Protocol):
    """One CouchDB database."""

    @property
    def name(self) -> str:
        """The database name."""
        ...

    def info(self) -> JSONDict:
        """``GET /db``: doc_count, doc_del_count, update_seq, ..."""
        ...

    def get(
        self,
        doc_id: str,
        *,
        rev: str | None = None,
        revs: bool = False,
        conflicts: bool = False,
        attachments: bool = False,
        open_revs: str | list[str] | None = None,
    ) -> JSONDict:
        """``GET /db/{doc_id}``; raises DocumentNotFound (reason "missing" or "deleted")."""
        ...

    def put(self, doc: JSONDict, *, new_edits: bool = True) -> JSONDict:
        """``PUT /db/{doc["_id"]}``: returns ``{"ok", "id", "rev"}``; raises ConflictError."""
        ...

    def delete(self, doc_id: str, rev: str) -> JSONDict:
        """``DELETE /db/{doc_id}?rev=``: returns ``{"ok", "id", "rev"}``."""
        ...

    def bulk_docs(self, docs: Sequence[JSONDict], *, new_edits: bool = True) -> list[JSONDict]:
        """``POST /db/_bulk_docs``: one result per document, in order.

        Each result is ``{"ok": True, "id", "rev"}`` or ``{"id", "error", "reason"}``.
        """
        ...

    def all_docs(
        self, *, keys: Sequence[str] | None = None, partition: str | None = None, **options: Any
    ) -> JSONDict:
        """``GET /db/_all_docs`` (``POST`` with ``keys``): ``{"total_rows", "offset", "rows"}``.

        ``partition="p"`` lists one partition of a partitioned database.
        """
        ...

    def changes(self, **options: Any) -> JSONDict:
        """``GET /db/_changes`` (normal feed): ``{"results", "last_seq", "pending"}``."""
        ...

    def find(self, query: JSONDict, *, partition: str | None = None) -> JSONDict:
        """``POST /db/_find``: ``{"docs", "bookmark"}`` (and ``"warning"``).

        ``partition="p"`` is ``POST /db/_partition/p/_find``.
        """
        ...

    def explain(self, query: JSONDict, *, partition: str | None = None) -> JSONDict:
        """``POST /db/_explain``: which index a Mango query would use, and how."""
        ...

    def create_index(self, index: JSONDict) -> JSONDict:
        """``POST /db/_index``: ``{"result": "created"|"exists", "id", "name"}``."""
        ...

    def list_indexes(self) -> JSONDict:
        """``GET /db/_index``: ``{"total_rows", "indexes"}``."""
        ...

    def delete_index(self, ddoc: str, name: str) -> JSONDict:
        """``DELETE /db/_index/{ddoc}/json/{name}``."""
        ...

    def view(
        self,
        ddoc: str,
        view: str,
        *,
        keys: Sequence[Any] | None = None,
        partition: str | None = None,
        **options: Any,
    ) -> JSONDict:
        """``GET /db/_design/{ddoc}/_view/{view}`` (``POST`` with ``keys``)."""
        ...

    def get_attachment(
        self, doc_id: str, name: str, *, rev: str | None = None
    ) -> tuple[bytes, str]:
        """``GET /db/{doc_id}/{name}``: the bytes and the content type."""
        ...

    def put_attachment(
        self, doc_id: str, name: str, data: bytes, content_type: str, *, rev: str | None = None
    ) -> JSONDict:
        """``PUT /db/{doc_id}/{name}?rev=``: returns ``{"ok", "id", "rev"}``."""
        ...

    def delete_attachment(self, doc_id: str, name: str, *, rev: str) -> JSONDict:
        """``DELETE /db/{doc_id}/{name}?rev=``: returns ``{"ok", "id", "rev"}``."""
        ...

    def partition_info(self, partition: str) -> JSONDict:
        """``GET /db/_partition/{partition}``: doc_count and doc_del_count of one partition."""
        ...

    def revs_diff(self, revs: JSONDict) -> JSONDict:
        """``POST /db/_revs_diff``: ``{doc_id: {"missing": [rev, ...]}}`` for revs it lacks."""
        ...

    def purge(self, revs: JSONDict) -> JSONDict:
        """``POST /db/_purge``: ``{"purge_seq", "purged": {doc_id: [rev, ...]}}``."""
        ...


class AttachmentBody(Protocol):
    """The body of an attachment as it comes over the wire, read in pieces.

    ``encoding`` is ``"gzip"`` when the server sent the stored gzip bytes (CouchDB's digest
    of a compressible attachment is the md5 of those), else None.
    """

    content_type: str
    encoding: str | None

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes (all that is left when ``size`` is -1); ``b""`` at the end."""
        ...

    def close(self) -> None:
        """Give the connection back (reading the rest first) or close it."""
        ...


@runtime_checkable
class StreamingAttachments(Protocol):
    """A backend that moves attachment bodies in pieces, never whole in memory."""

    def open_attachment(self, doc_id: str, name: str, *, rev: str | None = None) -> AttachmentBody:
        """``GET /db/{doc_id}/{name}?rev=`` (gzip accepted), the body left unread."""
        ...

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
        """``PUT /db/{doc_id}/{name}?rev=`` streaming ``source``: ``{"ok", "id", "rev"}``.

        ``length`` (when known) goes as ``Content-Length``; otherwise the body is chunked.
        """
        ...
