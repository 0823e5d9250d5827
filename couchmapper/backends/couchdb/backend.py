"""``CouchDBBackend``: one CouchDB database behind the ``Backend`` protocol."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from typing import IO, Any

import couchdb

from couchmapper._couch.checks import (
    check_attachment,
    check_doc_id,
    check_docs,
    check_document,
    check_json,
)
from couchmapper._url import split_credentials
from couchmapper.backends.base import JSONDict
from couchmapper.backends.couchdb.transport import (
    DEFAULT_TIMEOUT,
    CouchSession,
    Requester,
    Timeout,
    database_resource,
    doc_path,
    encode_params,
    make_resource,
    split_db_url,
)
from couchmapper.exceptions import NotFoundError, PreconditionFailed

__all__ = ["AttachmentStream", "CouchDBBackend", "in_request_order"]


class CouchDBBackend:
    """One CouchDB database, spoken to through python-couchdb.

    Build it from a ``couchdb.Database`` (its URL, credentials, headers, timeout and TLS
    setting are reused; the object itself is left untouched) or with :meth:`from_url`.
    """

    def __init__(self, database: couchdb.Database) -> None:
        source = database.resource
        session = source.session
        if isinstance(session, CouchSession):
            resource = source
        else:
            resource = make_resource(
                source.url,
                source.credentials,
                # python-couchdb waits forever by default: that one gets the default timeouts.
                timeout=getattr(session, "_timeout", None) or DEFAULT_TIMEOUT,
                insecure=getattr(session, "_disable_ssl_verification", False),
                headers=source.headers,
            )
        name = database._name
        if name is None:
            _, name = split_db_url(source.url)
        self._name: str = name
        self._database = database
        self._http = Requester(resource, f"database {name!r}")

    @classmethod
    def from_url(
        cls, url: str, *, create: bool = False, timeout: Timeout = DEFAULT_TIMEOUT
    ) -> CouchDBBackend:
        """Connect to the database at ``url``, e.g. ``http://user:pw@127.0.0.1:5984/people``.

        Args:
            url: the database URL; credentials may be percent-encoded in it.
            create: create the database when it does not exist yet.
            timeout: seconds to connect and to wait for each answer, or ``(connect, read)``;
                :data:`DEFAULT_TIMEOUT` is ``(10, 120)``; None waits forever.

        Raises:
            NotFoundError: the database does not exist and ``create`` is false.
            BackendUnavailable: the server did not answer.
            ValueError: the URL is not an http(s) URL naming a database.
        """
        clean, credentials = split_credentials(url)
        server_url, name = split_db_url(clean)
        backend = cls(
            couchdb.Database(database_resource(server_url, name, credentials, timeout), name)
        )
        try:
            backend._http.send("HEAD", [])
        except NotFoundError:
            if not create:
                backend.close()  # not left to the garbage collector (ResourceWarning)
                raise NotFoundError("not_found", f"database {name!r} does not exist") from None
            server = Requester(make_resource(server_url, credentials, timeout=timeout), "server")
            try:
                with contextlib.suppress(PreconditionFailed):  # created meanwhile: fine
                    server.send("PUT", [name])
            finally:
                server.close()
        except BaseException:
            backend.close()
            raise
        return backend

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._http.url!r})"

    def __enter__(self) -> CouchDBBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the idle pooled connections (the backend stays usable; it reconnects)."""
        self._http.close()

    @property
    def name(self) -> str:
        """The database name."""
        return self._name

    @property
    def url(self) -> str:
        """The database URL with the password masked."""
        return self._http.url

    @property
    def database(self) -> couchdb.Database:
        """The python-couchdb ``Database`` this backend was built from (or for)."""
        return self._database

    # -- documents ------------------------------------------------------------------------

    def info(self) -> JSONDict:
        """``GET /db``: doc_count, doc_del_count, update_seq, ..."""
        result: JSONDict = self._http.send("GET", [])
        return result

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
        """``GET /db/{doc_id}``; raises DocumentNotFound (reason "missing" or "deleted").

        With ``open_revs`` (``"all"`` or a list of revisions) the answer is CouchDB's list of
        ``{"ok": doc}`` / ``{"missing": rev}`` (typed as a dict only by the protocol).
        """
        check_doc_id(doc_id)
        params = encode_params(
            {
                "rev": rev,
                "revs": revs or None,
                "conflicts": conflicts or None,
                "attachments": attachments or None,
            }
        )
        if open_revs is not None:  # "all" as it is; a list as JSON
            params["open_revs"] = open_revs if isinstance(open_revs, str) else json.dumps(open_revs)
        result: JSONDict = self._http.send("GET", doc_path(doc_id), params=params, doc_id=doc_id)
        return result

    def put(self, doc: JSONDict, *, new_edits: bool = True) -> JSONDict:
        """``PUT /db/{doc["_id"]}``: returns ``{"ok", "id", "rev"}``; raises ConflictError.

        With ``new_edits=False`` the answer is built from the document's own revision when the
        server does not give one (pouchdb-server 4.2.0 answers ``[]``; CouchDB answers
        ``{"ok", "id", "rev"}`` with that same revision).
        """
        # Checked before sending: a value JSON cannot carry is the caller's error, not a bad
        # server answer (NaN/inf get CouchDB's 400 "invalid UTF-8 JSON", others TypeError).
        check_document(doc)
        doc_id = doc.get("_id")
        if not isinstance(doc_id, str) or not doc_id:
            msg = "put() needs a document with a non-empty string '_id'; use bulk_docs() instead"
            raise ValueError(msg)
        rev = doc.get("_rev")
        params = {} if new_edits else {"new_edits": "false"}
        result = self._http.send(
            "PUT", doc_path(doc_id), body=doc, params=params, doc_id=doc_id, rev=rev
        )
        if not isinstance(result, dict) and not new_edits:
            return {"ok": True, "id": doc_id, "rev": _own_rev(doc)}
        answer: JSONDict = result
        return answer

    def delete(self, doc_id: str, rev: str) -> JSONDict:
        """``DELETE /db/{doc_id}?rev=``: returns ``{"ok", "id", "rev"}``."""
        check_doc_id(doc_id)
        result: JSONDict = self._http.send(
            "DELETE", doc_path(doc_id), params={"rev": rev}, doc_id=doc_id, rev=rev
        )
        return result

    def bulk_docs(self, docs: Sequence[JSONDict], *, new_edits: bool = True) -> list[JSONDict]:
        """``POST /db/_bulk_docs``: one result per document, in request order.

        Each result is ``{"ok": True, "id", "rev"}`` or ``{"id", "error", "reason"}``. With
        ``new_edits=False`` CouchDB reports failures only: ``[]`` means all were stored.
        """
        docs = check_docs(docs)
        body: JSONDict = {"docs": docs}
        if not new_edits:
            body["new_edits"] = False
        results: list[JSONDict] = self._http.send("POST", ["_bulk_docs"], body=body, checked=True)
        if not new_edits:
            return results
        return in_request_order(docs, results)

    def all_docs(
        self, *, keys: Sequence[str] | None = None, partition: str | None = None, **options: Any
    ) -> JSONDict:
        """``GET /db/_all_docs`` (``POST`` with ``keys``): ``{"total_rows", "offset", "rows"}``.

        ``partition="p"`` lists one partition of a partitioned database
        (``/db/_partition/p/_all_docs``).
        """
        return self._rows([*_partition_path(partition), "_all_docs"], keys, options)

    def changes(self, **options: Any) -> JSONDict:
        """``GET /db/_changes`` (normal feed): ``{"results", "last_seq", "pending"}``.

        ``doc_ids=[...]`` and ``selector={...}`` are sent in a POST body with the matching
        ``filter`` (``_doc_ids`` / ``_selector``) set for you. Only ``feed="normal"`` and
        ``feed="longpoll"`` are supported: both answer one JSON object.
        """
        feed = options.get("feed", "normal")
        if feed not in ("normal", "longpoll"):
            msg = f"changes() supports feed='normal' or 'longpoll', not {feed!r}"
            raise ValueError(msg)
        body: JSONDict = {}
        for name, filter_name in (("doc_ids", "_doc_ids"), ("selector", "_selector")):
            if name in options:
                options = dict(options)
                body[name] = options.pop(name)
                options.setdefault("filter", filter_name)
        params = encode_params(options)
        if body:
            result: JSONDict = self._http.send(
                "POST", ["_changes"], body=body, params=params, query=True
            )
        else:
            result = self._http.send("GET", ["_changes"], params=params, query=True)
        return result

    # -- Mango ----------------------------------------------------------------------------

    def find(self, query: JSONDict, *, partition: str | None = None) -> JSONDict:
        """``POST /db/_find``: ``{"docs", "bookmark"}`` (and ``"warning"``).

        ``partition="p"`` queries one partition (``/db/_partition/p/_find``).
        """
        path = [*_partition_path(partition), "_find"]
        result: JSONDict = self._http.send("POST", path, body=query, query=True)
        return result

    def explain(self, query: JSONDict, *, partition: str | None = None) -> JSONDict:
        """``POST /db/_explain``: which index a Mango query would use, and how."""
        path = [*_partition_path(partition), "_explain"]
        result: JSONDict = self._http.send("POST", path, body=query, query=True)
        return result

    def create_index(self, index: JSONDict) -> JSONDict:
        """``POST /db/_index``: ``{"result": "created"|"exists", "id", "name"}``."""
        result: JSONDict = self._http.send("POST", ["_index"], body=index, query=True)
        return result

    def list_indexes(self) -> JSONDict:
        """``GET /db/_index``: ``{"total_rows", "indexes"}``."""
        result: JSONDict = self._http.send("GET", ["_index"], query=True)
        return result

    def delete_index(self, ddoc: str, name: str) -> JSONDict:
        """``DELETE /db/_index/{ddoc}/json/{name}``; ``ddoc`` with or without ``_design/``.

        The design doc id travels as one escaped segment (``_design%2Fx``): CouchDB accepts it
        like ``_design/x``, and it is the only form pouchdb-server 4.2.0 can delete.
        """
        ddoc_id = f"_design/{_ddoc_name(ddoc)}"
        result: JSONDict = self._http.send("DELETE", ["_index", ddoc_id, "json", name], query=True)
        return result

    # -- views ----------------------------------------------------------------------------

    def view(
        self,
        ddoc: str,
        view: str,
        *,
        keys: Sequence[Any] | None = None,
        partition: str | None = None,
        **options: Any,
    ) -> JSONDict:
        """``GET /db/_design/{ddoc}/_view/{view}`` (``POST`` with ``keys``).

        ``partition="p"`` queries one partition (``/db/_partition/p/_design/...``).
        """
        path = [*_partition_path(partition), "_design", _ddoc_name(ddoc), "_view", view]
        return self._rows(path, keys, options)

    def _rows(self, path: list[str], keys: Sequence[Any] | None, options: Any) -> JSONDict:
        params = encode_params(options)
        result: JSONDict
        if keys is None:
            result = self._http.send("GET", path, params=params, query=True)
        else:
            body = {"keys": list(keys)}
            result = self._http.send("POST", path, body=body, params=params, query=True)
        return result

    # -- attachments ----------------------------------------------------------------------

    def get_attachment(
        self, doc_id: str, name: str, *, rev: str | None = None
    ) -> tuple[bytes, str]:
        """``GET /db/{doc_id}/{name}``: the bytes and the content type."""
        check_doc_id(doc_id)
        params = encode_params({"rev": rev})
        headers, data = self._http.send(
            "GET", [*doc_path(doc_id), name], params=params, raw=True, doc_id=doc_id
        )
        content_type = headers.get("content-type") or "application/octet-stream"
        return bytes(data), str(content_type)

    def put_attachment(
        self, doc_id: str, name: str, data: bytes, content_type: str, *, rev: str | None = None
    ) -> JSONDict:
        """``PUT /db/{doc_id}/{name}?rev=``: returns ``{"ok", "id", "rev"}``."""
        check_attachment(doc_id, name, data, content_type)
        result: JSONDict = self._http.send(
            "PUT",
            [*doc_path(doc_id), name],
            body=bytes(data),
            params=encode_params({"rev": rev}),
            headers={"Content-Type": content_type},
            doc_id=doc_id,
            rev=rev,
        )
        return result

    def open_attachment(
        self, doc_id: str, name: str, *, rev: str | None = None, accept_gzip: bool = False
    ) -> AttachmentStream:
        """``GET /db/{doc_id}/{name}?rev=``; the body left unread.

        ``accept_gzip`` sends ``Accept-Encoding: gzip``: CouchDB then sends the gzip bytes it
        stores for compressible types (pouchdb-server compresses on the fly).
        """
        check_doc_id(doc_id)
        wanted = {"Accept": "*/*", "Accept-Encoding": "gzip" if accept_gzip else "identity"}
        headers, data = self._http.send(
            "GET",
            [*doc_path(doc_id), name],
            params=encode_params({"rev": rev}),
            headers=wanted,
            stream=True,
            doc_id=doc_id,
        )
        content_type = str(headers.get("content-type") or "application/octet-stream")
        encoding = headers.get("content-encoding")
        return AttachmentStream(data, content_type, str(encoding) if encoding else None)

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
        """``PUT /db/{doc_id}/{name}?rev=`` streaming ``source``: ``{"ok", "id", "rev"}``."""
        check_attachment(doc_id, name, b"", content_type)
        result: JSONDict = self._http.send(
            "PUT",
            [*doc_path(doc_id), name],
            params=encode_params({"rev": rev}),
            headers={"Content-Type": content_type},
            upload=(source, length),
            doc_id=doc_id,
            rev=rev,
        )
        return result

    def partition_info(self, partition: str) -> JSONDict:
        """``GET /db/_partition/{partition}``: doc_count and doc_del_count of one partition."""
        result: JSONDict = self._http.send("GET", _partition_path(partition), query=True)
        return result

    def revs_diff(self, revs: JSONDict) -> JSONDict:
        """``POST /db/_revs_diff``: the revs the database lacks (``missing``)."""
        check_json(revs, "revs_diff()")
        result: JSONDict = self._http.send("POST", ["_revs_diff"], body=dict(revs))
        return result

    def purge(self, revs: JSONDict) -> JSONDict:
        """``POST /db/_purge``: ``{"purge_seq", "purged": {id: [rev, ...]}}``."""
        check_json(revs, "purge()")
        result: JSONDict = self._http.send("POST", ["_purge"], body=dict(revs))
        return result

    def delete_attachment(self, doc_id: str, name: str, *, rev: str) -> JSONDict:
        """``DELETE /db/{doc_id}/{name}?rev=``: returns ``{"ok", "id", "rev"}``."""
        check_doc_id(doc_id)
        result: JSONDict = self._http.send(
            "DELETE", [*doc_path(doc_id), name], params={"rev": rev}, doc_id=doc_id, rev=rev
        )
        return result


