"""Session integration tests: the API of issue 3, lifecycle, identity map and the one-request flush.

Tests taking ``backend`` run twice: on the memory engine and on the test server through the
recording proxy. Tests taking ``proxied_backend`` and ``proxy`` also assert the requests sent.
"""

from __future__ import annotations

import gc
import re
from typing import Any

import couchdb
import pytest
from _proxy import RecordingProxy
from session_models import Bug, Note, Other, Task, all_bodies, bulk_posts, by_id, iter_ids

import couchmapper as cm
from couchmapper import signals
from couchmapper.backends.base import Backend
from couchmapper.model.base import state_of

UUID_HEX = re.compile(r"^[0-9a-f]{32}$")
DESIGN = {
    "_id": "_design/tasks",
    "views": {
        "by_owner": {
            "map": "function (doc) { if (doc.type === 'session-task') { emit(doc.owner, 1); } }"
        }
    },
}


def status(obj: Any) -> cm.Lifecycle:
    """The lifecycle status of a document object."""
    state = state_of(obj)
    return cm.Lifecycle.TRANSIENT if state is None else state.status


def seed(backend: Backend, *docs: dict[str, Any]) -> None:
    """Store documents directly through the backend (not through a session)."""
    results = backend.bulk_docs(list(docs))
    assert all("error" not in r for r in results), results


def task(doc_id: str, **fields: Any) -> dict[str, Any]:
    """The JSON of a stored Task."""
    return {"_id": doc_id, "type": "session-task", "title": doc_id, **fields}


# ------------------------------------------------------------------------------------------
# The flush: one request, and what is in it.


def test_flush_mix_is_one_bulk_request(proxied_backend: Backend, proxy: RecordingProxy) -> None:
    """3 creates, 2 updates and 1 delete go out as exactly one POST _bulk_docs of 6 documents."""
    seed(proxied_backend, task("u1"), task("u2"), task("d1"))
    s = cm.Session(proxied_backend)
    u1, u2, d1 = s.get(Task, "u1"), s.get(Task, "u2"), s.get(Task, "d1")
    assert u1 is not None and u2 is not None and d1 is not None
    revs = {"u1": u1.rev, "u2": u2.rev, "d1": d1.rev}
    new = [Task(title=f"new {i}") for i in range(3)]
    s.add_all(new)
    u1.done = True
    u2.tags.append("urgent")
    s.delete(d1)
    proxy.clear()

    results = s.flush()

    writes = [r for r in proxy.requests if r.method in ("POST", "PUT", "DELETE")]
    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in writes] == [("POST", "_bulk_docs")]
    (docs,) = bulk_posts(proxy)
    assert len(docs) == 6
    sent = by_id(docs)
    for obj in new:
        assert obj.id is not None and UUID_HEX.match(obj.id)
        assert sent[obj.id] == {
            "_id": obj.id,
            "type": "session-task",
            "title": obj.title,
            "done": False,
            "owner": "",
            "tags": [],
            "note": None,
        }
    assert sent["u1"]["_rev"] == revs["u1"] and sent["u1"]["done"] is True
    assert sent["u2"]["_rev"] == revs["u2"] and sent["u2"]["tags"] == ["urgent"]
    assert sent["d1"] == {"_id": "d1", "_rev": revs["d1"], "_deleted": True}
    assert sorted(r.doc_id for r in results) == sorted(sent)
    assert all(r.ok and r.rev for r in results)
    assert u1.rev is not None and u1.rev.startswith("2-")
    assert s.stats().new == s.stats().dirty == s.stats().deleted == 0
    stored = all_bodies(proxied_backend)
    assert sorted(stored) == sorted(["u1", "u2", *(o.id for o in new if o.id)])
    assert stored["u2"]["tags"] == ["urgent"]


def test_flush_with_nothing_pending_sends_nothing(
    proxied_backend: Backend, proxy: RecordingProxy
) -> None:
    """A flush of a session that only read documents makes no request at all."""
    seed(proxied_backend, task("a"))
    s = cm.Session(proxied_backend)
    a = s.get(Task, "a")
    assert a is not None
    a.title = "changed"
    a.title = "a"  # set back: nothing to write
    proxy.clear()
    assert s.flush() == []
    assert proxy.requests == []
    a.title = "really changed"  # and a later change is tracked again
    s.flush()
    assert [d["title"] for d in bulk_posts(proxy)[0]] == ["really changed"]


