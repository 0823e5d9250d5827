"""Mango JSON indexes of the memory engine: ``_index`` create, list and delete.

Indexes are design documents (``language: "query"``) exactly as CouchDB stores them, with
CouchDB's generated ddoc ids and names (SHA-1 of the Erlang term of the definition).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from couchmapper._couch import mango
from couchmapper._couch.erlang import ErlAtom, ErlTuple, erlang_term, term_to_binary
from couchmapper.exceptions import BackendError, NotFoundError, QueryError
from couchmapper.memory.engine.errors import bad_request

if TYPE_CHECKING:
    from couchmapper.memory.engine.store import Database

__all__ = [
    "SPECIAL_INDEX",
    "Index",
    "create_index",
    "delete_index",
    "indexes",
    "list_indexes",
    "term",
]


SPECIAL_INDEX = {
    "ddoc": None,
    "name": "_all_docs",
    "type": "special",
    "def": {"fields": [{"_id": "asc"}]},
}


def term(value: Any) -> str:
    return erlang_term(value)


class Index:
    """One JSON index read from a ``language: "query"`` design document."""

    def __init__(self, ddoc: str, name: str, view: dict[str, Any], partitioned: bool) -> None:
        self.ddoc = ddoc
        self.name = name
        mapping = view.get("map") or {}
        self.fields = list((mapping.get("fields") or {}).items())
        self.partial = mapping.get("partial_filter_selector") or {}
        self.definition = (view.get("options") or {}).get("def") or {}
        self.partitioned = partitioned

    def describe(self) -> dict[str, Any]:
        definition: dict[str, Any] = {"fields": [{f: d} for f, d in self.fields]}
        if self.partial:
            definition["partial_filter_selector"] = self.partial
        return {
            "ddoc": self.ddoc,
            "name": self.name,
            "type": "json",
            "partitioned": self.partitioned,
            "def": definition,
        }


def indexes(db: Database) -> list[Index]:
    found = []
    for doc_id in sorted(db.design_ids):  # not every doc: a query stays O(log n)
        node = db.docs[doc_id].winner()
        body = node.body or {}
        if node.deleted or body.get("language") != "query":
            continue
        partitioned = bool((body.get("options") or {}).get("partitioned", db.partitioned))
        for name, view in sorted((body.get("views") or {}).items()):
            if isinstance(view, dict) and isinstance(view.get("map"), dict):
                found.append(Index(doc_id, name, view, partitioned))
    return found


# -- _index ---------------------------------------------------------------------------


def _validate_fields(fields: Any) -> list[tuple[str, str]]:
    if not isinstance(fields, list):
        reason = f"Sort must be an array of sort specs, not: {erlang_term(fields, pretty=True)}"
        raise QueryError("invalid_sort_json", reason)
    out = []
    for spec in fields:
        if isinstance(spec, str):
            out.append((spec, "asc"))
        elif isinstance(spec, dict) and len(spec) == 1:
            name, direction = next(iter(spec.items()))
            if direction not in ("asc", "desc"):
                reason = f"Invalid sort field: {erlang_term(spec, pretty=True)}"
                raise QueryError("invalid_sort_field", reason)
            out.append((name, direction))
        else:
            reason = f"Invalid sort field: {erlang_term(spec, pretty=True)}"
            raise QueryError("invalid_sort_field", reason)
    return out


def create_index(db: Database, body: Any) -> dict[str, Any]:
    """``POST /db/_index``: store the index as a design document; created or exists."""
    if not isinstance(body, dict):
        raise bad_request("Request body must be a JSON object")
    if "index" not in body:
        raise QueryError("missing_required_key", "Missing required key: index")
    index = body["index"]
    if not isinstance(index, dict) or "fields" not in index:
        raise QueryError("missing_required_key", "Missing required key: fields")
    kind = body.get("type", "json")
    if kind == "text":
        raise BackendError(503, "required index service unavailable", "text")
    if kind != "json":
        raise QueryError("invalid_index", f"Invalid type for index: {kind}")
    fields = _validate_fields(index["fields"])
    for key in ("name", "ddoc"):
        if key in body and not isinstance(body[key], str):
            raise QueryError("invalid_string", f"Invalid string: {term(body[key])}")
    partial = index.get("partial_filter_selector") or {}
    if partial:
        partial = mango.normalize_selector(partial)
    partitioned = body.get("partitioned", db.partitioned)
    if partitioned and not db.partitioned:
        reason = "Unknown error while saving the design document: invalid_design_doc"
        raise BackendError(500, "error_saving_ddoc", reason)
    definition = {"fields": index["fields"]}
    if partial:
        definition["partial_filter_selector"] = index.get("partial_filter_selector")
    digest = _auto_name(body)
    name = body.get("name", digest)
    ddoc = body.get("ddoc", digest)
    ddoc_id = ddoc if ddoc.startswith("_design/") else f"_design/{ddoc}"
    view = {
        "map": {"fields": dict(fields), "partial_filter_selector": partial},
        "reduce": "_count",
        "options": {"def": definition},
    }
    with db.lock:
        record = db.docs.get(ddoc_id)
        existing: dict[str, Any] = {}
        rev = None
        if record is not None and not record.winner().deleted:
            existing = db.doc_json(record, record.winner())
            rev = existing["_rev"]
            if (existing.get("views") or {}).get(name) == view:
                return {"result": "exists", "id": ddoc_id, "name": name}
        doc = {k: v for k, v in existing.items() if k != "_id"}
        doc["language"] = "query"
        doc.setdefault("views", {})[name] = view
        if partitioned != db.partitioned:
            doc.setdefault("options", {})["partitioned"] = partitioned
        if rev:
            doc["_rev"] = rev
        db.put(doc, ddoc_id)
    return {"result": "created", "id": ddoc_id, "name": name}


def _auto_name(body: dict[str, Any]) -> str:
    """CouchDB's generated index/ddoc name: sha1 of ``term_to_binary({Def, usort(Opts)})``.

    ``Opts`` are mango_opts' validated ``_index`` options with their defaults (``auto_name``,
    ``db_default``, ``w: 2``), so the same request gets the same name as on CouchDB 3.5.
    """

    def given(key: str, default: Any) -> Any:
        return body.get(key, default)

    opts = [
        ErlTuple((ErlAtom("ddoc"), given("ddoc", ErlAtom("auto_name")))),
        ErlTuple((ErlAtom("def"), body["index"])),
        ErlTuple((ErlAtom("name"), given("name", ErlAtom("auto_name")))),
        ErlTuple((ErlAtom("partitioned"), given("partitioned", ErlAtom("db_default")))),
        ErlTuple((ErlAtom("type"), given("type", "json"))),
        ErlTuple((ErlAtom("w"), given("w", 2))),
    ]
    definition = ErlTuple((body["index"], opts))
    return hashlib.sha1(term_to_binary(definition)).hexdigest()


def list_indexes(db: Database) -> dict[str, Any]:
    """``GET /db/_index``: the special ``_all_docs`` index, then every JSON index."""
    with db.lock:
        found = [dict(SPECIAL_INDEX)] + [i.describe() for i in indexes(db)]
    return {"total_rows": len(found), "indexes": found}


def delete_index(db: Database, ddoc: str, name: str) -> dict[str, Any]:
    """``DELETE /db/_index/{ddoc}/json/{name}``."""
    ddoc_id = ddoc if ddoc.startswith("_design/") else f"_design/{ddoc}"
    with db.lock:
        record = db.docs.get(ddoc_id)
        if record is None or record.winner().deleted:
            raise NotFoundError("not_found", "missing")
        doc = db.doc_json(record, record.winner())
        views = doc.get("views") or {}
        if name not in views or doc.get("language") != "query":
            raise NotFoundError("not_found", "missing")
        del views[name]
        if views:
            db.put({k: v for k, v in doc.items() if k != "_id"}, ddoc_id)
        else:
            db.delete(ddoc_id, doc["_rev"])
    return {"ok": True}
