"""Conformance: every case runs through the Backend protocol on memory and on the real server.

Each case is a function that drives one fresh database through :class:`Backend` methods via a
:class:`Run`, which records every outcome (the result, or the exception's class, status, error
and reason), normalised so that values the server chooses (rev hashes, seqs, generated ids,
bookmarks, sizes, timestamps) compare by shape only. The test runs the case on a fresh
``MemoryBackend`` and on ``CouchDBBackend`` against the test server and compares the two
recordings step by step. A difference is a bug in the memory backend.

Where pouchdb-server 4.2.0 (the pinned dev server) is documented to deviate from CouchDB 3.5
(tests/transcripts/README.md, "Differences between the servers"), the step carries
``pouchdb="<transcript case>: ..."`` and ``expect=`` CouchDB's answer: the memory backend (and a
real CouchDB, with ``COUCHDB_URL``) must give ``expect``; pouchdb-server's answer is not compared.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest

from couchmapper.backends.base import Backend
from couchmapper.backends.couchdb import CouchDBServer
from couchmapper.backends.memory import MemoryServer
from couchmapper.exceptions import BackendError

NOTHING: Any = object()
ANY = "<any>"

_REV = re.compile(r"^(\d+)-[0-9a-f]{32}$")
_UUID = re.compile(r"^([0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
_SEQ = re.compile(r"^\d+-\S*$")
_SEQ_KEYS = frozenset({"seq", "last_seq", "update_seq", "purge_seq"})
_SERVER_CHOSEN = frozenset(
    {"bookmark", "instance_start_time", "sizes", "execution_time_ms", "signature", "uuid"}
)
# Keys whose 32-hex (or UUID v4) values are ids a server may generate.
_ID_KEYS = frozenset({"id", "_id", "key", "uuids"})
SEQ = "<seq>"
INT_SEQ = "<integer seq>"


def norm(value: Any, key: str = "") -> Any:
    """Replace server-chosen values by placeholders: revs by ``<rev N>``, ids by ``<uuid>``.

    Seqs keep their shape: CouchDB's ``"<N>-..."`` strings become ``<seq>``, integers (pouchdb)
    ``<integer seq>``, anything else stays as it is and so mismatches. Numbers keep their type
    (see :func:`same`).
    """
    if key in _SEQ_KEYS:
        if isinstance(value, str) and _SEQ.match(value):
            return SEQ
        if isinstance(value, int) and not isinstance(value, bool):
            return INT_SEQ
        return value
    if key in _SERVER_CHOSEN:
        return ANY if value is not None else None
    if isinstance(value, dict):
        return {k: norm(v, k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [norm(v, key if key == "uuids" else "") for v in value]
    if isinstance(value, str):
        found = _REV.match(value)
        if found:
            return f"<rev {found.group(1)}>"
        if key in _ID_KEYS and _UUID.match(value):
            return "<uuid>"
    return value


def same(a: Any, b: Any) -> bool:
    """JSON-strict equality: ``1``, ``1.0`` and ``True`` are three different answers."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@dataclass
class Record:
    """One step's normalised outcome, with its documented pouchdb deviation and expectation."""

    label: str
    outcome: Any
    pouchdb: str | None = None
    expect: Any = NOTHING
    racing: tuple[str, Any] | None = None  # (why, another answer CouchDB may give)


@dataclass
class Run:
    """Drives one backend through a case and records every outcome."""

    db: Backend
    kind: str  # "memory", "pouchdb" or "couchdb"
    records: list[Record] = field(default_factory=list)

    def call(
        self,
        label: str,
        fn: Callable[[], Any],
        *,
        view: Callable[[Any], Any] | None = None,
        pouchdb: str | None = None,
        expect: Any = NOTHING,
        racing: tuple[str, Any] | None = None,
    ) -> Any:
        """Run ``fn``; record ``view(result)`` normalised (or the error). Returns the result.

        ``racing=(why, answer)`` names a second answer CouchDB gives when a step races
        its own background work; the server's outcome may be either, memory's is ``expect``.
        """
        assert pouchdb is None or expect is not NOTHING, "a pouchdb deviation needs expect="
        assert racing is None or expect is not NOTHING, "a racing answer needs expect="
        try:
            result = fn()
        except BackendError as exc:
            outcome: Any = {
                "raised": type(exc).__name__,
                "status": exc.status,
                "error": exc.error,
                "reason": exc.reason,
            }
            self.records.append(Record(label, outcome, pouchdb, expect, racing))
            return None
        try:
            shown = view(result) if view is not None else result
        except (KeyError, IndexError, TypeError) as exc:  # the answer lacks what view reads
            shown = {"unexpected answer": repr(exc)}
        self.records.append(Record(label, norm(shown), pouchdb, expect, racing))
        return result


def err(raised: str, status: int, error: str, reason: str) -> dict[str, Any]:
    """The recorded outcome of an error."""
    return {"raised": raised, "status": status, "error": error, "reason": reason}


def rows(result: JSONish) -> list[Any]:
    """The rows of an _all_docs or view answer."""
    return list(result["rows"])


JSONish = Any
CASES: dict[str, Callable[[Run], None]] = {}


def case(fn: Callable[[Run], None]) -> Callable[[Run], None]:
    """Register a conformance case under its function name."""
    CASES[fn.__name__.removeprefix("case_")] = fn
    return fn


def ids_of(result: JSONish) -> list[Any]:
    """The ids of an _all_docs/view answer's rows."""
    return [r.get("id") for r in result["rows"]]


def doc_ids(result: JSONish) -> list[Any]:
    """The ids of a _find answer's docs."""
    return [d.get("_id") for d in result["docs"]]


def seed(run: Run, docs: list[dict[str, Any]]) -> None:
    """Write ``docs`` in one _bulk_docs (recorded)."""
    run.call("seed", lambda: run.db.bulk_docs(docs))


# --------------------------------------------------------------------------- CRUD, revs


@case
def case_crud(run: Run) -> None:
    db = run.db
    created = run.call("put new", lambda: db.put({"_id": "a", "v": 1}))
    run.call("get", lambda: db.get("a"))
    rev1 = created["rev"]
    updated = run.call("update", lambda: db.put({"_id": "a", "_rev": rev1, "v": 2}))
    run.call("get updated", lambda: db.get("a"))
    run.call("get old rev", lambda: db.get("a", rev=rev1))
    run.call("get revs", lambda: db.get("a", revs=True), view=lambda d: d["_revisions"]["start"])
    run.call("stale update", lambda: db.put({"_id": "a", "_rev": rev1, "v": 3}))
    run.call("update without rev", lambda: db.put({"_id": "a", "v": 3}))
    run.call("missing", lambda: db.get("nope"))
    run.call("delete", lambda: db.delete("a", updated["rev"]))
    run.call("info counts", db.info, view=lambda i: i["doc_count"])


@case
def case_rev_hash_is_deterministic(run: Run) -> None:
    db = run.db
    run.call(
        "v1 rev",
        lambda: db.put({"_id": "x", "v": 1}),
        view=lambda r: r["rev"] == "1-7a7e4b29f3af401e69b6f86e4c26b727",
        pouchdb="01/db-info-counts [1-3]: pouchdb revs depend on the id",
        expect=True,
    )
    run.call(
        "empty rev",
        lambda: db.put({"_id": "y"}),
        view=lambda r: r["rev"] == "1-967a00dff5e02add41819138abb3284d",
        pouchdb="01/db-info-counts [1-3]: pouchdb revs depend on the id",
        expect=True,
    )


