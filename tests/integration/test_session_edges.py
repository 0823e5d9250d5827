"""Edge cases of the session found in review: equal concurrent writes, lost answers followed
by other writers, re-adding deleted objects, rollback of a re-creation, nested merge rules.
"""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest
from _proxy import RecordingProxy
from session_models import Counter, Pinned, Task, all_bodies

import couchmapper as cm
from couchmapper import signals
from couchmapper.backends.base import Backend
from couchmapper.model.base import state_of


class Stats(cm.Embedded):
    """An embedded object whose counter has a merge rule."""

    hits: int = cm.field(default=0, merge="sum")


class Page(cm.Document, type_name="session-page"):
    """A document with a merge rule inside an embedded object."""

    title: str = ""
    stats: Stats = cm.field(factory=Stats)


def seed(backend: Backend, *docs: dict[str, Any]) -> None:
    """Store documents directly."""
    assert all("error" not in r for r in backend.bulk_docs(list(docs)))


@pytest.mark.parametrize("policy", ["raise", "rebase"])
def test_two_sessions_writing_the_same_body_do_not_lose_an_update(
    backend: Backend, policy: str
) -> None:
    """Equal bodies from two sessions are a conflict (raise) or both counted (rebase, sum)."""
    seed(backend, {"_id": "c", "type": "session-counter", "hits": 1})
    a, b = cm.Session(backend, conflict=policy), cm.Session(backend, conflict=policy)  # type: ignore[arg-type]
    ca, cb = a.get(Counter, "c"), b.get(Counter, "c")
    assert ca is not None and cb is not None
    ca.hits += 1
    cb.hits += 1
    a.flush()
    if policy == "raise":
        with pytest.raises(cm.FlushError) as caught:
            b.flush()
        assert caught.value.failures[0].error == "conflict"
        assert backend.get("c")["hits"] == 2
    else:
        b.flush()
        assert backend.get("c")["hits"] == 3


def test_lost_answer_then_another_writer_counts_each_change_once(
    proxied_backend: Backend, proxy: RecordingProxy
) -> None:
    """Our write lands, its answer is lost, another writer edits: the retry adds nothing twice."""
    seed(proxied_backend, {"_id": "u", "type": "session-counter", "hits": 1, "members": ["a"]})
    s = cm.Session(proxied_backend, conflict="rebase")
    u = s.get(Counter, "u")
    assert u is not None
    u.hits += 2
    u.members.discard("a")
    proxy.cut_after(path_contains="_bulk_docs", method="POST")
    with pytest.raises(cm.BackendUnavailable):
        s.flush()
    assert all_bodies(proxied_backend)["u"]["hits"] == 3  # it landed
    with cm.Session(proxied_backend, conflict="rebase") as other:
        o = other.get(Counter, "u")
        assert o is not None
        o.hits += 10
        o.members.add("a")
    s.flush()
    stored = all_bodies(proxied_backend)["u"]
    assert stored["hits"] == 13  # 1 + 2 + 10: our +2 once
    assert stored["members"] == ["a"]  # their re-add survives our earlier removal
    assert (u.hits, u.members) == (13, {"a"})


def test_lost_answer_then_more_edits_converges_under_every_policy(
    proxied_backend: Backend, proxy: RecordingProxy
) -> None:
    """After a lost answer, a further edit goes out on top of our own write (any policy)."""
    for policy in ("raise", "rebase", "overwrite"):
        doc_id = f"t-{policy}"
        seed(proxied_backend, {"_id": doc_id, "type": "session-task", "title": "a"})
        s = cm.Session(proxied_backend, conflict=policy)
        t = s.get(Task, doc_id)
        assert t is not None
        t.owner = "ann"
        proxy.cut_after(path_contains="_bulk_docs", method="POST")
        with pytest.raises(cm.BackendUnavailable):
            s.flush()
        t.title = "b"
        s.flush()
        stored = proxied_backend.get(doc_id)
        assert (stored["title"], stored["owner"]) == ("b", "ann")
        assert stored["_rev"].startswith("3-") and t.rev == stored["_rev"]


def test_lost_answer_of_a_create_then_an_edit_converges(
    proxied_backend: Backend, proxy: RecordingProxy
) -> None:
    """A create whose answer was lost, then edited: the retry updates it, no duplicate."""
    s = cm.Session(proxied_backend)
    t = Task(title="new", id="fresh")
    s.add(t)
    proxy.cut_after(path_contains="_bulk_docs", method="POST")
    with pytest.raises(cm.BackendUnavailable):
        s.flush()
    t.owner = "bo"
    s.flush()
    stored = proxied_backend.get("fresh")
    assert (stored["title"], stored["owner"]) == ("new", "bo")
    assert stored["_rev"].startswith("2-")
    assert cm.Session(proxied_backend).get(Task, "fresh") is not None


