"""Conflicts: the "raise", "rebase" and "overwrite" policies, merge rules and concurrent writers."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest
from _proxy import RecordingProxy
from session_models import Counter, Pinned, Task, all_bodies, bulk_posts

import couchmapper as cm
from couchmapper.backends.base import Backend
from couchmapper.backends.couchdb import CouchDBBackend

FORBID = {
    "_id": "_design/guard",
    "validate_doc_update": (
        "function (newDoc) { if (newDoc.forbidden) { throw({forbidden: 'no forbidden docs'}); } }"
    ),
}


def seed(backend: Backend, *docs: dict[str, Any]) -> None:
    """Store documents directly through the backend."""
    results = backend.bulk_docs(list(docs))
    assert all("error" not in r for r in results), results


def counter(doc_id: str, **fields: Any) -> dict[str, Any]:
    """The JSON of a stored Counter."""
    return {"_id": doc_id, "type": "session-counter", **fields}


def edit_elsewhere(backend: Backend, doc_id: str, **fields: Any) -> None:
    """Another session changes fields of a Counter and flushes."""
    with cm.Session(backend) as other:
        doc = other.get(Counter, doc_id)
        assert doc is not None
        for name, value in fields.items():
            setattr(doc, name, value)


# ------------------------------------------------------------------------------------------
# "raise"


def test_raise_lists_failures_and_keeps_changes(backend: Backend) -> None:
    """A conflict raises FlushError (id, error, reason); the doc stays pending and can retry."""
    seed(backend, counter("c", name="start"), counter("d"))
    s = cm.Session(backend)
    c, d = s.get(Counter, "c"), s.get(Counter, "d")
    assert c is not None and d is not None
    c.label = "mine"
    d.label = "fine"
    edit_elsewhere(backend, "c", name="theirs")
    with pytest.raises(cm.FlushError) as caught:
        s.flush()
    (failure,) = caught.value.failures
    assert (failure.doc_id, failure.error) == ("c", "conflict")
    assert "conflict" in failure.reason.lower()
    assert isinstance(failure.exception, cm.ConflictError)
    assert "c: conflict" in str(caught.value)
    assert cm.changes(c).paths == {"label"}  # still pending, changes intact
    assert s.stats().dirty == 1
    assert all_bodies(backend)["d"]["label"] == "fine"  # the other document was written
    assert all_bodies(backend)["c"]["name"] == "theirs"  # nothing overwritten
    s.refresh(c)
    c.label = "mine"
    s.flush()
    assert all_bodies(backend)["c"] == {
        **counter("c", name="theirs", label="mine"),
        "hits": 0,
        "members": [],
        "history": [],
        "best": 0,
    }


def test_non_conflict_failure_is_listed(backend: Backend) -> None:
    """A document refused by validate_doc_update is listed as forbidden; the rest is written."""
    seed(backend, FORBID)
    s = cm.Session(backend)
    bad = s.create({"forbidden": True})
    s.create({"_id": "good"})
    with pytest.raises(cm.FlushError) as caught:
        s.flush()
    assert [(f.doc_id, f.error, f.reason) for f in caught.value.failures] == [
        (bad, "forbidden", "no forbidden docs")
    ]
    assert "good" in all_bodies(backend) and bad not in all_bodies(backend)
    assert s.stats().new == 1
    s[bad]["forbidden"] = False
    s.flush()
    assert all_bodies(backend)[bad]["forbidden"] is False


# ------------------------------------------------------------------------------------------
# "rebase"


def test_rebase_different_fields_both_win(proxied_backend: Backend, proxy: RecordingProxy) -> None:
    """Two sessions editing different fields with "rebase" both succeed; both changes stay."""
    seed(proxied_backend, counter("c", name="n", label="l"))
    s1 = cm.Session(proxied_backend, conflict="rebase")
    s2 = cm.Session(proxied_backend, conflict="rebase")
    a, b = s1.get(Counter, "c"), s2.get(Counter, "c")
    assert a is not None and b is not None
    a.name = "from s1"
    b.label = "from s2"
    s1.flush()
    proxy.clear()
    s2.flush()
    writes = [r for r in proxy.requests if r.method == "POST"]
    assert [r.path.rsplit("/", 1)[-1].split("?")[0] for r in writes] == [
        "_bulk_docs",
        "_all_docs",
        "_bulk_docs",
    ]
    second = bulk_posts(proxy)[1][0]
    assert (second["name"], second["label"]) == ("from s1", "from s2")
    assert second["_rev"] == a.rev
    stored = all_bodies(proxied_backend)["c"]
    assert (stored["name"], stored["label"]) == ("from s1", "from s2")
    assert (b.name, b.label, b.rev) == ("from s1", "from s2", proxied_backend.get("c")["_rev"])
    assert s2.stats().dirty == 0


def test_rebase_overlap_raises_conflict_with_sides(backend: Backend) -> None:
    """Both sides changing one field with no merge rule: ConflictError, nothing overwritten."""
    seed(backend, counter("c", name="base"))
    s = cm.Session(backend, conflict="rebase")
    c = s.get(Counter, "c")
    assert c is not None
    c.name = "mine"
    edit_elsewhere(backend, "c", name="theirs")
    with pytest.raises(cm.ConflictError) as caught:
        s.flush()
    error = caught.value
    assert error.doc_id == "c" and error.paths == ("name",)
    assert error.base is not None and error.base["name"] == "base"
    assert error.mine is not None and error.mine["name"] == "mine"
    assert error.theirs is not None and error.theirs["name"] == "theirs"
    assert isinstance(error.__cause__, cm.FlushError)
    assert error.__cause__.doc_ids == ["c"]
    assert all_bodies(backend)["c"]["name"] == "theirs"
    assert c.name == "mine" and s.stats().dirty == 1


def test_rebase_of_delete_against_change_conflicts(backend: Backend) -> None:
    """Deleting a document someone else changed is reported, not silently applied."""
    seed(backend, counter("c"))
    s = cm.Session(backend, conflict="rebase")
    s.delete(s.get(Counter, "c"))
    edit_elsewhere(backend, "c", label="x")
    with pytest.raises(cm.FlushError, match="deleted in this session but changed"):
        s.flush()
    assert all_bodies(backend)["c"]["label"] == "x"


def test_merge_rules(backend: Backend) -> None:
    """sum re-applies the delta, union merges sets and lists, a callable decides itself."""
    seed(backend, counter("c", hits=10, members=["a"], history=["x", "y"], best=5))
    s = cm.Session(backend, conflict="rebase")
    c = s.get(Counter, "c")
    assert c is not None
    c.hits += 3
    c.members.add("mine")
    c.members.discard("a")
    c.history.append("m")
    c.history.remove("x")
    c.best = 7
    with cm.Session(backend) as other:
        o = other.get(Counter, "c")
        assert o is not None
        o.hits += 100
        o.members.add("theirs")
        o.history.append("t")
        o.best = 6
    s.flush()
    stored = all_bodies(backend)["c"]
    assert stored["hits"] == 113
    assert sorted(stored["members"]) == ["mine", "theirs"]
    assert stored["history"] == ["y", "t", "m"]
    assert stored["best"] == 7
    assert c.hits == 113 and c.members == {"mine", "theirs"} and c.history == ["y", "t", "m"]


@pytest.mark.parametrize(
    ("bound", "named"),
    [({"max_rebase": 0}, "max_rebase"), ({"rebase_timeout": 0}, "rebase_timeout")],
)
def test_rebase_bounds(backend: Backend, bound: dict[str, Any], named: str) -> None:
    """max_rebase=0 or rebase_timeout=0 turn "rebase" into a conflict naming the bound; kept."""
    seed(backend, counter("c"))
    s = cm.Session(backend, conflict="rebase", **bound)
    c = s.get(Counter, "c")
    assert c is not None
    c.hits += 1
    edit_elsewhere(backend, "c", hits=5)
    with pytest.raises(cm.FlushError, match=named):
        s.flush()
    assert s.has_pending()
    s.max_rebase, s.rebase_timeout = None, 30
    s.flush()
    assert all_bodies(backend)["c"]["hits"] == 6


def test_require_current_is_not_rebased(backend: Backend) -> None:
    """A require_current document changed elsewhere fails even under "rebase"."""
    seed(backend, counter("c"))
    s = cm.Session(backend, conflict="rebase")
    c = s.get(Counter, "c")
    assert c is not None
    s.require_current(c)
    edit_elsewhere(backend, "c", label="changed")
    with pytest.raises(cm.FlushError, match="require_current"):
        s.flush()


# ------------------------------------------------------------------------------------------
# "overwrite"


def test_overwrite_last_writer_wins(backend: Backend) -> None:
    """ "overwrite" writes this session's version over the server's, explicitly."""
    seed(backend, counter("c", name="base"))
    s = cm.Session(backend, conflict="overwrite")
    c = s.get(Counter, "c")
    assert c is not None
    c.label = "mine"
    edit_elsewhere(backend, "c", name="theirs")
    s.flush()
    stored = all_bodies(backend)["c"]
    assert (stored["name"], stored["label"]) == ("base", "mine")


def test_class_policy_overrides_session(backend: Backend) -> None:
    """A class's Meta.conflict wins over the session's default policy."""
    seed(backend, {"_id": "p", "type": "session-pinned", "value": 1})
    s = cm.Session(backend)  # "raise"
    p = s.get(Pinned, "p")
    assert p is not None
    p.value = 2
    with cm.Session(backend) as other:
        o = other.get(Pinned, "p")
        assert o is not None
        o.value = 3
    s.flush()
    assert all_bodies(backend)["p"]["value"] == 2


def test_created_twice_conflicts_under_rebase(backend: Backend) -> None:
    """Creating an id that someone else created meanwhile is a conflict, never a merge."""
    s = cm.Session(backend, conflict="rebase")
    s.add(Task(title="mine", id="t"))
    seed(backend, {"_id": "t", "type": "session-task", "title": "theirs"})
    with pytest.raises(cm.FlushError, match="created in this session"):
        s.flush()
    assert all_bodies(backend)["t"]["title"] == "theirs"


# ------------------------------------------------------------------------------------------
# Concurrency on the real server.


def contend(backend: Backend, writers: int, rounds: int, doc_ids: list[str]) -> int:
    """Threads bump sum and union fields of ``doc_ids`` in rebase sessions with the defaults.

    Checks that no flush failed and every total is exact; returns the ``_bulk_docs`` requests.
    """
    seed(backend, *(counter(i) for i in doc_ids))
    errors: list[BaseException] = []
    start = threading.Barrier(writers)
    posts: list[int] = []  # one entry per _bulk_docs request
    plain_bulk_docs = backend.bulk_docs

    def counting_bulk_docs(docs: Any, **options: Any) -> Any:
        posts.append(len(docs))
        return plain_bulk_docs(docs, **options)

    backend.bulk_docs = counting_bulk_docs  # type: ignore[method-assign]

    def work(worker: int) -> None:
        try:
            start.wait()
            for n in range(rounds):
                with cm.Session(backend, conflict="rebase") as s:
                    for doc in s.get_many(Counter, doc_ids):
                        assert doc is not None
                        doc.hits += 1
                        doc.members.add(f"w{worker}-{n}")
                        doc.history.append(f"w{worker}-{n}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=240)
    assert errors == []
    expected = sorted(f"w{w}-{n}" for w in range(writers) for n in range(rounds))
    stored = all_bodies(backend)
    for doc_id in doc_ids:
        assert stored[doc_id]["hits"] == writers * rounds
        assert sorted(stored[doc_id]["members"]) == expected
        assert sorted(stored[doc_id]["history"]) == expected
    return len(posts)


def test_concurrent_increments_converge(couch_backend: CouchDBBackend) -> None:
    """4 threads x 25 rebase flushes of sum and union fields: exact totals with the defaults."""
    posts = contend(couch_backend, 4, 25, ["shared-0", "shared-1"])
    # More requests than flushes: some flushes met a concurrent write and rebased.
    assert posts > 4 * 25, "the writers never collided: the test proves nothing"


def test_contention_converges_with_the_defaults(backend: Backend) -> None:
    """8 writers x 10 sessions on 3 documents: exact totals, no error, default settings."""
    assert contend(backend, 8, 10, ["hot-0", "hot-1", "hot-2"]) >= 8 * 10


# ------------------------------------------------------------------------------------------
# Forgetting a document forgets all of its pending work.


def _recorded_bulk_docs(backend: Backend) -> list[list[dict[str, Any]]]:
    """Record every ``bulk_docs`` payload the backend is given from now on (a copy of each)."""
    sent: list[list[dict[str, Any]]] = []
    original = backend.bulk_docs

    def recording(docs: Sequence[dict[str, Any]], *, new_edits: bool = True) -> Any:
        sent.append([dict(doc) for doc in docs])
        return original(docs, new_edits=new_edits)

    backend.bulk_docs = recording  # type: ignore[method-assign]
    return sent


def test_expunge_after_recreate_then_rebase(backend: Backend) -> None:
    """delete + add of one id, then expunge: a later edit of the id rebases as any other."""
    seed(backend, counter("c", name="start"))
    s = cm.Session(backend, conflict="rebase")
    old = s.get(Counter, "c")
    assert old is not None
    s.delete(old)
    replacement = s.add(Counter(id="c", name="replacement"))
    s.expunge(replacement)
    again = s.get(Counter, "c")
    assert again is not None and again is not old and again.name == "start"
    loaded_rev = again.rev
    again.label = "mine"
    edit_elsewhere(backend, "c", name="theirs")
    their_rev = backend.get("c")["_rev"]
    sent = _recorded_bulk_docs(backend)
    s.flush()
    assert [[(d["_id"], d["_rev"], d["name"], d["label"]) for d in docs] for docs in sent] == [
        [("c", loaded_rev, "start", "mine")],
        [("c", their_rev, "theirs", "mine")],
    ]
    assert all_bodies(backend)["c"] == {
        **counter("c", name="theirs", label="mine"),
        "hits": 0,
        "members": [],
        "history": [],
        "best": 0,
    }
    assert again.rev == backend.get("c")["_rev"] and s.stats().dirty == 0
