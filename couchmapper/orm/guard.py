"""The thread guard of a session: one thread at a time, refused clearly rather than corrupted.

A :class:`~couchmapper.orm.session.Session` is not thread-safe. While one thread works in it (a
flush, or any request to the server), every session method called from another thread, and
every edit from another thread that reaches the session (a document's first change), raises
:class:`~couchmapper.exceptions.SessionStateError` naming both threads.

The guard costs nothing on the field-set hot path: descriptors only reach the session on a
document's first change. An edit refused there may already be in the object (a list append
is made before it is recorded); such a state is kept aside and handed back to the session
when the working thread is done, so the edit stays pending and nothing is lost.
"""

from __future__ import annotations

import threading
from typing import Any

from couchmapper.exceptions import SessionStateError

__all__ = ["ThreadGuard"]


class ThreadGuard:
    """Which thread works in a session right now, and the edits other threads made meanwhile."""

    __slots__ = ("_lock", "doing", "foreign", "intruded", "worker")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.worker: threading.Thread | None = None
        self.doing = ""
        # States whose first change came from another thread while the worker worked.
        self.foreign: list[Any] = []
        # Another thread was refused since the worker began: it may be editing objects too.
        self.intruded = False

    def check(self, action: str) -> None:
        """Raise if another thread works in the session now.

        Raises:
            SessionStateError: names both threads and what the other one is doing.
        """
        worker = self.worker
        if worker is not None and worker.ident != threading.get_ident():
            self.intruded = True
            raise SessionStateError(self._message(worker, action))

    def enter(self, doing: str) -> bool:
        """Start working in the session; False when this thread already works in it.

        Raises:
            SessionStateError: another thread works in the session.
        """
        worker = self.worker
        if worker is not None and worker.ident == threading.get_ident():
            return False
        if not self._lock.acquire(blocking=False):
            self.intruded = True
            raise SessionStateError(self._message(self.worker, doing))
        self.worker = threading.current_thread()
        self.doing = doing
        self.intruded = False
        return True

    def leave(self) -> list[Any]:
        """Stop working (after a True :meth:`enter`); returns the states to hand back."""
        self.worker = None
        self.doing = ""
        self._lock.release()
        return self.take_foreign()

    def take_foreign(self) -> list[Any]:
        """The states other threads changed meanwhile, removed from the guard."""
        taken = self.foreign[:]
        del self.foreign[: len(taken)]  # appends that came meanwhile stay for the next time
        return taken

    def _message(self, worker: threading.Thread | None, action: str) -> str:
        here = threading.current_thread().name
        there = f"thread {worker.name!r}" if worker is not None else "another thread"
        doing = f" ({self.doing})" if self.doing else ""
        return (
            f"this session is in use by {there}{doing}; thread {here!r} cannot {action} "
            "meanwhile. Sessions are not thread-safe: give each thread its own Session "
            "(a backend may be shared)"
        )
