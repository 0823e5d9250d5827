"""CouchDBBackend against the real test server: every Backend method, errors and redaction.

Where pouchdb-server 4.2.0 deviates from CouchDB 3.5 (the table in
``tests/transcripts/README.md``), tests branch on ``server_kind`` and say so.
"""

from __future__ import annotations

import logging
import pathlib
import threading
from typing import Any

import _server
import couchdb
import pytest
from _proxy import RecordingProxy
from _server import ServerSetupError, check_loopback_url, free_port, is_loopback_host

from couchmapper._url import redact_text, redact_url, split_credentials
from couchmapper.backends.base import Backend
from couchmapper.backends.couchdb import (
    CouchDBBackend,
    CouchDBServer,
    create_database,
    delete_database,
    list_databases,
)
from couchmapper.backends.couchdb.backend import in_request_order
from couchmapper.backends.couchdb.transport import encode_params
from couchmapper.exceptions import (
    BackendError,
    BackendUnavailable,
    ConflictError,
    DocumentNotFound,
    NotFoundError,
    PreconditionFailed,
    QueryError,
)

SECRET = "s3cret-Pa55word"
VIEWS_DDOC: dict[str, Any] = {
    "_id": "_design/app",
    "views": {
        "by_kind": {"map": "function (doc) { if (doc.kind) { emit(doc.kind, doc.n); } }"},
        "count_kind": {
            "map": "function (doc) { if (doc.kind) { emit(doc.kind, 1); } }",
            "reduce": "_count",
        },
    },
}


def _seed(backend: CouchDBBackend, count: int = 4) -> None:
    kinds = ["a", "b", "a", "c", "b", "a"]
    docs = [{"_id": f"d{i}", "kind": kinds[i % len(kinds)], "n": i} for i in range(count)]
    assert all(r.get("ok") for r in backend.bulk_docs(docs))


# --------------------------------------------------------------------------- pure helpers


def test_redact_url_masks_password_keeps_user() -> None:
    """The password in a URL becomes *** and the user name stays."""
    assert redact_url("http://admin:pw@127.0.0.1:5984/db") == "http://admin:***@127.0.0.1:5984/db"
    assert redact_url("https://token@h/x") == "https://***@h/x"
    assert redact_url("http://h:5984/db?x=a@b") == "http://h:5984/db?x=a@b"


def test_redact_text_masks_embedded_urls_and_literal_secrets() -> None:
    """URLs inside text and known secrets (also percent-encoded) are masked; short ones are not."""
    text = f"failed http://u:{SECRET}@h/db: bad {SECRET} / s3cret-Pa55word%21"
    cleaned = redact_text(text, [SECRET, "s3cret-Pa55word!"])
    assert SECRET not in cleaned
    assert "%21" not in cleaned
    assert cleaned.startswith("failed http://u:***@h/db")
    assert redact_text("a cat", ["a"]) == "a cat"


def test_split_credentials_decodes_special_characters() -> None:
    """Percent-encoded ':' and '@' in credentials are decoded; the rest of the URL is kept."""
    clean, credentials = split_credentials("http://ad%3Amin:p%40ss%3Aw@127.0.0.1:5984/a%2Fb")
    assert clean == "http://127.0.0.1:5984/a%2Fb"
    assert credentials == ("ad:min", "p@ss:w")
    assert split_credentials("http://h/db") == ("http://h/db", None)


def test_encode_params_sends_keys_as_json_and_flags_as_words() -> None:
    """Keys are JSON (None is null), booleans true/false, other strings raw, None dropped."""
    encoded = encode_params(
        {"startkey": "a", "endkey": ["b", {}], "key": None, "limit": 2, "descending": True}
        | {"stale": "ok", "skip": None, "since": 5}
    )
    assert encoded == {
        "startkey": '"a"',
        "endkey": '["b",{}]',
        "key": "null",
        "limit": "2",
        "descending": "true",
        "stale": "ok",
        "since": "5",
    }