def test_batch_size_splits_with_progress(proxied_backend: Backend, proxy: RecordingProxy) -> None:
    """batch_size=10 sends 25 new documents in requests of 10, 10 and 5 and reports progress."""
    s = cm.Session(proxied_backend, batch_size=10)
    s.add_all(Task(title=f"t{i}", id=doc_id) for i, doc_id in enumerate(iter_ids("b", 25)))
    seen: list[tuple[int, int]] = []
    proxy.clear()
    results = s.flush(progress=lambda done, total: seen.append((done, total)))
    assert [len(docs) for docs in bulk_posts(proxy)] == [10, 10, 5]
    assert seen == [(10, 25), (20, 25), (25, 25)]
    assert len(results) == 25
    assert len(all_bodies(proxied_backend)) == 25


def test_flush_returns_and_signals_results(backend: Backend) -> None:
    """after_flush gets one WriteResult per document; flush returns the written ones."""
    s = cm.Session(backend)
    got: list[list[cm.WriteResult]] = []

    @s.on(signals.after_flush)
    def record(sender: Any, **kwargs: Any) -> None:
        got.append(kwargs["results"])

    s.add(Task(title="x", id="x"))
    results = s.flush()
    assert [r.doc_id for r in results] == ["x"]
    assert got == [results]


# ------------------------------------------------------------------------------------------
# Identity map.


def test_identity_through_get_item_get_many_and_view(backend: Backend) -> None:
    """get, [], get_many and view rows all hand out the one object per id."""
    seed(backend, DESIGN, task("a", owner="ann"), task("b", owner="bob"), {"_id": "r", "x": 1})
    s = cm.Session(backend)
    a = s.get(Task, "a")
    assert a is not None
    assert s.get(Task, "a") is a
    assert s.get("a") is a
    assert s["a"] is a
    many = s.get_many(Task, ["b", "a", "missing"])
    assert many[1] is a and many[2] is None
    b = many[0]
    assert isinstance(b, Task) and b.owner == "bob"
    rows = s.view("tasks/by_owner", include_docs=True)
    assert [(r.id, r.key) for r in rows] == [("a", "ann"), ("b", "bob")]
    assert rows[0].doc is a and rows[1].doc is b
    assert s.view("_design/tasks/_view/by_owner", include_docs=True)[0].doc is a
    raw = s["r"]
    assert isinstance(raw, cm.RawDocument) and raw == {"_id": "r", "_rev": raw.rev, "x": 1}
    assert s.get_many(None, ["r"]) == [raw] and s.get_many(None, ["r"])[0] is raw


def test_get_many_is_one_request(proxied_backend: Backend, proxy: RecordingProxy) -> None:
    """get_many fetches every unknown id in one POST _all_docs and keeps the order."""
    seed(proxied_backend, *(task(i) for i in iter_ids("m", 5)))
    s = cm.Session(proxied_backend)
    first = s.get(Task, "m-000")
    proxy.clear()
    found = s.get_many(Task, ["m-004", "m-000", "nope", "m-002"])
    assert len(proxy.requests) == 1
    assert proxy.requests[0].method == "POST" and "_all_docs" in proxy.requests[0].path
    assert proxy.requests[0].body == {"keys": ["m-004", "nope", "m-002"]}
    assert found[1] is first and found[2] is None
    assert [t.id for t in found if t is not None] == ["m-004", "m-000", "m-002"]
    proxy.clear()
    s.get_many(Task, ["m-004", "m-000"])
    assert proxy.requests == []  # all in the identity map already


def test_get_by_type_discriminator(backend: Backend) -> None:
    """get(id) picks the class from the type field; get(Base, id) gives the subclass."""
    seed(backend, {"_id": "bug", "type": "session-bug", "title": "crash", "severity": 3})
    seed(backend, {"_id": "o", "type": "session-other", "value": 1})
    s = cm.Session(backend)
    bug = s.get("bug")
    assert type(bug) is Bug and bug.severity == 3
    assert s.get(Task, "bug") is bug
    assert s.get(Task, "missing") is None
    with pytest.raises(cm.ValidationError, match="not a Task"):
        s.get(Task, "o")
    assert isinstance(s.get(Other, "o"), Other)
    with pytest.raises(cm.ValidationError, match=r"'o' is of type 'session-other' \(Other\)"):
        s.get(Task, "o")  # now from the identity map: the same error