@case
def case_bad_revs(run: Run) -> None:
    db = run.db
    created = run.call("put", lambda: db.put({"_id": "a", "v": 1}))
    conflict = err("ConflictError", 409, "conflict", "Document update conflict.")
    for bogus in ("1-", "0-abc", "1-" + "0" * 32, "2-" + "f" * 32):
        run.call(
            f"unknown rev {bogus}",
            partial(db.put, {"_id": "a", "_rev": bogus, "v": 2}),
            pouchdb="02/doc-bogus-revs: reason without the period",
            expect=conflict,
        )
    for bogus in ("abc", "x-abc"):
        run.call(f"malformed rev {bogus}", partial(db.put, {"_id": "a", "_rev": bogus}))
    run.call(
        "rev on a missing doc",
        lambda: db.put({"_id": "new", "_rev": created["rev"], "v": 1}),
        pouchdb="02/doc-put-rev-on-missing-doc: reason without the period",
        expect=conflict,
    )
    run.call(
        "get bogus rev",
        lambda: db.get("a", rev="bogus"),
        pouchdb="02/doc-get-with-rev [6]: pouchdb answers 404 missing",
        expect=err("BackendError", 400, "bad_request", "Invalid rev format"),
    )
    run.call("get unknown rev", lambda: db.get("a", rev="9-" + "a" * 32))


@case
def case_conflicts(run: Run) -> None:
    db = run.db
    run.call(
        "replicate two branches",
        lambda: db.bulk_docs(
            [
                {"_id": "c", "_rev": "1-aaa", "v": "a"},
                {"_id": "c", "_rev": "1-bbb", "v": "b"},
                {"_id": "c", "_rev": "2-ccc", "_revisions": {"start": 2, "ids": ["ccc", "aaa"]}},
            ],
            new_edits=False,
        ),
    )
    run.call("winner", lambda: db.get("c", conflicts=True))
    run.call("open rev", lambda: db.get("c", rev="1-bbb"))
    run.call("delete loser", lambda: db.delete("c", "1-bbb"), view=lambda r: r["ok"])
    run.call("no more conflicts", lambda: db.get("c", conflicts=True))
    run.call(
        "deleted tombstone loses to live",
        lambda: db.bulk_docs(
            [
                {"_id": "w", "_rev": "1-aaa", "x": 1},
                {"_id": "w", "_rev": "3-zzz", "_deleted": True},
            ],
            new_edits=False,
        ),
    )
    run.call("live leaf wins", lambda: db.get("w"))


@case
def case_bulk_refused_beside_another_leaf(run: Run) -> None:
    """One request: a 409 for a stale update of a document, then a deletion of its loser.

    A stored-conflict resolution sends exactly this when another writer moved the winner on.
    """
    db = run.db
    run.call(
        "two branches",
        lambda: db.bulk_docs(
            [
                {"_id": "d", "_rev": "1-aaa", "n": 1},
                {"_id": "d", "_rev": "2-eee", "_revisions": {"start": 2, "ids": ["eee", "aaa"]}},
                {"_id": "d", "_rev": "2-bbb", "_revisions": {"start": 2, "ids": ["bbb", "aaa"]}},
            ],
            new_edits=False,
        ),
    )
    run.call("winner moved on", lambda: db.bulk_docs([{"_id": "d", "_rev": "2-eee", "n": 5}]))
    run.call(
        "stale update, loser deleted",
        lambda: db.bulk_docs(
            [{"_id": "d", "_rev": "2-eee", "n": 7}, {"_id": "d", "_rev": "2-bbb", "_deleted": True}]
        ),
        view=lambda r: [row.get("error", "ok") for row in r],
    )
    why = (
        "conformance bulk_refused_beside_another_leaf: pouchdb keeps the refused update as a"
        " leaf without a body; it wins, so GET answers 404 missing and open_revs lists it missing"
    )
    run.call(
        "winner after",
        lambda: db.get("d", conflicts=True),
        view=lambda r: {"n": r["n"], "conflicts": r.get("_conflicts", [])},
        pouchdb=why,
        expect={"n": 5, "conflicts": []},
    )
    run.call(
        "leaves after",
        lambda: db.get("d", open_revs="all"),
        view=lambda r: sorted(
            "missing" if "missing" in row else "deleted" if row["ok"].get("_deleted") else "live"
            for row in r
        ),
        pouchdb=why,
        expect=["deleted", "live"],
    )


@case
def case_delete_and_recreate(run: Run) -> None:
    db = run.db
    rev1 = run.call("put", lambda: db.put({"_id": "d", "v": 1}))["rev"]
    rev2 = run.call("delete", lambda: db.delete("d", rev1))["rev"]
    deleted = err("DocumentNotFound", 404, "not_found", "deleted")
    run.call(
        "get deleted",
        lambda: db.get("d"),
        pouchdb="02/doc-get-deleted [3]: pouchdb says missing",
        expect=deleted,
    )
    run.call("get tombstone rev", lambda: db.get("d", rev=rev2))
    run.call(
        "delete again",
        lambda: db.delete("d", rev2),
        pouchdb="02/doc-delete-twice [3]: pouchdb writes another tombstone",
        expect=deleted,
    )
    run.call(
        "update naming the tombstone",
        lambda: db.put({"_id": "d", "_rev": rev2, "v": 9}),
        pouchdb="02/doc-recreate-with-old-rev [4]: pouchdb revives the doc",
        expect=err("ConflictError", 409, "conflict", "Document update conflict."),
    )
    run.call(
        "recreate without rev",
        lambda: db.put({"_id": "d", "v": 2}),
        view=lambda r: r["rev"],
        pouchdb="02/doc-recreate-with-old-rev [4]: the doc is live on pouchdb, so 409",
        expect="<rev 3>",
    )
    run.call("info", db.info, view=lambda i: i["doc_count"])
    run.call("all_docs", db.all_docs, view=ids_of)


@case
def case_delete_via_put_and_bulk(run: Run) -> None:
    db = run.db
    rev1 = run.call("put", lambda: db.put({"_id": "p", "v": 1}))["rev"]
    run.call("put _deleted", lambda: db.put({"_id": "p", "_rev": rev1, "_deleted": True}))
    rev = run.call("put q", lambda: db.put({"_id": "q"}))["rev"]
    run.call("bulk delete", lambda: db.bulk_docs([{"_id": "q", "_rev": rev, "_deleted": True}]))
    run.call("changes deleted", db.changes, view=_changes_set)
    run.call(
        "all_docs keys of deleted",
        lambda: db.all_docs(keys=["p", "q", "zz"]),
        view=rows,
        pouchdb="04/alldocs-keys-*: pouchdb adds doc: null to deleted rows",
        expect=[
            {"id": "p", "key": "p", "value": {"rev": "<rev 2>", "deleted": True}},
            {"id": "q", "key": "q", "value": {"rev": "<rev 2>", "deleted": True}},
            {"key": "zz", "error": "not_found"},
        ],
    )


# --------------------------------------------------------------------------- bad input


