"""``_all_docs``, ``_local_docs``, ``_design_docs`` and ``_changes`` of the memory engine."""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from couchmapper._couch import mango
from couchmapper.exceptions import BackendError, NotFoundError
from couchmapper.memory.engine import js
from couchmapper.memory.engine.errors import bad_request
from couchmapper.memory.engine.options import (
    check_all_docs_keys,
    check_keys_options,
    check_partition,
)
from couchmapper.memory.engine.revs import DocRecord, format_seq, parse_rev, parse_since
from couchmapper.memory.engine.views import map_function

if TYPE_CHECKING:
    from couchmapper.memory.engine.store import Database

__all__ = [
    "all_docs",
    "bulk_get_entry",
    "changes",
    "local_docs",
    "partition_info",
]


def partition_info(db: Database, partition: str) -> dict[str, Any]:
    """``GET /db/_partition/{p}``: counts of one partition."""
    check_partition(db, partition)
    prefix = f"{partition}:"
    with db.lock:
        records = [r for doc_id, r in db.docs.items() if doc_id.startswith(prefix)]
        live = sum(1 for r in records if not r.winner().deleted)
    return {
        "db_name": db.name,
        "sizes": {"active": 72 * live, "external": 15 * live},
        "partition": partition,
        "doc_count": live,
        "doc_del_count": len(records) - live,
    }


def _range(options: dict[str, Any]) -> tuple[Any, Any]:
    """Start and end keys; like CouchDB, a later parameter overrides an earlier one.

    ``?key=a&startkey=b`` is the range b..a, which is empty (04/alldocs-conflicting-options).
    """
    start = end = _NONE
    for name, value in options.items():
        if name == "key":
            start = end = value
        elif name in ("startkey", "start_key"):
            start = value
        elif name in ("endkey", "end_key"):
            end = value
    return start, end


_NONE: Any = object()


def _id_bound(value: Any) -> Any:
    """Map a non-string _all_docs bound onto the id space (ids are all strings)."""
    if value is _NONE or isinstance(value, str):
        return value
    return "" if mango.collate(value, "") < 0 else "\U0010ffff" * 4


def all_docs(db: Database, **options: Any) -> dict[str, Any]:
    """``_all_docs`` (also under ``keys``): rows in raw code point order of the ids."""
    check_all_docs_keys(options)
    prefix = options.pop("_prefix", None)
    partition = options.pop("partition", None)
    if partition is not None:
        prefix = f"{check_partition(db, partition)}:"
    with db.lock:
        records = db.live_records()
        if prefix is not None:
            records = [r for r in records if r.doc_id.startswith(prefix)]
        if options.get("_design_only") is not None:
            want = options.pop("_design_only")
            records = [r for r in records if r.doc_id.startswith("_design/") == want]
        total = len(records)
        keys = options.get("keys")
        if keys is not None:
            rows = _rows_for_keys(db, keys, options)
            offset: int | None = None
        else:
            rows, offset = _rows_for_range(db, records, options)
        out: dict[str, Any] = {"total_rows": total, "offset": offset}
        if options.get("update_seq"):
            out["update_seq"] = format_seq(db.seq)
        out["rows"] = rows
        return out


def _row(db: Database, record: DocRecord, options: dict[str, Any]) -> dict[str, Any]:
    winner = record.winner()
    row: dict[str, Any] = {"id": record.doc_id, "key": record.doc_id}
    row["value"] = {"rev": winner.rev}
    if winner.deleted:
        row["value"]["deleted"] = True
        if options.get("include_docs"):
            row["doc"] = None
        return row
    if options.get("include_docs"):
        doc_options = {k: options[k] for k in ("conflicts", "attachments") if options.get(k)}
        doc_options["att_encoding_info"] = options.get("att_encoding_info")
        row["doc"] = db.decorate(record, winner, doc_options)
    return row


def _key_as_id(key: Any) -> str | None:
    """The doc id a ``keys`` entry names: CouchDB reads a list of strings as its iolist."""
    if isinstance(key, str):
        return key
    if isinstance(key, list) and key:
        parts = [_key_as_id(k) for k in key]
        return None if None in parts else "".join(p for p in parts if p is not None)
    return None