def test_in_request_order_realigns_reordered_results() -> None:
    """Results a server reordered are put back in request order by id; repeats keep their order."""
    docs = [{"_id": "b"}, {"_id": "_design/x"}, {"_id": "b"}]
    results: list[dict[str, Any]] = [
        {"id": "_design/x", "ok": True},
        {"id": "b", "rev": "1"},
        {"id": "b", "error": "e"},
    ]
    assert in_request_order(docs, results) == [results[1], results[0], results[2]]
    assert in_request_order([{}], [{"id": "gen"}]) == [{"id": "gen"}]


def test_loopback_check_refuses_remote_hosts() -> None:
    """Only 127.0.0.0/8, localhost and ::1 are accepted as test servers."""
    assert is_loopback_host("127.3.2.1")
    assert is_loopback_host("localhost")
    assert is_loopback_host("::1")
    assert not is_loopback_host("10.0.0.1")
    assert not is_loopback_host("couch.example.com")
    check_loopback_url("http://admin:pw@[::1]:5984")
    with pytest.raises(ServerSetupError, match="not a loopback"):
        check_loopback_url("http://admin:pw@couch.example.com:5984")


def test_missing_devserver_says_what_to_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    """Without tests/devserver/node_modules the error names `make devserver` and Node.js 20."""
    monkeypatch.setattr(_server, "POUCHDB_SERVER", tmp_path / "no" / "pouchdb-server")
    with pytest.raises(ServerSetupError, match=r"make devserver.*Node\.js 20|Node\.js 20.*make"):
        _server.start_pouchdb(tmp_path)


def test_backend_satisfies_protocol() -> None:
    """CouchDBBackend is a Backend (every protocol member exists)."""
    backend = CouchDBServer("http://127.0.0.1:1").database("x")
    assert isinstance(backend, Backend)


# --------------------------------------------------------------------------- construction


def test_from_url_missing_database_names_it_without_credentials(server_url: str) -> None:
    """from_url on a missing database raises NotFoundError naming it, never the password."""
    url = f"{_with_user(server_url, 'nobody', SECRET)}/cm-test-missing"
    with pytest.raises(BackendError) as caught:
        CouchDBBackend.from_url(url)
    # pouchdb-server answers 401 for an unknown user; CouchDB with the right credentials 404.
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)
    with pytest.raises(NotFoundError, match="'cm-test-missing' does not exist"):
        CouchDBBackend.from_url(f"{server_url}/cm-test-missing")


def test_from_url_create_creates_database(server_url: str) -> None:
    """from_url(create=True) creates a missing database; a second call finds it."""
    name = "cm-test-from-url-create"
    try:
        backend = CouchDBBackend.from_url(f"{server_url}/{name}", create=True)
        assert backend.name == name
        assert backend.info()["db_name"] == name
        assert CouchDBBackend.from_url(f"{server_url}/{name}", create=True).name == name
    finally:
        delete_database(server_url, name, missing_ok=True)


def test_from_url_rejects_urls_without_database() -> None:
    """A URL without a database name or with another scheme is a ValueError."""
    with pytest.raises(ValueError, match="names no database"):
        CouchDBBackend.from_url("http://127.0.0.1:5984/")
    with pytest.raises(ValueError, match="scheme"):
        CouchDBBackend.from_url("ftp://127.0.0.1/db")


def test_wraps_python_couchdb_database(couchdb_database: couchdb.Database, db_name: str) -> None:
    """A backend built from a couchdb.Database uses its URL and leaves it untouched."""
    backend = CouchDBBackend(couchdb_database)
    assert backend.name == db_name
    assert backend.database is couchdb_database
    backend.put({"_id": "x", "v": 1})
    assert couchdb_database["x"]["v"] == 1
    assert type(couchdb_database.resource.session.cache).__name__ == "Cache"