def test_weak_identity_map_releases_clean_objects(backend: Backend) -> None:
    """Clean objects are dropped once unreferenced; new, dirty and deleted ones are kept."""
    seed(backend, *(task(i) for i in iter_ids("w", 30)))
    s = cm.Session(backend)
    loaded = s.get_many(Task, list(iter_ids("w", 30)))
    assert s.stats().identity_map == 30
    dirty, deleted = loaded[0], loaded[1]
    assert dirty is not None and deleted is not None
    dirty.title = "kept"
    s.delete(deleted)
    s.add(Task(title="new", id="w-new"))
    del loaded, dirty, deleted
    gc.collect()
    assert s.stats().identity_map == 3  # the dirty, the deleted and the new one
    s.flush()
    stored = all_bodies(backend)
    assert stored["w-000"]["title"] == "kept"
    assert "w-001" not in stored and "w-new" in stored
    gc.collect()
    assert s.stats().identity_map == 0  # all clean now


def test_strong_identity_map_keeps_objects(backend: Backend) -> None:
    """weak_identity_map=False keeps every loaded object."""
    seed(backend, task("a"))
    s = cm.Session(backend, weak_identity_map=False)
    first_id = id(s.get(Task, "a"))
    gc.collect()
    assert s.stats().identity_map == 1
    assert id(s.get(Task, "a")) == first_id


# ------------------------------------------------------------------------------------------
# Lifecycle.


def test_lifecycle_states(backend: Backend) -> None:
    """transient -> pending -> persistent -> deleted -> detached, and expunge -> detached."""
    s = cm.Session(backend)
    t = Task(title="life")
    assert status(t) is cm.Lifecycle.TRANSIENT
    s.add(t)
    assert status(t) is cm.Lifecycle.PENDING
    s.flush()
    assert status(t) is cm.Lifecycle.PERSISTENT
    s.delete(t)
    assert status(t) is cm.Lifecycle.DELETED
    s.flush()
    assert status(t) is cm.Lifecycle.DETACHED
    seed(backend, task("e"))
    e = s.get(Task, "e")
    s.expunge(e)
    assert status(e) is cm.Lifecycle.DETACHED
    assert s.get(Task, "e") is not e
    other = Task(title="never written")
    s.add(other)
    s.delete(other)  # deleting a pending document just drops it
    assert status(other) is cm.Lifecycle.TRANSIENT
    assert s.flush() == []


def test_illegal_moves_say_what_to_do(backend: Backend) -> None:
    """Illegal lifecycle moves raise SessionStateError with the way out in the message."""
    seed(backend, task("a"))
    s1, s2 = cm.Session(backend), cm.Session(backend)
    with pytest.raises(cm.SessionStateError, match=r"transient.*add it first"):
        s1.delete(Task(title="t"))
    a = s1.get(Task, "a")
    assert a is not None
    with pytest.raises(cm.SessionStateError, match="another session; expunge it there first"):
        s2.add(a)
    with pytest.raises(cm.SessionStateError, match="belongs to another session"):
        s2.delete(a)
    with pytest.raises(cm.SessionStateError, match="already in this session as another object"):
        s1.add(Task(title="dup", id="a"))
    with pytest.raises(cm.SessionStateError, match="cannot change the id"):
        a.id = "b"
    with pytest.raises(cm.SessionStateError, match="never written"):
        pending = Task(title="p")
        s1.add(pending)
        s1.refresh(pending)
    s1.close()
    with pytest.raises(cm.SessionStateError, match="closed; open a new Session"):
        s1.get(Task, "a")
    with pytest.raises(cm.SessionStateError, match="closed"):
        s1.flush()
    assert status(a) is cm.Lifecycle.DETACHED
    s2.add(a)  # detached: another session may take it
    assert status(a) is cm.Lifecycle.PERSISTENT and s2.get(Task, "a") is a


def test_detached_changes_flush_in_new_session(backend: Backend) -> None:
    """Changes made to a detached object are written by the session that adds it."""
    seed(backend, task("a"))
    with cm.Session(backend) as s1:
        a = s1.get(Task, "a")
    assert a is not None
    a.owner = "zoe"
    with cm.Session(backend) as s2:
        s2.add(a)
    assert all_bodies(backend)["a"]["owner"] == "zoe"


