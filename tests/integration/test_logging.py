"""couchmapper's log records: one per request (DEBUG), one per flush (INFO), slow or retried work.

The records go through the standard :mod:`logging` module under ``couchmapper.http`` and
``couchmapper.flush``; these tests read them with pytest's ``caplog``. Requests are only made
to a CouchDB-compatible server over HTTP (the memory engine makes none), so the request tests
use the test server.
"""

from __future__ import annotations

import gc
import logging
import re
import subprocess
import sys
import weakref
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from models import Person

import couchmapper as cm
from couchmapper import _log
from couchmapper.backends.couchdb import CouchDBBackend, CouchDBServer

_REQUEST = re.compile(
    r"^(GET|PUT|POST|DELETE|HEAD) [\w.\-]+:\d+ (/\S*) -> (\d{3}) in \d+\.\d{3} s$"
)


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog at DEBUG for couchmapper's loggers."""
    with caplog.at_level(logging.DEBUG, logger="couchmapper"):
        yield caplog


def _messages(caplog: pytest.LogCaptureFixture, logger: str) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == logger]


def test_each_flush_is_one_info_record(records: pytest.LogCaptureFixture) -> None:
    """A flush on the memory engine logs documents, failures, requests, conflicts and rebases."""
    with cm.Session(cm.connect()) as s:
        s.add(Person(name="Ada", id="p1"))
        s.add(Person(name="Bob", id="p2"))
    ((level, message),) = _messages(records, "couchmapper.flush")
    assert level == logging.INFO
    assert re.fullmatch(
        r"flush: 2 written, 0 failed, 1 request\(s\) in \d+\.\d{3} s, "
        r"0 conflict\(s\), 0 rebase\(s\)",
        message,
    ), message


def test_a_flush_with_nothing_to_write_logs_nothing(records: pytest.LogCaptureFixture) -> None:
    """An empty flush sends nothing and leaves no record."""
    s = cm.Session(cm.connect())
    s.flush()
    s.close()
    assert _messages(records, "couchmapper.flush") == []


def test_a_rebase_round_is_a_warning_and_counted(records: pytest.LogCaptureFixture) -> None:
    """Conflicting writes sent again (policy rebase) log a WARNING; the flush counts them."""
    db = cm.connect()
    with cm.Session(db) as s:
        s.add(Person(name="Ada", id="p1"))
    mine = cm.Session(db, conflict="rebase")
    theirs = cm.Session(db)
    ada, same = mine.get(Person, "p1"), theirs.get(Person, "p1")
    assert ada is not None and same is not None
    ada.name = "Ada Lovelace"
    same.age = 36
    theirs.flush()
    records.clear()
    mine.flush()
    assert db.get("p1")["name"] == "Ada Lovelace"
    assert db.get("p1")["age"] == 36
    messages = _messages(records, "couchmapper.flush")
    assert messages[0] == (
        logging.WARNING,
        "retrying 1 of 1 conflicting document(s) (rebase round 1)",
    )
    assert messages[1][0] == logging.INFO
    assert messages[1][1].startswith("flush: 1 written, 0 failed, 3 request(s)")
    assert messages[1][1].endswith("1 conflict(s), 1 rebase(s)")
    mine.close()
    theirs.close()


def test_a_failed_flush_is_a_warning(records: pytest.LogCaptureFixture) -> None:
    """A flush that raises logs a WARNING naming the exception class."""
    db = cm.connect()
    db.bulk_docs([{"_id": "p1", "type": "person", "name": "old"}])
    s = cm.Session(db)
    s.add(Person(name="Ada", id="p1"))  # the id exists: a conflict, policy "raise"
    with pytest.raises(cm.FlushError):
        s.flush()
    ((level, message),) = _messages(records, "couchmapper.flush")
    assert level == logging.WARNING
    assert message.startswith("flush failed (FlushError): 0 written, 1 failed, 2 request(s)")
    assert message.endswith("1 conflict(s), 0 rebase(s)")
    s.close()