def test_adding_an_object_whose_deletion_was_flushed_creates_it_again(backend: Backend) -> None:
    """After the tombstone is written, add() plans a create and the flush stores it."""
    seed(backend, {"_id": "x", "type": "session-task", "title": "t"})
    s = cm.Session(backend)
    x = s.get(Task, "x")
    assert x is not None
    s.delete(x)
    s.flush()
    assert cm.Session(backend).get(Task, "x") is None
    s.add(x)
    assert s.has_pending()
    s.flush()
    assert backend.get("x")["title"] == "t"


def test_rollback_of_delete_and_recreate_restores_the_original(backend: Backend) -> None:
    """Rollback after delete + re-create puts the original object back, persistent."""
    seed(backend, {"_id": "x", "type": "session-task", "title": "orig"})
    s = cm.Session(backend)
    original = s.get(Task, "x")
    assert original is not None
    s.delete(original)
    s.add(Task(title="replacement", id="x"))
    assert len(s) == 1  # one document, replaced: not counted twice
    s.rollback()
    assert s.get(Task, "x") is original
    state = state_of(original)
    assert state is not None and state.status is cm.Lifecycle.PERSISTENT
    original.title = "edited"
    s.flush()
    assert backend.get("x")["title"] == "edited"


def test_merge_rule_on_an_embedded_field_is_used(backend: Backend) -> None:
    """merge="sum" on a field of an Embedded class merges concurrent increments."""
    seed(backend, {"_id": "p", "type": "session-page", "title": "", "stats": {"hits": 0}})
    a, b = cm.Session(backend, conflict="rebase"), cm.Session(backend, conflict="rebase")
    pa, pb = a.get(Page, "p"), b.get(Page, "p")
    assert pa is not None and pb is not None
    pa.stats.hits += 2
    pb.stats.hits += 5
    a.flush()
    b.flush()
    assert backend.get("p")["stats"]["hits"] == 7


def test_objects_changed_back_are_released_by_the_weak_identity_map(backend: Backend) -> None:
    """A document changed and set back holds no strong reference once flushed."""
    seed(backend, *({"_id": f"t{i}", "type": "session-task", "title": "t"} for i in range(20)))
    s = cm.Session(backend)
    for i in range(20):
        t = s.get(Task, f"t{i}")
        assert t is not None
        t.title = "changed"
        t.title = "t"
    del t
    assert s.flush() == []
    gc.collect()
    assert s.stats().identity_map == 0


def test_reattached_object_reports_new_changes(backend: Backend) -> None:
    """An object changed back, expunged and added again still reports its next change."""
    seed(backend, {"_id": "x", "type": "session-task", "title": "t"})
    s = cm.Session(backend)
    x = s.get(Task, "x")
    assert x is not None
    x.title = "other"
    x.title = "t"
    s.expunge(x)
    s.add(x)
    x.owner = "ann"
    assert s.has_pending()
    s.flush()
    assert backend.get("x")["owner"] == "ann"


def test_failed_flush_at_the_end_of_a_with_block_keeps_the_session_open(
    backend: Backend,
) -> None:
    """When the flush of a clean with-exit fails, the session stays open for a retry."""
    seed(backend, {"_id": "c", "type": "session-counter", "hits": 1})
    with cm.Session(backend) as other:
        o = other.get(Counter, "c")
        assert o is not None
        o.hits = 5
    s = cm.Session(backend)
    stale = cm.load(Counter, {"_id": "c", "_rev": "1-0", "type": "session-counter", "hits": 1})
    with pytest.raises(cm.FlushError), s:
        s.add(stale)
        stale.hits = 2
    assert s.has_pending()
    s.refresh(stale)
    stale.hits = 6
    s.flush()
    assert backend.get("c")["hits"] == 6


# --------------------------------------------------------------------------------------
# Lost answers, on the memory engine: a wrapper applies a request and then loses its answer.