# ------------------------------------------------------------------------------------------
# rollback, refresh, expunge, clear, require_current, stats, context manager.


def test_rollback_restores_and_sends_nothing(
    proxied_backend: Backend, proxy: RecordingProxy
) -> None:
    """rollback restores loaded values, drops new objects, undeletes; nothing is sent."""
    seed(proxied_backend, task("a", tags=["x"]), task("b"))
    s = cm.Session(proxied_backend)
    a, b = s.get(Task, "a"), s.get(Task, "b")
    assert a is not None and b is not None
    a.title = "changed"
    a.tags.append("y")
    a.note = Note(text="n")
    s.delete(b)
    new = Task(title="new")
    s.add(new)
    proxy.clear()
    s.rollback()
    assert (a.title, a.tags) == ("a", ["x"])
    assert a.note is None
    assert status(b) is cm.Lifecycle.PERSISTENT
    assert status(new) is cm.Lifecycle.TRANSIENT
    assert s.stats().new == s.stats().dirty == s.stats().deleted == 0
    assert s.flush() == []
    assert proxy.requests == []
    a.tags.append("z")  # tracking still works after a rollback
    s.flush()
    assert all_bodies(proxied_backend)["a"]["tags"] == ["x", "z"]


def test_refresh(backend: Backend) -> None:
    """refresh takes the server's version, drops local changes and undoes a pending delete."""
    seed(backend, task("a"))
    s, other = cm.Session(backend), cm.Session(backend)
    a = s.get(Task, "a")
    assert a is not None
    a.owner = "local"
    o = other.get(Task, "a")
    assert o is not None
    o.done = True
    other.flush()
    s.refresh(a)
    assert (a.owner, a.done, a.rev) == ("", True, o.rev)
    assert s.stats().dirty == 0
    s.delete(a)
    s.refresh(a)
    assert status(a) is cm.Lifecycle.PERSISTENT and s.get(Task, "a") is a
    a.title = "after refresh"
    s.flush()
    assert all_bodies(backend)["a"]["title"] == "after refresh"
    other.refresh(o)
    other.delete(o)
    other.flush()
    with pytest.raises(cm.DocumentNotFound):
        s.refresh(a)
    assert status(a) is cm.Lifecycle.DETACHED


def test_expunge_drops_pending_work(backend: Backend) -> None:
    """An expunged object's changes are not written and get() loads a fresh object."""
    seed(backend, task("a"))
    s = cm.Session(backend)
    a = s.get(Task, "a")
    assert a is not None
    a.title = "not written"
    s.expunge(a)
    assert s.flush() == []
    fresh = s.get(Task, "a")
    assert fresh is not a and fresh is not None and fresh.title == "a"


def test_clear_refuses_to_drop_changes(backend: Backend) -> None:
    """clear() refuses while changes are pending, clear(discard=True) drops them."""
    seed(backend, task("a"))
    s = cm.Session(backend)
    a = s.get(Task, "a")
    assert a is not None
    a.title = "pending"
    with pytest.raises(cm.SessionStateError, match=r"flush\(\) first or clear\(discard=True\)"):
        s.clear()
    s.clear(discard=True)
    assert s.stats().identity_map == 0 and s.flush() == []
    assert status(a) is cm.Lifecycle.DETACHED
    b = s.get(Task, "a")
    assert b is not a and b is not None and b.title == "a"
    s.clear()  # nothing pending: fine
    assert s.stats().identity_map == 0


def test_require_current(proxied_backend: Backend, proxy: RecordingProxy) -> None:
    """A read-only document under require_current is checked at flush by its _rev."""
    seed(proxied_backend, task("cfg"), task("a"))
    s = cm.Session(proxied_backend)
    cfg = s.get(Task, "cfg")
    assert cfg is not None
    s.require_current(cfg)
    proxy.clear()
    s.flush()
    (docs,) = bulk_posts(proxy)
    assert docs[0]["_id"] == "cfg" and docs[0]["_rev"].startswith("1-")
    s.require_current(cfg)
    other = cm.Session(proxied_backend)
    theirs = other.get(Task, "cfg")
    assert theirs is not None
    theirs.owner = "someone"
    other.flush()
    a = s.get(Task, "a")
    assert a is not None
    a.done = True
    with pytest.raises(cm.FlushError) as caught:
        s.flush()
    assert caught.value.doc_ids == ["cfg"]
    assert all_bodies(proxied_backend)["a"]["done"] is True  # the rest was written


