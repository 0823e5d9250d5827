"""Compaction of a memory database: what ``POST /{db}/_compact`` does.

CouchDB's compaction keeps the revision tree but drops the bodies and attachments of every
revision that is not a leaf: afterwards ``GET /db/doc?rev=<old>`` answers 404 ``missing``
and ``revs_info`` calls the old revision ``missing``, while every leaf (conflicts and deleted
leaves too) keeps its body. The memory engine does the same in place.

As on CouchDB, ``_compact`` only starts the work (202): :func:`start` compacts on a timer
thread after :data:`DELAY` seconds, and :func:`running` says so meanwhile (the
``compact_running`` of the database info). A request right after ``_compact`` still finds the
old bodies, as the recorded CouchDB did (02/doc-get-revs-info step 6); clients wait for
``compact_running`` to turn false.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from couchmapper.memory.engine.store import Database

__all__ = ["DELAY", "compact", "running", "start"]

DELAY = 1.0
_lock = threading.Lock()
_running: dict[int, int] = {}  # id(db) -> compactions started and not finished


def start(db: Database, delay: float = DELAY) -> None:
    """Compact ``db`` on a daemon timer thread after ``delay`` seconds."""

    def run() -> None:
        try:
            compact(db)
        finally:
            with _lock:
                left = _running.pop(id(db), 1) - 1
                if left:
                    _running[id(db)] = left

    with _lock:
        _running[id(db)] = _running.get(id(db), 0) + 1
    timer = threading.Timer(delay, run)
    timer.daemon = True
    timer.start()


def running(db: Database) -> bool:
    """Whether a compaction of ``db`` was started and has not finished."""
    with _lock:
        return id(db) in _running


def compact(db: Database) -> int:
    """Drop the bodies and attachments of non-leaf revisions; return how many were dropped."""
    dropped = 0
    with db.lock:
        for record in db.docs.values():
            if len(record.revs) < 2:
                continue
            parents = {node.parent for node in record.revs.values()}
            for rev, node in record.revs.items():
                if rev in parents and node.body is not None:
                    node.body = None
                    node.atts = {}
                    dropped += 1
    return dropped
