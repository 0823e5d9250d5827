"""Unit tests of the embedded in-memory CouchDB engine."""

from __future__ import annotations

import gzip
import json
import re
import threading
from typing import Any

import pytest

from couchmapper.backends import Backend
from couchmapper.exceptions import (
    BackendError,
    ConflictError,
    DocumentNotFound,
    NotFoundError,
    PreconditionFailed,
    QueryError,
)
from couchmapper.memory import MemoryBackend, MemoryServer
from couchmapper.memory.http import MemoryHTTP

REV = re.compile(r"^\d+-[0-9a-f]{32}$")


@pytest.fixture
def server() -> MemoryServer:
    """A private server so tests never share databases."""
    return MemoryServer()


@pytest.fixture
def db(server: MemoryServer) -> MemoryBackend:
    """A fresh database."""
    return server.create("test")


def test_backend_implements_protocol(db: MemoryBackend) -> None:
    """MemoryBackend satisfies the Backend protocol."""
    assert isinstance(db, Backend)


def test_illegal_database_name(server: MemoryServer) -> None:
    """Upper-case names are refused with CouchDB's error."""
    with pytest.raises(BackendError) as info:
        server.create("Upper")
    assert info.value.error == "illegal_database_name"
    assert "Must begin with a letter." in info.value.reason


def test_create_twice_and_delete_missing(server: MemoryServer) -> None:
    """412 on a second create, 404 on deleting a missing database."""
    server.create("a")
    with pytest.raises(PreconditionFailed):
        server.create("a")
    with pytest.raises(NotFoundError):
        server.delete("missing")


def test_revs_are_deterministic(db: MemoryBackend) -> None:
    """The same body and parent give the same rev, whatever the id."""
    first = db.put({"_id": "a", "v": 1})["rev"]
    second = db.put({"_id": "b", "v": 1})["rev"]
    assert first == second
    assert REV.match(first)


def test_update_needs_current_rev(db: MemoryBackend) -> None:
    """Missing or stale revs give 409 "Document update conflict."."""
    rev1 = db.put({"_id": "d", "v": 1})["rev"]
    db.put({"_id": "d", "_rev": rev1, "v": 2})
    with pytest.raises(ConflictError) as info:
        db.put({"_id": "d", "_rev": rev1, "v": 3})
    assert info.value.reason == "Document update conflict."
    with pytest.raises(ConflictError):
        db.put({"_id": "d", "v": 4})


def test_bad_rev_format(db: MemoryBackend) -> None:
    """A malformed rev is 400 "Invalid rev format"."""
    with pytest.raises(BackendError) as info:
        db.put({"_id": "d", "_rev": "abc"})
    assert (info.value.status, info.value.reason) == (400, "Invalid rev format")


def test_deleted_and_missing_reasons(db: MemoryBackend) -> None:
    """404 reason is "deleted" for a tombstone and "missing" otherwise."""
    rev = db.put({"_id": "d"})["rev"]
    db.delete("d", rev)
    with pytest.raises(DocumentNotFound) as deleted:
        db.get("d")
    assert deleted.value.reason == "deleted"
    with pytest.raises(DocumentNotFound) as missing:
        db.get("nope")
    assert missing.value.reason == "missing"


def test_recreate_after_delete_continues_tree(db: MemoryBackend) -> None:
    """A PUT without rev after a delete gives a 3- rev."""
    rev = db.put({"_id": "d"})["rev"]
    db.delete("d", rev)
    assert db.put({"_id": "d", "v": 2})["rev"].startswith("3-")


def test_underscore_ids_rejected(db: MemoryBackend) -> None:
    """Ids starting with "_" other than _design/ and _local/ are illegal."""
    with pytest.raises(BackendError) as info:
        db.put({"_id": "_foo"})
    assert info.value.error == "illegal_docid"


def test_bulk_docs_results_in_order(db: MemoryBackend) -> None:
    """Per-document results keep request order; a conflict does not stop the batch."""
    db.put({"_id": "x"})
    results = db.bulk_docs([{"_id": "a"}, {"_id": "x"}, {"_id": "b"}])
    assert [r["id"] for r in results] == ["a", "x", "b"]
    assert results[1]["error"] == "conflict"
    assert results[2]["ok"] is True


def test_new_edits_false_conflicts(db: MemoryBackend) -> None:
    """Replicated branches: highest rev wins and the other shows in _conflicts."""
    docs = [
        {"_id": "c", "_rev": "1-" + "a" * 32, "v": "a"},
        {"_id": "c", "_rev": "1-" + "b" * 32, "v": "b"},
    ]
    assert db.bulk_docs(docs, new_edits=False) == []
    got = db.get("c", conflicts=True)
    assert got["v"] == "b"
    assert got["_conflicts"] == ["1-" + "a" * 32]


