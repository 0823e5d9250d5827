"""Fault tests: the connection is cut during a flush, before or after the server applied it.

In every case the changes stay pending, ``BackendUnavailable`` is raised, flushing again
converges, and every change is in the database exactly once, under each conflict policy.
"""

from __future__ import annotations

from typing import Any, Literal

import pytest
from _proxy import RecordingProxy
from session_models import Counter, Task, all_bodies, bulk_posts

import couchmapper as cm
from couchmapper._types import ConflictPolicy
from couchmapper.backends.base import Backend

POLICIES: list[ConflictPolicy] = ["raise", "rebase", "overwrite"]


def seed(backend: Backend) -> None:
    """A counter to update, a task to delete and a raw document to edit deep inside."""
    docs: list[dict[str, Any]] = [
        {"_id": "u", "type": "session-counter", "hits": 1, "members": ["a"]},
        {"_id": "d", "type": "session-task", "title": "doomed"},
        {"_id": "r", "raw": {"list": [1], "keep": True}},
    ]
    assert all("error" not in r for r in backend.bulk_docs(docs))


def pending_edits(s: cm.Session) -> tuple[Task, Task]:
    """Two creates, an update (with merge-rule fields), a delete and a nested raw edit."""
    first, second = Task(title="first"), Task(title="second")
    s.add_all([first, second])
    u = s.get(Counter, "u")
    assert u is not None
    u.hits += 2
    u.members.add("b")
    u.label = "updated"
    s.delete(s.get(Task, "d"))
    s["r"]["raw"]["list"].append(2)
    return first, second


def check_converged(backend: Backend, first: Task, second: Task) -> None:
    """Every change is stored exactly once: no duplicates, nothing lost, nothing doubled."""
    stored = all_bodies(backend)
    tasks = [doc for doc in stored.values() if doc.get("type") == "session-task"]
    assert sorted(t["title"] for t in tasks) == ["first", "second"]
    assert {t["_id"] for t in tasks} == {first.id, second.id}
    assert stored["u"]["hits"] == 3  # the +2 applied once
    assert sorted(stored["u"]["members"]) == ["a", "b"]
    assert stored["u"]["label"] == "updated"
    assert "d" not in stored
    assert stored["r"]["raw"] == {"list": [1, 2], "keep": True}


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("cut", ["cut_before", "cut_after"])
def test_cut_during_flush_loses_nothing(
    proxied_backend: Backend,
    proxy: RecordingProxy,
    policy: ConflictPolicy,
    cut: Literal["cut_before", "cut_after"],
) -> None:
    """A flush cut before/after the server applied it stays pending; the retry converges."""
    seed(proxied_backend)
    s = cm.Session(proxied_backend, conflict=policy)
    first, second = pending_edits(s)
    getattr(proxy, cut)(path_contains="_bulk_docs", method="POST")
    proxy.clear()

    with pytest.raises(cm.BackendUnavailable):
        s.flush()

    stats = s.stats()
    assert (stats.new, stats.dirty, stats.deleted) == (2, 2, 1)
    assert cm.changes(first) == [] and first.rev is None
    stored = all_bodies(proxied_backend)
    if cut == "cut_before":
        assert stored["u"]["hits"] == 1 and "d" in stored  # the server never saw it
    else:
        assert stored["u"]["hits"] == 3 and "d" not in stored  # applied, answer lost
    proxy.clear()

    results = s.flush()

    assert sorted(r.doc_id for r in results) == sorted(
        ["u", "d", "r", str(first.id), str(second.id)]
    )
    sent = [(r.method, r.path.split("?")[0].rsplit("/", 1)[-1]) for r in proxy.requests]
    if cut == "cut_before":
        assert sent == [("POST", "_bulk_docs")]
    else:
        # Every document conflicts with its own earlier write: one _all_docs fetches the
        # current versions, and each unanswered document's history (GET ?revs=true) shows
        # that the earlier write landed. Nothing is sent again.
        assert [p for m, p in sent if m == "POST"] == ["_bulk_docs", "_all_docs"]
        ids = {"u", "d", "r", str(first.id), str(second.id)}
        assert {p for m, p in sent if m == "GET"} <= ids
        assert all(m in ("POST", "GET") for m, _ in sent)
    stats = s.stats()
    assert (stats.new, stats.dirty, stats.deleted) == (0, 0, 0)
    assert first.rev is not None and first.rev == proxied_backend.get(str(first.id))["_rev"]
    check_converged(proxied_backend, first, second)
    assert s.flush() == []  # nothing left over


