"""Edits made while a flush runs (from its progress callback) are written or stay pending.

A flush writes what it planned after the hook rounds. An edit made afterwards, from the
``progress`` callback, to a document sent in an earlier request, not sent yet, or waiting for
a conflict to be resolved, is never lost: it stays pending with its changes, and the next
flush writes it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from session_models import Counter, Task, all_bodies, record_bulk_docs

import couchmapper as cm
from couchmapper.backends.base import Backend
from couchmapper.model.base import state_of


def at_call(number: int, action: Callable[[], None]) -> Callable[[int, int], None]:
    """A progress callback that runs ``action`` once, on its ``number``-th call (from 1)."""
    calls = [0]

    def progress(done: int, total: int) -> None:
        calls[0] += 1
        if calls[0] == number:
            action()

    return progress


def make_items(s: cm.Session, count: int) -> list[Counter]:
    """``count`` new counters ``i0``, ``i1``, ... added to ``s`` with ``hits=100``."""
    items = [Counter(id=f"i{n}", hits=100) for n in range(count)]
    s.add_all(items)
    return items


def test_edit_of_a_document_not_yet_sent_stays_pending(backend: Backend) -> None:
    """batch_size=1: items[1].n = 200 from the callback after the first request is not lost."""
    s = cm.Session(backend, batch_size=1)
    items = make_items(s, 3)
    sent = record_bulk_docs(backend)

    def edit() -> None:
        items[1].hits = 200

    s.flush(progress=at_call(1, edit))
    assert [[d["_id"] for d in docs] for docs in sent] == [["i0"], ["i1"], ["i2"]]
    assert s.has_pending() and s.stats().dirty == 1
    s.flush()
    assert [d["hits"] for d in sent[-1]] == [200] and sent[-1][0]["_id"] == "i1"
    assert all_bodies(backend)["i1"]["hits"] == 200
    assert not s.has_pending()


def test_edit_of_an_already_changed_field_before_its_request(backend: Backend) -> None:
    """A field changed before the flush and set again from the callback keeps the new value."""
    seed = cm.Session(backend)
    make_items(seed, 3)
    seed.flush()
    s = cm.Session(backend, batch_size=1)
    loaded = s.get_many(Counter, ["i0", "i1", "i2"])
    for doc in loaded:
        doc.hits = 150
    sent = record_bulk_docs(backend)

    def edit() -> None:
        loaded[2].hits = 300
        loaded[2].label = "late"

    s.flush(progress=at_call(1, edit))
    assert [d["hits"] for docs in sent for d in docs] == [150, 150, 150]
    assert s.has_pending()
    s.flush()
    assert [(d["_id"], d["hits"], d["label"]) for d in sent[-1]] == [("i2", 300, "late")]
    stored = all_bodies(backend)
    assert [stored[f"i{n}"]["hits"] for n in range(3)] == [150, 150, 300]


def test_edit_of_a_document_already_written_stays_pending(backend: Backend) -> None:
    """An edit to a document written by an earlier request of the flush goes out next time."""
    s = cm.Session(backend, batch_size=1)
    items = make_items(s, 2)
    sent = record_bulk_docs(backend)

    def edit() -> None:
        items[0].label = "after"

    s.flush(progress=at_call(1, edit))
    assert s.stats().dirty == 1
    s.flush()
    assert [(d["_id"], d["label"]) for d in sent[-1]] == [("i0", "after")]
    assert all_bodies(backend)["i0"]["label"] == "after"


def test_container_and_raw_edits_before_their_request(backend: Backend) -> None:
    """List edits of a typed document and key edits of a raw dict made mid-flush stay pending."""
    s = cm.Session(backend, batch_size=1)
    task = Task(title="t", id="a-task")
    s.add(Task(title="first", id="0-first"))
    s.add(task)
    raw_id = s.create({"_id": "b-raw", "n": 1})
    raw = s[raw_id]

    def edit() -> None:
        task.tags.append("late")
        raw["n"] = 2

    s.flush(progress=at_call(1, edit))
    assert s.stats().dirty == 2
    s.flush()
    stored = all_bodies(backend)
    assert stored["a-task"]["tags"] == ["late"] and stored["b-raw"]["n"] == 2


def test_delete_of_a_document_not_yet_sent_stays_pending(backend: Backend) -> None:
    """A stored document deleted from the callback before its update went out is deleted next."""
    seed = cm.Session(backend)
    make_items(seed, 2)
    seed.flush()
    s = cm.Session(backend, batch_size=1)
    first, second = s.get_many(Counter, ["i0", "i1"])
    first.label = second.label = "changed"

    def delete() -> None:
        s.delete(second)

    s.flush(progress=at_call(1, delete))
    assert s.stats().deleted == 1
    s.flush()
    assert sorted(all_bodies(backend)) == ["i0"]


def test_sum_edit_while_a_conflict_waits(backend: Backend) -> None:
    """A merge="sum" field bumped from the callback while its conflict waits adds up exactly."""
    seed = cm.Session(backend)
    make_items(seed, 2)
    seed.flush()
    s = cm.Session(backend, conflict="rebase", batch_size=1)
    first, second = s.get_many(Counter, ["i0", "i1"])
    first.hits += 1
    second.hits += 1
    with cm.Session(backend) as other:  # i0 changes on the server: its write conflicts
        theirs = other.get(Counter, "i0")
        assert theirs is not None
        theirs.hits += 10

    def bump() -> None:
        first.hits += 5

    s.flush(progress=at_call(2, bump))  # after the second request, before the rebase
    s.flush()
    assert not s.has_pending()
    assert all_bodies(backend)["i0"]["hits"] == 100 + 10 + 1 + 5
    assert first.hits == 116


def test_delete_of_a_new_document_planned_by_the_flush(backend: Backend) -> None:
    """A new document deleted from the callback before its create went out is deleted next."""
    s = cm.Session(backend, batch_size=1)
    items = make_items(s, 2)
    added = Counter(id="added-late")

    def delete() -> None:
        s.delete(items[1])
        s.add(added)  # not planned by this flush: deleting it just drops it
        s.delete(added)

    s.flush(progress=at_call(1, delete))
    assert sorted(all_bodies(backend)) == ["i0", "i1"]  # the running flush created it
    assert s.stats().deleted == 1 and s.stats().new == 0
    assert getattr(state_of(added), "status", None) is cm.Lifecycle.TRANSIENT
    s.flush()
    assert sorted(all_bodies(backend)) == ["i0"]
    assert not s.has_pending()


def test_new_document_deleted_after_its_create_failed_is_dropped(backend: Backend) -> None:
    """A planned create that fails, deleted from the callback, is dropped by the next flush."""
    backend.bulk_docs([{"_id": "i1", "type": "session-counter"}])  # i1's create will conflict
    s = cm.Session(backend, batch_size=1)
    items = make_items(s, 3)

    def delete() -> None:
        s.delete(items[1])

    with pytest.raises(cm.FlushError):
        s.flush(progress=at_call(2, delete))
    sent = record_bulk_docs(backend)
    s.flush()
    assert sent == [] and not s.has_pending()
    assert getattr(state_of(items[1]), "status", None) is cm.Lifecycle.TRANSIENT
    assert "hits" not in all_bodies(backend)["i1"]