def test_server_helpers_create_list_delete(server_url: str, server_kind: str) -> None:
    """create_database/list_databases/delete_database work and report 412 and 404."""
    name = "cm-test-server-helpers"
    backend = create_database(server_url, name)
    try:
        assert name in list_databases(server_url)
        assert backend.info()["doc_count"] == 0
        with pytest.raises(PreconditionFailed) as exists:
            create_database(server_url, name)
        assert exists.value.error == "file_exists"
    finally:
        delete_database(server_url, name)
    assert name not in list_databases(server_url)
    if server_kind == "couchdb":
        with pytest.raises(NotFoundError, match=name):
            delete_database(server_url, name)
    else:
        # Documented deviation (01/db-delete-missing): pouchdb-server answers 200 {"ok":true}.
        delete_database(server_url, name)
    delete_database(server_url, name, missing_ok=True)


# --------------------------------------------------------------------------- documents


def test_info_describes_database(couch_backend: CouchDBBackend, db_name: str) -> None:
    """info() is GET /db: the name and the document count."""
    _seed(couch_backend, 3)
    info = couch_backend.info()
    assert info["db_name"] == db_name
    assert info["doc_count"] == 3


def test_put_get_round_trip_returns_plain_dicts(couch_backend: CouchDBBackend) -> None:
    """put() answers {ok,id,rev}; get() returns a plain dict; the caller's dict is untouched."""
    doc = {"_id": "p1", "name": "Ann", "tags": ["x"], "nested": {"a": [1, 2.5, None]}}
    snapshot = {**doc}
    result = couch_backend.put(doc)
    assert doc == snapshot
    assert result["ok"] is True
    assert result["id"] == "p1"
    assert result["rev"].startswith("1-")
    loaded = couch_backend.get("p1")
    assert type(loaded) is dict
    assert loaded == {**snapshot, "_rev": result["rev"]}


def test_put_stale_rev_is_conflict(couch_backend: CouchDBBackend) -> None:
    """A put naming an old revision raises ConflictError with the id and the sent rev."""
    first = couch_backend.put({"_id": "c", "v": 1})
    couch_backend.put({"_id": "c", "_rev": first["rev"], "v": 2})
    with pytest.raises(ConflictError) as caught:
        couch_backend.put({"_id": "c", "_rev": first["rev"], "v": 3})
    assert caught.value.doc_id == "c"
    assert caught.value.rev == first["rev"]
    assert caught.value.status == 409
    assert couch_backend.get("c")["v"] == 2


def test_put_without_id_is_value_error(couch_backend: CouchDBBackend) -> None:
    """put() needs an _id: it names the way out (bulk_docs) instead of guessing."""
    with pytest.raises(ValueError, match="_id"):
        couch_backend.put({"v": 1})


def test_special_ids_round_trip(couch_backend: CouchDBBackend) -> None:
    """Ids with '/', space, '+', '?', non-ASCII and design/local prefixes reach the right doc."""
    ids = ["a/b", "c d", "e+f", "q?x", "é日", "_design/dd", "_local/l"]
    for doc_id in ids:
        couch_backend.put({"_id": doc_id, "v": doc_id})
    for doc_id in ids:
        assert couch_backend.get(doc_id)["v"] == doc_id


def test_get_missing_and_deleted(couch_backend: CouchDBBackend, server_kind: str) -> None:
    """A missing doc is DocumentNotFound "missing"; a deleted one "deleted" on CouchDB."""
    with pytest.raises(DocumentNotFound) as missing:
        couch_backend.get("nope")
    assert (missing.value.doc_id, missing.value.reason) == ("nope", "missing")
    rev = couch_backend.put({"_id": "gone"})["rev"]
    deleted = couch_backend.delete("gone", rev)
    assert deleted["ok"] is True
    assert deleted["rev"].startswith("2-")
    with pytest.raises(DocumentNotFound) as gone:
        couch_backend.get("gone")
    # Documented deviation (02/doc-get-deleted): pouchdb-server says "missing" for tombstones.
    assert gone.value.reason == ("deleted" if server_kind == "couchdb" else "missing")
    assert "gone" in str(gone.value)


def test_delete_stale_rev_is_conflict(couch_backend: CouchDBBackend) -> None:
    """Deleting with an old revision raises ConflictError and deletes nothing."""
    first = couch_backend.put({"_id": "d", "v": 1})["rev"]
    couch_backend.put({"_id": "d", "_rev": first, "v": 2})
    with pytest.raises(ConflictError) as caught:
        couch_backend.delete("d", first)
    assert (caught.value.doc_id, caught.value.rev) == ("d", first)
    assert couch_backend.get("d")["v"] == 2