def test_caller_dicts_are_not_kept(db: MemoryBackend) -> None:
    """Changing a dict after put or after get does not change what is stored."""
    doc: dict[str, Any] = {"_id": "d", "tags": ["a"]}
    db.put(doc)
    doc["tags"].append("b")
    got = db.get("d")
    got["tags"].append("c")
    assert db.get("d")["tags"] == ["a"]


def test_all_docs_raw_order_and_keys(db: MemoryBackend) -> None:
    """_all_docs sorts ids by code point; keys report deleted and missing docs."""
    for doc_id in ("b", "A", "a"):
        db.put({"_id": doc_id})
    rev = db.get("b")["_rev"]
    db.delete("b", rev)
    assert [r["id"] for r in db.all_docs()["rows"]] == ["A", "a"]
    rows = db.all_docs(keys=["b", "zz"])["rows"]
    assert rows[0]["value"]["deleted"] is True
    assert rows[1] == {"key": "zz", "error": "not_found"}


def test_changes_one_row_per_doc(db: MemoryBackend) -> None:
    """_changes lists each doc once at its latest change, with string seqs."""
    rev = db.put({"_id": "a"})["rev"]
    db.put({"_id": "a", "_rev": rev, "v": 2})
    db.put({"_id": "b"})
    feed = db.changes()
    assert [r["id"] for r in feed["results"]] == ["a", "b"]
    assert isinstance(feed["last_seq"], str)
    assert feed["pending"] == 0
    with pytest.raises(BackendError):
        db.changes(since="abc")


def test_attachments_roundtrip(db: MemoryBackend) -> None:
    """Inline attachments become stubs with CouchDB's gzip digest; data comes back."""
    db.put(
        {"_id": "a", "_attachments": {"h.txt": {"content_type": "text/plain", "data": "aGVsbG8="}}}
    )
    stub = db.get("a")["_attachments"]["h.txt"]
    assert stub["digest"] == "md5-iMaiC8wqiFlD2NjLTemvCQ=="
    assert stub["stub"] is True
    assert db.get_attachment("a", "h.txt") == (b"hello", "text/plain")
    with pytest.raises(NotFoundError):
        db.get_attachment("a", "nope.txt")


def test_find_with_and_without_index(db: MemoryBackend) -> None:
    """Without an index: warning; a sort needs an index; with one the sort works."""
    db.bulk_docs([{"_id": "a", "age": 3}, {"_id": "b", "age": 1}, {"_id": "c"}])
    found = db.find({"selector": {"age": {"$gt": 0}}})
    assert "warning" in found
    with pytest.raises(QueryError) as info:
        db.find({"selector": {"age": {"$gt": 0}}, "sort": ["age"]})
    assert info.value.error == "no_usable_index"
    assert db.create_index({"index": {"fields": ["age"]}})["result"] == "created"
    sorted_docs = db.find({"selector": {"age": {"$gt": 0}}, "sort": ["age"]})["docs"]
    assert [d["_id"] for d in sorted_docs] == ["b", "a"]


def test_find_bookmark_paging(db: MemoryBackend) -> None:
    """Bookmarks continue a query; "nil" when nothing matched."""
    db.bulk_docs([{"_id": f"d{i}", "t": 1} for i in range(3)])
    first = db.find({"selector": {"t": 1}, "limit": 2})
    second = db.find({"selector": {"t": 1}, "limit": 2, "bookmark": first["bookmark"]})
    assert [d["_id"] for d in second["docs"]] == ["d2"]
    assert db.find({"selector": {"t": 2}})["bookmark"] == "nil"


def test_view_map_and_reduce(db: MemoryBackend) -> None:
    """A JavaScript map with a built-in _count reduce."""
    pytest.importorskip("quickjs")
    db.put(
        {
            "_id": "_design/s",
            "views": {"t": {"map": "function(doc){ emit(doc.t, 1); }", "reduce": "_count"}},
        }
    )
    db.bulk_docs([{"_id": "a", "t": "x"}, {"_id": "b", "t": "y"}, {"_id": "c", "t": "x"}])
    rows = db.view("s", "t", reduce=False)["rows"]
    assert [r["key"] for r in rows] == ["x", "x", "y"]
    assert db.view("s", "t", group=True)["rows"] == [
        {"key": "x", "value": 2},
        {"key": "y", "value": 1},
    ]