@case
def case_bad_ids(run: Run) -> None:
    db = run.db
    for bad in ("_foo", "_design", "_designx"):
        run.call(
            f"put id {bad}",
            partial(db.put, {"_id": bad}),
            pouchdb="02/doc-id-underscore [1-5]: error bad_request (or 201 for _design*)",
            expect=err(
                "BackendError",
                400,
                "illegal_docid",
                "Only reserved document ids may start with underscore.",
            ),
        )
    run.call(
        "bulk id _foo",
        lambda: db.bulk_docs([{"_id": "_foo"}, {"_id": "ok"}]),
        pouchdb="03/bulk-per-doc-errors [2]: error bad_request",
        expect=err(
            "BackendError",
            400,
            "illegal_docid",
            "Only reserved document ids may start with underscore.",
        ),
    )
    run.call("design id ok", lambda: db.put({"_id": "_design/x"}), view=lambda r: r["ok"])
    run.call("local id ok", lambda: db.put({"_id": "_local/x"}), view=lambda r: r["ok"])
    run.call(
        "bad special member",
        lambda: db.put({"_id": "m", "_foo": 1}),
        pouchdb="02/doc-underscore-fields [1]: pouchdb answers 500",
        expect=err("BackendError", 400, "doc_validation", "Bad special document member: _foo"),
    )
    run.call(
        "nothing stored",
        db.all_docs,
        view=ids_of,
        pouchdb="02/doc-id-underscore [4-7]: pouchdb stored _design and _designx",
        expect=["_design/x"],
    )


@case
def case_bad_values(run: Run) -> None:
    db = run.db
    run.call(
        "huge integer kept",
        lambda: (db.put({"_id": "big", "n": 2**64 + 1}), db.get("big")["n"])[1],
        pouchdb="02/doc-huge-integers: pouchdb rounds to a JS double",
        expect=2**64 + 1,
    )
    run.call("float kept", lambda: (db.put({"_id": "f", "n": 1.5}), db.get("f")["n"])[1])
    run.call("nested", lambda: (db.put({"_id": "n", "a": {"b": [1, None]}}), db.get("n"))[1])
    run.call(
        "deleted flag must be bool",
        lambda: db.bulk_docs([{"_id": "z", "_deleted": "yes"}]),
        pouchdb="03/bulk-update-deleted-flag-types: pouchdb deletes the doc",
        expect=err("BackendError", 400, "doc_validation", "Bad special document member: _deleted"),
    )


# --------------------------------------------------------------------------- _bulk_docs


@case
def case_bulk_mixed(run: Run) -> None:
    db = run.db
    first = run.call("create", lambda: db.bulk_docs([{"_id": "a"}, {"_id": "b", "v": 1}]))
    rev_b = first[1]["rev"]
    run.call(
        "mixed",
        lambda: db.bulk_docs(
            [
                {"_id": "a", "v": 2},
                {"_id": "b", "_rev": rev_b, "v": 2},
                {"_id": "c"},
                {"_id": "b", "_rev": rev_b, "v": 3},
            ]
        ),
        pouchdb="03/bulk-mixed, bulk-duplicate-ids-update: no period; pouchdb stores the dup",
        expect=[
            {"id": "a", "error": "conflict", "reason": "Document update conflict."},
            {"ok": True, "id": "b", "rev": "<rev 2>"},
            {"ok": True, "id": "c", "rev": "<rev 1>"},
            {"id": "b", "error": "conflict", "reason": "Document update conflict."},
        ],
    )
    run.call(
        "b",
        lambda: db.get("b", conflicts=True),
        pouchdb="03/bulk-duplicate-ids-update [3]: pouchdb stored the rejected edit",
        expect={"_id": "b", "_rev": "<rev 2>", "v": 2},
    )
    run.call("generated ids", lambda: db.bulk_docs([{"v": 1}]), view=lambda r: r[0]["ok"])


@case
def case_bulk_new_edits_false(run: Run) -> None:
    db = run.db
    docs = [
        {"_id": "r", "_rev": "1-abc", "v": 1},
        {"_id": "r", "_rev": "2-def", "_revisions": {"start": 2, "ids": ["def", "abc"]}, "v": 2},
        {"_id": "s", "_rev": "5-xyz", "v": 5},
    ]
    run.call("replicate", lambda: db.bulk_docs(docs, new_edits=False))
    run.call("again is a no-op", lambda: db.bulk_docs(docs, new_edits=False))
    run.call("r", lambda: db.get("r", revs=True))
    run.call("s", lambda: db.get("s"))
    run.call("put new_edits false", lambda: db.put({"_id": "t", "_rev": "3-aaa"}, new_edits=False))
    run.call("t", lambda: db.get("t"))


@case
def case_bulk_delete_and_revive(run: Run) -> None:
    db = run.db
    rev = run.call("create", lambda: db.put({"_id": "a"}))["rev"]
    deleted = run.call(
        "bulk delete", lambda: db.bulk_docs([{"_id": "a", "_rev": rev, "_deleted": True}])
    )
    tomb = deleted[0]["rev"]
    run.call(
        "revive naming the tombstone",
        lambda: db.bulk_docs([{"_id": "a", "_rev": tomb, "v": 1}]),
        pouchdb="03/bulk-revive-deleted [3]: pouchdb revives",
        expect=[{"id": "a", "error": "conflict", "reason": "Document update conflict."}],
    )
    run.call(
        "revive without rev",
        lambda: db.bulk_docs([{"_id": "a", "v": 2}]),
        pouchdb="03/bulk-revive-deleted [3]: the doc is live on pouchdb",
        expect=[{"ok": True, "id": "a", "rev": "<rev 3>"}],
    )


# --------------------------------------------------------------------------- _all_docs


_ALL_IDS = ["a", "b", "c", "d", "e", "B", "_design/x", "é", "10", "2"]


def _seed_all(run: Run) -> None:
    seed(run, [{"_id": i, "n": n} for n, i in enumerate(_ALL_IDS)])


@case
def case_all_docs_options(run: Run) -> None:
    db = run.db
    _seed_all(run)
    run.call("plain order", db.all_docs, view=ids_of)
    run.call("total_rows", db.all_docs, view=lambda r: r["total_rows"])
    run.call("range", lambda: db.all_docs(startkey="b", endkey="d"), view=ids_of)
    run.call(
        "exclusive end",
        lambda: db.all_docs(startkey="b", endkey="d", inclusive_end=False),
        view=ids_of,
    )
    run.call(
        "descending", lambda: db.all_docs(descending=True, startkey="d", endkey="b"), view=ids_of
    )
    run.call("limit skip", lambda: db.all_docs(limit=2, skip=1), view=ids_of)
    run.call("key", lambda: db.all_docs(key="c"), view=rows)
    run.call("include_docs", lambda: db.all_docs(include_docs=True, limit=2), view=rows)
    run.call("keys", lambda: db.all_docs(keys=["c", "nope", "a"]), view=rows)
    run.call(
        "offset",
        lambda: db.all_docs(startkey="c"),
        view=lambda r: r["offset"],
        pouchdb="04/alldocs-startkey-endkey: pouchdb offset is always 0",
        expect=6,
    )
    run.call(
        "reversed range",
        lambda: db.all_docs(startkey="d", endkey="b"),
        view=rows,
    )
    run.call(
        "update_seq",
        lambda: db.all_docs(update_seq=True, limit=0),
        view=sorted,
        pouchdb="04/alldocs-update-seq: pouchdb gives an integer (shape same)",
        expect=["offset", "rows", "total_rows", "update_seq"],
    )


@case
def case_all_docs_bad_params(run: Run) -> None:
    db = run.db
    _seed_all(run)
    run.call(
        "limit -1",
        lambda: db.all_docs(limit=-1),
        pouchdb="04/alldocs-bad-params: pouchdb answers 200",
        expect=err(
            "QueryError",
            400,
            "query_parse_error",
            'Invalid value for positive integer: "-1"',
        ),
    )


# --------------------------------------------------------------------------- _changes


def _changes_set(result: JSONish) -> list[Any]:
    """_changes rows without seqs, sorted by id (shard order is not stable)."""
    out = []
    for row in result["results"]:
        item = {k: v for k, v in row.items() if k != "seq"}
        out.append(item)
    return sorted(out, key=lambda r: json.dumps(r, sort_keys=True))


