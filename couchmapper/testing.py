"""Helpers for testing code that uses couchmapper: signal capture and pytest fixtures.

``capture_signals`` records what couchmapper's signals send while a block runs (like
blinker's ``connected_to``, for several signals at once)::

    from couchmapper import signals
    from couchmapper.testing import capture_signals

    with capture_signals(signals.document_changed, sender=Tag) as calls:
        session.flush()
    assert [(c.name, c.kwargs["document"].id) for c in calls] == [("document_changed", "t1")]

This module is also a pytest plugin, registered through the ``pytest11`` entry point: once
couchmapper is installed, every test can ask for these fixtures, with no configuration::

    memory_db        a fresh in-memory database (``cm.connect()``), dropped after the test
    memory_session   a :class:`~couchmapper.orm.session.Session` over ``memory_db``, closed after
    signal_log       every couchmapper signal sent during the test (a list of SignalCall)
    couchdb_url      the URL of a throwaway database: on the CouchDB that ``COUCHDB_URL`` names
                     when it is set, in memory (``memory://...``) otherwise; dropped after

The fixtures need pytest; ``capture_signals`` does not.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from typing import Any, NamedTuple

from blinker import ANY, Signal

from couchmapper import signals
from couchmapper.backends.base import Backend
from couchmapper.connect import connect
from couchmapper.memory import MemoryBackend, memory_server
from couchmapper.orm.session import Session

__all__ = ["ALL_SIGNALS", "SignalCall", "capture_signals", "throwaway_database_url"]

ALL_SIGNALS: tuple[Signal, ...] = (
    signals.document_loaded,
    signals.document_added,
    signals.document_changed,
    signals.document_deleted,
    signals.before_flush,
    signals.after_flush,
    signals.flush_failed,
)
"""Every couchmapper signal, in the order a flush sends them."""


class SignalCall(NamedTuple):
    """One signal sent: its name, sender and keyword arguments."""

    name: str
    sender: Any
    kwargs: dict[str, Any]


@contextlib.contextmanager
def capture_signals(*watched: Signal, sender: Any = ANY) -> Iterator[list[SignalCall]]:
    """Record the signals sent while the block runs; yields the (growing) list of calls.

    Args:
        watched: the signals to record (default: every couchmapper signal).
        sender: record only this sender: a document class records its subclasses too; a
            session (any object that is not a class) records its own signals and the
            document signals of its documents (whose ``session`` keyword is that session),
            like :meth:`Session.on <couchmapper.orm.session.Session.on>`; default: every sender.

    The receivers are connected strongly for the block and disconnected after it.
    """
    calls: list[SignalCall] = []
    connected: list[tuple[Signal, Any]] = []
    # A session sends its own signals, but its documents' signals are sent by their class
    # and name the session in ``session``: listen to every sender and keep the session's.
    scoped = sender is not ANY and not isinstance(sender, type)
    try:
        for signal in watched or ALL_SIGNALS:
            name = getattr(signal, "name", repr(signal))

            def record(sent_by: Any, *, _name: str = name, **kwargs: Any) -> None:
                if scoped and sent_by is not sender and kwargs.get("session") is not sender:
                    return
                calls.append(SignalCall(_name, sent_by, kwargs))

            signal.connect(record, sender=ANY if scoped else sender, weak=False)
            connected.append((signal, record))
        yield calls
    finally:
        for signal, receiver in connected:
            signal.disconnect(receiver)


def _drop(db: Backend) -> None:
    if isinstance(db, MemoryBackend):
        with contextlib.suppress(Exception):
            memory_server().delete(db.name)


@contextlib.contextmanager
def throwaway_database_url(server_url: str | None = None) -> Iterator[str]:
    """Create a uniquely named database, yield its URL, and delete it afterwards.

    Args:
        server_url: a CouchDB server (``http(s)://[user:password@]host:port``); None for the
            process-wide memory server (the URL yielded is then ``memory://name``).
    """
    name = f"cm-test-{uuid.uuid4().hex}"
    if not server_url:
        memory_server().create(name)
        try:
            yield f"memory://{name}"
        finally:
            with contextlib.suppress(Exception):
                memory_server().delete(name)
        return
    from couchmapper.backends.couchdb import CouchDBServer

    server = CouchDBServer(server_url.rstrip("/"))
    try:
        server.create_database(name)
        try:
            yield f"{server_url.rstrip('/')}/{name}"
        finally:
            server.delete_database(name, missing_ok=True)
    finally:
        server.close()


try:
    import pytest
except ImportError:  # pragma: no cover - the fixtures need pytest, capture_signals does not
    pass
else:

    @pytest.fixture
    def memory_db() -> Iterator[Backend]:
        """A fresh in-memory database (``cm.connect()``), dropped after the test."""
        db = connect()
        yield db
        _drop(db)

    @pytest.fixture
    def memory_session(memory_db: Backend) -> Iterator[Session]:
        """A session over ``memory_db``; closed after the test (pending work is dropped)."""
        session = Session(memory_db)
        yield session
        session.close()

    @pytest.fixture
    def signal_log() -> Iterator[list[SignalCall]]:
        """Every couchmapper signal sent during the test, in order."""
        with capture_signals() as calls:
            yield calls

    @pytest.fixture
    def couchdb_url() -> Iterator[str]:
        """A throwaway database's URL: on ``COUCHDB_URL``'s server when set, else in memory."""
        with throwaway_database_url(os.environ.get("COUCHDB_URL", "").strip() or None) as url:
            yield url
