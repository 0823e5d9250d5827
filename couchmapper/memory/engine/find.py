"""Mango ``_find``, ``_explain`` and ``_index`` for the memory engine.

Indexes are design documents (``language: "query"``) exactly as CouchDB stores them. A query
uses a JSON index when every indexed field is constrained by the selector or the sort; such
an index holds only documents that have all its fields (and match its partial filter), and
orders them by CouchDB view collation. Otherwise the query scans ``_all_docs`` (raw id order)
and the answer carries CouchDB's warning.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from couchmapper._couch import mango
from couchmapper._couch.collation import raw_key
from couchmapper.exceptions import QueryError
from couchmapper.memory.engine.errors import bad_request
from couchmapper.memory.engine.indexes import (
    SPECIAL_INDEX,
    Index,
    create_index,
    delete_index,
    indexes,
    list_indexes,
    term,
)
from couchmapper.memory.engine.options import check_partition
from couchmapper.memory.engine.seek import empty_range, fast_rows

if TYPE_CHECKING:
    from couchmapper.memory.engine.revs import DocRecord, RevNode
    from couchmapper.memory.engine.store import Database

__all__ = ["create_index", "delete_index", "explain", "find", "list_indexes"]

_NO_INDEX = "No matching index found, create an index to optimize query time."
_KEYS = frozenset(
    {
        "selector",
        "use_index",
        "bookmark",
        "limit",
        "skip",
        "sort",
        "fields",
        "r",
        "conflicts",
        "stale",
        "update",
        "stable",
        "execution_stats",
        "partition",
        "allow_fallback",
    }
)
# -- _find ----------------------------------------------------------------------------


def _validate_query(query: Any) -> dict[str, Any]:
    if not isinstance(query, dict):
        raise bad_request("Request body must be a JSON object")
    for key in query:
        if key not in _KEYS:
            raise QueryError("invalid_key", f"Invalid key {key} for this request.")
    if "selector" not in query:
        raise QueryError("missing_required_key", "Missing required key: selector")
    if not isinstance(query["selector"], dict):
        reason = f"Selector must be a JSON object, not: {term(query['selector'])}"
        raise QueryError("invalid_selector_json", reason)
    for key in ("limit", "skip"):
        value = query.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            reason = f"{term(value)} is not an integer greater than or equal to zero"
            raise QueryError("invalid_non_neg_integer", reason)
    r = query.get("r", 1)
    if not isinstance(r, int) or isinstance(r, bool) or r < 1:
        raise QueryError("invalid_pos_integer", f"{term(r)} is not an integer greater than zero")
    fields = query.get("fields", [])
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        reason = f"Fields must be an array of strings, not: {term(fields)}"
        raise QueryError("invalid_fields", reason)
    use_index = query.get("use_index", [])
    if isinstance(use_index, str):
        use_index = [use_index]
    if not isinstance(use_index, list) or not all(isinstance(u, str) for u in use_index):
        raise QueryError("invalid_index_name", f"Invalid index name: {term(query['use_index'])}")
    return query


def _sort_spec(sort: Any) -> tuple[list[str], bool]:
    mango.sort_docs([], sort)  # validates like CouchDB (invalid_sort_*, mixed directions)
    names = [s if isinstance(s, str) else next(iter(s)) for s in sort]
    descending = any(isinstance(s, dict) and next(iter(s.values())) == "desc" for s in sort)
    return names, descending


def _constrained(selector: dict[str, Any]) -> set[str]:
    """Fields the (normalised) selector requires to exist (mango_selector:has_required_fields).

    ``$and`` requires what any child requires, ``$or`` what every child requires; any condition
    but ``$exists: false`` requires its field (``$ne``, ``$nin`` included).
    """
    if len(selector) != 1:
        return set().union(*(_constrained({k: v}) for k, v in selector.items()))
    key, arg = next(iter(selector.items()))
    if key == "$and" and isinstance(arg, list):
        return set().union(*(_constrained(a) for a in arg if isinstance(a, dict)))
    if key == "$or" and isinstance(arg, list):
        parts = [_constrained(a) if isinstance(a, dict) else set() for a in arg]
        return set.intersection(*parts) if parts else set()
    if key.startswith("$"):
        return set()
    if isinstance(arg, dict) and arg == {"$exists": False}:
        return set()
    return {key}


def _choose_index(
    db: Database,
    selector: dict[str, Any],
    sort_fields: list[str],
    use_index: list[str],
    partition: str | None = None,
) -> tuple[Index | None, str | None]:
    candidates = indexes(db)
    if db.partitioned:
        # A partition query uses partitioned indexes only, a global query global ones only.
        candidates = [i for i in candidates if i.partitioned == (partition is not None)]
    available = _constrained(selector) | set(sort_fields)

    constant = {
        field
        for field, condition in (
            (f, c)
            for part in (
                selector.get("$and", [selector]) if set(selector) == {"$and"} else [selector]
            )
            for f, c in part.items()
        )
        if isinstance(condition, dict) and "$eq" in condition
    }

    def usable(index: Index) -> bool:
        columns = [f for f, _ in index.fields]
        if not columns or not all(c in available for c in columns):
            return False
        # mango_idx_view:can_use_sort: leading columns fixed by $eq may precede the sort.
        while sort_fields and columns and columns[0] != sort_fields[0] and columns[0] in constant:
            columns = columns[1:]
        return not sort_fields or columns[: len(sort_fields)] == sort_fields

    warning = None
    if use_index:
        ddoc = use_index[0] if use_index[0].startswith("_design/") else f"_design/{use_index[0]}"
        named = [
            i
            for i in candidates
            if i.ddoc == ddoc and (len(use_index) < 2 or i.name == use_index[1])
        ]
        chosen = [i for i in named if usable(i)]
        if chosen:
            return chosen[0], None
        if len(use_index) > 1:
            warning = (
                f"{ddoc}, {use_index[1]} was not used because it is not a valid index "
                "for this query."
            )
        else:
            warning = (
                f"{ddoc} was not used because it does not contain a valid index for this query."
            )
    for index in candidates:
        if usable(index):
            return index, warning
    return None, warning


def _encode_bookmark(key: Any, doc_id: str) -> str:
    """An opaque token naming the last row of a page: its index key and its doc id.

    CouchDB's bookmark is the same idea (the last ``{key, docid}`` of each shard, as an
    Erlang term in base64); sending it back continues after that row, so a doc written
    before the cursor does not shift the next page (the old offset bookmark repeated a row).
    """
    raw = json.dumps({"k": key, "id": doc_id}, separators=(",", ":")).encode()
    return "g1AAAA" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_bookmark(bookmark: Any) -> tuple[Any, str]:
    """The (key, doc id) of a bookmark; 400 ``invalid_bookmark`` as CouchDB for anything else."""
    bad = QueryError("invalid_bookmark", f"Invalid bookmark value: {json.dumps(bookmark)}")
    if not isinstance(bookmark, str) or not bookmark.startswith("g1AAAA"):
        raise bad
    tail = bookmark[6:]
    try:
        data = json.loads(base64.urlsafe_b64decode(tail + "=" * (-len(tail) % 4)))
    except (ValueError, binascii.Error):
        raise bad from None
    if not isinstance(data, dict) or set(data) != {"k", "id"} or not isinstance(data["id"], str):
        raise bad
    return data["k"], data["id"]


def _row_key(doc: dict[str, Any], paths: list[tuple[str, ...]] | None) -> Any:
    """The index key of a result row: its sort fields' values (None for an _all_docs scan)."""
    if paths is None:
        return None
    return [mango.get_field(doc, path) for path in paths]


