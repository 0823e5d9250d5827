"""The HTTP half of the CouchDB backend: python-couchdb sessions, requests, error translation.

``Requester.send`` sends one request through a python-couchdb ``Resource`` whose ``Session``
(:class:`CouchSession`) has no response cache, no automatic retry, and a connection pool
that drops stale keep-alive connections; every ``couchdb.http`` error and socket error
becomes a :mod:`couchmapper.exceptions` error with credentials masked.
"""

from __future__ import annotations

import http.client
import io
import json
import logging
import os
import select
import threading
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any
from urllib.parse import unquote, urlsplit, urlunsplit

import couchdb.http as couchdb_http

from couchmapper._couch.checks import check_json
from couchmapper._log import request_done, timed_request
from couchmapper._url import MASK, Credentials, redact_text, warn_if_insecure
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
    "DEFAULT_TIMEOUT",
    "CouchSession",
    "Requester",
    "Timeout",
    "database_resource",
    "doc_path",
    "encode_params",
    "make_resource",
    "split_db_url",
]

_log = logging.getLogger(__name__)

_UPLOAD_PIECE = 256 * 1024  # bytes read from an uploaded file at a time

Timeout = float | tuple[float | None, float | None] | None
"""Seconds: one number for connecting and for each answer, ``(connect, read)``, or None."""

DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 120.0)
"""Connect within 10 s; each answer (each read of it) within 120 s. Longer than CouchDB's own
60 s defaults for a longpoll ``_changes`` feed and a cluster request, so only a server that
stopped answering hits it. ``timeout=None`` waits forever."""


def _split_timeout(timeout: Timeout) -> tuple[float | None, float | None]:
    if isinstance(timeout, tuple):
        return timeout
    return timeout, timeout


class _ConnectTimeout(TimeoutError):
    """No connection within the connect timeout (told apart from a late answer)."""


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

    def __init__(self, timeout: Timeout, disable_ssl_verification: bool = False) -> None:
        self.timeouts = _split_timeout(timeout)
        connect, self._read_timeout = self.timeouts
        super().__init__(connect, disable_ssl_verification=disable_ssl_verification)
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
            # python-couchdb connects here, under the connect timeout; then reads get theirs.
            try:
                conn = super().get(url)
            except TimeoutError:
                raise _ConnectTimeout from None
            assert conn is not None and conn.sock is not None
            conn.sock.settimeout(self._read_timeout)
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


class CouchSession(couchdb_http.Session):  # type: ignore[misc]
    """A python-couchdb Session without response cache and without automatic retries."""

    def __init__(self, timeout: Timeout, disable_ssl_verification: bool = False) -> None:
        # An empty retryable set re-raises the first socket error; an empty retry_delays list
        # would not do: python-couchdb 1.2 then fails with UnboundLocalError in its retry loop.
        super().__init__(timeout=timeout, retryable_errors=())
        self.cache = _NoCache()
        self._disable_ssl_verification = disable_ssl_verification
        self.connection_pool = _ConnectionPool(timeout, disable_ssl_verification)

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        """python-couchdb's request, logged (couchmapper._log: DEBUG, WARNING when slow)."""
        return timed_request(super().request, _STATUS_OF, method, url, *args, **kwargs)

    def disable_ssl_verification(self) -> None:
        self._disable_ssl_verification = True
        self.connection_pool = _ConnectionPool(self._timeout, disable_ssl_verification=True)


def make_resource(
    url: str,
    credentials: Credentials | None,
    *,
    timeout: Timeout,
    insecure: bool = False,
    headers: Mapping[str, str] | None = None,
) -> Any:
    warn_if_insecure(url, credentials)  # before any request can carry them
    resource = couchdb_http.Resource(
        url, CouchSession(timeout, insecure), headers=dict(headers or {})
    )
    # Set directly: python-couchdb's own URL parsing breaks on ":" or "@" in a password.
    resource.credentials = credentials
    return resource


def database_resource(
    server_url: str, name: str, credentials: Credentials | None, timeout: Timeout
) -> Any:
    """A Resource (with its own session) for the database ``name`` on ``server_url``."""
    return make_resource(f"{server_url}/{couchdb_http.quote(name)}", credentials, timeout=timeout)


# --------------------------------------------------------------------------- helpers


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_params(options: Mapping[str, Any]) -> dict[str, str]:
    """Encode query options the way CouchDB reads them.

    Keys and key ranges are JSON (``startkey="a"`` is sent as ``"a"`` with its quotes, and None
    as ``null``); booleans are ``true``/``false``; other strings go as they are; other values
    are JSON. An option set to None that is not a JSON key is left out.
    """
    encoded: dict[str, str] = {}
    for name, value in options.items():
        if name in _JSON_PARAMS:
            encoded[name] = dumps(value)
        elif value is None:
            continue
        elif isinstance(value, bool):
            encoded[name] = "true" if value else "false"
        elif isinstance(value, str):
            encoded[name] = value
        else:
            encoded[name] = dumps(value)
    return encoded


def doc_path(doc_id: str) -> list[str]:
    """Path segments of a document: ``_design/x`` and ``_local/x`` keep their slash unescaped."""
    if doc_id.startswith(("_design/", "_local/")):
        return doc_id.split("/", 1)
    return [doc_id]


