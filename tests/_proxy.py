"""A recording, fault-injecting HTTP proxy for the integration tests.

``RecordingProxy`` listens on a free port of 127.0.0.1 and relays HTTP/1.1 to one upstream
server, keeping client connections alive the way python-couchdb uses them. It parses each
request and response framing (Content-Length, chunked, or until close), so every request on a
kept-alive connection is recorded separately::

    proxy.requests                       # every request so far, oldest first
    proxy.requests_to("_bulk_docs")      # those whose path contains "_bulk_docs"
    proxy.clear()
    proxy.cut_before(path_contains="_bulk_docs")   # next match: drop it, close the client
    proxy.cut_after(path_contains="_bulk_docs")    # next match: server applies it, the
                                                   # answer is dropped, the client closed
    proxy.drop_connections()             # close idle keep-alive connections, as servers do

Given ``credentials``, the proxy adds a basic ``Authorization`` header to every request that
carries none, so raw requests (and clients given the proxy's bare URL) reach a CouchDB that
requires a login; the header is forwarded, never recorded in :attr:`ProxyRequest.headers`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal

__all__ = ["Fault", "ProxyRequest", "RecordingProxy"]

FaultKind = Literal["cut_before", "cut_after"]
_MAX_LINE = 65536
_MAX_HEADERS = 200


class _ConnectionClosed(Exception):
    """The peer closed the connection (cleanly, between messages, or in the middle of one)."""


@dataclass
class ProxyRequest:
    """One request the proxy saw.

    Attributes:
        method: e.g. ``"POST"``.
        path: path and query, exactly as sent, e.g. ``"/db/_all_docs?limit=2"``.
        body: the body parsed as JSON, or None (no body, or not JSON).
        raw_body: the body bytes (chunked bodies de-chunked).
        headers: header names lower-cased.
        status: the upstream's status, None if no answer came back (or it was cut before).
        fault: the fault injected into this request, if any.
    """

    method: str
    path: str
    body: Any
    raw_body: bytes = field(repr=False)
    headers: dict[str, str] = field(repr=False)
    status: int | None = None
    fault: FaultKind | None = None


@dataclass(frozen=True)
class Fault:
    """A pending fault for the next request whose path contains ``path_contains``."""

    kind: FaultKind
    path_contains: str
    method: str | None = None

    def matches(self, method: str, path: str) -> bool:
        """Whether the fault applies to this request."""
        return self.path_contains in path and (self.method is None or self.method == method)


def _read_line(stream: BinaryIO) -> bytes:
    line = stream.readline(_MAX_LINE + 1)
    if not line:
        raise _ConnectionClosed
    if len(line) > _MAX_LINE:
        msg = "header line too long"
        raise ValueError(msg)
    return line


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) < size:
        raise _ConnectionClosed
    return data


def _read_head(stream: BinaryIO) -> tuple[bytes, list[bytes], dict[str, str]]:
    """The start line, the raw header lines (with CRLF) and the headers lower-cased."""
    start = _read_line(stream)
    while start in (b"\r\n", b"\n"):  # tolerate stray blank lines between messages
        start = _read_line(stream)
    raw: list[bytes] = []
    headers: dict[str, str] = {}
    while True:
        line = _read_line(stream)
        if line in (b"\r\n", b"\n"):
            break
        raw.append(line)
        if len(raw) > _MAX_HEADERS:
            msg = "too many headers"
            raise ValueError(msg)
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return start, raw, headers


def _read_body(
    stream: BinaryIO, headers: dict[str, str], *, until_close: bool
) -> tuple[bytes, bytes]:
    """The body as sent on the wire and de-chunked."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        wire: list[bytes] = []
        plain: list[bytes] = []
        while True:
            size_line = _read_line(stream)
            wire.append(size_line)
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while True:  # trailers, then the blank line
                    trailer = _read_line(stream)
                    wire.append(trailer)
                    if trailer in (b"\r\n", b"\n"):
                        return b"".join(wire), b"".join(plain)
            chunk = _read_exact(stream, size)
            wire.append(chunk)
            plain.append(chunk)
            wire.append(_read_line(stream))
    if "content-length" in headers:
        body = _read_exact(stream, int(headers["content-length"]))
        return body, body
    if until_close:
        body = stream.read()
        return body, body
    return b"", b""


