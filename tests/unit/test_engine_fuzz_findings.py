"""Differences the differential fuzzer (tests/differential) found, answered as CouchDB 3.5 did.

Each test replays the shortest sequence the fuzzer reported on the memory engine alone; the
expected answers are the ones Apache CouchDB 3.5.0 gave to the same requests.
"""

from __future__ import annotations

import json
from typing import Any

from couchmapper.backends.memory import MemoryServer
from couchmapper.memory.http import MemoryHTTP


def _engine() -> MemoryHTTP:
    http = MemoryHTTP(MemoryServer())
    assert http.handle("PUT", "/db").status == 201
    return http


def _call(
    http: MemoryHTTP, method: str, path: str, query: str = "", body: Any = None
) -> tuple[int, Any]:
    raw = None if body is None else json.dumps(body).encode()
    response = http.handle(method, path, query, raw, {"Content-Type": "application/json"})
    return response.status, response.body


def test_delete_missing_doc_with_malformed_rev_is_404() -> None:
    """DELETE of a missing doc with ?rev=nope: 404 missing (CouchDB opens the doc first)."""
    http = _engine()
    assert _call(http, "DELETE", "/db/b", "rev=nope") == (
        404,
        {"error": "not_found", "reason": "missing"},
    )


def test_delete_deleted_doc_with_malformed_rev_is_404_deleted() -> None:
    """DELETE of a deleted doc with ?rev=nope: 404 deleted, not 400."""
    http = _engine()
    status, body = _call(http, "PUT", "/db/x", body={})
    assert status == 201
    assert _call(http, "DELETE", "/db/x", f"rev={body['rev']}")[0] == 200
    assert _call(http, "DELETE", "/db/x", "rev=nope") == (
        404,
        {"error": "not_found", "reason": "deleted"},
    )


def test_delete_live_doc_with_malformed_rev_is_400() -> None:
    """DELETE of a live doc with ?rev=nope is still 400 Invalid rev format."""
    http = _engine()
    assert _call(http, "PUT", "/db/x", body={})[0] == 201
    assert _call(http, "DELETE", "/db/x", "rev=nope") == (
        400,
        {"error": "bad_request", "reason": "Invalid rev format"},
    )


def test_tombstone_without_rev_on_deleted_doc_is_a_conflict() -> None:
    """A deletion without a rev on an already deleted doc: 409 (PUT) and conflict (bulk)."""
    http = _engine()
    assert _call(http, "PUT", "/db/y", body={"_deleted": True}) == (
        200,
        {"ok": True, "id": "y", "rev": "1-de715bf126efc93d225d9e3f8e8eb81a"},
    )
    assert _call(http, "PUT", "/db/y", body={"_deleted": True}) == (
        409,
        {"error": "conflict", "reason": "Document update conflict."},
    )
    assert _call(
        http, "POST", "/db/_bulk_docs", body={"docs": [{"_id": "y", "_deleted": True}]}
    ) == (
        201,
        [{"id": "y", "error": "conflict", "reason": "Document update conflict."}],
    )
    # A live doc without a rev still revives a deleted doc, growing its tombstone.
    assert _call(http, "PUT", "/db/x", body={})[0] == 201
    assert _call(http, "DELETE", "/db/x", "rev=1-967a00dff5e02add41819138abb3284d")[0] == 200
    revived = _call(http, "POST", "/db/_bulk_docs", body={"docs": [{"_id": "x"}]})
    assert revived == (201, [{"ok": True, "id": "x", "rev": "3-5570e8bbb34412db757c2df4bfa1099b"}])


def test_open_revs_ignores_revs_info_conflicts_and_meta() -> None:
    """open_revs answers carry no _revs_info, _conflicts, _deleted_conflicts or _local_seq."""
    http = _engine()
    assert _call(http, "PUT", "/db/x", body={})[0] == 201
    for rev, extra in (("1-" + "a" * 32, {}), ("1-" + "b" * 32, {"_deleted": True})):
        assert _call(http, "PUT", "/db/x", "new_edits=false", {"_rev": rev, **extra})[0] in (
            200,
            201,
        )
    expected_all = [
        {"ok": {"_id": "x", "_rev": "1-967a00dff5e02add41819138abb3284d"}},
        {"ok": {"_id": "x", "_rev": "1-" + "a" * 32}},
        {"ok": {"_id": "x", "_rev": "1-" + "b" * 32, "_deleted": True}},
    ]
    for option in ("revs_info", "conflicts", "deleted_conflicts", "meta", "local_seq"):
        assert _call(http, "GET", "/db/x", f"open_revs=all&{option}=true") == (200, expected_all)
        listed = _call(http, "GET", "/db/x", f'open_revs=["1-{"a" * 32}"]&{option}=true')
        assert listed == (200, [expected_all[1]])


