"""Sorted structures that let ``_find`` read one page without scanning the database.

Two kinds, both kept in step with writes the way CouchDB updates its indexes on read:

* :class:`IdOrder`: the ids of the live, non-design documents in raw (code point) order,
  which is the order of CouchDB's ``_all_docs`` scan.
* :class:`IndexOrder`: the rows of one Mango JSON index, each the rank a ``_find`` sorts by
  (the collation keys of the indexed fields, then the raw key of the id), in order. A
  document is a row when it is live, not a design document, has every indexed field and
  matches the index's partial filter; an update moves its row and a deletion removes it.

The database notes each written id in the ``dirty`` set of every structure
(:meth:`~couchmapper.memory.engine.store.Database.touched`); a structure applies them the
next time a query reads it, so a burst of writes costs one set insertion per id.

Matching runs against :func:`match_view`, the stored body under ``_id`` and ``_rev`` without
a copy; only the documents a query returns are copied.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from typing import TYPE_CHECKING, Any

from couchmapper._couch import mango
from couchmapper._couch.collation import collation_key, raw_key
from couchmapper._couch.fields import BAD_PATH, MISSING, lookup, parse_field

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from couchmapper.memory.engine.indexes import Index
    from couchmapper.memory.engine.revs import DocRecord, RevNode
    from couchmapper.memory.engine.store import Database

__all__ = [
    "IdOrder",
    "IndexOrder",
    "forget_dropped",
    "id_order",
    "index_order",
    "match_view",
    "walk",
]

IndexKey = tuple[str, str, tuple[tuple[str, str], ...], str]


def match_view(record: DocRecord, node: RevNode) -> dict[str, Any]:
    """The JSON ``doc_json`` would give for a live revision, sharing the stored values.

    For matching and ranking only: callers must not change it.
    """
    out: dict[str, Any] = {"_id": record.doc_id, "_rev": node.rev}
    if node.body:
        out.update(node.body)
    if node.atts:
        out["_attachments"] = {name: att.to_json() for name, att in node.atts.items()}
    return out


def _live_doc(db: Database, doc_id: str) -> tuple[DocRecord, RevNode] | None:
    """The record and winner of a live, non-design document, or None."""
    record = db.docs.get(doc_id)
    if record is None or doc_id.startswith("_design/"):
        return None
    node = record.winner()
    return None if node.deleted else (record, node)


class IdOrder:
    """The ids of the live, non-design documents, sorted by code point."""

    def __init__(self, db: Database) -> None:
        self.dirty: dict[str, None] = {}
        self.ids = [doc_id for doc_id in db.docs if _live_doc(db, doc_id) is not None]
        self.ids.sort()
        db.dirty_sets.append(self.dirty)

    def sync(self, db: Database) -> list[str]:
        """Apply the writes noted since the last read; return the sorted ids."""
        ids = self.ids
        for doc_id in self.dirty:
            live = _live_doc(db, doc_id) is not None
            at = bisect_left(ids, doc_id)
            present = at < len(ids) and ids[at] == doc_id
            if live and not present:
                ids.insert(at, doc_id)
            elif present and not live:
                del ids[at]
        self.dirty.clear()
        return ids


class IndexOrder:
    """The rows of one JSON index, by rank: ``(*collation keys of the fields, raw_key(id))``."""

    def __init__(self, db: Database, index: Index) -> None:
        self.paths = [parse_field(field) for field, _ in index.fields]
        self.partial: Callable[[Any], bool] | None = None
        if index.partial:
            self.partial = mango.compile_selector(index.partial)
        self.dirty: dict[str, None] = {}
        self.rows: dict[str, tuple[Any, ...]] = {}
        for doc_id in db.docs:
            rank = self._rank(db, doc_id)
            if rank is not None:
                self.rows[doc_id] = rank
        self.ranks = sorted(self.rows.values())
        db.dirty_sets.append(self.dirty)

    def _rank(self, db: Database, doc_id: str) -> tuple[Any, ...] | None:
        found = _live_doc(db, doc_id)
        if found is None:
            return None
        view = match_view(*found)
        values = [lookup(view, path) for path in self.paths]
        if any(value is MISSING or value is BAD_PATH for value in values):
            return None
        if self.partial is not None and not self.partial(view):
            return None
        return (*map(collation_key, values), raw_key(doc_id))

    def sync(self, db: Database) -> list[tuple[Any, ...]]:
        """Apply the writes noted since the last read; return the sorted ranks."""
        for doc_id in self.dirty:
            old = self.rows.pop(doc_id, None)
            if old is not None:
                del self.ranks[bisect_left(self.ranks, old)]
            new = self._rank(db, doc_id)
            if new is not None:
                self.rows[doc_id] = new
                insort(self.ranks, new)
        self.dirty.clear()
        return self.ranks


def index_key(index: Index) -> IndexKey:
    """What identifies an index's rows: its ddoc, name, fields and partial filter."""
    return (index.ddoc, index.name, tuple(index.fields), repr(index.partial))


def id_order(db: Database) -> list[str]:
    """The synced :class:`IdOrder` of ``db`` (built on first use)."""
    state = db.find_state
    order = state.get("ids")
    if order is None:
        order = state["ids"] = IdOrder(db)
    ids: list[str] = order.sync(db)
    return ids


def forget_dropped(db: Database, every: list[Index]) -> None:
    """Drop the rows of indexes that are gone (deleted or redefined)."""
    state = db.find_state
    current = {index_key(i) for i in every}
    for key in [k for k in state if k != "ids" and k not in current]:
        stale = state.pop(key).dirty
        db.dirty_sets[:] = [d for d in db.dirty_sets if d is not stale]


def index_order(db: Database, index: Index) -> list[tuple[Any, ...]]:
    """The synced rows of ``index`` (built on first use)."""
    state = db.find_state
    key = index_key(index)
    order = state.get(key)
    if order is None:
        order = state[key] = IndexOrder(db, index)
    ranks: list[tuple[Any, ...]] = order.sync(db)
    return ranks


def walk(
    db: Database,
    doc_ids: Iterable[str],
    matcher: Callable[[Any], bool] | None,
    *,
    partition: str | None,
    skip: int,
    limit: int,
) -> list[tuple[DocRecord, RevNode]]:
    """The ``limit`` matches after the first ``skip`` among ``doc_ids``; stops there.

    ``matcher`` None: every one matches (the caller's key range decided it).
    """
    prefix = f"{partition}:" if partition is not None else None
    page: list[tuple[DocRecord, RevNode]] = []
    seen = 0
    for doc_id in doc_ids:
        if prefix is not None and not doc_id.startswith(prefix):
            continue
        record = db.docs[doc_id]
        node = record.winner()
        if matcher is not None and not matcher(match_view(record, node)):
            continue
        seen += 1
        if seen > skip:
            page.append((record, node))
            if len(page) >= limit:
                break
    return page
