"""Reading one ``_find`` page from the sorted structures of :mod:`.ordered`.

The chosen index's rows (or the ids, for an ``_all_docs`` scan) are narrowed to the range
the selector allows on the index's first field (``mango_idx_view:range/5``, as CouchDB
computes its start and end keys), then to the rows after the bookmark; the walk stops once
the page is full. Every document examined is matched against its stored body, and only the
page is copied.
"""

from __future__ import annotations

import json
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from couchmapper._couch import mango
from couchmapper._couch.collation import collate, raw_key
from couchmapper.exceptions import QueryError
from couchmapper.memory.engine.indexes import Index, indexes
from couchmapper.memory.engine.ordered import forget_dropped, id_order, index_order, walk

if TYPE_CHECKING:
    from couchmapper.memory.engine.revs import DocRecord, RevNode
    from couchmapper.memory.engine.store import Database

__all__ = ["empty_range", "fast_rows", "field_range"]


def fast_rows(
    db: Database,
    query: dict[str, Any],
    index: Index | None,
    *,
    selector: dict[str, Any],
    matcher: Callable[[Any], bool],
    descending: bool,
    partition: str | None,
    after: tuple[Any, str] | None,
) -> list[tuple[DocRecord, RevNode]] | None:
    """The page read through the sorted structures, or None where the full scan must run.

    The scan runs for ``execution_stats`` (which counts every document examined), for
    ``limit: 0``, for selectors that can fail at match time (an invalid field name, ``$mod``
    by zero) and for bookmarks whose key is not a row of this index: there, where the scan
    stops decides what the answer is.
    """
    limit = query.get("limit", 25)
    if query.get("execution_stats") or limit == 0 or not _plain_selector(selector, matcher):
        return None
    forget_dropped(db, indexes(db))
    matcher_or_none: Callable[[Any], bool] | None = matcher
    if index is None:
        ids = id_order(db)
        lo, hi = 0, len(ids)
        if partition is not None:
            lo, hi = bisect_left(ids, f"{partition}:"), bisect_left(ids, f"{partition};")
        if after is not None:
            if descending:
                hi = min(hi, bisect_left(ids, after[1]))
            else:
                lo = max(lo, bisect_right(ids, after[1]))
        positions = range(hi - 1, lo - 1, -1) if descending else range(lo, hi)
        doc_ids: Iterator[str] = (ids[i] for i in positions)
    else:
        ranks = _index_rows(db, index)
        if ranks is None:
            return None
        lo, hi = _key_range(ranks, selector, index.fields[0][0])
        if _decided_by_range(selector, index.fields[0][0]):
            matcher_or_none = None
        if after is not None:
            key, doc_id = after
            if not isinstance(key, list) or len(key) != len(index.fields):
                return None
            mark = (*map(mango.collation_key, key), raw_key(doc_id))
            if descending:
                hi = min(hi, bisect_left(ranks, mark))
            else:
                lo = max(lo, bisect_right(ranks, mark))
        positions = range(hi - 1, lo - 1, -1) if descending else range(lo, hi)
        doc_ids = (ranks[i][-1][1] for i in positions)
    skip = query.get("skip", 0)
    return walk(db, doc_ids, matcher_or_none, partition=partition, skip=skip, limit=limit)


def _decided_by_range(selector: dict[str, Any], field: str) -> bool:
    """True when the selector is only comparisons of ``field`` (the index's first column).

    Such a selector matches a row exactly when the row's first key is within
    :func:`_key_range`, which compares by the same collation, so the walk need not match.
    """
    and_parts = selector.get("$and")
    parts = and_parts if len(selector) == 1 and isinstance(and_parts, list) else [selector]
    for part in parts:
        if not isinstance(part, dict) or len(part) != 1 or field not in part:
            return False
        condition = part[field]
        if not isinstance(condition, dict) or len(condition) != 1:
            return False
        if next(iter(condition)) not in ("$eq", "$gt", "$gte", "$lt", "$lte"):
            return False
    return True


def _plain_selector(selector: dict[str, Any], matcher: Callable[[Any], bool]) -> bool:
    """True when matching cannot fail part way through a scan."""
    if "$mod" in json.dumps(selector):
        return False
    try:
        matcher({})
    except QueryError:
        return False
    return True


