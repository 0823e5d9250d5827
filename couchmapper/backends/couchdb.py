"""The CouchDB backend: the :class:`~couchmapper.backends.base.Backend` protocol via python-couchdb.

This is the only module of couchmapper that imports ``couchdb``. It speaks plain JSON dicts both
ways, never mutates what it is given, and turns every ``couchdb.http`` error and every socket
error into :mod:`couchmapper.exceptions`::

    404                     NotFoundError (DocumentNotFound for a document: "missing"/"deleted")
    409                     ConflictError(doc_id, rev)
    412                     PreconditionFailed
    400 from a query        QueryError (_find, _index, views, _all_docs, _changes)
    any other status        BackendError(status, error, reason)
    no answer               BackendUnavailable (refused, reset, cut, timed out)

Each backend talks through its own python-couchdb ``Session``, configured differently from
python-couchdb's defaults, for reasons that matter to a unit of work:

* **No response cache.** python-couchdb caches GET answers by ETag and revalidates them; the cache
  is unbounded in time, not thread-safe, and pointless for documents a session keeps anyway.
* **No automatic retry.** python-couchdb silently resends a request once when the connection is
  reset, also a ``POST _bulk_docs`` that the server may already have applied. A flush must see
  that failure (``BackendUnavailable``) and decide itself; retrying a flush is safe.
* **Stale keep-alive connections are dropped before reuse** (the server closed them while they
  sat in the pool), so turning off the retry does not turn idle periods into errors.

Thread safety: a backend may be shared between threads. Every request borrows its own
connection from a locked pool and returns it afterwards; no other state is shared between
requests. One backend per thread works just as well; the pool then holds one connection.

Server-level operations (create, delete, list databases) live on :class:`CouchDBServer`, with
the module functions :func:`create_database`, :func:`delete_database` and
:func:`list_databases` as one-call shortcuts.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import select
import threading
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import couchdb
import couchdb.http as couchdb_http

from couchmapper._couch.checks import (
    check_attachment,
    check_doc_id,
    check_docs,
    check_document,
    check_json,
)
from couchmapper._url import MASK, Credentials, redact_text, split_credentials
from couchmapper.backends.base import JSONDict
from couchmapper.exceptions import (
    BackendError,
    BackendUnavailable,
    ConflictError,
    DocumentNotFound,
    NotFoundError,
    PreconditionFailed,
    QueryError,
)

__all__ = [
    "CouchDBBackend",
    "CouchDBServer",
    "create_database",
    "delete_database",
    "list_databases",
]

_log = logging.getLogger(__name__)

# Query parameters CouchDB reads as JSON; everything else is sent as plain text.
_JSON_PARAMS = frozenset(
    {"key", "keys", "startkey", "start_key", "endkey", "end_key", "doc_ids", "open_revs"}
)
_DEFAULT_ERRORS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    412: "precondition_failed",
    415: "bad_content_type",
}
_STATUS_OF = {
    couchdb_http.ResourceNotFound: 404,
    couchdb_http.ResourceConflict: 409,
    couchdb_http.PreconditionFailed: 412,
    couchdb_http.Unauthorized: 401,
    couchdb_http.Forbidden: 403,
}


# --------------------------------------------------------------------------- HTTP session


class _NoCache:
    """Stands in for python-couchdb's ETag response cache: never stores anything."""

    def get(self, url: str) -> None:
        return None

    def put(self, url: str, response: object) -> None:
        return None

    def remove(self, url: str) -> None:
        return None


def _peer_closed(conn: http.client.HTTPConnection) -> bool:
    """Whether a pooled keep-alive connection was closed by the server while it sat idle."""
    sock = conn.sock
    if sock is None:  # http.client reconnects on its own
        return False
    try:
        # An idle HTTP connection has nothing to read; readable means EOF (or garbage).
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


