"""``WriteResult.accepted``: CouchDB's 202 ``"accepted": true`` per-document answers.

The memory engine is one node and never answers 202, so its writes are never ``accepted``.
A real 202 comes from a cluster with two of three nodes down: tests/cluster asserts it there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import couchmapper as cm
from couchmapper import signals
from couchmapper.backends.base import JSONDict
from couchmapper.backends.memory import MemoryBackend, MemoryServer
from couchmapper.orm.merge import WriteResult, results_in_order


class Note(cm.Document):
    """A small document to flush."""

    text: str = ""


class AcceptingMemory(MemoryBackend):
    """The memory engine, answering writes the way a degraded cluster does (202, accepted).

    Only the answer rows change (CouchDB 3.5 adds ``"accepted": true`` to each
    ``{"ok", "id", "rev"}``); the documents are stored as usual.
    """

    def bulk_docs(self, docs: Sequence[JSONDict], *, new_edits: bool = True) -> list[JSONDict]:
        """Store ``docs`` and mark every successful row accepted."""
        rows = super().bulk_docs(docs, new_edits=new_edits)
        return [row if "error" in row else {**row, "accepted": True} for row in rows]


def test_results_in_order_reads_accepted() -> None:
    """A row with ``"accepted": true`` gives ``accepted=True``; plain and failed rows False."""
    sent = [{"_id": "a"}, {"_id": "b"}, {"_id": "c"}]
    answer: list[dict[str, Any]] = [
        {"ok": True, "id": "a", "rev": "1-x", "accepted": True},  # CouchDB 3.5's 202 row
        {"ok": True, "id": "b", "rev": "1-y"},
        {"id": "c", "error": "conflict", "reason": "Document update conflict."},
    ]
    results = results_in_order(sent, answer)
    assert [r.accepted for r in results] == [True, False, False]
    assert results[0] == WriteResult("a", "1-x", accepted=True)
    assert results[0].ok and not results[2].ok


def test_memory_engine_never_accepts() -> None:
    """Memory engine writes answer 201-style rows: ``accepted`` False, stats count 0."""
    s = cm.Session(cm.connect())
    s.add_all([Note(id="a"), Note(id="b")])
    written = s.flush()
    assert [(r.doc_id, r.ok, r.accepted) for r in written] == [
        ("a", True, False),
        ("b", True, False),
    ]
    assert s.stats().accepted == 0


def test_accepted_rows_are_written_counted_and_signalled() -> None:
    """Accepted documents are written (clean, new rev), counted, and seen by after_flush."""
    server = MemoryServer()  # private: nothing else sees this database
    db = AcceptingMemory(server.create("accepted").engine, server)
    seen: list[WriteResult] = []
    s = cm.Session(db)

    @s.on(signals.after_flush)
    def record(sender: cm.Session, results: list[WriteResult], **extra: Any) -> None:
        """Keep the results after_flush carries."""
        seen.extend(results)

    note = s.add(Note(id="n", text="x"))
    s.flush()
    note.text = "y"
    s.flush()
    assert [(r.doc_id, r.accepted) for r in seen] == [("n", True), ("n", True)]
    stats = s.stats()
    assert (stats.accepted, stats.new, stats.dirty, stats.flushes) == (2, 0, 0, 2)
    assert note.rev is not None and note.rev.startswith("2-")
    assert db.get("n")["text"] == "y"