def test_all_docs_keys_with_a_range_is_refused_unless_it_is_that_key() -> None:
    """POST _all_docs keys + key/startkey/endkey: 400 unless one key equal to every bound."""
    http = _engine()
    assert _call(http, "PUT", "/db/a", body={})[0] == 201
    refused = (
        400,
        {
            "error": "query_parse_error",
            "reason": "`keys` is incompatible with `key`, `start_key` and `end_key`",
        },
    )
    for query, keys in (
        ('endkey="z"', ["a"]),
        ('startkey="b"', ["a"]),
        ('key="a"', ["a", "b"]),
        ('startkey="a"', ["a", "a"]),
        ('endkey="a"&descending=true', ["c1", "c10"]),
    ):
        assert _call(http, "POST", "/db/_all_docs", query, {"keys": keys}) == refused, query
    row = {"id": "a", "key": "a", "value": {"rev": "1-967a00dff5e02add41819138abb3284d"}}
    for query in ('key="a"', 'startkey="a"&endkey="a"', 'endkey="a"&descending=true'):
        answer = _call(http, "POST", "/db/_all_docs", query, {"keys": ["a"]})
        assert answer == (200, {"total_rows": 1, "offset": None, "rows": [row]}), query
    empty = _call(http, "POST", "/db/_all_docs", 'startkey="zz"', {"keys": []})
    assert empty == (200, {"total_rows": 1, "offset": None, "rows": []})


def test_revive_with_attachments_gets_couchdbs_rev() -> None:
    """A doc re-created on its tombstone with attachments gets CouchDB's rev (type-blind)."""
    for content_type in ("text/plain", "application/octet-stream"):
        http = _engine()
        assert _call(http, "PUT", "/db/D", body={})[0] == 201
        assert _call(http, "DELETE", "/db/D", "rev=1-967a00dff5e02add41819138abb3284d")[0] == 200
        att = {"content_type": content_type, "data": "Yi5iaW46e30="}
        answer = _call(http, "PUT", "/db/D", body={"_attachments": {"b.bin": att}})
        assert answer == (
            201,
            {"ok": True, "id": "D", "rev": "3-f34abe83504590cc18e26629389dc344"},
        )


def _index_used(http: MemoryHTTP, selector: dict[str, Any]) -> str:
    status, body = _call(http, "POST", "/db/_explain", body={"selector": selector})
    assert status == 200
    name: str = body["index"]["name"]
    return name


def test_json_index_is_used_when_every_or_branch_requires_its_field() -> None:
    """A JSON index on f serves $or when every branch requires f, and $ne/$nin on f."""
    http = _engine()
    created = _call(http, "POST", "/db/_index", body={"index": {"fields": ["f"]}})
    name = created[1]["name"]
    usable: list[dict[str, Any]] = [
        {"$or": [{"f": {"$eq": ""}}]},
        {"$or": [{"f": {"$gt": 1}}, {"f": {"$lt": 0}}]},
        {"$and": [{"$or": [{"f": {"$gt": 1}}]}]},
        {"$or": [{"f": 1, "g": 2}]},
        {"g": 1, "$or": [{"f": 1}]},
        {"f": {"$ne": 1}},
        {"f": {"$nin": [1]}},
        {"$not": {"f": 1}},
    ]
    for selector in usable:
        assert _index_used(http, selector) == name, selector
    unusable: list[dict[str, Any]] = [
        {"$or": [{"f": 1}, {"g": 1}]},
        {"$or": [{"f": {"$exists": False}}]},
    ]
    for selector in unusable:
        assert _index_used(http, selector) == "_all_docs", selector
    found = _call(http, "POST", "/db/_find", body={"selector": {"$or": [{"f": {"$eq": ""}}]}})
    assert found == (200, {"docs": [], "bookmark": "nil"})