class LosingBackend:
    """A memory backend whose next ``bulk_docs`` calls lose their answer (after or before)."""

    def __init__(self) -> None:
        self.inner = cm.connect()
        self.cuts: list[str] = []

    def lose(self, when: str = "after") -> None:
        """The next bulk_docs is applied ("after") or not ("before"), then gets no answer."""
        self.cuts.append(when)

    def bulk_docs(self, docs: Any, **options: Any) -> Any:
        """Apply (or not) and raise BackendUnavailable when a cut is due."""
        if self.cuts:
            when = self.cuts.pop(0)
            if when == "after":
                self.inner.bulk_docs(docs, **options)
            raise cm.BackendUnavailable("cut")
        return self.inner.bulk_docs(docs, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def losing(*docs: dict[str, Any]) -> LosingBackend:
    """A LosingBackend seeded with ``docs``."""
    found = LosingBackend()
    seed(found.inner, *docs)
    return found


def test_recreate_after_a_lost_delete_is_written() -> None:
    """Delete whose answer was lost, then a new object with that id: it is created."""
    b = losing({"_id": "t", "type": "session-task", "title": "old"})
    s = cm.Session(b)
    t = s.get(Task, "t")
    assert t is not None
    s.delete(t)
    b.lose()
    with pytest.raises(cm.BackendUnavailable):
        s.flush()
    fresh = s.add(Task(title="new", id="t"))
    s.flush()
    assert b.inner.get("t")["title"] == "new"
    assert state_of(fresh) is not None and not s.has_pending()


def test_lost_merged_resend_then_an_edit_keeps_the_other_writers_changes() -> None:
    """A rebase's merged resend lands without an answer; a later +1 goes on top of it."""
    b = losing({"_id": "u", "type": "session-counter", "hits": 1, "members": ["a"]})
    s = cm.Session(b, conflict="rebase")
    u = s.get(Counter, "u")
    assert u is not None
    u.hits += 3
    with cm.Session(b.inner, conflict="rebase") as other:
        o = other.get(Counter, "u")
        assert o is not None
        o.hits += 10
        o.members.add("z")
    # The first request is answered (a conflict); the merged resend lands, answer lost.
    real = b.bulk_docs
    calls = {"n": 0}

    def conflict_then_lose(docs: Any, **options: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            return b.inner.bulk_docs(docs, **options)
        b.lose()
        return real(docs, **options)

    b.bulk_docs = conflict_then_lose  # type: ignore[method-assign]
    with pytest.raises(cm.BackendUnavailable):
        s.flush()
    assert b.inner.get("u")["hits"] == 14  # 1 + 10 + 3, merged and stored
    b.bulk_docs = real  # type: ignore[method-assign]
    u.hits += 1
    u.members.add("b")
    s.flush()
    stored = b.inner.get("u")
    assert stored["hits"] == 15
    assert sorted(stored["members"]) == ["a", "b", "z"]


def test_two_lost_answers_with_an_edit_between_count_each_edit_once() -> None:
    """+2 lands unanswered, +1, a flush cut before sending, then a flush: 1 + 2 + 1."""
    for policy in ("raise", "rebase", "overwrite"):
        b = losing({"_id": "u", "type": "session-counter", "hits": 1})
        s = cm.Session(b, conflict=policy)
        u = s.get(Counter, "u")
        assert u is not None
        u.hits += 2
        b.lose("after")
        with pytest.raises(cm.BackendUnavailable):
            s.flush()
        u.hits += 1
        b.lose("before")
        with pytest.raises(cm.BackendUnavailable):
            s.flush()
        s.flush()
        assert b.inner.get("u")["hits"] == 4, policy


def test_failed_retry_after_a_landed_write_does_not_replay_it() -> None:
    """A retry that conflicts for real, then succeeds, adds the landed list item once."""
    b = losing({"_id": "t", "type": "session-task", "title": "a", "tags": ["x"]})
    s = cm.Session(b, conflict="rebase")
    t = s.get(Task, "t")
    assert t is not None
    t.tags.append("y")
    b.lose()
    with pytest.raises(cm.BackendUnavailable):
        s.flush()
    with cm.Session(b.inner) as other:
        o = other.get(Task, "t")
        assert o is not None
        o.owner = "bo"
    t.owner = "ann"
    with pytest.raises(cm.ConflictError):
        s.flush()
    t.owner = ""
    s.flush()
    stored = b.inner.get("t")
    assert stored["tags"] == ["x", "y"] and stored["owner"] == "bo"


def test_reverting_after_a_lost_answer_is_written() -> None:
    """A change whose write landed unanswered, then set back: the revert is written."""
    b = losing({"_id": "t", "type": "session-task", "title": "a"})
    s = cm.Session(b)
    t = s.get(Task, "t")
    assert t is not None
    t.title = "b"
    b.lose()
    with pytest.raises(cm.BackendUnavailable):
        s.flush()
    t.title = "a"
    assert s.has_pending()
    s.flush()
    assert b.inner.get("t")["title"] == "a"


def test_expunge_and_readd_after_a_lost_answer_counts_once() -> None:
    """The unanswered write travels with the object into another session."""
    b = losing({"_id": "u", "type": "session-counter", "hits": 1})
    s = cm.Session(b, conflict="rebase")
    u = s.get(Counter, "u")
    assert u is not None
    u.hits += 2
    b.lose()
    with pytest.raises(cm.BackendUnavailable):
        s.flush()
    s.expunge(u)
    again = cm.Session(b, conflict="rebase")
    again.add(u)
    again.flush()
    assert b.inner.get("u")["hits"] == 3


def test_deleting_a_create_whose_answer_was_lost_removes_it() -> None:
    """A create that landed unanswered, then deleted: the document is gone; len is right."""
    b = losing()
    s = cm.Session(b)
    t = s.add(Task(title="x", id="fresh"))
    b.lose()
    with pytest.raises(cm.BackendUnavailable):
        s.flush()
    assert len(s) == 1
    s.delete(t)
    s.flush()
    with pytest.raises(cm.DocumentNotFound):
        b.inner.get("fresh")


def test_same_value_on_both_sides_is_no_conflict(backend: Backend) -> None:
    """Two sessions setting a field to the same value: the rebase sees no overlap."""
    seed(backend, {"_id": "t", "type": "session-task", "title": "a"})
    a, b = cm.Session(backend, conflict="rebase"), cm.Session(backend, conflict="rebase")
    ta, tb = a.get(Task, "t"), b.get(Task, "t")
    assert ta is not None and tb is not None
    ta.owner = "ann"
    tb.owner = "ann"
    tb.title = "b"
    a.flush()
    b.flush()
    stored = backend.get("t")
    assert (stored["owner"], stored["title"]) == ("ann", "b")


def test_raw_documents_have_id_and_rev(backend: Backend) -> None:
    """A raw dict document has its _id and _rev as .id and .rev and as keys (python-couchdb)."""
    s = cm.Session(backend)
    doc_id = s.create({"hello": 1})
    s.flush()
    raw = cm.Session(backend)[doc_id]
    assert (raw.id, raw.rev) == (doc_id, backend.get(doc_id)["_rev"])
    assert dict(raw) == {"_id": doc_id, "_rev": raw.rev, "hello": 1}


def test_create_of_a_dict_naming_a_type_makes_that_class(backend: Backend) -> None:
    """create({"type": ...}) gives a validated object of the class, seen by its queries."""
    s = cm.Session(backend)
    doc_id = s.create({"type": "session-task", "title": "from a dict"})
    task = s.get(Task, doc_id)
    assert isinstance(task, Task) and task.title == "from a dict"
    assert [t.id for t in s.find(Task, Task.title == "from a dict")] == [doc_id]
    with pytest.raises(cm.ValidationError, match="title"):
        s.create({"type": "session-task", "title": 5})


def test_iterating_a_session_gives_document_ids(backend: Backend) -> None:
    """iter(session) yields stored ids, plus pending creations, minus pending deletions."""
    seed(backend, *({"_id": f"d{i}", "type": "session-task", "title": "t"} for i in range(3)))
    s = cm.Session(backend)
    s.delete(s.get(Task, "d1"))
    s.add(Task(title="n", id="new"))
    assert sorted(s) == ["d0", "d2", "new"]


def test_a_dropped_session_is_freed_without_the_cycle_collector(backend: Backend) -> None:
    """A session that loaded, queried and flushed is freed (receivers gone) once dropped."""
    backend.bulk_docs([{"_id": "p", "type": "session-pinned", "value": 1}])
    gc.collect()
    gc.disable()  # scalar-only documents: nothing but reference counts may free the session
    try:
        s = cm.Session(backend)
        s.on(signals.after_flush)(lambda sender, **kwargs: None)
        found = [s.get(Pinned, "p"), *s.find(Pinned)]  # no assert here: it keeps its values
        s.flush()
        loaded = len(found)
        del found
        before = len(signals.after_flush.receivers)
        dropped = weakref.ref(s)
        del s
        assert dropped() is None
        assert len(signals.after_flush.receivers) == before - 1
        assert loaded == 2
    finally:
        gc.enable()