@case
def case_changes(run: Run) -> None:
    db = run.db
    seed(run, [{"_id": "a", "v": 1}, {"_id": "b", "v": 2}, {"_id": "c", "v": 3}])
    rev = db.get("a")["_rev"]
    run.call("delete a", lambda: db.delete("a", rev))
    run.call("all", db.changes, view=_changes_set)
    run.call("include_docs", lambda: db.changes(include_docs=True), view=_changes_set)
    run.call("limit count", lambda: db.changes(limit=2), view=lambda r: len(r["results"]))
    run.call(
        "limit 0",
        lambda: db.changes(limit=0),
        view=lambda r: (r["results"], r["pending"]),
        pouchdb="05/changes-limit [5]: pouchdb gives one row and no pending",
        expect=[[], 3],
    )
    since = run.call("since now seq", db.changes, view=lambda r: "ok")["last_seq"]
    run.call("since last_seq", lambda: db.changes(since=since), view=_changes_set)
    run.call(
        "doc_ids",
        lambda: db.changes(doc_ids=["b", "zz"]),
        view=_changes_set,
    )
    run.call(
        "bad since",
        lambda: db.changes(since="abc"),
        pouchdb="05/changes-bad-params [4]: pouchdb answers 200",
        expect=err(
            "QueryError",
            400,
            "bad_request",
            "Malformed sequence supplied in 'since' parameter.",
        ),
    )


# --------------------------------------------------------------------------- Mango

_PEOPLE = [
    {"_id": "alice", "name": "Alice", "age": 31, "tags": ["a", "b"], "city": "Oslo", "n": 1},
    {"_id": "bob", "name": "Bob", "age": 25, "tags": ["b"], "city": "Rome", "n": 2},
    {"_id": "carol", "name": "carol", "age": 42, "tags": [], "city": None, "n": 3},
    {"_id": "dave", "name": "Dave", "age": 25, "address": {"zip": "0150"}, "n": 4},
    {"_id": "eve", "name": "Eve", "age": 19.5, "tags": ["c"], "city": "Oslo", "n": 5},
]


def _seed_people(run: Run) -> None:
    seed(run, [dict(p) for p in _PEOPLE])


def _find_ids(run: Run, label: str, selector: dict[str, Any], **extra: Any) -> None:
    run.call(label, lambda: run.db.find({"selector": selector, **extra}), view=doc_ids)


_SELECTORS: dict[str, dict[str, Any]] = {
    "eq": {"city": "Oslo"},
    "gt": {"age": {"$gt": 25}},
    "gte lte": {"age": {"$gte": 25, "$lte": 31}},
    "in": {"age": {"$in": [25, 42]}},
    "nin": {"age": {"$nin": [25, 42]}},
    "exists": {"address": {"$exists": True}},
    "not exists": {"tags": {"$exists": False}},
    "type": {"age": {"$type": "number"}},
    "type null": {"city": {"$type": "null"}},
    "size": {"tags": {"$size": 1}},
    "mod": {"n": {"$mod": [2, 1]}},
    "regex": {"name": {"$regex": "^[A-C]"}},
    "all": {"tags": {"$all": ["a", "b"]}},
    "elemMatch": {"tags": {"$elemMatch": {"$eq": "b"}}},
    "allMatch": {"tags": {"$allMatch": {"$in": ["a", "b"]}}},
    "and": {"$and": [{"age": {"$gt": 20}}, {"city": "Oslo"}]},
    "or": {"$or": [{"age": 42}, {"city": "Rome"}]},
    "nor": {"$nor": [{"age": 25}, {"city": "Oslo"}]},
    "not": {"$not": {"age": 25}},
    "nested dot": {"address.zip": "0150"},
    "empty": {},
    "id range": {"_id": {"$gt": "bob"}},
}
# pouchdb-find 7.3.1 deviations (06/*): selectors whose answer CouchDB gives differently.
_SELECTORS_POUCHDB: dict[str, tuple[dict[str, Any], list[str], str]] = {
    "nin null field": (
        {"city": {"$nin": ["Oslo"]}},
        ["bob", "carol"],
        "06/mango-in-nin [4]: pouchdb does not match a field that is null",
    ),
    "string range icu": (
        {"name": {"$gt": "b"}},
        ["bob", "carol", "dave", "eve"],
        "06/mango-string-range-collation: pouchdb compares code points",
    ),
    "beginsWith": (
        {"name": {"$beginsWith": "Da"}},
        ["dave"],
        "06/mango-begins-with [2]: pouchdb has no $beginsWith",
    ),
    "keyMapMatch": (
        {"address": {"$keyMapMatch": {"$eq": "zip"}}},
        ["dave"],
        "06/mango-key-map-match [2]: pouchdb has no $keyMapMatch",
    ),
    "all empty": (
        {"tags": {"$all": []}},
        [],
        "06/mango-all [3]: pouchdb matches every doc with an array",
    ),
    "ne": (
        {"city": {"$ne": "Oslo"}},
        ["bob", "carol"],
        "06/mango-ne: CouchDB needs the field to exist; pouchdb-find also matches dave",
    ),
    "lt string": (
        {"name": {"$lt": "Dave"}},
        ["alice", "bob", "carol"],
        "06/mango-string-range-collation: pouchdb compares code points (carol > Dave)",
    ),
    "nested object": (
        {"address": {"zip": {"$eq": "0150"}}},
        ["dave"],
        "06/mango-nested-fields [3]: pouchdb crashes on docs without address (JS text)",
    ),
    "regex pcre flag": (
        {"name": {"$regex": "(?i)^c"}},
        ["carol"],
        "06/mango-regex [3]: pouchdb has no PCRE flags",
    ),
}


@case
def case_mango_operators(run: Run) -> None:
    _seed_people(run)
    for label, selector in _SELECTORS.items():
        _find_ids(run, label, selector)
    for label, (selector, expected, why) in _SELECTORS_POUCHDB.items():
        run.call(
            label,
            partial(run.db.find, {"selector": selector}),
            view=doc_ids,
            pouchdb=why,
            expect=expected,
        )


@case
def case_mango_fields_limit_skip(run: Run) -> None:
    _seed_people(run)
    db = run.db
    run.call(
        "fields",
        lambda: db.find({"selector": {"age": {"$gt": 20}}, "fields": ["_id", "name", "nope"]}),
        view=lambda r: r["docs"],
    )
    run.call(
        "limit skip",
        lambda: db.find({"selector": {}, "limit": 2, "skip": 1}),
        view=doc_ids,
    )
    run.call(
        "warning without index",
        lambda: db.find({"selector": {"age": 25}}),
        view=lambda r: "warning" in r,
    )
    run.call(
        "bookmark member",
        lambda: db.find({"selector": {"age": 25}}),
        view=sorted,
        pouchdb="06/every _find: pouchdb sends no bookmark",
        expect=["bookmark", "docs", "warning"],
    )