def _partition_path(partition: str | None) -> list[str]:
    """The path prefix of a partition-scoped request (none for a global one)."""
    if partition is None:
        return []
    if not isinstance(partition, str) or not partition:
        msg = f"partition must be a non-empty string, not {partition!r}"
        raise ValueError(msg)
    return ["_partition", partition]


def _own_rev(doc: JSONDict) -> str:
    """The revision a ``new_edits=False`` write stores: ``_rev``, else from ``_revisions``."""
    rev = doc.get("_rev")
    if isinstance(rev, str):
        return rev
    revisions = doc.get("_revisions") or {}
    return f"{revisions.get('start')}-{(revisions.get('ids') or [''])[0]}"


def in_request_order(docs: Sequence[JSONDict], results: list[JSONDict]) -> list[JSONDict]:
    """Put per-document results back into request order when the server reordered them.

    CouchDB answers in request order; pouchdb-server 4.2.0 puts ``_design/`` docs first. Results
    are matched by id (first come, first served for repeated ids) only when every document has
    an id and the ids match up exactly; otherwise the answer is returned as it came.
    """
    ids = [doc.get("_id") for doc in docs]
    if len(results) != len(ids) or all(
        i is None or r.get("id") == i for i, r in zip(ids, results, strict=True)
    ):
        return results
    if any(not isinstance(i, str) for i in ids):
        return results
    by_id: dict[str, list[JSONDict]] = {}
    for result in results:
        by_id.setdefault(str(result.get("id")), []).append(result)
    ordered: list[JSONDict] = []
    for doc_id in ids:
        queue = by_id.get(str(doc_id))
        if not queue:
            return results
        ordered.append(queue.pop(0))
    return ordered


def _ddoc_name(ddoc: str) -> str:
    return ddoc.removeprefix("_design/")


class AttachmentStream:
    """An attachment body being read from a response (see ``backends.base.AttachmentBody``)."""

    def __init__(self, data: Any, content_type: str, encoding: str | None) -> None:
        self._data = data
        self.content_type = content_type
        self.encoding = encoding

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes of the body as sent (all that is left for -1)."""
        found = self._data.read() if size is None or size < 0 else self._data.read(size)
        return bytes(found)

    def close(self) -> None:
        """Read what is left, so the connection can serve the next request."""
        close = getattr(self._data, "close", None)
        if close is not None:
            close()
