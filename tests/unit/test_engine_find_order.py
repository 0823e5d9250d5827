"""The memory engine's ``_find`` through its sorted structures (per index and per id).

``execution_stats: true`` makes the engine scan every document (it counts what it examined),
so each query is also asked that way: the page read through the structures must be the same,
bookmark included.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from couchmapper.memory.engine import find, replication
from couchmapper.memory.engine.store import Database

MIXED = [None, False, True, -1, 0, 0.5, 1, 2, 10, "", "a", "A", "ab", "b", [], [1], {}, {"a": 1}]
"""Values of every JSON type, in view-collation order."""


def scanned(db: Database, query: dict[str, Any]) -> dict[str, Any]:
    """The answer of the full scan: ``execution_stats`` takes that way."""
    answer = find.find(db, {**query, "execution_stats": True})
    answer.pop("execution_stats", None)
    return answer


def same_both_ways(db: Database, query: dict[str, Any]) -> dict[str, Any]:
    """Ask ``query`` through the structures and by the scan; assert equal answers."""
    fast = find.find(db, query)
    assert fast == scanned(db, query), query
    return fast


def pages(db: Database, query: dict[str, Any]) -> list[str]:
    """Every id a bookmark-paged query returns, checking each page both ways."""
    ids: list[str] = []
    bookmark = None
    while True:
        page = dict(query)
        if bookmark is not None:
            page["bookmark"] = bookmark
        answer = same_both_ways(db, page)
        if not answer["docs"]:
            return ids
        ids += [d["_id"] for d in answer["docs"]]
        bookmark = answer["bookmark"]


def make_db(docs: list[dict[str, Any]]) -> Database:
    """A database holding ``docs``."""
    db = Database("order")
    assert all(r.get("ok") for r in db.bulk_docs(docs))
    return db


def test_collation_order_of_mixed_types() -> None:
    """An index on a field of every JSON type returns them in view-collation order."""
    db = make_db([{"_id": f"d{i:02d}", "v": v} for i, v in reversed(list(enumerate(MIXED)))])
    find.create_index(db, {"index": {"fields": ["v"]}})
    answer = same_both_ways(db, {"selector": {"v": {"$exists": True}}, "sort": ["v"]})
    assert [d["v"] for d in answer["docs"]] == MIXED


def test_range_on_mixed_types_uses_collation() -> None:
    """``$gt``/``$lte`` on an indexed field take the collation range across types."""
    db = make_db([{"_id": f"d{i:02d}", "v": v} for i, v in enumerate(MIXED)])
    find.create_index(db, {"index": {"fields": ["v"]}})
    answer = same_both_ways(db, {"selector": {"v": {"$gt": True, "$lte": "a"}}})
    assert [d["v"] for d in answer["docs"]] == [-1, 0, 0.5, 1, 2, 10, "", "a"]


def test_ties_in_sort_keys_follow_the_ids() -> None:
    """Equal keys come in id order ascending, and the other way round descending."""
    db = make_db([{"_id": f"d{i}", "k": i % 2} for i in range(6)])
    find.create_index(db, {"index": {"fields": ["k"]}})
    up = same_both_ways(db, {"selector": {"k": {"$gte": 0}}, "sort": [{"k": "asc"}]})
    assert [d["_id"] for d in up["docs"]] == ["d0", "d2", "d4", "d1", "d3", "d5"]
    down = same_both_ways(db, {"selector": {"k": {"$gte": 0}}, "sort": [{"k": "desc"}]})
    assert [d["_id"] for d in down["docs"]] == ["d5", "d3", "d1", "d4", "d2", "d0"]


def test_bookmark_resumes_after_ties_and_writes() -> None:
    """Paging by bookmark through tied keys returns each doc once, despite writes between."""
    db = make_db([{"_id": f"d{i:02d}", "k": i % 3} for i in range(20)])
    find.create_index(db, {"index": {"fields": ["k"]}})
    query = {"selector": {"k": {"$gte": 0}}, "sort": ["k"], "limit": 4}
    first = same_both_ways(db, query)
    # A doc written before the cursor does not shift the next page.
    db.bulk_docs([{"_id": "a-early", "k": 0}])
    rest = pages(db, {**query, "bookmark": first["bookmark"]})
    seen = [d["_id"] for d in first["docs"]] + rest
    assert len(seen) == len(set(seen)) == 20
    assert "a-early" not in seen


def test_bookmark_of_a_deleted_row_still_resumes() -> None:
    """A bookmark naming a row that was deleted since continues after its place."""
    db = make_db([{"_id": f"d{i}", "k": i} for i in range(6)])
    find.create_index(db, {"index": {"fields": ["k"]}})
    first = same_both_ways(db, {"selector": {"k": {"$gt": -1}}, "limit": 2})
    rev = db.get("d1")["_rev"]
    db.delete("d1", rev)
    query = {"selector": {"k": {"$gt": -1}}, "bookmark": first["bookmark"]}
    after = same_both_ways(db, query)
    assert [d["_id"] for d in after["docs"]] == ["d2", "d3", "d4", "d5"]


def test_updated_and_deleted_docs_leave_the_index() -> None:
    """An update moves a row, losing the field or a deletion removes it, a purge too."""
    db = make_db([{"_id": f"d{i}", "k": i} for i in range(5)])
    find.create_index(db, {"index": {"fields": ["k"]}})
    query = {"selector": {"k": {"$gte": 0}}, "sort": ["k"]}
    assert [d["_id"] for d in same_both_ways(db, query)["docs"]] == ["d0", "d1", "d2", "d3", "d4"]
    db.put({"_rev": db.get("d0")["_rev"], "k": 9}, "d0")
    db.put({"_rev": db.get("d1")["_rev"], "other": 1}, "d1")
    db.delete("d2", db.get("d2")["_rev"])
    replication.purge(db, {"d3": [db.get("d3")["_rev"]]})
    assert [d["_id"] for d in same_both_ways(db, query)["docs"]] == ["d4", "d0"]
    db.put({"_rev": db.get("d1")["_rev"], "k": 5}, "d1")  # the field comes back
    assert [d["_id"] for d in same_both_ways(db, query)["docs"]] == ["d4", "d1", "d0"]


def test_deleted_docs_leave_the_id_order() -> None:
    """A scan without an index skips deleted docs and finds re-created ones."""
    db = make_db([{"_id": f"d{i}", "k": i} for i in range(4)])
    db.delete("d1", db.get("d1")["_rev"])
    assert [d["_id"] for d in same_both_ways(db, {"selector": {}})["docs"]] == ["d0", "d2", "d3"]
    db.put({"k": 1}, "d1")
    answer = same_both_ways(db, {"selector": {}})
    assert [d["_id"] for d in answer["docs"]] == ["d0", "d1", "d2", "d3"]


def test_partial_index_holds_only_matching_docs() -> None:
    """A partial index serves only docs matching its filter, and follows their updates."""
    db = make_db([{"_id": f"d{i}", "k": i, "on": i % 2 == 0} for i in range(6)])
    find.create_index(
        db,
        {
            "index": {"fields": ["k"], "partial_filter_selector": {"on": True}},
            "ddoc": "p",
            "name": "p",
        },
    )
    query = {"selector": {"k": {"$gte": 0}}, "use_index": ["p", "p"], "sort": ["k"]}
    assert [d["_id"] for d in same_both_ways(db, query)["docs"]] == ["d0", "d2", "d4"]
    db.put({"_rev": db.get("d1")["_rev"], "k": 1, "on": True}, "d1")
    db.put({"_rev": db.get("d2")["_rev"], "k": 2, "on": False}, "d2")
    assert [d["_id"] for d in same_both_ways(db, query)["docs"]] == ["d0", "d1", "d4"]


def test_multi_field_index_orders_by_every_field() -> None:
    """A two-field index sorts by the first field, then the second, then the id."""
    docs = [{"_id": f"d{i}", "a": i % 2, "b": -i} for i in range(6)]
    db = make_db(docs)
    find.create_index(db, {"index": {"fields": ["a", "b"]}})
    query = {"selector": {"a": 1, "b": {"$lt": 0}}, "sort": ["a", "b"]}
    assert [d["_id"] for d in same_both_ways(db, query)["docs"]] == ["d5", "d3", "d1"]
    assert pages(db, {**query, "limit": 1}) == ["d5", "d3", "d1"]


def test_partitioned_queries_stay_in_their_partition() -> None:
    """A partition query walks only that partition's ids, indexed or not."""
    db = Database("parts", partitioned=True)
    db.bulk_docs([{"_id": f"{p}:d{i}", "k": i} for p in ("a", "b", "c") for i in range(3)])
    query = {"selector": {"k": {"$gte": 1}}}
    fast = find.find(db, query, partition="b")
    slow = find.find(db, {**query, "execution_stats": True}, partition="b")
    slow.pop("execution_stats")
    assert fast == slow
    assert [d["_id"] for d in fast["docs"]] == ["b:d1", "b:d2"]
    find.create_index(db, {"index": {"fields": ["k"]}, "partitioned": True})
    indexed = find.find(db, query, partition="c")
    assert "warning" not in indexed
    assert [d["_id"] for d in indexed["docs"]] == ["c:d1", "c:d2"]