@case
def case_mango_sort_and_index(run: Run) -> None:
    _seed_people(run)
    db = run.db
    run.call(
        "sort without index",
        lambda: db.find({"selector": {"age": {"$gt": 0}}, "sort": ["age"]}),
        pouchdb="06/mango-sort-without-index [2]: bad_request with a JS message",
        expect=err(
            "QueryError",
            400,
            "no_usable_index",
            "No index exists for this sort, try indexing by the sort fields.",
        ),
    )
    run.call(
        "create index",
        lambda: db.create_index({"index": {"fields": ["age"]}, "name": "by-age", "ddoc": "ix"}),
    )
    run.call(
        "create again exists",
        lambda: db.create_index({"index": {"fields": ["age"]}, "name": "by-age", "ddoc": "ix"}),
    )
    run.call(
        "list",
        db.list_indexes,
        view=lambda r: [(i["ddoc"], i["name"], i["type"], i["def"]) for i in r["indexes"]],
    )
    run.call(
        "sorted asc",
        lambda: db.find({"selector": {"age": {"$gt": 0}}, "sort": [{"age": "asc"}]}),
        view=lambda r: [d["age"] for d in r["docs"]],
    )
    run.call(
        "sorted desc",
        lambda: db.find({"selector": {"age": {"$gt": 20}}, "sort": [{"age": "desc"}]}),
        view=lambda r: [d["age"] for d in r["docs"]],
    )
    run.call(
        "sorted with limit skip",
        lambda: db.find({"selector": {"age": {"$gt": 0}}, "sort": ["age"], "limit": 2, "skip": 1}),
        view=lambda r: [d["age"] for d in r["docs"]],
    )
    run.call(
        "delete index",
        lambda: db.delete_index("ix", "by-age"),
    )
    run.call(
        "delete missing index",
        lambda: db.delete_index("ix", "by-age"),
        pouchdb="06/mango-index-delete [6]: pouchdb answers 500",
        expect=err("NotFoundError", 404, "not_found", "missing"),
        racing=(
            "CouchDB lists indexes through its design-document cache, which forgets the"
            " deleted index a moment later; in that moment the delete finds the view gone",
            err(
                "NotFoundError",
                404,
                "invalid_index",
                "JSON index by-age not found in this design doc.",
            ),
        ),
    )
    run.call(
        "listed after delete",
        db.list_indexes,
        view=lambda r: [i["name"] for i in r["indexes"]],
        expect=["_all_docs"],
        racing=(
            "the same design-document cache may still list the deleted index",
            ["_all_docs", "by-age"],
        ),
    )


@case
def case_mango_bookmark_paging(run: Run) -> None:
    db = run.db
    seed(run, [{"_id": f"d{i:02d}", "i": i} for i in range(30)])
    query: dict[str, Any] = {"selector": {"i": {"$gte": 0}}, "fields": ["_id"]}
    why = "06/mango-default-limit-25, mango-bookmark-paging: no default limit, no bookmarks"
    first = run.call(
        "default limit 25",
        lambda: db.find(query),
        view=lambda r: len(r["docs"]),
        pouchdb=why,
        expect=25,
    )
    mark = first.get("bookmark", "") if first else ""
    page = run.call(
        "next page",
        lambda: db.find({**query, "bookmark": mark}),
        view=doc_ids,
        pouchdb=why,
        expect=[f"d{i}" for i in range(25, 30)],
    )
    last = page.get("bookmark", "") if page else ""
    run.call(
        "exhausted page",
        lambda: db.find({**query, "bookmark": last}),
        view=doc_ids,
        pouchdb=why,
        expect=[],
    )
    run.call(
        "bad bookmark",
        lambda: db.find({**query, "bookmark": "xyz"}),
        pouchdb=why,
        expect=err("QueryError", 400, "invalid_bookmark", 'Invalid bookmark value: "xyz"'),
    )


@case
def case_mango_errors(run: Run) -> None:
    db = run.db
    _seed_people(run)
    run.call(
        "no selector",
        lambda: db.find({"limit": 1}),
        pouchdb="06/mango-request-errors [2]: pouchdb bad_request",
        expect=err("QueryError", 400, "missing_required_key", "Missing required key: selector"),
    )
    run.call(
        "bad operator argument",
        lambda: db.find({"selector": {"age": {"$in": "x"}}}),
        pouchdb="06/mango-in-nin [6]: pouchdb bad_request with a JS message",
        expect=err("QueryError", 400, "bad_arg", "Bad argument for operator $in: <<120>>"),
    )
    run.call(
        "unknown operator",
        lambda: db.find({"selector": {"age": {"$foo": 1}}}),
        pouchdb="06/mango-unknown-operator [2]: pouchdb bad_request",
        expect=err("QueryError", 400, "invalid_operator", "Invalid operator: $foo"),
    )
    run.call(
        "bad index",
        lambda: db.create_index({"index": {}}),
        pouchdb="06/mango-index-invalid [2]: pouchdb JS error",
        expect=err("QueryError", 400, "missing_required_key", "Missing required key: fields"),
    )


# --------------------------------------------------------------------------- attachments

_TXT = b"hello"


@case
def case_attachments(run: Run) -> None:
    db = run.db
    rev = run.call("doc", lambda: db.put({"_id": "a"}))["rev"]
    put = run.call(
        "put binary",
        lambda: db.put_attachment("a", "b.bin", _TXT, "application/octet-stream", rev=rev),
    )
    run.call("get binary", lambda: db.get_attachment("a", "b.bin"), view=list)
    run.call(
        "stub",
        lambda: db.get("a"),
        view=lambda d: d["_attachments"],
    )
    expected_digest = "md5-" + base64.b64encode(hashlib.md5(_TXT).digest()).decode()
    run.call(
        "binary digest is md5 of the bytes",
        lambda: db.get("a"),
        view=lambda d: d["_attachments"]["b.bin"]["digest"],
        expect=expected_digest,
    )
    rev2 = put["rev"]
    put2 = run.call(
        "put text", lambda: db.put_attachment("a", "t.txt", b"hi", "text/plain", rev=rev2)
    )
    run.call(
        "text digest is of the gzip bytes",
        lambda: db.get("a"),
        view=lambda d: (d["_attachments"]["t.txt"]["digest"], d["_attachments"]["t.txt"]["length"]),
        pouchdb="03/bulk-inline-attachments [2-4]: pouchdb digests the raw bytes",
        expect=["md5-QTVOnBwGnrw6Tx9YG1ZRyA==", 2],
    )
    run.call(
        "inline data",
        lambda: db.get("a", attachments=True),
        view=lambda d: {k: (v["data"], v["revpos"]) for k, v in d["_attachments"].items()},
    )
    rev3 = put2["rev"]
    deleted = run.call("delete attachment", lambda: db.delete_attachment("a", "b.bin", rev=rev3))
    run.call(
        "get deleted attachment",
        lambda: db.get_attachment("a", "b.bin"),
        pouchdb="08/att-delete [3]: pouchdb reason missing",
        expect=err("NotFoundError", 404, "not_found", "Document is missing attachment"),
    )
    run.call("stale rev", lambda: db.put_attachment("a", "c.bin", b"x", "x/y", rev=rev3))
    run.call("remaining", lambda: db.get("a"), view=lambda d: sorted(d["_attachments"]))
    assert deleted is None or deleted["ok"]


@case
def case_inline_attachments(run: Run) -> None:
    db = run.db
    data = base64.b64encode(b"\x00\x01binary").decode()
    run.call(
        "bulk inline",
        lambda: db.bulk_docs(
            [{"_id": "i", "_attachments": {"x.bin": {"content_type": "image/png", "data": data}}}]
        ),
    )
    run.call("get stub", lambda: db.get("i"), view=lambda d: d["_attachments"])
    run.call("get bytes", lambda: db.get_attachment("i", "x.bin"), view=list)
    doc = db.get("i")
    run.call(
        "update keeps stub",
        lambda: db.put({**doc, "v": 1}),
        view=lambda r: r["rev"],
    )
    run.call("still there", lambda: db.get("i"), view=lambda d: sorted(d["_attachments"]))
    run.call("dropped when omitted", lambda: db.put({"_id": "i", "_rev": db.get("i")["_rev"]}))
    run.call("gone", lambda: db.get("i"), view=lambda d: "_attachments" in d)
    run.call(
        "bad base64",
        lambda: db.put(
            {"_id": "j", "_attachments": {"h.txt": {"content_type": "t/p", "data": "!!"}}}
        ),
        pouchdb="08/att-inline-bad-base64: pouchdb 500 badarg",
        expect=err("BackendError", 400, "bad_request", "Invalid attachment data for h.txt"),
    )