def test_stats_counts(backend: Backend) -> None:
    """stats() counts mapped, new, dirty and deleted objects, flushes and requests."""
    seed(backend, task("a"), task("b"))
    s = cm.Session(backend, weak_identity_map=False)
    a, b = s.get(Task, "a"), s.get(Task, "b")
    assert a is not None and b is not None
    a.done = True
    s.delete(b)
    s.add(Task(title="n"))
    stats = s.stats()
    assert (stats.identity_map, stats.new, stats.dirty, stats.deleted) == (3, 1, 1, 1)
    assert (stats.flushes, stats.requests) == (0, 2)
    s.flush()
    stats = s.stats()
    assert (stats.identity_map, stats.new, stats.dirty, stats.deleted) == (2, 0, 0, 0)
    assert (stats.flushes, stats.requests) == (1, 3)


def test_context_manager_flushes_on_clean_exit(
    proxied_backend: Backend, proxy: RecordingProxy
) -> None:
    """A clean exit flushes in one request and closes the session."""
    with cm.Session(proxied_backend) as s:
        s.add(Task(title="a", id="a"))
        s.create({"_id": "r", "k": 1})
    assert len(bulk_posts(proxy)) == 1
    assert sorted(all_bodies(proxied_backend)) == ["a", "r"]
    with pytest.raises(cm.SessionStateError):
        s.add(Task(title="late"))


def test_context_manager_exception_sends_nothing(
    proxied_backend: Backend, proxy: RecordingProxy
) -> None:
    """An exception inside the block discards every change and sends no write."""
    seed(proxied_backend, task("a"))
    proxy.clear()
    with pytest.raises(RuntimeError, match="boom"), cm.Session(proxied_backend) as s:
        a = s.get(Task, "a")
        assert a is not None
        a.title = "lost"
        s.add(Task(title="lost too"))
        raise RuntimeError("boom")
    assert [r.method for r in proxy.requests] == ["GET"]
    assert all_bodies(proxied_backend) == {"a": task("a")}
    assert a is not None and a.title == "a"  # rolled back


def test_session_from_couchdb_database(couchdb_database: couchdb.Database) -> None:
    """Session(couchdb.Database) works like Session(backend)."""
    couchdb_database.save({"_id": "a", "type": "session-task", "title": "from couchdb"})
    with cm.Session(couchdb_database) as s:
        assert s.name == couchdb_database.name
        a = s.get(Task, "a")
        assert a is not None and a.title == "from couchdb"
        a.done = True
    assert couchdb_database["a"]["done"] is True
    with pytest.raises(TypeError, match=r"couchdb\.Database"):
        cm.Session(couchdb.Server())
    with pytest.raises(TypeError, match="not int"):
        cm.Session(42)


def test_session_from_memory_url() -> None:
    """Session("memory://name") opens the shared memory database of that name."""
    with cm.Session("memory://session-url-test") as s:
        s.create({"_id": "x"})
    assert "x" in cm.Session(cm.connect("memory://session-url-test"))


# ------------------------------------------------------------------------------------------
# Hooks on the same unit of work.


def test_hook_edits_go_out_in_the_same_request(
    proxied_backend: Backend, proxy: RecordingProxy
) -> None:
    """A receiver that adds a document during flush adds it to the same _bulk_docs request."""
    s = cm.Session(proxied_backend)

    @s.on(signals.document_added, sender=Task)
    def audit(sender: type, **kwargs: Any) -> None:
        doc = kwargs["document"]
        if isinstance(doc, Task):
            kwargs["session"].create({"_id": f"audit-{doc.id}", "of": doc.id})

    s.add(Task(title="t", id="t"))
    s.flush()
    (docs,) = bulk_posts(proxy)
    assert sorted(d["_id"] for d in docs) == ["audit-t", "t"]
    other = cm.Session(proxied_backend)
    other.add(Task(title="u", id="u"))
    other.flush()  # the receiver is scoped to s: no audit document for u
    assert "audit-u" not in all_bodies(proxied_backend)


# ------------------------------------------------------------------------------------------
# The seed's dict API and behaviours.