def test_get_options_rev_revs_conflicts(couch_backend: CouchDBBackend) -> None:
    """get() honours rev=, revs=True and conflicts=True."""
    first = couch_backend.put({"_id": "g", "v": 1})["rev"]
    second = couch_backend.put({"_id": "g", "_rev": first, "v": 2})["rev"]
    assert couch_backend.get("g", rev=first)["v"] == 1
    revisions = couch_backend.get("g", revs=True)["_revisions"]
    assert revisions["start"] == 2
    assert [f"{2 - i}-{h}" for i, h in enumerate(revisions["ids"])] == [second, first]
    branch = {"_id": "g", "_rev": "2-0000000000000000000000000000000a", "v": "branch"}
    assert couch_backend.bulk_docs([branch], new_edits=False) == []
    loaded = couch_backend.get("g", conflicts=True)
    losing = {second, branch["_rev"]} - {loaded["_rev"]}
    assert loaded["_conflicts"] == sorted(losing)
    assert "_conflicts" not in couch_backend.get("g")


def test_put_new_edits_false_answers_its_revision(couch_backend: CouchDBBackend) -> None:
    """put(new_edits=False) stores the given revision and answers {ok,id,rev} with it."""
    doc = {"_id": "r", "_rev": "3-ccc", "_revisions": {"start": 3, "ids": ["ccc", "bbb"]}}
    # pouchdb-server 4.2.0 answers [] here (02/doc-put-new-edits-false); the backend answers
    # like CouchDB from the document's own revision.
    assert couch_backend.put(doc, new_edits=False) == {"ok": True, "id": "r", "rev": "3-ccc"}
    assert couch_backend.get("r")["_rev"] == "3-ccc"


# --------------------------------------------------------------------------- _bulk_docs


def test_bulk_docs_per_document_results_in_order(couch_backend: CouchDBBackend) -> None:
    """Every doc gets its own result, in request order, a conflict among successes."""
    rev = couch_backend.put({"_id": "b", "v": 0})["rev"]
    docs: list[dict[str, Any]] = [
        {"_id": "a", "v": 1},
        {"_id": "b", "v": 1},  # no rev on an existing doc: conflict
        {"_id": "_design/z", "views": {}},
        {"_id": "b2", "v": 2},
    ]
    snapshot = [dict(d) for d in docs]
    results = couch_backend.bulk_docs(docs)
    assert docs == snapshot
    assert [r["id"] for r in results] == ["a", "b", "_design/z", "b2"]
    assert [r.get("ok", False) for r in results] == [True, False, True, True]
    assert results[1]["error"] == "conflict"
    assert results[1]["reason"].startswith("Document update conflict")
    assert couch_backend.get("b")["_rev"] == rev
    deleted = couch_backend.bulk_docs([{"_id": "a", "_rev": results[0]["rev"], "_deleted": True}])
    assert deleted[0]["ok"] is True


def test_bulk_docs_generates_ids(couch_backend: CouchDBBackend) -> None:
    """Docs without _id get server-generated ids."""
    results = couch_backend.bulk_docs([{"v": 1}, {"v": 2}])
    assert len({r["id"] for r in results}) == 2
    assert all(r["ok"] for r in results)


# --------------------------------------------------------------------------- _all_docs


def test_all_docs_options(couch_backend: CouchDBBackend) -> None:
    """_all_docs honours ranges, limit/skip, descending and include_docs."""
    _seed(couch_backend, 5)
    everything = couch_backend.all_docs()
    assert [r["id"] for r in everything["rows"]] == ["d0", "d1", "d2", "d3", "d4"]
    assert everything["total_rows"] == 5
    ranged = couch_backend.all_docs(startkey="d1", endkey="d3", inclusive_end=False)
    assert [r["key"] for r in ranged["rows"]] == ["d1", "d2"]
    paged = couch_backend.all_docs(limit=2, skip=1, descending=True, include_docs=True)
    assert [r["id"] for r in paged["rows"]] == ["d3", "d2"]
    assert paged["rows"][0]["doc"]["n"] == 3


