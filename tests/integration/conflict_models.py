"""Document classes and helpers of the stored-conflict tests (memory, pouchdb-server, CouchDB)."""

from __future__ import annotations

from typing import Any

import couchmapper as cm
from couchmapper.backends.base import Backend

A, B, C, D = ("a" * 32, "b" * 32, "c" * 32, "d" * 32)
BASE_REV, LEFT_REV, RIGHT_REV = f"1-{A}", f"2-{B}", f"2-{C}"


class Tally(cm.Document, type_name="conflict-tally"):
    """No automatic resolution: conflicts are resolved by hand (``session.resolve``)."""

    count: int = cm.field(default=0, merge="sum")
    tags: set[str] = cm.field(factory=set, merge="union")
    title: str = ""
    note: str = ""


class MergedTally(Tally, type_name="conflict-merged"):
    """Resolved on load, three-way with the merge rules."""

    class Meta:
        resolve = "merge"


class WinnerTally(Tally, type_name="conflict-winner"):
    """Resolved on load by keeping CouchDB's winner."""

    class Meta:
        resolve = "winner"


calls: list[tuple[Any, Any, Any]] = []  # what CustomTally's resolver was called with


def _largest_count(base: Any, winner: Any, losers: list[Any]) -> Any:
    """A ``Meta.resolve`` callable: the winner with the largest count of every leaf."""
    calls.append((base, winner, losers))
    return {**winner, "count": max([winner["count"], *(doc["count"] for doc in losers)])}


class CustomTally(Tally, type_name="conflict-custom"):
    """Resolved on load by a callable (base, winner, losers) -> merged."""

    class Meta:
        resolve = _largest_count


class Note(cm.Document, type_name="conflict-note"):
    """Idempotent rules only: no write token."""

    text: str = ""
    tags: set[str] = cm.field(factory=set, merge="union")


def branches(
    backend: Backend, type_name: str, *, base_stored: bool = True, **right: Any
) -> tuple[str, str]:
    """Store a base revision and two branches with ``new_edits=false``; (winner, loser).

    The base has count 10, tags {x}, title "t", note "n". The left branch (2-b…) adds 3 and
    tag y and sets the title; the right one (2-c…, the winner: larger id) adds 5 and tag z
    and sets the note. ``right`` overrides fields of the right branch. Without
    ``base_stored`` the base body is never stored (only its id, in the branches' history),
    as after a compaction.
    """
    base = {"type": type_name, "count": 10, "tags": ["x"], "title": "t", "note": "n"}
    left = {**base, "count": 13, "tags": ["x", "y"], "title": "T-left"}
    right_body = {**base, "count": 15, "tags": ["x", "z"], "note": "N-right", **right}
    docs = []
    if base_stored:
        docs.append({"_id": "doc", "_rev": BASE_REV, **base})
    for rev, body in ((LEFT_REV, left), (RIGHT_REV, right_body)):
        pos, rev_id = rev.split("-")
        revisions = {"start": int(pos), "ids": [rev_id, A]}
        docs.append({"_id": "doc", "_rev": rev, "_revisions": revisions, **body})
    backend.bulk_docs(docs, new_edits=False)
    return RIGHT_REV, LEFT_REV


def leaves(backend: Backend, doc_id: str = "doc") -> list[dict[str, Any]]:
    """The live leaf revisions of a document (``open_revs=all``)."""
    answer: Any = backend.get(doc_id, open_revs="all")
    return [row["ok"] for row in answer if "ok" in row and not row["ok"].get("_deleted")]


def stored(backend: Backend, doc_id: str = "doc") -> dict[str, Any]:
    """The winning revision with its ``_conflicts`` (if any)."""
    return backend.get(doc_id, conflicts=True)