# --------------------------------------------------------------------------- views

_VIEWS = {
    "_id": "_design/v",
    "views": {
        "by_age": {"map": "function (doc) { if (doc.age !== undefined) emit(doc.age, doc.name); }"},
        "count": {
            "map": "function (doc) { if (doc.age) emit(doc.city || null, 1); }",
            "reduce": "_count",
        },
        "sum": {
            "map": "function (doc) { if (doc.age) emit([doc.city || '', doc.n], doc.age); }",
            "reduce": "_sum",
        },
        "stats": {
            "map": "function (doc) { if (doc.age) emit(doc.city || null, doc.age); }",
            "reduce": "_stats",
        },
        "keys": {"map": "function (doc) { if (doc.k !== undefined) emit(doc.k, null); }"},
        "link": {
            "map": "function (doc) { if (doc.age) "
            "emit(doc.n, {_id: doc.n === 1 ? 'nope' : doc._id}); }"
        },
    },
}


def _seed_views(run: Run) -> None:
    seed(run, [dict(p) for p in _PEOPLE] + [_VIEWS])


@case
def case_view_map(run: Run) -> None:
    db = run.db
    _seed_views(run)
    run.call("all", lambda: db.view("v", "by_age"), view=lambda r: (r["total_rows"], rows(r)))
    run.call("key", lambda: db.view("v", "by_age", key=25), view=rows)
    run.call("range", lambda: db.view("v", "by_age", startkey=20, endkey=31), view=rows)
    run.call(
        "exclusive",
        lambda: db.view("v", "by_age", startkey=20, endkey=31, inclusive_end=False),
        view=rows,
    )
    run.call("descending", lambda: db.view("v", "by_age", descending=True, limit=3), view=rows)
    run.call("skip", lambda: db.view("v", "by_age", skip=2, limit=2), view=rows)
    run.call("keys", lambda: db.view("v", "by_age", keys=[42, 19.5, 7]), view=rows)
    run.call("include_docs", lambda: db.view("v", "by_age", key=42, include_docs=True), view=rows)
    run.call(
        "offset",
        lambda: db.view("v", "by_age", startkey=30),
        view=lambda r: r["offset"],
        pouchdb="07/view-* offset: pouchdb offset is always 0",
        expect=3,
    )
    run.call(
        "missing view",
        lambda: db.view("v", "nope"),
        pouchdb="07/view-missing [3]: pouchdb reason 'ddoc _design/v has no view named nope'",
        expect=err("NotFoundError", 404, "not_found", "missing_named_view"),
    )
    run.call("missing ddoc", lambda: db.view("nope", "nope"))
    run.call(
        "linked doc",
        lambda: db.view("v", "link", include_docs=True, limit=2),
        view=lambda r: [(row["id"], row["doc"] and row["doc"]["_id"]) for row in r["rows"]],
        pouchdb="07/view-include-docs [3]: pouchdb has no doc member for a missing link",
        expect=[["alice", None], ["bob", "bob"]],
    )


@case
def case_view_reduce(run: Run) -> None:
    db = run.db
    _seed_views(run)
    run.call("count", lambda: db.view("v", "count"), view=rows)
    run.call("count grouped", lambda: db.view("v", "count", group=True), view=rows)
    run.call("count no reduce", lambda: db.view("v", "count", reduce=False), view=rows)
    run.call("sum", lambda: db.view("v", "sum"), view=rows)
    run.call("sum group_level 1", lambda: db.view("v", "sum", group_level=1), view=rows)
    run.call("sum group", lambda: db.view("v", "sum", group=True), view=rows)
    run.call("stats grouped", lambda: db.view("v", "stats", group=True), view=rows)
    run.call("stats key", lambda: db.view("v", "stats", key="Oslo"), view=rows)
    run.call(
        "include_docs on reduce",
        lambda: db.view("v", "count", include_docs=True),
        pouchdb="07/view-reduce-errors [2]: pouchdb reason text differs",
        expect=err("QueryError", 400, "query_parse_error", "`include_docs` is invalid for reduce"),
    )


_COLLATION_KEYS: list[Any] = [
    None,
    False,
    True,
    1,
    2.5,
    10,
    "",
    "1",
    "a",
    "A",
    "aa",
    "b",
    "B",
    "é",
    "z",
    [],
    ["a"],
    ["a", 1],
    {},
    {"a": 1},
]


@case
def case_view_collation(run: Run) -> None:
    db = run.db
    docs = [{"_id": f"k{i:02d}", "k": k} for i, k in enumerate(reversed(_COLLATION_KEYS))]
    seed(run, [*docs, _VIEWS])
    run.call(
        "order",
        lambda: db.view("v", "keys"),
        view=lambda r: [row["key"] for row in r["rows"]],
        pouchdb="07/view-collation-order: pouchdb orders strings by code point",
        expect=_COLLATION_KEYS,
    )
    run.call(
        "string range",
        lambda: db.view("v", "keys", startkey="a", endkey="b"),
        view=lambda r: [row["key"] for row in r["rows"]],
        pouchdb="07/view-collation-ranges: pouchdb compares code points",
        expect=["a", "A", "aa", "b"],
    )
    run.call("number range", lambda: db.view("v", "keys", startkey=1, endkey=10), view=rows)


# --------------------------------------------------------------------------- protocol parts


_INFO_MEMBERS = [
    "cluster",
    "compact_running",
    "db_name",
    "disk_format_version",
    "doc_count",
    "doc_del_count",
    "instance_start_time",
    "props",
    "purge_seq",
    "sizes",
    "update_seq",
]


@case
def case_info(run: Run) -> None:
    db = run.db
    seed(run, [{"_id": "a"}, {"_id": "b"}])
    rev = db.get("b")["_rev"]
    run.call("delete b", lambda: db.delete("b", rev), view=lambda r: r["ok"])
    run.call("doc_count", db.info, view=lambda i: i["doc_count"])
    run.call(
        "doc_del_count",
        db.info,
        view=lambda i: i.get("doc_del_count"),
        pouchdb="all, db info: pouchdb has no doc_del_count",
        expect=1,
    )
    run.call("update_seq", db.info, view=lambda i: {"update_seq": i["update_seq"]})
    run.call(
        "members",
        db.info,
        view=sorted,
        pouchdb="all, db info: pouchdb has adapter members, no sizes/props/cluster/purge_seq",
        expect=_INFO_MEMBERS,
    )


@case
def case_list_indexes(run: Run) -> None:
    db = run.db
    run.call(
        "create",
        lambda: db.create_index({"index": {"fields": ["age"]}, "ddoc": "i", "name": "by-age"}),
    )
    run.call(
        "list",
        db.list_indexes,
        view=lambda r: [(x["ddoc"], x["name"], x["type"], x["def"]) for x in r["indexes"]],
    )
    run.call(
        "partitioned flag",
        db.list_indexes,
        view=lambda r: [x.get("partitioned") for x in r["indexes"]],
        pouchdb="06/mango-index-create [2-7]: no `partitioned` member",
        expect=[None, False],
    )
    run.call("delete", lambda: db.delete_index("i", "by-age"))
    run.call("list after delete", db.list_indexes, view=lambda r: [x["name"] for x in r["indexes"]])