def test_all_docs_keys_posts_and_reports_missing(
    proxy: RecordingProxy, proxied_backend: CouchDBBackend
) -> None:
    """keys= goes in a POST body, rows follow the keys, a missing key is an error row."""
    _seed(proxied_backend, 3)
    proxy.clear()
    answer = proxied_backend.all_docs(keys=["d2", "zz", "d0"], include_docs=True)
    assert [r["key"] for r in answer["rows"]] == ["d2", "zz", "d0"]
    assert answer["rows"][1]["error"] == "not_found"
    assert answer["rows"][0]["doc"]["n"] == 2
    (request,) = proxy.requests_to("_all_docs")
    assert request.method == "POST"
    assert request.body == {"keys": ["d2", "zz", "d0"]}


# --------------------------------------------------------------------------- _changes


def test_changes_since_limit_include_docs(couch_backend: CouchDBBackend) -> None:
    """_changes lists every doc; since= continues after a sequence; include_docs adds docs."""
    _seed(couch_backend, 3)
    feed = couch_backend.changes()
    assert {r["id"] for r in feed["results"]} == {"d0", "d1", "d2"}
    first = couch_backend.changes(limit=1)
    assert len(first["results"]) == 1
    couch_backend.put({"_id": "later", "v": 9})
    newer = couch_backend.changes(since=feed["last_seq"], include_docs=True)
    assert [r["id"] for r in newer["results"]] == ["later"]
    assert newer["results"][0]["doc"]["v"] == 9


def test_changes_doc_ids_filter(
    proxy: RecordingProxy, proxied_backend: CouchDBBackend, server_kind: str
) -> None:
    """doc_ids= is sent as a POST body with filter=_doc_ids."""
    _seed(proxied_backend, 4)
    proxy.clear()
    feed = proxied_backend.changes(doc_ids=["d1", "d3"])
    assert {r["id"] for r in feed["results"]} == {"d1", "d3"}
    (request,) = proxy.requests_to("_changes")
    assert request.method == "POST"
    assert request.body == {"doc_ids": ["d1", "d3"]}
    assert "filter=_doc_ids" in request.path


def test_changes_refuses_streaming_feeds(couch_backend: CouchDBBackend) -> None:
    """Continuous feeds are not one JSON answer: refused before anything is sent."""
    with pytest.raises(ValueError, match="continuous"):
        couch_backend.changes(feed="continuous")


# --------------------------------------------------------------------------- Mango


def test_find_with_index_sort_and_fields(couch_backend: CouchDBBackend) -> None:
    """An index is created once (then exists), serves a sort, and fields= trims the docs."""
    _seed(couch_backend, 6)
    index = {"index": {"fields": ["n"]}, "ddoc": "by-n", "name": "n-idx"}
    created = couch_backend.create_index(index)
    assert (created["result"], created["id"], created["name"]) == (
        "created",
        "_design/by-n",
        "n-idx",
    )
    assert couch_backend.create_index(index)["result"] == "exists"
    names = [i["name"] for i in couch_backend.list_indexes()["indexes"]]
    assert "n-idx" in names
    found = couch_backend.find(
        {"selector": {"n": {"$gte": 2}, "kind": "a"}, "sort": [{"n": "desc"}], "fields": ["_id"]}
    )
    assert found["docs"] == [{"_id": "d5"}, {"_id": "d2"}]
    # $gte, not $gt: pouchdb-find 7.3.1 applies "limit" before dropping the excluded start
    # key of a $gt range (here it returns only d1); CouchDB gets both right.
    found = couch_backend.find({"selector": {"n": {"$gte": 1}}, "sort": ["n"], "limit": 2})
    assert [d["_id"] for d in found["docs"]] == ["d1", "d2"]