@pytest.mark.parametrize("policy", POLICIES)
def test_cut_between_batches_keeps_the_first(
    proxied_backend: Backend, proxy: RecordingProxy, policy: ConflictPolicy
) -> None:
    """With batch_size, a cut in the second request keeps the first request's results."""
    s = cm.Session(proxied_backend, conflict=policy, batch_size=3)
    tasks = [Task(title=f"t{i}", id=f"t{i}") for i in range(6)]
    s.add_all(tasks)

    def arm_after_first(done: int, total: int) -> None:
        if done == 3:
            proxy.cut_after(path_contains="_bulk_docs", method="POST")

    with pytest.raises(cm.BackendUnavailable):
        s.flush(progress=arm_after_first)
    assert s.stats().new == 3  # the first three were confirmed and are clean
    assert all(t.rev is not None for t in tasks[:3]) and all(t.rev is None for t in tasks[3:])
    proxy.clear()
    s.flush()
    assert [[d["_id"] for d in docs] for docs in bulk_posts(proxy)] == [["t3", "t4", "t5"]]
    assert sorted(all_bodies(proxied_backend)) == [f"t{i}" for i in range(6)]


def test_cut_during_rebase_resend(proxied_backend: Backend, proxy: RecordingProxy) -> None:
    """A cut of the rebase's second request: the retry sees it landed; the sum applies once."""
    seed(proxied_backend)
    s = cm.Session(proxied_backend, conflict="rebase")
    u = s.get(Counter, "u")
    assert u is not None
    u.hits += 5
    with cm.Session(proxied_backend) as other:
        o = other.get(Counter, "u")
        assert o is not None
        o.hits += 10
    proxy.clear()

    def cut_the_resend(done: int, total: int) -> None:
        proxy.cut_after(path_contains="_bulk_docs", method="POST")

    with pytest.raises(cm.BackendUnavailable):
        s.flush(progress=cut_the_resend)
    assert all_bodies(proxied_backend)["u"]["hits"] == 16  # the resend was applied
    s.flush()
    assert all_bodies(proxied_backend)["u"]["hits"] == 16  # and not applied twice
    assert u.hits == 16 and s.stats().dirty == 0


def test_lost_answer_then_more_changes_is_reported(
    proxied_backend: Backend, proxy: RecordingProxy
) -> None:
    """A merged write whose answer was lost, then edited again: the retry adds only the edit."""
    seed(proxied_backend)
    s = cm.Session(proxied_backend, conflict="rebase")
    u = s.get(Counter, "u")
    assert u is not None
    u.hits += 5
    with cm.Session(proxied_backend) as other:
        o = other.get(Counter, "u")
        assert o is not None
        o.hits += 10

    def cut_the_resend(done: int, total: int) -> None:
        proxy.cut_after(path_contains="_bulk_docs", method="POST")

    with pytest.raises(cm.BackendUnavailable):
        s.flush(progress=cut_the_resend)
    assert all_bodies(proxied_backend)["u"]["hits"] == 16  # the merge landed: 1 + 5 + 10
    u.label = "later"
    proxy.clear()
    s.flush()
    stored = all_bodies(proxied_backend)["u"]
    assert (stored["hits"], stored["label"]) == (16, "later")  # the +5 is not counted twice
    assert (u.hits, u.label, u.rev) == (16, "later", proxied_backend.get("u")["_rev"])
    assert len(proxy.requests_to("_bulk_docs", method="POST")) == 2  # conflict, then the edit
