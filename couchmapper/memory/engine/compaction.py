"""Compaction of a memory database: what ``POST /{db}/_compact`` does.

CouchDB's compaction keeps the revision tree but drops the bodies and attachments of every
revision that is not a leaf: afterwards ``GET /db/doc?rev=<old>`` answers 404 ``missing``
and ``revs_info`` calls the old revision ``missing``, while every leaf (conflicts and deleted
leaves too) keeps its body. The memory engine does the same in place.

As on CouchDB, ``_compact`` only starts the work (202), and a request right after it still
finds the old bodies, as the recorded CouchDB did (02/doc-get-revs-info step 6). Clients wait
for ``compact_running`` (the database info) to turn false, so the engine finishes a compaction
when a client polls for it: the first info read after ``_compact`` says it is running, the
next one finds it done. A client that never polls gets it done by a timer after
:data:`DELAY` seconds. Tied to polls rather than to a clock, a busy machine cannot make a
test see the compaction early.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from couchmapper.memory.engine.store import Database

__all__ = ["DELAY", "compact", "running", "start"]

DELAY = 3.0
_lock = threading.Lock()
# id(db) -> how many info reads have seen the compaction that is pending for it.
_pending: dict[int, int] = {}


def start(db: Database, delay: float = DELAY) -> None:
    """Start compacting ``db``: done at the second info read, or after ``delay`` seconds."""
    with _lock:
        _pending.setdefault(id(db), 0)
    timer = threading.Timer(delay, _finish, (db,))
    timer.daemon = True
    timer.start()


def running(db: Database) -> bool:
    """Whether a compaction of ``db`` is running, as one info read sees it.

    The first read after ``_compact`` answers true; the next finishes the compaction and
    answers false.
    """
    with _lock:
        seen = _pending.get(id(db))
        if seen is None:
            return False
        if seen == 0:
            _pending[id(db)] = 1
            return True
    _finish(db)
    return False


def _finish(db: Database) -> None:
    """Compact ``db`` if a compaction is pending for it (once, whichever caller comes first)."""
    with _lock:
        if _pending.pop(id(db), None) is None:
            return
    compact(db)


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