def test_find_errors_are_query_errors(couch_backend: CouchDBBackend, server_kind: str) -> None:
    """A sort no index can serve is a 400 QueryError."""
    _seed(couch_backend, 2)
    with pytest.raises(QueryError) as caught:
        couch_backend.find({"selector": {"n": {"$gt": 0}}, "sort": ["n"]})
    assert caught.value.status == 400
    # Documented deviation (06/mango-sort-without-index): pouchdb says bad_request.
    expected = "no_usable_index" if server_kind == "couchdb" else "bad_request"
    assert caught.value.error == expected


def test_delete_index(couch_backend: CouchDBBackend) -> None:
    """delete_index removes the index, named with or without _design/."""
    couch_backend.create_index({"index": {"fields": ["x"]}, "ddoc": "dx", "name": "ix"})
    couch_backend.create_index({"index": {"fields": ["y"]}, "ddoc": "dy", "name": "iy"})
    assert couch_backend.delete_index("dx", "ix") == {"ok": True}
    assert couch_backend.delete_index("_design/dy", "iy") == {"ok": True}
    names = [i["name"] for i in couch_backend.list_indexes()["indexes"]]
    assert names == ["_all_docs"]


# --------------------------------------------------------------------------- views


def test_view_options_and_keys_post(proxy: RecordingProxy, proxied_backend: CouchDBBackend) -> None:
    """Views take JSON key options by GET and keys= by POST; reduce groups."""
    _seed(proxied_backend, 6)
    proxied_backend.put(dict(VIEWS_DDOC))
    proxy.clear()
    rows = proxied_backend.view("app", "by_kind", key="a", include_docs=True)["rows"]
    assert [(r["id"], r["value"]) for r in rows] == [("d0", 0), ("d2", 2), ("d5", 5)]
    assert rows[1]["doc"]["kind"] == "a"
    (get,) = proxy.requests_to("_view/by_kind")
    assert (get.method, "key=%22a%22" in get.path) == ("GET", True)
    proxy.clear()
    keyed = proxied_backend.view("_design/app", "by_kind", keys=["c", "a"])["rows"]
    assert [r["id"] for r in keyed] == ["d3", "d0", "d2", "d5"]
    (post,) = proxy.requests_to("_view/by_kind")
    assert (post.method, post.body) == ("POST", {"keys": ["c", "a"]})
    ranged = proxied_backend.view("app", "by_kind", startkey="b", endkey="c", reduce=False)
    assert [r["key"] for r in ranged["rows"]] == ["b", "b", "c"]
    grouped = proxied_backend.view("app", "count_kind", group=True)["rows"]
    assert grouped == [{"key": "a", "value": 3}, {"key": "b", "value": 2}, {"key": "c", "value": 1}]


def test_view_errors(couch_backend: CouchDBBackend) -> None:
    """A missing view is NotFoundError; a reversed range is a 400 QueryError."""
    couch_backend.put(dict(VIEWS_DDOC))
    with pytest.raises(NotFoundError):
        couch_backend.view("app", "nope")
    with pytest.raises(NotFoundError):
        couch_backend.view("no-such-ddoc", "v")
    with pytest.raises(QueryError) as caught:
        couch_backend.view("app", "by_kind", startkey="z", endkey="a")
    assert caught.value.status == 400


# --------------------------------------------------------------------------- attachments


def test_attachment_round_trip(couch_backend: CouchDBBackend) -> None:
    """put/get/delete_attachment keep bytes and content type, small and large."""
    rev = couch_backend.put({"_id": "att"})["rev"]
    small = couch_backend.put_attachment("att", "hello.txt", b"hello", "text/plain", rev=rev)
    assert small["ok"] is True
    assert small["rev"].startswith("2-")
    big = bytes(range(256)) * 200  # over python-couchdb's 8 KiB buffering threshold
    added = couch_backend.put_attachment(
        "att", "dir/big.bin", big, "application/octet-stream", rev=small["rev"]
    )
    assert couch_backend.get_attachment("att", "hello.txt") == (b"hello", "text/plain")
    data, content_type = couch_backend.get_attachment("att", "dir/big.bin")
    assert (data == big, content_type) == (True, "application/octet-stream")
    assert couch_backend.get_attachment("att", "hello.txt", rev=small["rev"])[0] == b"hello"
    stubs = couch_backend.get("att")["_attachments"]
    assert stubs["hello.txt"]["stub"] is True
    assert stubs["dir/big.bin"]["length"] == len(big)
    inline = couch_backend.get("att", attachments=True)["_attachments"]["hello.txt"]
    assert inline["data"] == "aGVsbG8="
    removed = couch_backend.delete_attachment("att", "hello.txt", rev=added["rev"])
    assert removed["ok"] is True
    assert set(couch_backend.get("att")["_attachments"]) == {"dir/big.bin"}