def test_stub_against_a_deleted_leaf_is_missing_stub_before_conflict() -> None:
    """PUT with a deleted leaf's rev and a stub it lacks: 412 missing_stub, not 409."""
    http = _engine()
    created = _call(http, "PUT", "/db/a", body={"_deleted": True, "g": 0})
    assert created[0] == 200
    rev = created[1]["rev"]
    stub = {"_rev": rev, "_attachments": {"a.txt": {"stub": True}}}
    assert _call(http, "PUT", "/db/a", body=stub) == (
        412,
        {"error": "missing_stub", "reason": "Invalid attachment stub in a for a.txt"},
    )
    assert _call(http, "PUT", "/db/a", body={"_rev": rev}) == (
        409,
        {"error": "conflict", "reason": "Document update conflict."},
    )


def test_find_with_an_unsatisfiable_index_range_has_no_bookmark() -> None:
    """_find whose conditions on the index's field cannot all hold: {"docs": []} only."""
    http = _engine()
    assert _call(http, "POST", "/db/_index", body={"index": {"fields": ["f"]}})[0] == 200
    assert _call(http, "PUT", "/db/a", body={})[0] == 201
    empty: list[dict[str, Any]] = [
        {"$and": [{"f": {"$eq": None}}, {"f": {"$eq": False}}]},
        {"$and": [{"f": {"$gt": 5}}, {"f": {"$lt": 1}}]},
        {"f": {"$gt": 1, "$lte": 1}},
        {"f": {"$gt": None, "$lt": None}},
    ]
    for selector in empty:
        assert _call(http, "POST", "/db/_find", body={"selector": selector}) == (
            200,
            {"docs": []},
        ), selector
    found = _call(http, "POST", "/db/_find", body={"selector": {"f": {"$gte": 1, "$lte": 1}}})
    assert found == (200, {"docs": [], "bookmark": "nil"})


def test_a_deleted_leaf_of_a_live_doc_can_be_extended() -> None:
    """Updating or deleting a deleted conflict leaf of a live doc grows it, as in CouchDB."""
    http = _engine()
    deleted_leaf = {"_rev": "1-9f4a5cd36aa2ddc9ed46aa5b47e86ddc", "_deleted": True}
    for doc_id in ("B", "C"):
        assert _call(http, "PUT", f"/db/{doc_id}", body={})[0] == 201
        assert _call(http, "PUT", f"/db/{doc_id}", "new_edits=false", deleted_leaf)[0] == 200
    grown = _call(
        http, "POST", "/db/_bulk_docs", body={"docs": [{"_id": "B", "_rev": deleted_leaf["_rev"]}]}
    )
    assert grown == (201, [{"ok": True, "id": "B", "rev": "2-fa94139cb0be3239b4c5c421008dee4f"}])
    assert _call(http, "DELETE", "/db/C", f"rev={deleted_leaf['_rev']}") == (
        200,
        {"ok": True, "id": "C", "rev": "2-3353b343965bce55ab3a094efdc22b97"},
    )


def test_get_rev_with_latest_answers_the_leaf_that_grew_from_it() -> None:
    """GET ?rev=<old>&latest=true answers the winner (here the leaf grown from that rev)."""
    http = _engine()
    first = _call(http, "PUT", "/db/c", body={"g": "a"})[1]["rev"]
    assert first == "1-9fc1420b6834c58c79ee1543ad24ddb5"
    assert _call(http, "PUT", "/db/c", body={"g": "b", "_rev": first})[0] == 201
    assert _call(http, "GET", "/db/c", f"rev={first}&latest=true&revs=true") == (
        200,
        {
            "_id": "c",
            "_rev": "2-8900a05950e646766ca44081d2d8950a",
            "g": "b",
            "_revisions": {
                "start": 2,
                "ids": ["8900a05950e646766ca44081d2d8950a", "9fc1420b6834c58c79ee1543ad24ddb5"],
            },
        },
    )