@case
def case_local_docs(run: Run) -> None:
    db = run.db
    run.call("put", lambda: db.put({"_id": "_local/l", "v": 1}))
    run.call("get", lambda: db.get("_local/l"))
    run.call(
        "update without rev",
        lambda: db.put({"_id": "_local/l", "v": 2}),
        pouchdb="02/doc-local-crud [4]: pouchdb checks _local revs (409)",
        expect={"ok": True, "id": "_local/l", "rev": "0-1"},
    )
    run.call(
        "update with any rev",
        lambda: db.put({"_id": "_local/l", "_rev": "0-7", "v": 3}),
        pouchdb="02/doc-local-revs [5]: pouchdb checks _local revs (409)",
        expect={"ok": True, "id": "_local/l", "rev": "0-8"},
    )
    run.call("not in all_docs", db.all_docs, view=ids_of)
    run.call("not in changes", db.changes, view=_changes_set)
    run.call(
        "delete",
        lambda: db.delete("_local/l", "0-8"),
        pouchdb="02/doc-local-revs: pouchdb's _local rev is another one (409)",
        expect={"ok": True, "id": "_local/l", "rev": "0-0"},
    )
    run.call(
        "get deleted",
        lambda: db.get("_local/l"),
        pouchdb="02/doc-local-revs: not deleted on pouchdb",
        expect=err("DocumentNotFound", 404, "not_found", "missing"),
    )


@case
def case_purge(run: Run) -> None:
    db: Any = run.db  # both backends have it; the Backend protocol does not
    rev = run.call("put", lambda: db.put({"_id": "a", "v": 1}))["rev"]
    run.call("put b", lambda: db.put({"_id": "b", "v": 1}), view=lambda r: r["ok"])
    run.call(
        "purge",
        lambda: db.purge({"a": [rev], "missing": ["1-" + "0" * 32]}),
        pouchdb="03/purge: pouchdb-server has no _purge (400 only_multipart_accepted)",
        expect={"purge_seq": None, "purged": {"a": [rev], "missing": []}},
    )
    run.call(
        "gone",
        lambda: db.get("a"),
        pouchdb="03/purge: nothing purged on pouchdb",
        expect=err("DocumentNotFound", 404, "not_found", "missing"),
    )


@case
def case_revs_diff(run: Run) -> None:
    db: Any = run.db  # both backends have it; the Backend protocol does not
    rev = run.call("put", lambda: db.put({"_id": "a", "v": 1}))["rev"]
    run.call("nothing missing", lambda: db.revs_diff({"a": [rev]}))
    run.call("missing doc", lambda: db.revs_diff({"nope": ["1-" + "a" * 32]}))
    run.call(
        "missing newer rev",
        lambda: db.revs_diff({"a": ["2-" + "b" * 32, rev]}),
        pouchdb="03/revs-diff [3]: no possible_ancestors",
        expect={"a": {"missing": ["2-" + "b" * 32], "possible_ancestors": [rev]}},
    )


@case
def case_explain(run: Run) -> None:
    db = run.db
    run.call(
        "index",
        lambda: db.create_index({"index": {"fields": ["age"]}, "ddoc": "i", "name": "by-age"}),
    )
    query = {"selector": {"age": {"$gt": 1}}, "limit": 3}
    run.call("index used", lambda: db.explain(query), view=lambda r: r["index"]["name"])
    run.call(
        "members",
        lambda: db.explain(query),
        view=sorted,
        pouchdb="06/mango-explain [2, 4]: pouchdb answers other members",
        expect=[
            "covering",
            "dbname",
            "fields",
            "index",
            "index_candidates",
            "limit",
            "mrargs",
            "opts",
            "partitioned",
            "selector",
            "selector_hints",
            "skip",
        ],
    )


@case
def case_longpoll_changes(run: Run) -> None:
    db = run.db
    seed(run, [{"_id": "a"}])
    run.call(
        "longpoll with changes", lambda: db.changes(feed="longpoll", since="0"), view=_changes_set
    )
    now = db.info()["update_seq"]
    expected = {"results": [], "last_seq": "1-g1AAAA"}
    # 05/changes-since-now [5]: pouchdb-server keeps a waiting longpoll open past its
    # timeout (the recorder gave up after 20 s), so it is not asked; CouchDB is.
    run.call(
        "longpoll times out empty",
        (lambda: expected)
        if run.kind == "pouchdb"
        else (lambda: db.changes(feed="longpoll", since=now, timeout=200)),
        view=lambda r: [r["results"], {"last_seq": r["last_seq"]}],
        pouchdb="05/changes-since-now [5]: a waiting longpoll hangs on pouchdb",
        expect=[[], {"last_seq": "1-g1AAAA"}],
    )


# --------------------------------------------------------------------------- the test


@pytest.fixture
def memory_backend() -> Backend:
    """A fresh database on a fresh in-memory server."""
    return MemoryServer().create("conformance")


def _records(name: str, db: Backend, kind: str) -> list[Record]:
    run = Run(db, kind)
    try:
        CASES[name](run)
    except Exception as exc:  # a crash in the case body shows as a final mismatching step
        run.records.append(Record("crash", repr(exc)))
    return run.records


def _pouchdb_blanket(outcome: Any) -> Any:
    """Undo pouchdb-server's deviations that apply to every answer (README, area "all").

    Only the conflict reason: "Document update conflict" without CouchDB's period (02/
    doc-update-without-rev, 03/bulk-mixed, 10/err-conflict-error-shapes). The memory backend's
    period is asserted in case ``bad_revs`` with ``expect=``.
    """
    if isinstance(outcome, dict):
        return {k: _pouchdb_blanket(v) for k, v in outcome.items()}
    if isinstance(outcome, list):
        return [_pouchdb_blanket(v) for v in outcome]
    if outcome == INT_SEQ:  # README area "all", sequences: pouchdb's are integers
        return SEQ
    return "Document update conflict." if outcome == "Document update conflict" else outcome


def _compare(mine: list[Record], theirs: list[Record], kind: str) -> Iterator[str]:
    for index, m in enumerate(mine):
        if m.expect is not NOTHING and not same(m.outcome, norm(m.expect)):
            yield f"[{index}] {m.label}: memory gave {m.outcome!r}, CouchDB gives {m.expect!r}"
        if index >= len(theirs):
            yield f"[{index}] {m.label}: the server's run stopped before this step"
            continue
        t = theirs[index]
        if t.label != m.label:
            yield f"[{index}] step {m.label!r} vs {t.label!r}: the runs diverged"
            return
        if kind == "pouchdb" and t.pouchdb is not None:
            continue  # documented pouchdb-server deviation: expect= checked memory above
        if kind == "pouchdb":
            t = Record(t.label, _pouchdb_blanket(t.outcome), t.pouchdb, t.expect, t.racing)
        if t.racing is not None and same(t.outcome, norm(t.racing[1])):
            continue  # the server lost a documented race with its own background work
        if t.expect is not NOTHING and not same(t.outcome, norm(t.expect)):
            yield f"[{index}] {t.label}: {kind} gave {t.outcome!r}, expected {t.expect!r}"
        if not same(m.outcome, t.outcome):
            yield f"[{index}] {m.label}: memory {m.outcome!r} != {kind} {t.outcome!r}"
    if len(theirs) > len(mine):
        yield f"memory stopped after {len(mine)} steps; the server ran {len(theirs)}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_memory_backend_behaves_like_the_server(
    name: str, memory_backend: Backend, couch_backend: Backend, server_kind: str
) -> None:
    """The memory backend and the real server give the same results and errors."""
    mine = _records(name, memory_backend, "memory")
    theirs = _records(name, couch_backend, server_kind)
    assert mine, "the case recorded nothing"
    problems = list(_compare(mine, theirs, server_kind))
    assert problems == [], "\n".join(problems)