def _parse_json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class RecordingProxy:
    """A threaded HTTP/1.1 proxy on 127.0.0.1 in front of ``upstream`` (host, port).

    Args:
        upstream: the server's address.
        max_connections: client connections served at once; more are closed at once.
        max_recorded: requests kept in :attr:`requests` (oldest dropped first).
        io_timeout: seconds a relay waits for the upstream before giving up.
        credentials: ``(user, password)`` sent upstream on requests without an
            ``Authorization`` header of their own.
    """

    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        max_connections: int = 64,
        max_recorded: int = 10_000,
        io_timeout: float = 60.0,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.upstream = upstream
        self._auth_line = b""
        if credentials is not None:
            token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
            self._auth_line = f"Authorization: Basic {token}\r\n".encode("latin-1")
        self._max_connections = max_connections
        self._io_timeout = io_timeout
        self._lock = threading.Lock()
        self._recorded: deque[ProxyRequest] = deque(maxlen=max_recorded)
        self._faults: list[Fault] = []
        self._sockets: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._stopping = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(
            target=self._accept_loop, name="proxy-accept", daemon=True
        )

    # -- control ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RecordingProxy:
        """Start accepting connections."""
        self._acceptor.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close every connection and wait for the relay threads."""
        self._stopping.set()
        if self._acceptor.is_alive():
            self._acceptor.join(timeout=5)
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
            threads = list(self._threads)
        for sock in sockets:
            _close(sock)
        for thread in threads:
            thread.join(timeout=5)

    def __enter__(self) -> RecordingProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def requests(self) -> list[ProxyRequest]:
        """Every recorded request, oldest first (a copy)."""
        with self._lock:
            return list(self._recorded)

    def requests_to(self, path_contains: str, method: str | None = None) -> list[ProxyRequest]:
        """Recorded requests whose path contains ``path_contains`` (and of ``method``)."""
        return [
            r
            for r in self.requests
            if path_contains in r.path and (method is None or r.method == method)
        ]

    def clear(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self._recorded.clear()

    def cut_before(self, path_contains: str = "", method: str | None = None) -> None:
        """Close the client connection on the next matching request, forwarding nothing."""
        with self._lock:
            self._faults.append(Fault("cut_before", path_contains, method))

    def cut_after(self, path_contains: str = "", method: str | None = None) -> None:
        """Forward the next matching request, drop the server's answer and close the client."""
        with self._lock:
            self._faults.append(Fault("cut_after", path_contains, method))

    def drop_connections(self) -> None:
        """Close every open connection now, as a server does with idle keep-alive ones."""
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    @property
    def open_connections(self) -> int:
        """Client connections being served right now."""
        with self._lock:
            return len(self._threads)

    @property
    def pending_faults(self) -> list[Fault]:
        """Faults armed but not fired yet."""
        with self._lock:
            return list(self._faults)

    # -- relay -----------------------------------------------------------------------------

    def _take_fault(self, method: str, path: str) -> FaultKind | None:
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.matches(method, path):
                    del self._faults[index]
                    return fault.kind
        return None

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            with self._lock:
                if len(self._threads) >= self._max_connections:
                    _close(client)
                    continue
                thread = threading.Thread(
                    target=self._serve, args=(client,), name="proxy-relay", daemon=True
                )
                self._threads.add(thread)
                self._sockets.add(client)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        client_in = client.makefile("rb")
        upstream_in: BinaryIO | None = None
        try:
            while not self._stopping.is_set():
                start, raw_headers, headers = _read_head(client_in)
                wire_body, body = _read_body(client_in, headers, until_close=False)
                method, _, rest = start.decode("latin-1").partition(" ")
                path = rest.rsplit(" ", 1)[0]
                fault = self._take_fault(method, path)
                record = ProxyRequest(method, path, _parse_json(body), body, headers, fault=fault)
                with self._lock:
                    self._recorded.append(record)
                if fault == "cut_before":
                    return
                if upstream is None:
                    upstream = socket.create_connection(self.upstream, timeout=self._io_timeout)
                    with self._lock:
                        self._sockets.add(upstream)
                    upstream_in = upstream.makefile("rb")
                assert upstream_in is not None
                auth = self._auth_line if "authorization" not in headers else b""
                upstream.sendall(start + b"".join(raw_headers) + auth + b"\r\n" + wire_body)
                answer, keep_alive = self._relay_answer(upstream_in, method)
                record.status = int(answer.split(b" ", 2)[1])
                if fault == "cut_after":
                    return
                client.sendall(answer)
                if not keep_alive or headers.get("connection", "").lower() == "close":
                    return
        except (_ConnectionClosed, OSError, ValueError):
            return
        finally:
            with self._lock:
                self._sockets.discard(client)
                if upstream is not None:
                    self._sockets.discard(upstream)
                self._threads.discard(threading.current_thread())
            client_in.close()
            _close(client)
            if upstream_in is not None:
                upstream_in.close()
            if upstream is not None:
                _close(upstream)

    @staticmethod
    def _relay_answer(upstream_in: BinaryIO, method: str) -> tuple[bytes, bool]:
        """Read one whole answer; also whether the connection stays open after it."""
        while True:
            start, raw_headers, headers = _read_head(upstream_in)
            status = int(start.split(b" ", 2)[1])
            if not 100 <= status < 200:  # skip interim answers (100 Continue)
                break
        no_body = method == "HEAD" or status in (204, 304)
        close = headers.get("connection", "").lower() == "close"
        framed = "content-length" in headers or "chunked" in headers.get("transfer-encoding", "")
        if no_body:
            wire_body = b""
        else:
            wire_body, _ = _read_body(upstream_in, headers, until_close=True)
        keep_alive = not close and (no_body or framed)
        return start + b"".join(raw_headers) + b"\r\n" + wire_body, keep_alive
