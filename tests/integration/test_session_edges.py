"""Edge cases of the session found in review: equal concurrent writes, lost answers followed
by other writers, re-adding deleted objects, rollback of a re-creation, nested merge rules.
"""

from __future__ import annotations

import gc
from typing import Any

import pytest
from _proxy import RecordingProxy
from session_models import Counter, Task, all_bodies

import couchmapper as cm
from couchmapper.backends.base import Backend
from couchmapper.document import state_of


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