def _rows_for_keys(db: Database, keys: Any, options: dict[str, Any]) -> list[dict[str, Any]]:
    if not isinstance(keys, list):
        raise bad_request("`keys` body member must be an array.")
    ordered = list(reversed(keys)) if options.get("descending") else list(keys)
    rows: list[dict[str, Any]] = []
    for key in ordered:
        doc_id = _key_as_id(key)
        record = None if doc_id is None else db.docs.get(doc_id)
        if record is None:
            rows.append({"key": key, "error": "not_found"})
        else:
            row = _row(db, record, options)
            row["id"] = row["key"] = key  # a list key is echoed as given
            rows.append(row)
    skip = options.get("skip", 0)
    limit = options.get("limit")
    rows = rows[skip:]
    return rows if limit is None else rows[:limit]


def _rows_for_range(
    db: Database, records: list[DocRecord], options: dict[str, Any]
) -> tuple[list[dict[str, Any]], int]:
    ids = [r.doc_id for r in records]
    descending = bool(options.get("descending"))
    inclusive_end = options.get("inclusive_end", True) is not False
    start, end = (_id_bound(v) for v in _range(options))
    if descending:
        ids_view = ids[::-1]
        recs = records[::-1]
        begin = 0 if start is _NONE else len(ids) - bisect.bisect_right(ids, start)
    else:
        ids_view = ids
        recs = records
        begin = 0 if start is _NONE else bisect.bisect_left(ids, start)
    selected: list[DocRecord] = []
    for doc_id, record in zip(ids_view[begin:], recs[begin:], strict=True):
        if end is not _NONE:
            past = doc_id < end if descending else doc_id > end
            if past or (not inclusive_end and doc_id == end):
                break
        selected.append(record)
    skip = options.get("skip", 0)
    limit = options.get("limit")
    offset = min(begin + skip, len(ids))
    selected = selected[skip:]
    if limit is not None:
        selected = selected[:limit]
    return [_row(db, r, options) for r in selected], offset


def local_docs(db: Database, **options: Any) -> dict[str, Any]:
    """``_local_docs``: like ``_all_docs`` over the local documents, without totals."""
    check_keys_options(options)
    with db.lock:
        ids = sorted(db.local)
        if options.get("descending"):
            ids.reverse()
        keys = options.get("keys")
        if keys is not None:
            ids = [k for k in keys if k in db.local]
        rows = []
        for doc_id in ids:
            number, body = db.local[doc_id]
            row: dict[str, Any] = {"id": doc_id, "key": doc_id, "value": {"rev": f"0-{number}"}}
            if options.get("include_docs"):
                row["doc"] = {"_id": doc_id, "_rev": f"0-{number}", **body}
            rows.append(row)
        skip = options.get("skip", 0)
        limit = options.get("limit")
        rows = rows[skip:]
        if limit is not None:
            rows = rows[:limit]
        return {"total_rows": None, "offset": None, "rows": rows}


# -- _changes -------------------------------------------------------------------------


def changes(db: Database, **options: Any) -> dict[str, Any]:
    """The normal ``_changes`` feed: one row per document at its latest change."""
    since_value = options.get("since", 0)
    since = parse_since(since_value)
    style = options.get("style", "main_only")
    if style not in ("main_only", "all_docs"):
        raise BackendError(500, "unknown_error", "badarg")
    with db.lock:
        accept = _changes_filter(db, options)
        if since is None:
            since = db.seq
        records = sorted((r for r in db.docs.values() if r.seq > since), key=lambda r: r.seq)
        changed = len(records)
        if options.get("descending"):
            # A descending feed ignores `since`: every doc is a change, and counts as pending.
            records = sorted(db.docs.values(), key=lambda r: r.seq, reverse=True)
            changed = len(records)
        # CouchDB counts `pending` down for every change it looks at, passing or not. The
        # `_doc_ids` and `_design` filters look only at the docs they name (a fast path by
        # id), so the others stay pending (05/changes-doc-ids-filter, changes-design-filter).
        if _by_id_filter(options):
            records = [r for r in records if accept(r)]
        limit = options.get("limit")
        shown: list[DocRecord] = []
        visited = 0
        for record in records:
            if limit is not None and len(shown) >= limit:
                break
            visited += 1
            if accept(record):
                shown.append(record)
        rows = [_change_row(db, r, options, style) for r in shown]
        cut = visited < len(records)
        if options.get("descending"):
            last = shown[-1].seq if shown else db.seq
        elif cut:
            last = shown[-1].seq if shown else since
        else:
            last = db.seq
        return {
            "results": rows,
            "last_seq": format_seq(last),
            "pending": max(changed - visited, 0),
        }


def _by_id_filter(options: dict[str, Any]) -> bool:
    name = options.get("filter")
    return name in ("_doc_ids", "_design") or (name is None and options.get("doc_ids") is not None)