def _rank(key: Any, doc_id: str, paths: list[tuple[str, ...]] | None) -> tuple[Any, ...]:
    """The order of rows in the scanned index: index keys by collation, then raw doc ids."""
    if paths is None:
        return (raw_key(doc_id),)
    values = key if isinstance(key, list) else []
    return (*map(mango.collation_key, values), raw_key(doc_id))


def _project(doc: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    if not fields:
        return doc
    out: dict[str, Any] = {}
    for field in fields:
        path = mango.parse_field(field)
        value = mango.get_field(doc, path)
        if value is mango.MISSING or not _plain_path(doc, path):
            continue
        target = out
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
    return out


def _plain_path(doc: Any, path: tuple[str, ...]) -> bool:
    """Projection walks objects only (``results.subject`` on a list gives nothing)."""
    value = doc
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    return True


def _candidates(db: Database, partition: str | None) -> list[dict[str, Any]]:
    docs = []
    for record in db.live_records():
        if record.doc_id.startswith("_design/"):
            continue
        if partition is not None and not record.doc_id.startswith(f"{partition}:"):
            continue
        docs.append((record, record.winner()))
    return [{"__record": r, "__node": n} for r, n in docs]


def find(db: Database, query: Any, *, partition: str | None = None) -> dict[str, Any]:
    """``POST /db/_find`` (``/db/_partition/{partition}/_find`` with ``partition``)."""
    started = time.perf_counter()
    if partition is not None:
        check_partition(db, partition)
    query = _validate_query(query)
    selector = mango.normalize_selector(query["selector"])
    matcher = mango.compile_selector(selector)
    sort = query.get("sort", [])
    sort_fields, descending = _sort_spec(sort) if sort else ([], False)
    use_index = query.get("use_index", [])
    use_index = [use_index] if isinstance(use_index, str) else use_index
    limit = query.get("limit", 25)
    skip = query.get("skip", 0)
    bookmark = query.get("bookmark")
    after = _decode_bookmark(bookmark) if bookmark is not None else None
    with db.lock:
        index, warning = _choose_index(db, selector, sort_fields, use_index, partition)
        if sort_fields and index is None and not _id_sort_ok(selector, sort_fields):
            prefix = "No global index" if partition is None and db.partitioned else "No index"
            reason = f"{prefix} exists for this sort, try indexing by the sort fields."
            raise QueryError("no_usable_index", reason)
        if index is not None and index.fields and empty_range(selector, index.fields[0][0]):
            # CouchDB does not scan an index whose range is unsatisfiable: no bookmark.
            return {"docs": []}
        rows = fast_rows(
            db,
            query,
            index,
            selector=selector,
            matcher=matcher,
            descending=descending,
            partition=partition,
            after=after,
        )
        paths: list[tuple[str, ...]] | None = None
        if index is not None:
            paths = [mango.parse_field(f) for f, _ in index.fields]
        if rows is not None:
            conflicts = bool(query.get("conflicts"))
            page = [_returned(db, record, node, conflicts) for record, node in rows]
            ordered = page  # execution_stats (which needs the whole scan) takes the other way
        else:
            docs, examined = _scan(db, index, matcher, partition, bool(query.get("conflicts")))
            if index is not None:
                ordered = mango.sort_docs(
                    docs, [{f: "desc" if descending else "asc"} for f, _ in index.fields]
                )
            elif sort_fields:
                ordered = sorted(docs, key=lambda d: d["_id"], reverse=descending)
            else:
                ordered = docs
    if rows is None:
        if after is not None:
            reverse = descending and (index is not None or bool(sort_fields))
            ordered = _after_bookmark(ordered, after, paths, reverse)
        page = ordered[skip:][:limit]
    out: dict[str, Any] = {"docs": [_project(d, query.get("fields", [])) for d in page]}
    if selector == {"$or": []}:
        return out
    if page:
        last = page[-1]
        out["bookmark"] = _encode_bookmark(_row_key(last, paths), last["_id"])
    else:
        out["bookmark"] = bookmark if bookmark is not None else "nil"
    if query.get("execution_stats"):
        out["execution_stats"] = {
            "total_keys_examined": examined if index is None else len(ordered),
            "total_docs_examined": examined if index is None else len(ordered),
            "total_quorum_docs_examined": 0,
            "results_returned": len(page),
            "execution_time_ms": round((time.perf_counter() - started) * 1000, 3),
        }
    if index is None:
        out["warning"] = f"{warning}\n{_NO_INDEX}" if warning else _NO_INDEX
    elif warning:
        out["warning"] = warning
    return out


def _scan(
    db: Database,
    index: Index | None,
    matcher: Callable[[Any], bool],
    partition: str | None,
    conflicts: bool,
) -> tuple[list[dict[str, Any]], int]:
    """The matching documents (in id order) and how many documents were examined."""
    # An _all_docs scan reads the design docs too (06/mango-execution-stats).
    examined = 0
    if index is None and partition is None:
        examined = sum(1 for d in db.design_ids if not db.docs[d].winner().deleted)
    docs: list[dict[str, Any]] = []
    for item in _candidates(db, partition):
        record, node = item["__record"], item["__node"]
        doc = db.doc_json(record, node)
        examined += 1
        if index is not None and not _in_index(index, doc):
            continue
        if matcher(doc):
            if conflicts:
                doc = db.decorate(record, node, {"conflicts": True})
            docs.append(doc)
    return docs, examined


def _returned(db: Database, record: DocRecord, node: RevNode, conflicts: bool) -> dict[str, Any]:
    """The copy of a matching revision that ``_find`` returns."""
    if conflicts:
        decorated: dict[str, Any] = db.decorate(record, node, {"conflicts": True})
        return decorated
    return db.doc_json(record, node)


def _after_bookmark(
    ordered: list[dict[str, Any]],
    after: tuple[Any, str],
    paths: list[tuple[str, ...]] | None,
    reverse: bool,
) -> list[dict[str, Any]]:
    """The rows after the bookmarked row (which need not exist any more)."""
    mark = _rank(after[0], after[1], paths)
    return [
        d
        for d in ordered
        if (_rank(_row_key(d, paths), d["_id"], paths) < mark) == reverse
        and _rank(_row_key(d, paths), d["_id"], paths) != mark
    ]


def _id_sort_ok(selector: dict[str, Any], sort_fields: list[str]) -> bool:
    return sort_fields == ["_id"] and "_id" in _constrained(selector)


def _in_index(index: Index, doc: dict[str, Any]) -> bool:
    for field, _ in index.fields:
        if mango.get_field(doc, mango.parse_field(field)) is mango.MISSING:
            return False
    return not index.partial or mango.match(index.partial, doc)


def explain(db: Database, query: Any, *, partition: str | None = None) -> dict[str, Any]:
    """``POST /db/_explain``: which index a query would use, with its options."""
    if partition is not None:
        check_partition(db, partition)
    query = _validate_query(query)
    selector = mango.normalize_selector(query["selector"])
    sort = query.get("sort", [])
    sort_fields, _ = _sort_spec(sort) if sort else ([], False)
    use_index = query.get("use_index", [])
    use_index = [use_index] if isinstance(use_index, str) else use_index
    with db.lock:
        index, _ = _choose_index(db, selector, sort_fields, use_index, partition)
        every = indexes(db)
    fields = query.get("fields", [])
    covering = (
        index is not None
        and bool(fields)
        and set(fields) <= ({f for f, _ in index.fields} | {"_id"})
    )
    return {
        "dbname": db.name,
        "index": index.describe() if index is not None else dict(SPECIAL_INDEX),
        "partitioned": db.partitioned,
        "selector": selector,
        "opts": {
            "use_index": use_index,
            "bookmark": query.get("bookmark", "nil"),
            "limit": query.get("limit", 25),
            "skip": query.get("skip", 0),
            "sort": {f: "asc" for f in sort_fields},
            "fields": query.get("fields", []),
            "partition": partition or "",
            "r": query.get("r", 1),
            "conflicts": bool(query.get("conflicts", False)),
            "stale": False,
            "update": True,
            "stable": False,
            "execution_stats": bool(query.get("execution_stats", False)),
            "allow_fallback": True,
        },
        "limit": query.get("limit", 25),
        "skip": query.get("skip", 0),
        "fields": query.get("fields", []),
        "index_candidates": _index_candidates(index, every, use_index),
        "selector_hints": [
            {
                "type": "json",
                "indexable_fields": sorted(_selector_fields(selector)),
                "unindexable_fields": [],
            }
        ],
        "mrargs": _mrargs(index, selector, sort, covering, partition),
        "covering": covering,
    }


def _selector_fields(selector: dict[str, Any]) -> set[str]:
    """Field names the selector's conditions name (through ``$and``/``$or``...)."""
    out: set[str] = set()
    for field, condition in selector.items():
        if field.startswith("$"):
            for part in condition if isinstance(condition, list) else [condition]:
                if isinstance(part, dict):
                    out |= _selector_fields(part)
        else:
            out.add(field)
    return out


def _index_candidates(
    chosen: Index | None, every: list[Index], use_index: list[str]
) -> list[dict[str, Any]]:
    """The indexes _explain shows as considered but not used, with CouchDB's analysis."""
    if chosen is None:
        return []
    special_reason = "excluded_by_user" if use_index else "field_mismatch"
    out: list[dict[str, Any]] = [
        {
            "index": dict(SPECIAL_INDEX),
            "analysis": {
                "usable": bool(use_index),
                "reasons": [{"name": special_reason}],
                "ranking": 1,
                "covering": None,
            },
        }
    ]
    for other in every:
        if other is chosen or (other.ddoc, other.name) == (chosen.ddoc, chosen.name):
            continue
        out.append(
            {
                "index": other.describe(),
                "analysis": {
                    "usable": False,
                    "reasons": [{"name": "field_mismatch"}],
                    "ranking": 2,
                    "covering": False,
                },
            }
        )
    return out


def _mrargs(
    index: Index | None,
    selector: dict[str, Any],
    sort: Any,
    covering: bool,
    partition: str | None,
) -> dict[str, Any]:
    """The map/reduce arguments of the chosen index's scan, as _explain shows them."""
    descending = bool(sort) and _sort_spec(sort)[1]
    start: Any = None
    end: Any = "<MAX>"
    if index is not None and index.fields:
        first = index.fields[0][0]
        condition = _first_condition(selector, first)
        low: Any = None
        high: Any = "<MAX>"
        for op, value in condition.items():
            if op in ("$eq", "$gt", "$gte"):
                low = value
            if op in ("$eq", "$lt", "$lte"):
                high = value
        start, end = [low], [high]
    if descending:
        start, end = end, start
    return {
        "include_docs": not covering,
        "view_type": "map",
        "reduce": False,
        "partition": partition,
        "start_key": start,
        "end_key": end,
        "direction": "rev" if descending else "fwd",
        "stable": False,
        "update": True,
        "conflicts": "undefined",
    }


def _first_condition(selector: dict[str, Any], field: str) -> dict[str, Any]:
    parts = selector.get("$and", [selector]) if set(selector) == {"$and"} else [selector]
    merged: dict[str, Any] = {}
    for part in parts:
        condition = part.get(field) if isinstance(part, dict) else None
        if isinstance(condition, dict):
            merged.update(condition)
    return merged
