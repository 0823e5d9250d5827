"""``couchmapper serve``: the memory engine over real HTTP, on a threaded stdlib server.

:class:`CouchServer` (an :class:`http.server.ThreadingHTTPServer`) answers every request
through :class:`~couchmapper.memory.http.facade.MemoryHTTP`, one thread per connection,
HTTP/1.1 with keep-alive. Continuous ``_changes`` feeds are streamed in chunks as they
happen, with CouchDB's heartbeat newlines. Authentication is the server's own (the facade has
no users): HTTP basic and ``AuthSession`` cookies for the admin given with ``--admin`` and
for the users stored in ``_users``; with an admin, everything but ``/``, ``/_up``,
``/_uuids`` and ``/_session`` needs one, as CouchDB 3's admin-only defaults do. Without an
admin the server is an "admin party" and only binds to loopback.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

from couchmapper.exceptions import BackendError
from couchmapper.memory.engine.catalog import Catalog
from couchmapper.memory.http.auth import Auth, Credentials
from couchmapper.memory.http.facade import MemoryHTTP
from couchmapper.memory.http.responses import Response, error_response

__all__ = ["CouchServer", "Credentials", "check_bind", "make_server"]

_LOG = logging.getLogger("couchmapper.serve")
_RECORDED_ORIGIN = "http://127.0.0.1:5984"


class _Request(NamedTuple):
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes | None


def check_bind(host: str, admin: Credentials | None) -> None:
    """Refuse to serve an admin party beyond loopback (``ValueError`` naming the host)."""
    if admin is not None:
        return
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        msg = f"cannot resolve host {host!r}"
        raise ValueError(msg) from None
    addresses = {info[4][0] for info in infos}
    if not addresses or not all(ipaddress.ip_address(a).is_loopback for a in addresses):
        msg = (
            f"refusing to serve on {host!r} without an admin: every client could do anything; "
            "pass --admin user:pass or bind to 127.0.0.1"
        )
        raise ValueError(msg)


class CouchServer(ThreadingHTTPServer):
    """A CouchDB-compatible HTTP server over one memory catalog."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        *,
        admin: Credentials | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        check_bind(address[0], admin)
        self.catalog = catalog if catalog is not None else Catalog()
        for name in ("_users", "_replicator"):
            # A CouchDB node set up as a single node has both (the run script does this).
            if name not in self.catalog.all_dbs():
                self.catalog.create(name)
        self.facade = MemoryHTTP(_CatalogHolder(self.catalog), streaming=True)
        self.auth = Auth(admin, self.catalog, secret=os.urandom(32))
        if ":" in address[0]:
            self.address_family = socket.AF_INET6  # --host ::1
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        """The base URL clients use (no credentials)."""
        host, port = self.server_address[:2]
        shown = f"[{host}]" if isinstance(host, str) and ":" in host else host
        return f"http://{shown!s}:{port}"


class _CatalogHolder:
    """The ``server`` the facade expects: anything with a ``catalog``."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog


def make_server(
    host: str = "127.0.0.1", port: int = 5984, admin: Credentials | None = None
) -> CouchServer:
    """A bound server (port 0 picks a free one); call ``serve_forever`` to run it."""
    return CouchServer((host, port), admin=admin)


class _Handler(BaseHTTPRequestHandler):
    """One connection: parse, authenticate, answer through the facade."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY the second one waits
    # for the client's delayed ACK (about 40 ms per answer).
    disable_nagle_algorithm = True
    server_version = "CouchDB/3.5.0"
    sys_version = "(couchmapper serve)"
    server: CouchServer

    def log_message(self, format: str, *args: Any) -> None:
        """Requests go to the ``couchmapper.serve`` logger, not stderr."""
        _LOG.debug(format, *args)

    def do_GET(self) -> None:
        """Answer GET."""
        self._answer()

    def do_HEAD(self) -> None:
        """Answer HEAD."""
        self._answer()

    def do_PUT(self) -> None:
        """Answer PUT."""
        self._answer()

    def do_POST(self) -> None:
        """Answer POST."""
        self._answer()

    def do_DELETE(self) -> None:
        """Answer DELETE."""
        self._answer()

    def do_COPY(self) -> None:
        """Answer COPY."""
        self._answer()

    def do_OPTIONS(self) -> None:
        """Answer OPTIONS."""
        self._answer()

    def _read_body(self) -> bytes | None:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else None

    def _answer(self) -> None:
        split = urlsplit(self.path)
        try:
            body = self._read_body()
        except ValueError:
            self._send(error_response(400, "bad_request", "Malformed request body"), "")
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        request = _Request(self.command, split.path or "/", split.query, headers, body)
        started = time.monotonic()
        try:
            response = self._dispatch(request)
        except BackendError as exc:
            response = error_response(exc.status or 500, exc.error, exc.reason)
        except Exception:
            _LOG.exception("internal error on %s %s", request.method, request.path)
            response = error_response(500, "unknown_error", "internal server error")
        self._send(response, request.method)
        _LOG.debug(
            "%s %s %d %.1f ms",
            request.method,
            request.path,
            response.status,
            (time.monotonic() - started) * 1000,
        )

    def _dispatch(self, request: _Request) -> Response:
        auth = self.server.auth
        user, cookie = auth.identify(request.headers)
        first = unquote(request.path.lstrip("/").split("/", 1)[0])
        if first == "_session":
            return auth.session(request.method, request.headers, request.body, user, cookie)
        if not auth.allowed(user, request.method, first):
            reason = (
                "You are not a server admin."
                if first.startswith("_") and first not in ("_users", "_replicator")
                else "You are not authorized to access this db."
            )
            return error_response(401, "unauthorized", reason)
        body = request.body
        if first == "_users" and body and request.method in ("PUT", "POST"):
            body = auth.hash_user_doc(body)
        return self.server.facade.handle(
            request.method, request.path, request.query, body, request.headers
        )

    def _send(self, response: Response, method: str) -> None:
        # The answer's own headers first: python-couchdb's login() reads the cookie from the
        # first header, where CouchDB puts Set-Cookie.
        self.log_request(response.status)
        self.send_response_only(response.status)
        host = self.headers.get("host") or f"127.0.0.1:{self.server.server_address[1]}"
        for name, value in response.headers.items():
            shown = value
            if name == "location" and value.startswith(_RECORDED_ORIGIN):
                shown = f"http://{host}{value[len(_RECORDED_ORIGIN) :]}"
            self.send_header(name, shown)
        self.send_header("cache-control", "must-revalidate")
        self.send_header("server", self.version_string())
        self.send_header("date", self.date_time_string())
        body = response.body
        if isinstance(body, Iterator):
            self._stream(body)
            return
        if isinstance(body, bytes):
            data = body
        elif body is None:
            data = b""
        else:
            data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        if method != "HEAD":
            self.send_header("content-length", str(len(data)))
        self.end_headers()
        if method != "HEAD" and data:
            self.wfile.write(data)

    def _stream(self, chunks: Iterator[bytes]) -> None:
        """Send a feed chunk by chunk until it ends or the client goes away."""
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        try:
            for chunk in chunks:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:
            # The status is sent: all that is left is to end the answer where it broke.
            _LOG.exception("feed failed on %s", self.path)
            self.close_connection = True
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