def test_attachment_errors(couch_backend: CouchDBBackend, server_kind: str) -> None:
    """Missing attachments are NotFoundError; a stale rev on put is ConflictError."""
    rev = couch_backend.put({"_id": "att"})["rev"]
    couch_backend.put_attachment("att", "a.txt", b"a", "text/plain", rev=rev)
    with pytest.raises(NotFoundError) as missing:
        couch_backend.get_attachment("att", "nope.txt")
    if server_kind == "couchdb":
        assert missing.value.reason == "Document is missing attachment"
    # pouchdb-server says just "missing" (08/att-get-missing): documented deviation.
    with pytest.raises(DocumentNotFound):
        couch_backend.get_attachment("no-doc", "a.txt")
    with pytest.raises(ConflictError) as conflict:
        couch_backend.put_attachment("att", "b.txt", b"b", "text/plain", rev=rev)
    assert (conflict.value.doc_id, conflict.value.rev) == ("att", rev)


# --------------------------------------------------------------------------- failures


def test_connection_refused_is_backend_unavailable() -> None:
    """Nothing listening: BackendUnavailable with status None, from every entry point."""
    url = f"http://user:{SECRET}@127.0.0.1:{free_port()}"
    with pytest.raises(BackendUnavailable) as caught:
        CouchDBBackend.from_url(f"{url}/db")
    assert caught.value.status is None
    assert "refused" in caught.value.reason.lower()
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None
    backend = CouchDBServer(url).database("db")
    with pytest.raises(BackendUnavailable):
        backend.get("x")
    with pytest.raises(BackendUnavailable):
        list_databases(url)
    assert SECRET not in str(caught.value) + repr(caught.value)


def test_bad_credentials_never_leak(
    server_url: str, db_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Wrong credentials: the error, the repr and the logs never contain the password."""
    caplog.set_level(logging.DEBUG)
    backend = CouchDBServer(_with_user(server_url, "intruder", SECRET)).database(db_name)
    assert SECRET not in repr(backend)
    assert "intruder:***@" in repr(backend)
    assert SECRET not in backend.url
    with pytest.raises(BackendError) as caught:
        backend.info()
    assert caught.value.status == 401
    assert SECRET not in str(caught.value) + repr(caught.value)
    assert caught.value.__context__ is None
    assert caplog.records
    assert all(SECRET not in record.getMessage() for record in caplog.records)


def test_no_couchdb_exception_escapes(couch_backend: CouchDBBackend) -> None:
    """A 400 on a document request is a BackendError, not a couchdb.http exception."""
    with pytest.raises(BackendError) as caught:
        couch_backend.put({"_id": "_bad", "v": 1})
    assert caught.value.status == 400
    assert type(caught.value).__module__ == "couchmapper.exceptions"


def test_backend_shared_between_threads(couch_backend: CouchDBBackend) -> None:
    """One backend serves many threads at once; every write and read succeeds."""
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(10):
                doc_id = f"t{worker}-{i}"
                rev = couch_backend.put({"_id": doc_id, "w": worker})["rev"]
                assert couch_backend.get(doc_id)["_rev"] == rev
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert couch_backend.info()["doc_count"] == 80


def _with_user(server_url: str, user: str, password: str) -> str:
    """The server URL with its credentials replaced."""
    scheme, _, rest = server_url.partition("://")
    return f"{scheme}://{user}:{password}@{rest.rpartition('@')[2]}"