def test_dict_api(backend: Backend) -> None:
    """create/[]/[]=/del/in/len/info/name behave like a python-couchdb Database."""
    seed(backend, {"_id": "old", "a": 1, "gone": True})
    s = cm.Session(backend)
    assert s.name == backend.name
    assert s.info()["doc_count"] == 1
    new_id = s.create({"foo": "bar"})
    assert UUID_HEX.match(new_id)
    assert s[new_id] == {"_id": new_id, "foo": "bar"}  # no _rev until written
    assert new_id in s and "old" in s and "nope" not in s
    assert len(s) == 2
    s["old"] = {"a": 2, "b": [1]}
    s["other"] = {"z": 0}
    with pytest.raises(cm.DocumentNotFound):
        s["nope"]
    del s[new_id]
    assert new_id not in s
    assert len(s) == 2
    s.flush()
    assert all_bodies(backend) == {
        "old": {"_id": "old", "a": 2, "b": [1]},
        "other": {"_id": "other", "z": 0},
    }


def test_nested_dict_and_list_edits_in_raw_documents(backend: Backend) -> None:
    """Edits deep inside raw dict documents are tracked and written."""
    seed(backend, {"_id": "n", "a": {"b": {"c": 1}}, "l": [1, [2, 3], {"x": 1}]})
    s = cm.Session(backend)
    doc = s["n"]
    doc["a"]["b"]["c"] = 2
    doc["a"]["b"]["d"] = {"e": []}
    doc["a"]["b"]["d"]["e"].append("deep")
    doc["l"][1].append(4)
    doc["l"][2]["x"] += 1
    doc["l"].insert(0, 0)
    del doc["a"]["b"]["c"]
    s.flush()
    assert all_bodies(backend)["n"] == {
        "_id": "n",
        "a": {"b": {"d": {"e": ["deep"]}}},
        "l": [0, 1, [2, 3, 4], {"x": 2}],
    }


def test_raw_document_emptied_is_still_written(backend: Backend) -> None:
    """Removing the last key of a raw document (a falsy dict) is still a tracked change."""
    seed(backend, {"_id": "e", "only": 1})
    s = cm.Session(backend)
    doc = s["e"]
    del doc["only"]
    s.flush()
    assert all_bodies(backend)["e"] == {"_id": "e"}


def test_delete_then_recreate_is_one_write(proxied_backend: Backend, proxy: RecordingProxy) -> None:
    """del s[id] then s[id] = {...} in one session becomes one update, not delete + create."""
    seed(proxied_backend, {"_id": "x", "v": 1})
    s = cm.Session(proxied_backend)
    rev = s["x"].get("_rev") or state_of(s["x"]).rev  # type: ignore[union-attr]
    del s["x"]
    assert "x" not in s
    s["x"] = {"v": 2}
    proxy.clear()
    s.flush()
    assert bulk_posts(proxy) == [[{"_id": "x", "_rev": rev, "v": 2}]]
    assert all_bodies(proxied_backend) == {"x": {"_id": "x", "v": 2}}
    live = s["x"]
    typed = Task(title="again", id="x")
    with pytest.raises(cm.SessionStateError):
        s.add(typed)  # x is live in the session again
    s.delete(live)
    s.add(typed)
    s.flush()
    assert all_bodies(proxied_backend)["x"]["title"] == "again"


def test_change_then_delete(proxied_backend: Backend, proxy: RecordingProxy) -> None:
    """A changed document deleted before the flush sends only the tombstone."""
    seed(proxied_backend, {"_id": "c", "v": 1})
    s = cm.Session(proxied_backend)
    s["c"]["v"] = 99
    rev = state_of(s["c"]).rev  # type: ignore[union-attr]
    del s["c"]
    proxy.clear()
    s.flush()
    assert bulk_posts(proxy) == [[{"_id": "c", "_rev": rev, "_deleted": True}]]
    assert all_bodies(proxied_backend) == {}


def test_delete_then_flush_removes(backend: Backend) -> None:
    """Deleting a typed and a raw document and flushing removes both from the database."""
    seed(backend, task("t"), {"_id": "r"})
    s = cm.Session(backend)
    s.delete(s.get(Task, "t"))
    del s["r"]
    assert s.get(Task, "t") is None and "r" not in s
    s.flush()
    assert all_bodies(backend) == {}
    with pytest.raises(cm.DocumentNotFound):
        backend.get("t")