class _ConnectionPool(couchdb_http.ConnectionPool):  # type: ignore[misc]
    """python-couchdb's pool, plus stale-connection checks and a handle on borrowed connections."""

    def __init__(self, timeout: float | None, disable_ssl_verification: bool = False) -> None:
        super().__init__(timeout, disable_ssl_verification=disable_ssl_verification)
        self._borrowed: dict[int, http.client.HTTPConnection] = {}

    def get(self, url: str) -> http.client.HTTPConnection:
        parts = urlsplit(url)
        conn: http.client.HTTPConnection | None = None
        with self.lock:
            idle = self.conns.setdefault((parts.scheme or "http", parts.netloc), [])
            while idle and conn is None:
                candidate = idle.pop()
                if _peer_closed(candidate):
                    candidate.close()
                else:
                    conn = candidate
        if conn is None:
            conn = super().get(url)
        self._borrowed[threading.get_ident()] = conn
        return conn

    def release(self, url: str, conn: http.client.HTTPConnection) -> None:
        if self._borrowed.get(threading.get_ident()) is conn:
            del self._borrowed[threading.get_ident()]
        super().release(url, conn)

    def discard_borrowed(self) -> None:
        """Close the connection this thread's failed request left behind (never reused)."""
        conn = self._borrowed.pop(threading.get_ident(), None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Close every idle connection."""
        with self.lock:
            idle = [conn for conns in self.conns.values() for conn in conns]
            self.conns.clear()
        for conn in idle:
            conn.close()


class _Session(couchdb_http.Session):  # type: ignore[misc]
    """A python-couchdb Session without response cache and without automatic retries."""

    def __init__(self, timeout: float | None, disable_ssl_verification: bool = False) -> None:
        # An empty retryable set re-raises the first socket error; an empty retry_delays list
        # would not do: python-couchdb 1.2 then fails with UnboundLocalError in its retry loop.
        super().__init__(timeout=timeout, retryable_errors=())
        self.cache = _NoCache()
        self._disable_ssl_verification = disable_ssl_verification
        self.connection_pool = _ConnectionPool(timeout, disable_ssl_verification)

    def disable_ssl_verification(self) -> None:
        self._disable_ssl_verification = True
        self.connection_pool = _ConnectionPool(self._timeout, disable_ssl_verification=True)


def _make_resource(
    url: str,
    credentials: Credentials | None,
    *,
    timeout: float | None,
    insecure: bool = False,
    headers: Mapping[str, str] | None = None,
) -> Any:
    resource = couchdb_http.Resource(url, _Session(timeout, insecure), headers=dict(headers or {}))
    # Set directly: python-couchdb's own URL parsing breaks on ":" or "@" in a password.
    resource.credentials = credentials
    return resource


# --------------------------------------------------------------------------- helpers


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _encode_params(options: Mapping[str, Any]) -> dict[str, str]:
    """Encode query options the way CouchDB reads them.

    Keys and key ranges are JSON (``startkey="a"`` is sent as ``"a"`` with its quotes, and None
    as ``null``); booleans are ``true``/``false``; other strings go as they are; other values
    are JSON. An option set to None that is not a JSON key is left out.
    """
    encoded: dict[str, str] = {}
    for name, value in options.items():
        if name in _JSON_PARAMS:
            encoded[name] = _dumps(value)
        elif value is None:
            continue
        elif isinstance(value, bool):
            encoded[name] = "true" if value else "false"
        elif isinstance(value, str):
            encoded[name] = value
        else:
            encoded[name] = _dumps(value)
    return encoded


def _doc_path(doc_id: str) -> list[str]:
    """Path segments of a document: ``_design/x`` and ``_local/x`` keep their slash unescaped."""
    if doc_id.startswith(("_design/", "_local/")):
        return doc_id.split("/", 1)
    return [doc_id]


def _ddoc_name(ddoc: str) -> str:
    return ddoc.removeprefix("_design/")


def _display_url(url: str, credentials: Credentials | None) -> str:
    """``url`` with the user name of ``credentials`` and a masked password."""
    if credentials is None:
        return url
    parts = urlsplit(url)
    netloc = f"{credentials[0]}:{MASK}@{parts.netloc}"
    return urlunsplit(parts._replace(netloc=netloc))


def _split_db_url(url: str) -> tuple[str, str]:
    """Split a database URL (without credentials) into the server URL and the db name."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        msg = f"expected an http:// or https:// URL, got scheme {parts.scheme!r}"
        raise ValueError(msg)
    server_path, _, last = parts.path.rstrip("/").rpartition("/")
    if not last:
        msg = f"the URL names no database: {url!r} (expected http://host:port/dbname)"
        raise ValueError(msg)
    server = urlunsplit((parts.scheme, parts.netloc, server_path, "", ""))
    return server, unquote(last)


def _error_and_reason(status: int, detail: Any) -> tuple[str, str]:
    """CouchDB's error name and reason from what python-couchdb put into its exception."""
    error: Any = None
    reason: Any = None
    if isinstance(detail, tuple | list) and len(detail) == 2:
        error, reason = detail
    elif isinstance(detail, bytes | str) and detail:
        text = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else detail
        try:
            body = json.loads(text)
        except ValueError:
            reason = text.strip()[:500]
        else:
            if isinstance(body, dict):
                error, reason = body.get("error"), body.get("reason", body.get("message"))
            else:
                reason = text.strip()[:500]
    default = _DEFAULT_ERRORS.get(status, "unknown_error" if status >= 500 else "http_error")
    return (str(error) if error else default), ("" if reason is None else str(reason))


def _describe_os_error(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None and not exc.strerror:
        return f"{type(exc).__name__}: {os.strerror(exc.errno)}"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _in_request_order(docs: Sequence[JSONDict], results: list[JSONDict]) -> list[JSONDict]:
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


# --------------------------------------------------------------------------- requests


class _Requester:
    """Sends requests through one python-couchdb Resource and translates every failure."""

    def __init__(self, resource: Any, what: str) -> None:
        self.resource = resource
        self.what = what  # "database 'x'" or "server": for messages that name the target
        credentials: Credentials | None = resource.credentials
        self._secrets: tuple[str, ...] = tuple(credentials[1:]) if credentials else ()

    @property
    def url(self) -> str:
        """The URL with the user name and a masked password."""
        return _display_url(self.resource.url, self.resource.credentials)

    def close(self) -> None:
        self.resource.session.connection_pool.close()

    def send(
        self,
        method: str,
        path: Sequence[str],
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        raw: bool = False,
        doc_id: str | None = None,
        rev: str | None = None,
        query: bool = False,
    ) -> Any:
        """Send one request; JSON answers are decoded, ``raw`` gives ``(headers, bytes)``."""
        _log.debug("%s %s %s", method, self.what, "/".join(path))
        if body is not None and not isinstance(body, bytes):
            check_json(body, "the request body")
        try:
            return self._send(
                method, list(path), body=body, params=dict(params or {}), headers=headers, raw=raw
            )
        except couchdb_http.HTTPError as exc:
            error = self._translate(exc, doc_id=doc_id, rev=rev, query=query)
        except couchdb_http.RedirectLimit:
            error = BackendError(None, "redirect_limit", "too many redirects")
        except (OSError, http.client.HTTPException) as exc:
            self.resource.session.connection_pool.discard_borrowed()
            error = BackendUnavailable(self._clean(_describe_os_error(exc)))
        except ValueError as exc:  # an answer that is not the JSON it claims to be
            self.resource.session.connection_pool.discard_borrowed()
            error = BackendError(None, "bad_response", self._clean(f"invalid JSON answer: {exc}"))
        # Raised outside the except blocks (and so without context): the python-couchdb
        # exception carries URLs and response objects that must not reach users or logs.
        raise error

    def _send(
        self,
        method: str,
        path: list[str],
        *,
        body: Any,
        params: dict[str, str],
        headers: Mapping[str, str] | None,
        raw: bool,
    ) -> Any:
        resource = self.resource
        extra = dict(headers) if headers else None
        if raw:
            _, answer_headers, data = resource.get(path, headers=extra, **params)
            return answer_headers, (data.read() if data is not None else b"")
        if method == "GET":
            _, answer_headers, data = resource.get_json(path, headers=extra, **params)
        elif method == "HEAD":
            _, answer_headers, data = resource.head(path, headers=extra, **params)
            return None
        elif method == "POST":
            _, answer_headers, data = resource.post_json(path, body=body, headers=extra, **params)
        elif method == "PUT":
            _, answer_headers, data = resource.put_json(path, body=body, headers=extra, **params)
        elif method == "DELETE":
            _, answer_headers, data = resource.delete_json(path, headers=extra, **params)
        else:
            msg = f"unsupported method {method}"
            raise AssertionError(msg)
        if isinstance(data, dict | list):
            return data
        content_type = answer_headers.get("content-type", "")
        msg = f"expected a JSON answer, got {content_type or 'no content type'}"
        raise BackendError(None, "bad_response", msg)

    def _clean(self, text: str) -> str:
        return redact_text(text, self._secrets)

    def _translate(
        self, exc: couchdb_http.HTTPError, *, doc_id: str | None, rev: str | None, query: bool
    ) -> BackendError:
        if isinstance(exc, couchdb_http.ServerError):
            status, detail = exc.args[0]
        else:
            status = _STATUS_OF.get(type(exc), 500)
            detail = exc.args[0] if exc.args else None
        error, reason = _error_and_reason(status, detail)
        reason = self._clean(reason)
        if status == 404:
            if doc_id is not None and reason in ("missing", "deleted"):
                return DocumentNotFound(doc_id, reason)
            return NotFoundError(error, reason or "missing")
        if status == 409:
            return ConflictError(doc_id, rev, reason or "Document update conflict.")
        if status == 412:
            return PreconditionFailed(error, reason)
        if status == 400 and query:
            return QueryError(error, reason)
        return BackendError(status, error, reason)


# --------------------------------------------------------------------------- backend


class CouchDBBackend:
    """One CouchDB database, spoken to through python-couchdb.

    Build it from a ``couchdb.Database`` (its URL, credentials, headers, timeout and TLS
    setting are reused; the object itself is left untouched) or with :meth:`from_url`.
    """

    def __init__(self, database: couchdb.Database) -> None:
        source = database.resource
        session = source.session
        if isinstance(session, _Session):
            resource = source
        else:
            resource = _make_resource(
                source.url,
                source.credentials,
                timeout=getattr(session, "_timeout", None),
                insecure=getattr(session, "_disable_ssl_verification", False),
                headers=source.headers,
            )
        name = database._name
        if name is None:
            _, name = _split_db_url(source.url)
        self._name: str = name
        self._database = database
        self._http = _Requester(resource, f"database {name!r}")

    @classmethod
    def from_url(
        cls, url: str, *, create: bool = False, timeout: float | None = None
    ) -> CouchDBBackend:
        """Connect to the database at ``url``, e.g. ``http://user:pw@127.0.0.1:5984/people``.

        Args:
            url: the database URL; credentials may be percent-encoded in it.
            create: create the database when it does not exist yet.
            timeout: socket timeout in seconds for every request (None: wait forever).

        Raises:
            NotFoundError: the database does not exist and ``create`` is false.
            BackendUnavailable: the server did not answer.
            ValueError: the URL is not an http(s) URL naming a database.
        """
        clean, credentials = split_credentials(url)
        server_url, name = _split_db_url(clean)
        server = CouchDBServer._from_parts(server_url, credentials, timeout)
        backend = server.database(name)
        try:
            backend._http.send("HEAD", [])
        except NotFoundError:
            if not create:
                raise NotFoundError("not_found", f"database {name!r} does not exist") from None
            with contextlib.suppress(PreconditionFailed):  # created meanwhile: fine
                server._http.send("PUT", [name])
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
    ) -> JSONDict:
        """``GET /db/{doc_id}``; raises DocumentNotFound (reason "missing" or "deleted")."""
        check_doc_id(doc_id)
        params = _encode_params(
            {
                "rev": rev,
                "revs": revs or None,
                "conflicts": conflicts or None,
                "attachments": attachments or None,
            }
        )
        result: JSONDict = self._http.send("GET", _doc_path(doc_id), params=params, doc_id=doc_id)
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
            "PUT", _doc_path(doc_id), body=doc, params=params, doc_id=doc_id, rev=rev
        )
        if not isinstance(result, dict) and not new_edits:
            return {"ok": True, "id": doc_id, "rev": _own_rev(doc)}
        answer: JSONDict = result
        return answer

    def delete(self, doc_id: str, rev: str) -> JSONDict:
        """``DELETE /db/{doc_id}?rev=``: returns ``{"ok", "id", "rev"}``."""
        check_doc_id(doc_id)
        result: JSONDict = self._http.send(
            "DELETE", _doc_path(doc_id), params={"rev": rev}, doc_id=doc_id, rev=rev
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
        results: list[JSONDict] = self._http.send("POST", ["_bulk_docs"], body=body)
        if not new_edits:
            return results
        return _in_request_order(docs, results)

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
        params = _encode_params(options)
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
        params = _encode_params(options)
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
        params = _encode_params({"rev": rev})
        headers, data = self._http.send(
            "GET", [*_doc_path(doc_id), name], params=params, raw=True, doc_id=doc_id
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
            [*_doc_path(doc_id), name],
            body=bytes(data),
            params=_encode_params({"rev": rev}),
            headers={"Content-Type": content_type},
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
            "DELETE", [*_doc_path(doc_id), name], params={"rev": rev}, doc_id=doc_id, rev=rev
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


# --------------------------------------------------------------------------- server


class CouchDBServer:
    """Server-level operations: create, delete and list databases.

    ``CouchDBServer("http://admin:pw@127.0.0.1:5984")`` keeps one HTTP session; the backends
    it hands out (:meth:`database`, :meth:`create_database`) have their own.
    """

    def __init__(self, url: str, *, timeout: float | None = None) -> None:
        clean, credentials = split_credentials(url)
        parts = urlsplit(clean)
        if parts.scheme not in ("http", "https"):
            msg = f"expected an http:// or https:// URL, got scheme {parts.scheme!r}"
            raise ValueError(msg)
        base = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        self._init(base, credentials, timeout)

    @classmethod
    def _from_parts(
        cls, url: str, credentials: Credentials | None, timeout: float | None
    ) -> CouchDBServer:
        server = cls.__new__(cls)
        server._init(url, credentials, timeout)
        return server

    def _init(self, url: str, credentials: Credentials | None, timeout: float | None) -> None:
        self._base = url
        self._credentials = credentials
        self._timeout = timeout
        self._http = _Requester(_make_resource(url, credentials, timeout=timeout), "server")

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
        resource = _make_resource(
            f"{self._base}/{couchdb_http.quote(name)}", self._credentials, timeout=self._timeout
        )
        return CouchDBBackend(couchdb.Database(resource, name))

    def create_database(self, name: str) -> CouchDBBackend:
        """``PUT /{name}``; raises PreconditionFailed (``file_exists``) if it exists."""
        self._http.send("PUT", [name])
        return self.database(name)

    def delete_database(self, name: str, *, missing_ok: bool = False) -> None:
        """``DELETE /{name}``; raises NotFoundError naming the database unless ``missing_ok``."""
        try:
            self._http.send("DELETE", [name])
        except NotFoundError:
            if not missing_ok:
                raise NotFoundError("not_found", f"database {name!r} does not exist") from None


def create_database(server_url: str, name: str, *, timeout: float | None = None) -> CouchDBBackend:
    """Create the database ``name`` on the server at ``server_url`` and return its backend."""
    server = CouchDBServer(server_url, timeout=timeout)
    try:
        return server.create_database(name)
    finally:
        server.close()


def delete_database(
    server_url: str, name: str, *, missing_ok: bool = False, timeout: float | None = None
) -> None:
    """Delete the database ``name`` on the server at ``server_url``."""
    server = CouchDBServer(server_url, timeout=timeout)
    try:
        server.delete_database(name, missing_ok=missing_ok)
    finally:
        server.close()


def list_databases(server_url: str, *, timeout: float | None = None) -> list[str]:
    """The names of every database on the server at ``server_url``."""
    server = CouchDBServer(server_url, timeout=timeout)
    try:
        return server.list_databases()
    finally:
        server.close()