def _display_url(url: str, credentials: Credentials | None) -> str:
    """``url`` with the user name of ``credentials`` and a masked password."""
    if credentials is None:
        return url
    parts = urlsplit(url)
    netloc = f"{credentials[0]}:{MASK}@{parts.netloc}"
    return urlunsplit(parts._replace(netloc=netloc))


def split_db_url(url: str) -> tuple[str, str]:
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


# --------------------------------------------------------------------------- requests


class Requester:
    """Sends requests through one python-couchdb Resource and translates every failure."""

    def __init__(self, resource: Any, what: str) -> None:
        self.resource = resource
        self.what = what  # "database 'x'" or "server": for messages that name the target
        credentials: Credentials | None = resource.credentials
        self._secrets: tuple[str, ...] = tuple(credentials[1:]) if credentials else ()
        parts = urlsplit(resource.url)
        default_port = 443 if parts.scheme == "https" else 80
        # host:port for messages (never the credentials, which the resource keeps apart).
        self.where = f"{parts.hostname}:{parts.port or default_port}"

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
        stream: bool = False,
        upload: tuple[IO[bytes], int | None] | None = None,
        checked: bool = False,
    ) -> Any:
        """Send one request; JSON answers are decoded, ``raw`` gives ``(headers, bytes)``.

        ``stream`` gives ``(headers, file)`` with the body left unread; ``upload`` sends a
        ``PUT`` whose body is read from a file in pieces (``(file, length or None)``);
        ``checked``: the caller has already checked every value of ``body`` (``bulk_docs``
        checks each document to name it), so it is not walked a second time.
        """
        if body is not None and not checked and not isinstance(body, bytes):
            check_json(body, "the request body")
        try:
            if upload is not None:
                return self._upload(list(path), upload, dict(params or {}), headers)
            if stream:
                extra = dict(headers) if headers else None
                _, answer_headers, data = self.resource.get(
                    list(path), headers=extra, **dict(params or {})
                )
                return answer_headers, (data if data is not None else io.BytesIO(b""))
            return self._send(
                method, list(path), body=body, params=dict(params or {}), headers=headers, raw=raw
            )
        except couchdb_http.HTTPError as exc:
            error = self._translate(exc, doc_id=doc_id, rev=rev, query=query)
        except couchdb_http.RedirectLimit:
            error = BackendError(None, "redirect_limit", "too many redirects")
        except (OSError, http.client.HTTPException) as exc:
            self.resource.session.connection_pool.discard_borrowed()
            error = BackendUnavailable(self._clean(f"{self.where}: {self._no_answer(exc)}"))
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

    def _upload(
        self,
        path: list[str],
        upload: tuple[IO[bytes], int | None],
        params: dict[str, str],
        headers: Mapping[str, str] | None,
    ) -> Any:
        """``PUT`` a body read from a file in pieces (python-couchdb would chunk it by 8 KiB).

        With a known length the body goes with ``Content-Length``, else chunked.
        """
        source, length = upload
        resource = self.resource
        session = resource.session
        url = couchdb_http.urljoin(resource.url, *path, **params)
        sent = {"Accept": "application/json", "User-Agent": session.user_agent, **(headers or {})}
        if length is not None:
            sent["Content-Length"] = str(length)
        else:
            sent["Transfer-Encoding"] = "chunked"
        authorization = couchdb_http.basic_auth(resource.credentials)
        if authorization:
            sent["Authorization"] = authorization.decode("ascii")
        parts = urlsplit(url)
        started, status = time.perf_counter(), "no answer"
        conn = session.connection_pool.get(url)
        try:
            conn.putrequest(
                "PUT", urlunsplit(("", "", parts.path, parts.query, "")), skip_accept_encoding=True
            )
            for name, value in sent.items():
                conn.putheader(name, value)
            conn.endheaders()
            while chunk := source.read(_UPLOAD_PIECE):
                conn.send(chunk if length is not None else b"%x\r\n%b\r\n" % (len(chunk), chunk))
            if length is None:
                conn.send(b"0\r\n\r\n")
            response = conn.getresponse()
            status = str(response.status)
            answer = response.read()
        finally:
            request_done("PUT", url, status, started)  # streamed: not through CouchSession
        session.connection_pool.release(url, conn)
        if response.status >= 400:
            raise couchdb_http.ServerError((response.status, answer))
        return json.loads(answer)

    def _clean(self, text: str) -> str:
        return redact_text(text, self._secrets)

    def _no_answer(self, exc: BaseException) -> str:
        connect, read = self.resource.session.connection_pool.timeouts
        if isinstance(exc, _ConnectTimeout):
            return f"could not connect within {connect} s (connect timeout; see timeout=)"
        if isinstance(exc, TimeoutError):
            return f"no answer within {read} s (read timeout; see timeout=)"
        return _describe_os_error(exc)

    def _unauthorized(self, reason: str) -> str:
        credentials: Credentials | None = self.resource.credentials
        if credentials is None:
            hint = "no credentials were sent: put them in the URL, http://user:password@host/db"
        else:
            hint = (
                f"as user {credentials[0]!r}: check the user name and password in the URL "
                "(percent-encode ':', '@' and '/' in them) and that the user exists there"
            )
        return f"{reason} ({self.where}, {hint})" if reason else f"{self.where}, {hint}"

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
        if status == 401:
            reason = self._unauthorized(reason)
        return BackendError(status, error, reason)