def _change_row(
    db: Database, record: DocRecord, options: dict[str, Any], style: str
) -> dict[str, Any]:
    winner = record.winner()
    leaves = record.leaves() if style == "all_docs" else [winner]
    row: dict[str, Any] = {
        "seq": format_seq(record.seq),
        "id": record.doc_id,
        "changes": [{"rev": n.rev} for n in leaves],
    }
    if winner.deleted:
        row["deleted"] = True
    if options.get("include_docs"):
        doc_options = {k: options[k] for k in ("conflicts", "attachments") if options.get(k)}
        row["doc"] = db.decorate(record, winner, doc_options)
    return row


def _changes_filter(db: Database, options: dict[str, Any]) -> Callable[[DocRecord], bool]:
    name = options.get("filter")
    doc_ids = options.get("doc_ids")
    if name is None and doc_ids is None:
        return lambda record: True
    if name == "_doc_ids" or (name is None and doc_ids is not None):
        if not isinstance(doc_ids, list) or not all(isinstance(d, str) for d in doc_ids):
            raise bad_request("`doc_ids` filter parameter is not a list of doc ids.")
        wanted = set(doc_ids)
        return lambda record: record.doc_id in wanted
    if name == "_design":
        return lambda record: record.doc_id.startswith("_design/")
    if name == "_selector":
        selector = options.get("selector")
        if not isinstance(selector, dict):
            raise bad_request("Selector must be specified in POST payload")
        compiled = mango.compile_selector(mango.normalize_selector(selector))

        def by_selector(record: DocRecord) -> bool:
            winner = record.winner()
            return compiled(db.doc_json(record, winner))

        return by_selector
    if name == "_view":
        return _view_filter(db, options)
    return _js_filter(db, str(name), options)


def _view_filter(db: Database, options: dict[str, Any]) -> Callable[[DocRecord], bool]:
    view = options.get("view")
    if not isinstance(view, str) or "/" not in view:
        raise bad_request("`view` filter parameter is not provided.")
    ddoc, _, name = view.partition("/")
    runner, index = map_function(db, ddoc, name)

    def by_view(record: DocRecord) -> bool:
        winner = record.winner()
        return bool(runner.map(index, db.doc_json(record, winner)))

    return by_view


def _js_filter(db: Database, name: str, options: dict[str, Any]) -> Callable[[DocRecord], bool]:
    ddoc, _, fname = name.partition("/")
    record = db.docs.get(f"_design/{ddoc}")
    if record is None or record.winner().deleted:
        raise NotFoundError("not_found", "missing")
    body = record.winner().body or {}
    source = (body.get("filters") or {}).get(fname)
    if not isinstance(source, str):
        raise NotFoundError("not_found", f"missing json key: {fname}")
    runner = js.MapRunner()
    index = runner.compile(source)
    query = options.get("query")
    request = {"query": dict(query) if isinstance(query, dict) else {}}

    def by_js(record: DocRecord) -> bool:
        winner = record.winner()
        return runner.filter(index, db.doc_json(record, winner), request)

    return by_js


def bulk_get_entry(db: Database, entry: Any, options: dict[str, Any]) -> dict[str, Any]:
    """One ``_bulk_get`` request entry: its revisions, or CouchDB's error for it."""

    def failure(doc_id: Any, rev: Any, error: str, reason: str) -> dict[str, Any]:
        return {
            "id": doc_id,
            "docs": [{"error": {"id": doc_id, "rev": rev, "error": error, "reason": reason}}],
        }

    if not isinstance(entry, dict) or not entry:
        return failure(None, None, "bad_request", "document must be a JSON object")
    doc_id = entry.get("id")
    rev = entry.get("rev")
    if doc_id is None:
        return failure(None, None, "bad_request", "document id missed")
    try:
        if rev is not None:
            parse_rev(rev)
    except BackendError as exc:
        return failure(doc_id, rev, exc.error, exc.reason)
    record = db.docs.get(doc_id)
    if record is None:
        return failure(doc_id, rev if rev is not None else "undefined", "not_found", "missing")
    if rev is None:
        leaves = record.leaves()
        return {"id": doc_id, "docs": [{"ok": db.decorate(record, n, options)} for n in leaves]}
    node = record.revs.get(rev)
    if node is not None and options.get("latest"):
        node = next(
            (leaf for leaf in record.leaves() if rev in {n.rev for n in record.ancestry(leaf.rev)}),
            node,
        )
    if node is None or node.body is None:
        return failure(doc_id, rev, "not_found", "missing")
    return {"id": doc_id, "docs": [{"ok": db.decorate(record, node, options)}]}
