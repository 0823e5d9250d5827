"""Timeouts and messages of the HTTP transport: a silent server never hangs the caller.

The silent servers here are sockets on 127.0.0.1 that accept connections and never answer
(or, for the connect timeout, a listening socket whose accept queue is full). A 401 of the
real test server says which user was refused and what to check, never the password.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import couchdb
import pytest
from session_models import Task

import couchmapper as cm
from couchmapper.backends.couchdb import DEFAULT_TIMEOUT, CouchDBBackend, CouchDBServer
from couchmapper.connect import connect


@contextmanager
def silent_server() -> Iterator[int]:
    """A loopback port whose server accepts every connection and never answers; yields it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


@contextmanager
def full_backlog() -> Iterator[int]:
    """A loopback port whose accept queue is full: new connections are never established."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=5)  # fills the queue
    try:
        yield port
    finally:
        filler.close()
        listener.close()


def test_connect_to_a_silent_server_times_out_naming_it() -> None:
    """connect() gives up after the read timeout, naming host:port, never the password."""
    with silent_server() as port:
        url = f"http://ann:s3cret-pw@127.0.0.1:{port}/db"
        with pytest.raises(cm.BackendUnavailable) as caught:
            connect(url, timeout=(2, 0.3))
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "no answer within 0.3 s (read timeout" in message
    assert "s3cret-pw" not in message


def test_connect_timeout_is_told_apart() -> None:
    """A connection that is never established fails after the connect timeout."""
    with full_backlog() as port, pytest.raises(cm.BackendUnavailable) as caught:
        connect(f"http://127.0.0.1:{port}/db", timeout=(0.3, 30))
    assert f"127.0.0.1:{port}: could not connect within 0.3 s" in str(caught.value)


def test_flush_to_a_silent_server_times_out_and_keeps_everything() -> None:
    """flush() against a server that stopped answering raises; the documents stay pending."""
    with silent_server() as port:
        server = CouchDBServer(f"http://127.0.0.1:{port}", timeout=0.3)
        backend = server.database("db")  # no request yet
        s = cm.Session(backend)
        s.add(Task(title="kept", id="kept"))
        with pytest.raises(cm.BackendUnavailable, match=f"127.0.0.1:{port}: no answer"):
            s.flush()
        assert s.has_pending() and s.stats().new == 1
        backend.close()
        server.close()


def test_default_timeouts_are_finite() -> None:
    """Backends (also from a couchdb.Database) wait 10 s to connect, 120 s per answer."""
    assert DEFAULT_TIMEOUT == (10.0, 120.0)
    server = CouchDBServer("http://127.0.0.1:9")  # no request is made
    pool = server._http.resource.session.connection_pool
    assert pool.timeouts == DEFAULT_TIMEOUT
    backend = server.database("db")
    assert backend._http.resource.session.connection_pool.timeouts == DEFAULT_TIMEOUT
    plain = CouchDBBackend(couchdb.Database("http://127.0.0.1:9/db"))  # python-couchdb: None
    assert plain._http.resource.session.connection_pool.timeouts == DEFAULT_TIMEOUT
    forever = CouchDBServer("http://127.0.0.1:9", timeout=None)
    assert forever._http.resource.session.connection_pool.timeouts == (None, None)
    assert (connect.__kwdefaults__ or {})["timeout"] == DEFAULT_TIMEOUT
    assert (CouchDBBackend.from_url.__kwdefaults__ or {})["timeout"] == DEFAULT_TIMEOUT


def test_401_names_the_user_and_what_to_check(server_url: str, db_name: str) -> None:
    """A wrong password: 401 naming the server and the user, with advice, without the password."""
    parts = urlsplit(server_url)
    netloc = f"intruder:wrong-pw-123@{parts.hostname}:{parts.port}"
    url = urlunsplit(parts._replace(netloc=netloc))
    server = CouchDBServer(url)
    backend = server.database(db_name)
    with pytest.raises(cm.BackendError) as caught:
        backend.put({"_id": "a"})
    backend.close()
    server.close()
    error = caught.value
    assert error.status == 401
    assert f"{parts.hostname}:{parts.port}" in str(error)
    assert "as user 'intruder': check the user name and password" in str(error)
    assert "wrong-pw-123" not in str(error)