def test_get_rev_with_latest_of_a_tombstone_is_404_deleted() -> None:
    """GET ?rev=&latest=true whose leaf is deleted: 404 deleted (a plain ?rev= is 200)."""
    http = _engine()
    rev = _call(http, "PUT", "/db/B", body={"_deleted": True, "g": "B"})[1]["rev"]
    assert _call(http, "GET", "/db/B", f"rev={rev}")[0] == 200
    for query in (f"rev={rev}&latest=true", f"rev={rev}&latest=true&meta=true"):
        assert _call(http, "GET", "/db/B", query) == (
            404,
            {"error": "not_found", "reason": "deleted"},
        )
    live = _call(http, "PUT", "/db/L", body={"g": "B"})[1]["rev"]
    assert _call(http, "DELETE", "/db/L", f"rev={live}")[0] == 200
    assert _call(http, "GET", "/db/L", f"rev={live}&latest=true") == (
        404,
        {"error": "not_found", "reason": "deleted"},
    )


def test_get_with_latest_opens_the_winner_whatever_rev_names() -> None:
    """GET ?rev=<leaf>&latest=true answers the winner, with meta members and no ETag."""
    http = _engine()
    assert _call(http, "PUT", "/db/x", body={})[0] == 201
    for rev, extra in (("1-" + "a" * 32, {}), ("1-" + "b" * 32, {"_deleted": True})):
        assert _call(http, "PUT", "/db/x", "new_edits=false", {"_rev": rev, **extra})[0] < 300
    own = "rev=1-967a00dff5e02add41819138abb3284d&latest=true"
    response = http.handle("GET", "/db/x", f"{own}&meta=true")
    assert (response.status, response.body) == (
        200,
        {
            "_id": "x",
            "_rev": "1-" + "a" * 32,
            "_revs_info": [{"rev": "1-" + "a" * 32, "status": "available"}],
            "_conflicts": ["1-967a00dff5e02add41819138abb3284d"],
            "_deleted_conflicts": ["1-" + "b" * 32],
        },
    )
    assert "etag" not in response.headers
    assert _call(http, "GET", "/db/x", f"{own}&local_seq=true") == (
        200,
        {"_id": "x", "_rev": "1-" + "a" * 32, "_local_seq": 3},
    )
    # _local_seq is the doc's last update (3: the deleted branch), and absent for a ?rev=.
    plain = _call(http, "GET", "/db/x", "rev=1-967a00dff5e02add41819138abb3284d&local_seq=true")
    assert plain == (200, {"_id": "x", "_rev": "1-967a00dff5e02add41819138abb3284d"})


def test_open_revs_with_latest_answers_the_leaves_grown_from_each_rev() -> None:
    """open_revs=[...]&latest=true: each rev's descendant leaves in tree order, each once."""
    http = _engine()
    first = _call(http, "PUT", "/db/B", body={"f": 1})[1]["rev"]
    tomb = _call(http, "DELETE", "/db/B", f"rev={first}")[1]["rev"]
    branch = {
        "_rev": "2-" + "a" * 32,
        "_revisions": {"start": 2, "ids": ["a" * 32, first.partition("-")[2]]},
    }
    assert _call(http, "PUT", "/db/B", "new_edits=false", branch)[0] == 201
    revs = json.dumps([first, tomb, "1-" + "c" * 32])
    assert _call(http, "GET", "/db/B", f"latest=true&open_revs={revs}") == (
        200,
        [
            {"ok": {"_id": "B", "_rev": tomb, "_deleted": True}},
            {"ok": {"_id": "B", "_rev": "2-" + "a" * 32}},
            {"missing": "1-" + "c" * 32},
        ],
    )


def test_descending_changes_ignore_since_and_count_the_rest_as_pending() -> None:
    """_changes?descending=true&since=now&limit=1: one row, pending 3 (since is ignored)."""
    http = _engine()
    for doc_id in "abcd":
        assert _call(http, "PUT", f"/db/{doc_id}", body={})[0] == 201
    status, body = _call(http, "GET", "/db/_changes", "descending=true&since=now&limit=1")
    assert (status, len(body["results"]), body["pending"]) == (200, 1, 3)
    status, body = _call(http, "GET", "/db/_changes", "descending=true&since=now")
    assert (status, len(body["results"]), body["pending"]) == (200, 4, 0)
