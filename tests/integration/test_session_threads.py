"""A session used from a second thread while one works in it refuses, naming both threads.

Sessions are not thread-safe. Instead of losing edits or corrupting their tables, they raise
``SessionStateError`` for every method called, and every document edit that reaches the
session, from another thread while one flushes or waits for the server; nothing is lost.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from session_models import Task, all_bodies

import couchmapper as cm
from couchmapper.backends.base import Backend


@contextmanager
def flushing_in_thread(s: cm.Session, backend: Backend) -> Iterator[threading.Thread]:
    """Run ``s.flush()`` in a thread named "flusher", held inside its ``_bulk_docs`` request."""
    inside, release = threading.Event(), threading.Event()
    plain = backend.bulk_docs
    errors: list[BaseException] = []

    def held(docs: Any, **options: Any) -> Any:
        inside.set()
        assert release.wait(60)
        return plain(docs, **options)

    backend.bulk_docs = held  # type: ignore[method-assign]

    def run() -> None:
        try:
            s.flush()
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=run, name="flusher")
    thread.start()
    assert inside.wait(60)
    try:
        yield thread
    finally:
        release.set()
        thread.join(60)
        backend.bulk_docs = plain  # type: ignore[method-assign]
    assert errors == []


def in_thread(action: Callable[[], object]) -> BaseException | None:
    """Run ``action`` in a thread named "editor"; the exception it raised, if any."""
    caught: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as exc:  # returned
            caught.append(exc)

    thread = threading.Thread(target=run, name="editor")
    thread.start()
    thread.join(60)
    return caught[0] if caught else None


def test_methods_from_another_thread_are_refused_during_a_flush(backend: Backend) -> None:
    """add, get, flush, has_pending and stats from a second thread raise, naming both threads."""
    s = cm.Session(backend)
    s.add(Task(title="one", id="one"))
    actions: list[Callable[[], object]] = [
        lambda: s.add(Task(title="two", id="two")),
        lambda: s.get(Task, "one"),
        s.flush,
        s.has_pending,
        s.stats,
        s.rollback,
        s.close,
    ]
    with flushing_in_thread(s, backend):
        refused = [in_thread(action) for action in actions]
    for error in refused:
        assert isinstance(error, cm.SessionStateError)
        assert "'flusher' (flushing)" in str(error) and "'editor'" in str(error)
        assert "not thread-safe" in str(error)
    assert sorted(all_bodies(backend)) == ["one"]
    assert not s.has_pending()
    s.add(Task(title="two", id="two"))  # the flush is over: usable again
    s.flush()
    assert sorted(all_bodies(backend)) == ["one", "two"]


def test_edits_from_another_thread_are_refused_and_kept(backend: Backend) -> None:
    """A first edit from a second thread raises; what it did is still written by the next flush."""
    s = cm.Session(backend)
    s.add_all([Task(title="a", id="a"), Task(title="b", id="b")])
    s.flush()
    a, b = s.get_many(Task, ["a", "b"])
    a.done = True
    with flushing_in_thread(s, backend):
        scalar = in_thread(lambda: setattr(b, "title", "from editor"))
        listed = in_thread(lambda: b.tags.append("from editor"))
    assert isinstance(scalar, cm.SessionStateError) and "edit its documents" in str(scalar)
    assert isinstance(listed, cm.SessionStateError)
    assert b.title == "b"  # the scalar set was refused before it happened
    assert b.tags == ["from editor"]  # the append was made before it was recorded: kept
    assert s.has_pending()
    s.flush()
    stored = all_bodies(backend)
    assert stored["a"]["done"] is True
    assert stored["b"]["tags"] == ["from editor"] and stored["b"]["title"] == "b"


def test_a_receiver_flushing_still_gets_its_own_message(backend: Backend) -> None:
    """flush() from a receiver of the same thread names the receiver, not threads."""
    s = cm.Session(backend)

    @s.on(cm.signals.before_flush)
    def again(sender: Any, **kwargs: Any) -> None:
        s.flush()

    s.add(Task(title="x"))
    with pytest.raises(cm.SessionStateError, match="signal receiver"):
        s.flush()


def test_sessions_per_thread_work_side_by_side(backend: Backend) -> None:
    """One session per thread over a shared backend: no refusal, every write stored."""

    def work(n: int) -> None:
        with cm.Session(backend) as s:
            s.add_all(Task(title=f"{n}-{k}", id=f"w{n}-{k}") for k in range(5))

    errors = [in_thread(lambda n=n: work(n)) for n in range(4)]  # type: ignore[misc]
    assert errors == [None] * 4
    assert len(all_bodies(backend)) == 20


def test_edit_in_flight_after_a_refusal_stays_pending(backend: Backend) -> None:
    """Once another thread was refused, a re-set of a changed field in flight is not lost."""
    s = cm.Session(backend)
    s.add(Task(title="a", id="a"))
    s.flush()
    a = s.get(Task, "a")
    assert a is not None
    a.title = "planned"

    def meddle() -> None:
        try:
            s.has_pending()
        finally:
            a.title = "meanwhile"  # already changed: this set never reaches the session

    with flushing_in_thread(s, backend):
        assert isinstance(in_thread(meddle), cm.SessionStateError)
    assert all_bodies(backend)["a"]["title"] == "planned"
    assert s.has_pending()
    s.flush()
    assert all_bodies(backend)["a"]["title"] == "meanwhile"