def test_normalisation_hides_only_server_chosen_values() -> None:
    """Revs keep their generation, seqs and uuids become placeholders, other values stay."""
    value = {"rev": "3-" + "a" * 32, "seq": "12-g1AA", "id": "b" * 32, "n": 1, "s": "3-x"}
    assert norm(value) == {"rev": "<rev 3>", "seq": SEQ, "id": "<uuid>", "n": 1, "s": "3-x"}
    assert norm({"owner": "c" * 32})["owner"] == "c" * 32  # a user's hex value stays
    assert norm({"seq": 7}) == {"seq": INT_SEQ}
    assert norm({"seq": {"x": 1}}) == {"seq": {"x": 1}}


def test_comparison_is_json_strict() -> None:
    """1, 1.0 and True differ; so do an int seq and a CouchDB seq."""
    assert not same(norm({"n": 1}), norm({"n": 1.0}))
    assert not same(norm({"ok": True}), norm({"ok": 1}))
    assert not same(norm({"seq": 7}), norm({"seq": "7-g1AA"}))
    assert same(norm({"n": [1, {"f": 1.5}]}), norm({"n": [1, {"f": 1.5}]}))
    mine = [Record("get", norm({"n": 1, "f": 1.0, "seq": "7-g1AA"}))]
    theirs = [Record("get", norm({"n": 1.0, "f": 1, "seq": "7-g1AA"}))]
    assert len(list(_compare(mine, theirs, "couchdb"))) == 1


_BAD_DB_NAMES = ["Upper-case", "1leading-digit", "-leading-hyphen", "bad*chars"]


@pytest.mark.parametrize("bad", _BAD_DB_NAMES)
def test_invalid_database_names(bad: str, server_url: str, server_kind: str) -> None:
    """An illegal database name gets CouchDB's 400 illegal_database_name on memory and CouchDB."""
    expected = (
        400,
        "illegal_database_name",
        f"Name: '{bad}'. Only lowercase characters (a-z), digits (0-9), and any of the "
        "characters _, $, (, ), +, -, and / are allowed. Must begin with a letter.",
    )
    with pytest.raises(BackendError) as mine:
        MemoryServer().create(bad)
    assert (mine.value.status, mine.value.error, mine.value.reason) == expected
    if server_kind == "pouchdb":
        return  # 01/db-name-uppercase, -leading-digit, ...: pouchdb-server creates any name (201)
    server = CouchDBServer(server_url, timeout=30)
    try:
        with pytest.raises(BackendError) as theirs:
            server.create_database(bad)
        assert (theirs.value.status, theirs.value.error, theirs.value.reason) == expected
    finally:
        server.close()


def test_database_lifecycle(server_url: str, server_kind: str) -> None:
    """create, list, create twice, delete, delete missing: memory answers as CouchDB."""
    name = f"cm-conf-{uuid.uuid4().hex}"
    exists = (412, "file_exists", "The database could not be created, the file already exists.")
    missing = (404, "not_found", "Database does not exist.")
    mem = MemoryServer()
    server = CouchDBServer(server_url, timeout=30)
    try:
        for create, listing, delete, kind in (
            (mem.create, mem.all_dbs, mem.delete, "memory"),
            (server.create_database, server.list_databases, server.delete_database, server_kind),
        ):
            handle = create(name)
            assert name in listing()
            with pytest.raises(BackendError) as twice:
                create(name)
            if kind != "pouchdb":  # 01/db-create-twice [2]: pouchdb's reason has no "file ..."
                assert (twice.value.status, twice.value.error, twice.value.reason) == exists
            delete(name)
            assert name not in listing()
            if kind != "pouchdb":  # 01/db-delete-missing: pouchdb answers 200
                with pytest.raises(BackendError) as again:
                    delete(name)
                assert (again.value.status, again.value.error, again.value.reason) == missing
                with pytest.raises(BackendError) as stale:
                    handle.info()
                assert stale.value.status == 404
    finally:
        server.close()


@pytest.fixture(params=["memory", pytest.param("server", marks=pytest.mark.server)])
def partitioned_db(request: pytest.FixtureRequest) -> Iterator[tuple[Backend, str]]:
    """A partitioned database: always in memory; on the server only when it is CouchDB."""
    from query_models import partitioned_backend

    if request.param == "memory":
        yield from ((b, "memory") for b in partitioned_backend("memory", None))
        return
    kind: str = request.getfixturevalue("server_kind")
    url: str = request.getfixturevalue("server_url")
    if kind == "couchdb":
        yield from ((b, kind) for b in partitioned_backend("couchdb", url))
        return
    backend = CouchDBServer(url, timeout=30).create_database(f"cm-conf-part-{uuid.uuid4().hex}")
    try:
        yield backend, kind
    finally:
        CouchDBServer(url, timeout=30).delete_database(backend.name)
        backend.close()


def test_partitions(partitioned_db: tuple[Backend, str]) -> None:
    """Partition ids, info, _all_docs, _find and views (09/part-*), as CouchDB answers them."""
    backend, kind = partitioned_db
    db: Any = backend  # partition_info is not in the Backend protocol
    if kind == "pouchdb":
        # 09/part-info, part-all-docs, part-find: pouchdb-server has no partition endpoints
        # (GET 404 "missing", POST 400); a query must fail, never answer unpartitioned.
        db.put({"_id": "a:1", "v": 1})
        with pytest.raises(BackendError) as caught:
            db.find({"selector": {}}, partition="a")
        assert caught.value.status in (400, 404)
        with pytest.raises(BackendError) as caught:
            db.partition_info("a")
        assert caught.value.status in (400, 404)
        return
    results = db.bulk_docs([{"_id": "a:1", "v": 1}, {"_id": "a:2", "v": 2}, {"_id": "b:1", "v": 3}])
    assert [r["ok"] for r in results] == [True, True, True]
    with pytest.raises(BackendError) as bad:
        db.put({"_id": "nocolon"})
    assert (bad.value.status, bad.value.error, bad.value.reason) == (
        400,
        "illegal_docid",
        "Doc id must be of form partition:id",
    )
    info = db.partition_info("a")
    assert (info["partition"], info["doc_count"], info["doc_del_count"]) == ("a", 2, 0)
    assert [r["id"] for r in db.all_docs(partition="a")["rows"]] == ["a:1", "a:2"]
    found = db.find({"selector": {"v": {"$gt": 1}}}, partition="a")
    assert [d["_id"] for d in found["docs"]] == ["a:2"]
    with pytest.raises(BackendError) as underscore:
        db.all_docs(partition="_bad")
    assert underscore.value.reason == "Partition must not start with an underscore"


def test_a_racing_answer_is_accepted_from_the_server_only() -> None:
    """The server may give a step's documented racing answer; memory must give the expected one."""
    gone = err("NotFoundError", 404, "not_found", "missing")
    stale = err("NotFoundError", 404, "invalid_index", "stale")
    racing = ("a cache", stale)
    mine = [Record("delete", gone, None, gone, racing)]
    assert list(_compare(mine, [Record("delete", stale, None, gone, racing)], "couchdb")) == []
    assert list(_compare(mine, [Record("delete", gone, None, gone, racing)], "couchdb")) == []
    other = err("NotFoundError", 404, "other", "x")
    assert list(_compare(mine, [Record("delete", other, None, gone, racing)], "couchdb")) != []
    mine_stale = [Record("delete", stale, None, gone, racing)]
    assert list(_compare(mine_stale, [Record("delete", gone, None, gone, racing)], "couchdb")) != []