def test_from_url_uses_shared_server() -> None:
    """memory:// URLs open the same database on the process-wide server."""
    first = MemoryBackend.from_url("memory://shared-test-db")
    first.put({"_id": "x"})
    second = MemoryBackend.from_url("memory://shared-test-db")
    assert second.get("x")["_id"] == "x"


def test_http_facade(server: MemoryServer) -> None:
    """The facade answers like CouchDB over HTTP."""
    http = MemoryHTTP(server)
    assert http.handle("PUT", "/h").status == 201
    created = http.handle("PUT", "/h/doc", body=b'{"v":1}')
    assert created.status == 201
    assert created.headers["etag"] == f'"{created.body["rev"]}"'
    assert http.handle("GET", "/h/doc").body["v"] == 1
    assert http.handle("PATCH", "/h/doc").status == 405


def test_concurrent_writers(db: MemoryBackend) -> None:
    """Threads writing distinct docs all succeed and are all counted."""

    def write(start: int) -> None:
        for i in range(start, start + 50):
            db.put({"_id": f"d{i:04d}"})

    threads = [threading.Thread(target=write, args=(n * 50,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert db.info()["doc_count"] == 200


@pytest.mark.parametrize(
    ("doc", "rev"),
    [
        ({"v": 1}, "1-7a7e4b29f3af401e69b6f86e4c26b727"),
        ({}, "1-967a00dff5e02add41819138abb3284d"),
    ],
)
def test_revs_are_couchdbs(db: MemoryBackend, doc: dict[str, Any], rev: str) -> None:
    """A body gets CouchDB 3.5's own rev hash, whatever the document id."""
    assert db.put({"_id": "one", **doc})["rev"] == rev
    assert db.put({"_id": "two", **doc})["rev"] == rev


def test_delete_rev_and_attachment_revs_are_couchdbs(db: MemoryBackend) -> None:
    """Tombstones and attachment uploads get CouchDB's revs (01/db-info-counts, 08/att-*)."""
    first = db.put({"_id": "d", "v": 1})["rev"]
    assert db.delete("d", first)["rev"] == "2-d9b15b235a7d0afdfe6058d5fb8afbd1"
    one = db.put_attachment("doc", "a.txt", b"one", "text/plain")["rev"]
    assert one == "1-bfa0b355a2fa36699cd7ffdb56252b3d"
    two = db.put_attachment("doc", "b.txt", b"bee", "text/plain", rev=one)["rev"]
    assert two == "2-2b892f8c7560b5b32983e567b8debbed"
    three = db.put_attachment("doc", "a.txt", b"one-two", "text/plain", rev=two)["rev"]
    assert three == "3-ccc9f682cfae0ce906757f9f6b500cb0"


def test_rev_hash_survives_deep_nesting(db: MemoryBackend) -> None:
    """A deeply nested body is hashed without hitting Python's recursion limit."""
    body: Any = 1
    for _ in range(450):
        body = {"a": [body]}
    assert REV.match(db.put({"_id": "deep", "x": body})["rev"])


@pytest.fixture
def parts(server: MemoryServer) -> MemoryBackend:
    """A partitioned database seeded with p1:a, p1:b, p1:c, p2:a, p2:z (09-partitioned seed)."""
    db = server.create("parts", partitioned=True)
    db.bulk_docs(
        [
            {"_id": "p1:a", "v": 1, "t": "x"},
            {"_id": "p1:b", "v": 2, "t": "y"},
            {"_id": "p1:c", "v": 3, "t": "x"},
            {"_id": "p2:a", "v": 10, "t": "x"},
            {"_id": "p2:z", "v": 20, "t": "y"},
        ]
    )
    return db


@pytest.mark.parametrize(
    ("doc_id", "error", "reason"),
    [
        ("nopart", "illegal_docid", "Doc id must be of form partition:id"),
        (":x", "illegal_partition", "Partition must not be empty"),
        ("p1:", "illegal_docid", "Document id must not be empty"),
        ("_p:x", "illegal_docid", "Only reserved document ids may start with underscore."),
    ],
)
def test_partitioned_ids(parts: MemoryBackend, doc_id: str, error: str, reason: str) -> None:
    """Ids in a partitioned database must be partition:id (09/part-doc-ids)."""
    with pytest.raises(BackendError) as caught:
        parts.put({"_id": doc_id})
    assert (caught.value.status, caught.value.error, caught.value.reason) == (400, error, reason)


def test_partitioned_bulk_docs_rejects_the_whole_request(parts: MemoryBackend) -> None:
    """One bad id in _bulk_docs rejects every document (09/part-bulk-docs [2])."""
    with pytest.raises(BackendError):
        parts.bulk_docs([{"_id": "p3:ok"}, {"_id": "bad"}])
    assert parts.partition_info("p3")["doc_count"] == 0


def test_partition_scoped_queries(parts: MemoryBackend) -> None:
    """all_docs, find and partition_info with partition= see one partition only."""
    assert [r["id"] for r in parts.all_docs(partition="p1")["rows"]] == ["p1:a", "p1:b", "p1:c"]
    assert parts.all_docs(partition="p1", startkey="p1:b")["offset"] == 1
    found = parts.find({"selector": {"t": "x"}, "fields": ["_id"]}, partition="p1")
    assert found["docs"] == [{"_id": "p1:a"}, {"_id": "p1:c"}]
    info = parts.partition_info("p2")
    assert (info["partition"], info["doc_count"], info["doc_del_count"]) == ("p2", 2, 0)
    assert parts.info()["props"] == {"partitioned": True}


def test_partition_scoped_views(parts: MemoryBackend) -> None:
    """Views of a partitioned ddoc need partition=; a global ddoc refuses it (09/part-view)."""
    parts.put({"_id": "_design/pv", "views": {"by_v": {"map": "function(d){ emit(d.v, d.t); }"}}})
    rows = parts.view("pv", "by_v", partition="p1")["rows"]
    assert [r["key"] for r in rows] == [1, 2, 3]
    with pytest.raises(QueryError, match="`partition` parameter is mandatory"):
        parts.view("pv", "by_v")
    parts.put(
        {
            "_id": "_design/gv",
            "options": {"partitioned": False},
            "views": {"by_v": {"map": "function(d){ emit(d.v, d.t); }"}},
        }
    )
    assert parts.view("gv", "by_v")["total_rows"] == 5
    with pytest.raises(QueryError, match="not supported in this design doc"):
        parts.view("gv", "by_v", partition="p1")


def test_partitioned_mango_indexes(parts: MemoryBackend) -> None:
    """Partition queries sort with partitioned indexes; global ones need a global index."""
    parts.create_index({"index": {"fields": ["v"]}, "ddoc": "pv", "name": "pv"})
    query = {"selector": {"v": {"$gt": 0}}, "sort": [{"v": "desc"}], "fields": ["_id"]}
    assert [d["_id"] for d in parts.find(query, partition="p1")["docs"]] == [
        "p1:c",
        "p1:b",
        "p1:a",
    ]
    with pytest.raises(QueryError, match="No global index exists for this sort"):
        parts.find(query)


@pytest.mark.parametrize("partition", ["_bad", ""])
def test_bad_partition_names(parts: MemoryBackend, partition: str) -> None:
    """A partition name that is empty or starts with _ is 400 illegal_partition."""
    with pytest.raises(QueryError) as caught:
        parts.all_docs(partition=partition)
    assert caught.value.error == "illegal_partition"


def test_partition_on_a_normal_database(db: MemoryBackend) -> None:
    """partition= on a database that is not partitioned is 400 (09/part-on-normal-db)."""
    with pytest.raises(BackendError, match="database is not partitioned"):
        db.all_docs(partition="p1")
    with pytest.raises(BackendError, match="partitioned option cannot be true"):
        db.put({"_id": "_design/x", "options": {"partitioned": True}, "views": {}})


def test_fast_and_iterative_rev_encoders_agree() -> None:
    """The recursive term encoder and the deep-document fallback produce the same bytes."""
    from couchmapper._couch import erlang

    body = {
        "s": "é😀",
        "n": [1, 2, 300, -5, 2**70, 1.5, True, None],
        "o": {"a": [], "b": {}, "c": [{"d": "x"}]},
        "bytes": [0, 255],
    }
    assert erlang._etf(body) == erlang._etf_slow(body)


def test_auto_index_names_are_couchdbs(db: MemoryBackend) -> None:
    """A generated index/ddoc name is CouchDB's sha1 of the request (06/mango-index-create)."""
    made = db.create_index({"index": {"fields": ["name"]}})
    assert made["name"] == "eab5ed115652e6127f384f00d0bc4b9e0b7dbed9"
    assert made["id"] == "_design/eab5ed115652e6127f384f00d0bc4b9e0b7dbed9"
    named = db.create_index({"index": {"fields": ["age"]}, "name": "age-idx", "type": "json"})
    assert named["id"] == "_design/36261a2513752a4ba8d68be1c66374a58d92f01e"


def test_sort_after_a_constant_index_column(db: MemoryBackend) -> None:
    """An index [type, age] serves sort [age] when type is fixed by $eq (can_use_sort)."""
    db.bulk_docs([{"_id": f"d{i}", "type": "p", "age": 30 - i} for i in range(3)])
    db.create_index({"index": {"fields": ["type", "age"]}, "ddoc": "ta", "name": "ta"})
    found = db.find({"selector": {"type": "p", "age": {"$gt": 0}}, "sort": ["age"]})
    assert [d["age"] for d in found["docs"]] == [28, 29, 30]
    with pytest.raises(QueryError, match="No index exists for this sort"):
        db.find({"selector": {"type": {"$gt": "a"}, "age": {"$gt": 0}}, "sort": ["age"]})


def test_all_docs_later_range_parameter_wins(db: MemoryBackend) -> None:
    """key then startkey is the range startkey..key, empty here (04/alldocs-conflicting-options)."""
    db.bulk_docs([{"_id": i} for i in "abc"])
    assert db.all_docs(key="a", startkey="b")["rows"] == []
    assert [r["id"] for r in db.all_docs(startkey="b", key="a")["rows"]] == ["a"]


def test_all_docs_list_key_names_the_joined_id(db: MemoryBackend) -> None:
    """A keys entry ["a"] finds doc "a" and is echoed as given (04/alldocs-keys-invalid)."""
    db.put({"_id": "a"})
    rows = db.all_docs(keys=[["a"], 1])["rows"]  # type: ignore[list-item]
    assert (rows[0]["id"], rows[0]["key"]) == (["a"], ["a"])
    assert rows[1] == {"key": 1, "error": "not_found"}


def test_subnormal_floats_are_stored_as_zero(db: MemoryBackend) -> None:
    """CouchDB reads 5e-324 as 0.0 (02/doc-float-values); normal floats are kept."""
    db.put({"_id": "f", "tiny": 5e-324, "small": 1e-300})
    doc = db.get("f")
    assert (doc["tiny"], doc["small"]) == (0.0, 1e-300)


def test_meta_and_local_seq(db: MemoryBackend) -> None:
    """meta=true adds revs_info/conflicts but not _local_seq; local_seq=true adds it."""
    db.put({"_id": "m"})
    assert "_local_seq" not in db.get("m", meta=True)
    assert "_revs_info" in db.get("m", meta=True)
    assert db.get("m", local_seq=True)["_local_seq"] == 1


def test_validate_doc_update_skips_design_docs(db: MemoryBackend) -> None:
    """Design docs are written without running validate_doc_update (admin-only rule)."""
    pytest.importorskip("quickjs")
    vdu = "function(d){ if (!d._deleted && !d.ok) throw({forbidden: 'need ok'}); }"
    db.put({"_id": "_design/v", "validate_doc_update": vdu})
    assert db.put({"_id": "_design/w", "views": {}})["ok"] is True
    with pytest.raises(BackendError) as info:
        db.put({"_id": "bad"})
    assert (info.value.status, info.value.reason) == (403, "need ok")


def test_revs_diff_possible_ancestors(db: MemoryBackend) -> None:
    """A leaf older than any missing rev is a possible ancestor."""
    rev1 = db.put({"_id": "a", "v": 1})["rev"]
    rev2 = db.put({"_id": "a", "_rev": rev1, "v": 2})["rev"]
    low, high = "1-" + "0" * 32, "3-" + "0" * 32
    diff = db.revs_diff({"a": [rev1, rev2, high, low]})
    assert diff == {"a": {"missing": [low, high], "possible_ancestors": [rev2]}}


def test_changes_pending_with_filters(db: MemoryBackend) -> None:
    """pending counts the changes a filter never looked at, like CouchDB's fast paths."""
    db.bulk_docs([{"_id": "a"}, {"_id": "b"}, {"_id": "c"}, {"_id": "_design/d"}])
    by_ids = db.changes(filter="_doc_ids", doc_ids=["a", "nope"])
    assert ([r["id"] for r in by_ids["results"]], by_ids["pending"]) == (["a"], 3)
    design = db.changes(filter="_design")
    assert ([r["id"] for r in design["results"]], design["pending"]) == (["_design/d"], 3)
    limited = db.changes(limit=1)
    assert (len(limited["results"]), limited["pending"]) == (1, 3)


def test_changes_js_filter_sees_the_query(db: MemoryBackend) -> None:
    """A JavaScript filter gets req.query; a deleted doc is seen as its tombstone."""
    pytest.importorskip("quickjs")
    source = "function(doc, req){ return doc.type === req.query.t; }"
    db.put({"_id": "_design/f", "filters": {"by": source}})
    rev = db.bulk_docs([{"_id": "a", "type": "x"}, {"_id": "b", "type": "y"}])[1]["rev"]
    assert [r["id"] for r in db.changes(filter="f/by", t="y")["results"]] == ["b"]
    db.delete("b", rev)
    assert db.changes(filter="f/by", t="y")["results"] == []


def test_atts_since_and_revpos_after_recreate(db: MemoryBackend) -> None:
    """atts_since inlines only newer attachments; a re-created doc's attachment has revpos 1."""
    rev1 = db.put_attachment("d", "a.txt", b"one", "text/plain")["rev"]
    rev2 = db.put_attachment("d", "b.txt", b"two", "text/plain", rev=rev1)["rev"]
    atts = db.get("d", atts_since=[rev1])["_attachments"]
    assert (atts["a.txt"].get("stub"), atts["b.txt"]["data"]) == (True, "dHdv")
    db.delete("d", rev2)
    rev4 = db.put_attachment("d", "c.txt", b"x", "text/plain")["rev"]
    assert rev4.startswith("4-")
    assert db.get("d")["_attachments"]["c.txt"]["revpos"] == 1


def test_http_attachment_ranges_and_etags(server: MemoryServer) -> None:
    """206/416 for ranges (compressible types ignore a satisfiable one); If-None-Match: 304."""
    http = MemoryHTTP(server)
    http.handle("PUT", "/r")
    rev = http.handle(
        "PUT", "/r/d/a.txt", body=b"0123456789", headers={"Content-Type": "text/plain"}
    )
    ctype = {"Content-Type": "application/octet-stream"}
    http.handle("PUT", "/r/d/b.bin", f"rev={rev.body['rev']}", b"0123456789", ctype)
    text = http.handle("GET", "/r/d/a.txt", headers={"Range": "bytes=0-4"})
    assert (text.status, text.headers["accept-ranges"], text.body) == (200, "none", b"0123456789")
    assert http.handle("GET", "/r/d/a.txt", headers={"Range": "bytes=100-"}).status == 416
    part = http.handle("GET", "/r/d/b.bin", headers={"Range": "bytes=-3"})
    assert (part.status, part.headers["content-range"], part.body) == (206, "bytes 7-9/10", b"789")
    again = http.handle("GET", "/r/d/b.bin", headers={"If-None-Match": part.headers["etag"]})
    assert (again.status, again.body) == (304, None)
    local = http.handle("PUT", "/r/_local/l/a.txt", body=b"x")
    assert local.body["reason"] == "_local documents do not accept attachments."


def test_longpoll_waits_for_a_change(db: MemoryBackend) -> None:
    """feed=longpoll answers at once when there are changes, else at the first one (or timeout)."""
    db.put({"_id": "a"})
    assert len(db.changes(feed="longpoll")["results"]) == 1
    empty = db.changes(feed="longpoll", since="now", timeout=10)
    assert (empty["results"], empty["pending"]) == ([], 0)
    writer = threading.Timer(0.05, lambda: db.put({"_id": "b"}))
    writer.start()
    woken = db.changes(feed="longpoll", since="now", timeout=5000)
    writer.join()
    assert [r["id"] for r in woken["results"]] == ["b"]
    with pytest.raises(ValueError, match="continuous"):
        db.changes(feed="continuous")


def test_http_continuous_feed(server: MemoryServer) -> None:
    """feed=continuous: one JSON row a line, then last_seq, ending at the timeout."""
    http = MemoryHTTP(server)
    http.handle("PUT", "/c")
    http.handle("POST", "/c/_bulk_docs", body=b'{"docs":[{"_id":"a"},{"_id":"b"}]}')
    answer = http.handle("GET", "/c/_changes", "feed=continuous&timeout=10")
    lines = answer.body.decode().split("\n")
    assert [json.loads(line)["id"] for line in lines[:2]] == ["a", "b"]
    assert set(json.loads(lines[2])) == {"last_seq", "pending"}
    assert lines[3:] == ["", ""]
    limited = http.handle("GET", "/c/_changes", "feed=continuous&limit=1&timeout=5000")
    assert len(limited.body.decode().split("\n")) == 4  # one row, last_seq, blank line


def test_http_multipart_answers(server: MemoryServer) -> None:
    """attachments=true with Accept multipart/related; open_revs with multipart/mixed."""
    http = MemoryHTTP(server)
    http.handle("PUT", "/m")
    ctype = {"Content-Type": "text/plain"}
    http.handle("PUT", "/m/d/h.txt", body=b"hello", headers=ctype)
    related = http.handle(
        "GET", "/m/d", "attachments=true", headers={"Accept": "multipart/related"}
    )
    assert related.headers["content-type"].startswith('multipart/related; boundary="')
    boundary = related.headers["content-type"].split('"')[1].encode()
    doc_part, att_part = related.body.split(b"--" + boundary)[1:3]
    stub = json.loads(doc_part.split(b"\r\n\r\n", 1)[1])["_attachments"]["h.txt"]
    assert (stub["follows"], stub["length"], stub["encoding"]) == (True, 5, "gzip")
    assert gzip.decompress(att_part.split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n")) == b"hello"
    plain = http.handle("GET", "/m/d", "attachments=true")
    assert plain.body["_attachments"]["h.txt"]["data"] == "aGVsbG8="
    mixed = http.handle("GET", "/m/d", "open_revs=all", headers={"Accept": "multipart/mixed"})
    assert mixed.headers["content-type"].startswith('multipart/mixed; boundary="')
    assert b"Content-Type: multipart/related" in mixed.body


def test_view_keys_offset(db: MemoryBackend) -> None:
    """offset of a keys query: the rows before the first row returned."""
    pytest.importorskip("quickjs")
    db.put({"_id": "_design/s", "views": {"t": {"map": "function(doc){ emit(doc.t, 1); }"}}})
    db.bulk_docs([{"_id": "a", "t": "x"}, {"_id": "b", "t": "y"}, {"_id": "c", "t": "z"}])
    assert db.view("s", "t", keys=["y", "x"])["offset"] == 1
    assert db.view("s", "t", keys=["zz"])["offset"] == 3


# -- review fixes: rejected requests, purge, aliasing, replicated validation, bad input ------


def _state(db: MemoryBackend) -> tuple[str, list[str], list[str]]:
    ids = [row["id"] for row in db.all_docs()["rows"]]
    local = [row["id"] for row in db.local_docs()["rows"]]
    return db.info()["update_seq"], ids, local


def test_rejected_bulk_changes_nothing(server: MemoryServer) -> None:
    """CouchDB checks every doc (stubs, _local revs) before it writes any of them."""
    db = server.create("rej1")
    before = _state(db)
    stub = {"x.txt": {"stub": True}}
    replicated: list[dict[str, Any]] = [
        {"_id": "a", "_rev": "1-aaaa", "v": 1},
        {"_id": "b", "_rev": "1-bb", "_attachments": stub},
    ]
    with pytest.raises(PreconditionFailed):
        db.bulk_docs(replicated, new_edits=False)
    assert _state(db) == before
    with pytest.raises(BackendError) as caught:
        db.bulk_docs([{"_id": "a", "v": 1}, {"_id": "_local/l", "_rev": "1-abc"}])
    assert caught.value.status == 500
    assert _state(db) == before
    with pytest.raises(BackendError):
        db.bulk_docs([{"_id": "_local/ok", "v": 1}, {"_id": "_local/l", "_rev": "0-x"}])
    assert _state(db) == before


def test_purge_updates_views_and_seq(db: MemoryBackend) -> None:
    """A purge is an update (03/purge [4]: update_seq 2 -> 3) and leaves no stale view rows."""
    ddoc = {"_id": "_design/d", "views": {"v": {"map": "function(d){ emit(d._id, 1); }"}}}
    first = db.bulk_docs([{"_id": "a"}, {"_id": "b"}, ddoc])
    assert [r["id"] for r in db.view("d", "v")["rows"]] == ["a", "b"]
    seq = int(db.info()["update_seq"].split("-")[0])
    db.purge({"a": [first[0]["rev"]]})
    assert int(db.info()["update_seq"].split("-")[0]) == seq + 1
    assert [r["id"] for r in db.view("d", "v")["rows"]] == ["b"]
    db.purge({"nope": ["1-" + "0" * 32]})
    assert int(db.info()["update_seq"].split("-")[0]) == seq + 1


def test_view_rows_do_not_alias_the_index(db: MemoryBackend) -> None:
    """Mutating a returned row's key or value does not change the next answer."""
    db.put({"_id": "_design/d", "views": {"v": {"map": "function(d){ emit([d._id], {t: d.t}); }"}}})
    db.put({"_id": "a", "t": ["x"]})
    rows = db.view("d", "v")["rows"]
    rows[0]["key"].append("K")
    rows[0]["value"]["t"].append("M")
    assert db.view("d", "v")["rows"] == [{"id": "a", "key": ["a"], "value": {"t": ["x"]}}]


def test_replicated_writes_are_validated(db: MemoryBackend) -> None:
    """new_edits=false runs validate_doc_update and design-doc validation, as CouchDB does."""
    vdu = "function(n, o){ if (n.secret) throw({forbidden: 'no secrets'}); }"
    db.put({"_id": "_design/v", "validate_doc_update": vdu})
    rev = "1-" + "a" * 32
    answer = db.bulk_docs([{"_id": "y", "_rev": rev, "secret": 1}], new_edits=False)
    assert answer == [{"id": "y", "rev": rev, "error": "forbidden", "reason": "no secrets"}]
    with pytest.raises(DocumentNotFound):
        db.get("y")
    bad = {"_id": "_design/bad", "_rev": "1-" + "b" * 32, "views": 5}
    (error,) = db.bulk_docs([bad], new_edits=False)
    assert error["error"] == "invalid_design_doc"
    with pytest.raises(DocumentNotFound):
        db.get("_design/bad")
    with pytest.raises(BackendError) as caught:
        db.put({"_id": "z", "_rev": rev, "secret": 1}, new_edits=False)
    assert (caught.value.status, caught.value.error) == (403, "forbidden")


def test_handle_to_deleted_database_answers_404(server: MemoryServer) -> None:
    db = server.create("gone")
    server.delete("gone")
    with pytest.raises(NotFoundError, match="Database does not exist"):
        db.put({"_id": "a"})
    with pytest.raises(NotFoundError):
        db.info()
    again = server.create("gone")
    assert again.all_docs()["rows"] == []
    again.drop()
    assert "gone" not in server
    with pytest.raises(NotFoundError):
        again.drop()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_rejected(db: MemoryBackend, value: float) -> None:
    """CouchDB refuses them (02/doc-float-overflow): 400 "invalid UTF-8 JSON"; nothing stored."""
    for write in (lambda: db.put({"_id": "n", "x": [value]}), lambda: db.bulk_docs([{"x": value}])):
        with pytest.raises(BackendError) as caught:
            write()
        assert (caught.value.status, caught.value.error, caught.value.reason) == (
            400,
            "bad_request",
            "invalid UTF-8 JSON",
        )
    assert db.info()["doc_count"] == 0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda db: db.put({"_id": "k", 1: 2}), "object key 1 is not a string"),
        (lambda db: db.put({"_id": "s", "x": {1}}), "set value"),
        (lambda db: db.put(None), "must be a dict"),
        (lambda db: db.post([1]), "must be a dict"),
        (lambda db: db.bulk_docs(None), "takes a list"),
        (lambda db: db.bulk_docs("ab"), "takes a list"),
        (lambda db: db.bulk_docs([1]), "must be a dict"),
        (lambda db: db.get(123), "must be a str"),
        (lambda db: db.get(None), "must be a str"),
        (lambda db: db.delete(None, "1-a"), "must be a str"),
        (lambda db: db.put_attachment("a", "x.txt", "text", "text/plain"), "must be bytes"),
    ],
)
def test_bad_arguments_raise_type_error(db: MemoryBackend, call: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        call(db)
    assert db.info()["doc_count"] == 0


def test_bookmark_is_a_cursor(db: MemoryBackend) -> None:
    """A bookmark continues after the last (key, id) of its page, not at an offset."""
    db.bulk_docs([{"_id": f"d{i}", "n": i} for i in range(10, 20)])
    query: dict[str, Any] = {"selector": {"n": {"$gte": 0}}, "limit": 3}
    first = db.find(query)
    assert [d["_id"] for d in first["docs"]] == ["d10", "d11", "d12"]
    db.put({"_id": "a0", "n": 0})  # sorts before the cursor
    second = db.find({**query, "bookmark": first["bookmark"]})
    assert [d["_id"] for d in second["docs"]] == ["d13", "d14", "d15"]
    db.create_index({"index": {"fields": ["n"]}})
    sorted_query: dict[str, Any] = {"selector": {"n": {"$gte": 0}}, "sort": [{"n": "desc"}]}
    page = db.find({**sorted_query, "limit": 2})
    assert [d["n"] for d in page["docs"]] == [19, 18]
    db.delete("d19", db.get("d19")["_rev"])
    page = db.find({**sorted_query, "limit": 2, "bookmark": page["bookmark"]})
    assert [d["n"] for d in page["docs"]] == [17, 16]
    for bad in ("nil", "xyz", "g1AAAAeyJ4IjoxfQ"):
        with pytest.raises(QueryError, match="invalid_bookmark"):
            db.find({**query, "bookmark": bad})