def test_dropping_an_index_releases_its_rows() -> None:
    """A deleted index's structure stops following writes."""
    db = make_db([{"_id": "d0", "k": 0}])
    created = find.create_index(db, {"index": {"fields": ["k"]}, "ddoc": "x", "name": "x"})
    same_both_ways(db, {"selector": {"k": 0}})
    assert len(db.find_state) == len(db.dirty_sets) == 1
    find.delete_index(db, created["id"], "x")
    same_both_ways(db, {"selector": {"k": 0}})
    assert list(db.find_state) == ["ids"]
    assert len(db.dirty_sets) == 1


values = st.sampled_from(MIXED)
docs_strategy = st.lists(
    st.fixed_dictionaries({}, optional={"a": values, "b": values, "on": st.booleans()}),
    max_size=25,
)
conditions = st.sampled_from(["$eq", "$gt", "$gte", "$lt", "$lte", "$ne"])


@settings(max_examples=60, deadline=None)
@given(
    docs=docs_strategy,
    index_fields=st.sampled_from([["a"], ["a", "b"], ["b", "a"], ["_id", "a"]]),
    partial=st.booleans(),
    ops=st.lists(st.tuples(conditions, values), min_size=1, max_size=2),
    descending=st.booleans(),
    limit=st.integers(min_value=1, max_value=7),
    skip=st.integers(min_value=0, max_value=3),
    changes=st.lists(st.tuples(st.integers(0, 24), st.sampled_from(["del", "set"]), values)),
)
def test_any_query_pages_like_the_scan(
    *,
    docs: list[dict[str, Any]],
    index_fields: list[str],
    partial: bool,
    ops: list[tuple[str, Any]],
    descending: bool,
    limit: int,
    skip: int,
    changes: list[tuple[int, str, Any]],
) -> None:
    """Random docs, index, writes and query: every page equals the full scan's."""
    db = make_db([{"_id": f"d{i:02d}", **d} for i, d in enumerate(docs)])
    index: dict[str, Any] = {"fields": index_fields}
    if partial:
        index["partial_filter_selector"] = {"on": True}
    find.create_index(db, {"index": index, "ddoc": "i", "name": "i"})
    selector = {index_fields[0]: dict(ops)}
    direction = "desc" if descending else "asc"
    query: dict[str, Any] = {
        "selector": selector,
        "sort": [{f: direction} for f in index_fields],
        "limit": limit,
        "skip": skip,
    }
    pages(db, query)
    for position, action, value in changes:
        doc_id = f"d{position:02d}"
        current = db.docs.get(doc_id)
        if current is None or current.winner().deleted:
            db.put({"a": value, "on": True}, doc_id)
        elif action == "del":
            db.delete(doc_id, current.winner().rev)
        else:
            db.put({"_rev": current.winner().rev, "a": value, "b": value}, doc_id)
    pages(db, query)
    pages(db, {"selector": selector, "limit": limit})


def test_id_led_index_compares_ids_by_raw_order() -> None:
    """An index led by ``_id`` answers ``$gt`` on ids in raw order (``a`` after ``B``)."""
    db = make_db([{"_id": i, "x": 1} for i in ("B", "a", "c")])
    find.create_index(db, {"index": {"fields": ["_id", "x"]}})
    answer = same_both_ways(db, {"selector": {"_id": {"$gt": "B"}, "x": 1}})
    assert sorted(d["_id"] for d in answer["docs"]) == ["a", "c"]
