"""Stored conflicts: see them on load, resolve them with merge rules (memory backend).

Run: ``python examples/conflicts.py``
"""

from __future__ import annotations

from typing import Any

import couchmapper as cm
from couchmapper import signals
from couchmapper.backends.base import Backend

BASE = "1-" + "a" * 32


class Counter(cm.Document, type_name="example-conflict-counter"):
    """Resolved on load: counts add up, tags unite, disjoint edits both survive."""

    count: int = cm.field(default=0, merge="sum")
    tags: set[str] = cm.field(factory=set, merge="union")
    title: str = ""
    note: str = ""

    class Meta:
        resolve = "merge"


class Cache(cm.Document, type_name="example-conflict-cache"):
    """Derived data: CouchDB's winner may simply win."""

    value: str = ""

    class Meta:
        resolve = "winner"


def newest(base: Any, winner: Any, losers: list[Any]) -> Any:
    """Keep the version with the latest timestamp."""
    return max([winner, *losers], key=lambda doc: doc["at"])


class Profile(cm.Document, type_name="example-conflict-profile"):
    """A domain rule: the newest edit wins."""

    at: int = 0
    email: str = ""

    class Meta:
        resolve = newest


def branch(db: Backend, doc_id: str, type_name: str, base: Any, *edits: Any) -> None:
    """Store ``base`` and one branch per edit, as replication would (``new_edits=false``)."""
    db.bulk_docs([{"_id": doc_id, "type": type_name, "_rev": BASE, **base}], new_edits=False)
    docs = []
    for number, edit in enumerate(edits):
        rev_id = "bcdef"[number] * 32
        revisions = {"start": 2, "ids": [rev_id, BASE[2:]]}
        body = {"_id": doc_id, "type": type_name, **base, **edit}
        docs.append({**body, "_rev": f"2-{rev_id}", "_revisions": revisions})
    db.bulk_docs(docs, new_edits=False)


def main() -> None:
    """Make stored conflicts and resolve them in each mode."""
    db = cm.connect()
    branch(
        db,
        "visits",
        "example-conflict-counter",
        {"count": 10, "tags": ["home"], "title": "Home", "note": ""},
        {"count": 13, "tags": ["home", "blog"], "title": "Homepage"},
        {"count": 15, "tags": ["home", "news"], "note": "replica B"},
    )
    branch(
        db, "weather", "example-conflict-cache", {"value": "?"}, {"value": "rain"}, {"value": "sun"}
    )
    branch(
        db,
        "ada",
        "example-conflict-profile",
        {"at": 1, "email": "ada@old.example"},
        {"at": 5, "email": "ada@new.example"},
        {"at": 3, "email": "ada@mid.example"},
    )

    signals.conflict_found.connect(report)
    try:
        resolve_all(db)
    finally:
        signals.conflict_found.disconnect(report)
    print("done")


def report(cls: type, **kwargs: Any) -> None:
    """A conflict_found receiver: print the document and its losing revisions."""
    print(f"  {cls.__name__} {kwargs['document'].id}: {kwargs['revisions']}")


def resolve_all(db: Backend) -> None:
    """Load the conflicted documents (resolved by their Meta.resolve), then one by hand."""
    print("loading (conflict_found):")
    with cm.Session(db) as s:
        counter = s.get(Counter, "visits")
        s.get(Cache, "weather")
        s.get(Profile, "ada")
        assert counter is not None
        counter.count += 1  # the session's own edit goes in the same request
    # flushed on exit: one _bulk_docs with three merged winners and three losers' deletions
    for doc_id in ("visits", "weather", "ada"):
        stored = db.get(doc_id, conflicts=True)
        assert "_conflicts" not in stored
        shown = {k: v for k, v in stored.items() if not k.startswith(("_", "cm_"))}
        print(f"resolved {doc_id}: {shown}")
    assert db.get("visits")["count"] == 10 + 3 + 5 + 1

    # An overlap without a merge rule: reported, left stored, nothing lost.
    branch(
        db,
        "clash",
        "example-conflict-counter",
        {"count": 0, "tags": [], "title": "A", "note": ""},
        {"title": "B"},
        {"title": "C"},
    )
    with cm.Session(db) as s:
        clash = s.get(Counter, "clash")
        s.flush()
        error = s.unresolved["clash"]
        print(f"left unresolved: {error.paths} -> resolving by hand")
        s.resolve(clash, {"type": "example-conflict-counter", "title": "B and C"})
        s.flush()
    assert db.get("clash", conflicts=True)["title"] == "B and C"


if __name__ == "__main__":
    main()