def test_a_slow_flush_is_a_warning(
    records: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flush longer than thresholds.flush is logged as a WARNING with the threshold."""
    monkeypatch.setattr(_log.thresholds, "flush", -1.0)
    with cm.Session(cm.connect()) as s:
        s.add(Person(name="Ada", id="p1"))
    ((level, message),) = _messages(records, "couchmapper.flush")
    assert level == logging.WARNING
    assert message.startswith("slow flush (over -1 s): 1 written")


def test_each_request_is_one_debug_record(
    records: pytest.LogCaptureFixture, couch_backend: CouchDBBackend, db_name: str
) -> None:
    """Method, host:port, path, status and time; a 404 is logged with its status."""
    with cm.Session(couch_backend) as s:
        s.add(Person(name="Ada", id="p1"))
    records.clear()
    s = cm.Session(couch_backend)
    assert s.get(Person, "nobody") is None
    s.get(Person, "p1")
    s.close()
    messages = _messages(records, "couchmapper.http")
    assert [level for level, _ in messages] == [logging.DEBUG, logging.DEBUG]
    parsed = [_REQUEST.match(message) for _, message in messages]
    assert all(parsed), messages
    assert [(m.group(1), m.group(2), m.group(3)) for m in parsed if m] == [
        ("GET", f"/{db_name}/nobody", "404"),
        ("GET", f"/{db_name}/p1", "200"),
    ]


def test_requests_log_neither_credentials_nor_bodies(
    records: pytest.LogCaptureFixture, server_url: str, db_name: str
) -> None:
    """A refused login and a write leave no password, user name, query string or body in logs."""
    parts = urlsplit(server_url)
    secret_user, secret_password = "log-user-x7q", "pw-Zz9-never-logged"
    netloc = f"{secret_user}:{secret_password}@{parts.hostname}:{parts.port}"
    refused = CouchDBServer(urlunsplit((parts.scheme, netloc, "", "", ""))).database(db_name)
    try:
        with pytest.raises(cm.BackendError) as caught:
            refused.info()
        assert caught.value.status == 401
    finally:
        refused.close()
    db = CouchDBBackend.from_url(f"{server_url}/{db_name}", timeout=60)
    try:
        db.bulk_docs([{"_id": "p1", "marker": "body-marker-Qx3"}])
        db.get("p1", conflicts=True)
    finally:
        db.close()
    text = "\n".join(
        [r.getMessage() for r in records.records] + [repr(r.args) for r in records.records]
    )
    assert "couchmapper.http" in {r.name for r in records.records}
    for secret in (secret_user, secret_password, "body-marker-Qx3", "conflicts=", "Authorization"):
        assert secret not in text
    if parts.password:
        assert parts.password not in text


def test_a_slow_request_is_a_warning(
    records: pytest.LogCaptureFixture,
    couch_backend: CouchDBBackend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A request longer than thresholds.request is logged as a WARNING with the threshold."""
    monkeypatch.setattr(_log.thresholds, "request", -1.0)
    couch_backend.info()
    ((level, message),) = _messages(records, "couchmapper.http")
    assert level == logging.WARNING
    assert re.fullmatch(
        r"slow request: GET [\w.\-]+:\d+ /cm-test-\w+ -> 200 in \S+ s \(over -1 s\)", message
    ), message


def test_nothing_reaches_stderr_unless_configured() -> None:
    """A WARNING with no logging configured goes nowhere (NullHandler), not to stderr."""
    code = (
        "import couchmapper as cm\n"
        "from couchmapper import _log\n"
        "_log.thresholds.flush = -1.0\n"
        "with cm.Session(cm.connect()) as s:\n"
        "    s.create({'_id': 'x'})\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stderr == ""


def test_logged_requests_leave_no_reference_cycle(server_url: str, db_name: str) -> None:
    """A dropped backend's HTTP session is freed at once, not left to the cyclic GC.

    The request logging sits in an overriding method: a wrapper kept on the session would
    make a cycle, and the pool's sockets would be closed by some later test's collection.
    """
    gc.disable()
    try:
        backend = CouchDBBackend.from_url(f"{server_url}/{db_name}", timeout=60)
        backend.info()
        session = weakref.ref(backend._http.resource.session)
        del backend
        assert session() is None
    finally:
        gc.enable()