def _index_rows(db: Database, index: Index) -> list[tuple[Any, ...]] | None:
    """The index's sorted ranks, or None for an index the structures do not serve.

    An index led by ``_id`` is left to the full scan: alone it ranks by raw order for sorting
    but by collation for bookmarks, and the selector compares ``_id`` by raw order where the
    key range would use collation. A partial filter that can fail at match time fails in the
    full scan.
    """
    if index.fields[0][0] == "_id":
        return None
    if index.partial and not _plain_selector(index.partial, mango.compile_selector(index.partial)):
        return None
    return index_order(db, index)


def _key_range(
    ranks: list[tuple[Any, ...]], selector: dict[str, Any], field: str
) -> tuple[int, int]:
    """The positions of the rows whose first key is within the selector's range of ``field``.

    Conditions compare by view collation, so no row outside the range can match.
    """
    found = field_range(selector, field, ("$gt", _LOW, "$lt", _HIGH))
    lo, hi = 0, len(ranks)
    if found is None:
        return lo, lo
    lcmp, low, hcmp, high = found
    if low is not _LOW:
        low_key = mango.collation_key(low)
        closed = lcmp in ("$gte", "$eq")
        lo = (bisect_left if closed else bisect_right)(ranks, low_key, key=_first)
    if high is not _HIGH:
        high_key = mango.collation_key(high)
        closed = hcmp in ("$lte", "$eq")
        hi = (bisect_right if closed else bisect_left)(ranks, high_key, key=_first)
    return lo, max(lo, hi)


def _first(rank: tuple[Any, ...]) -> Any:
    return rank[0]


_LOW, _HIGH = object(), object()  # mango_json:min() and max()
_Range = tuple[str, Any, str, Any]


def _cmp(a: Any, b: Any) -> int:
    if a is b:
        return 0
    if a is _LOW or b is _HIGH:
        return -1
    if a is _HIGH or b is _LOW:
        return 1
    return collate(a, b)


def _narrow(op: str, arg: Any, current: _Range) -> _Range | None:
    """mango_idx_view:range/5: ``current`` narrowed by one condition; None when empty."""
    lcmp, low, hcmp, high = current
    pos = _cmp(arg, low)
    where = "min" if pos < 0 else "low" if pos == 0 else ""
    if not where:
        pos = _cmp(arg, high)
        where = "mid" if pos < 0 else "high" if pos == 0 else "max"
    eq: _Range = ("$eq", arg, "$eq", arg)
    closed_low, closed_high = lcmp in ("$gte", "$eq"), hcmp in ("$lte", "$eq")
    table: dict[str, dict[str, _Range | None]] = {
        "$lt": {"min": None, "low": None, "mid": (lcmp, low, "$lt", arg),
                "high": (lcmp, low, "$lt", arg), "max": current},
        "$lte": {"min": None, "low": eq if closed_low else None,
                 "mid": (lcmp, low, "$lte", arg), "high": current, "max": current},
        "$eq": {"min": None, "low": eq if closed_low else None, "mid": eq,
                "high": eq if closed_high else None, "max": None},
        "$gte": {"min": current, "low": current, "mid": ("$gte", arg, hcmp, high),
                 "high": eq if closed_high else None, "max": None},
        "$gt": {"min": current, "low": ("$gt", arg, hcmp, high),
                "mid": ("$gt", arg, hcmp, high), "high": None, "max": None},
    }  # fmt: skip
    return table[op][where] if op in table else current


def field_range(selector: Any, field: str, current: _Range | None) -> _Range | None:
    """The range ``selector`` allows ``field`` (through ``$and`` only, like CouchDB)."""
    if current is None or not isinstance(selector, dict) or len(selector) != 1:
        return current
    key, arg = next(iter(selector.items()))
    if key == "$and" and isinstance(arg, list):
        for part in arg:
            current = field_range(part, field, current)
        return current
    if key == field and isinstance(arg, dict) and len(arg) == 1:
        op, value = next(iter(arg.items()))
        return _narrow(op, value, current)
    return current


def empty_range(selector: dict[str, Any], field: str) -> bool:
    """True when no value of ``field`` can satisfy the selector's conditions on it."""
    return field_range(selector, field, ("$gt", _LOW, "$lt", _HIGH)) is None
