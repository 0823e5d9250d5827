"""The pending work of one session: every per-document table, and their only writer.

A :class:`PendingWork` holds what a session knows about documents beyond their objects: the
identity map, the documents to create, change, delete or check at the next flush, objects a
re-creation replaced (until the write, so ``rollback()`` can bring them back), and the hook
bookkeeping (documents not yet notified, what receivers were last told). Other modules read
the tables through read-only views and change them only through the ``mark_*`` /
``forget`` / ``clear`` methods here, so every path that forgets a document (expunge, close,
clear, rollback, refresh, a written document) forgets it from every table alike.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from couchmapper._types import JSONDict, Obj
from couchmapper.model.base import restore, state_of
from couchmapper.orm.guard import ThreadGuard
from couchmapper.orm.identity import IdentityMap
from couchmapper.orm.state import InstanceState, Lifecycle

if TYPE_CHECKING:
    from couchmapper.orm.notify import Notice

__all__ = ["PendingWork"]


V = TypeVar("V")


class _Table(Generic[V]):
    """A read-only view of one of PendingWork's tables (only PendingWork writes them)."""

    __slots__ = ("attribute",)

    def __init__(self, attribute: str) -> None:
        self.attribute = attribute

    def __get__(self, work: PendingWork, owner: type | None = None) -> Mapping[str, V]:
        table: Mapping[str, V] = getattr(work, self.attribute)
        return table


class PendingWork:
    """Every pending table of one session (strong references, keyed by document id).

    Attributes:
        identity: the identity map (one object per document id).
        flushing: a flush is running (receivers' queries must not autoflush).
        queued_observer: called with each object queued for notification (hook-round watch).
    """

    __slots__ = (
        "_deleted",
        "_dirty",
        "_new",
        "_notices",
        "_replaced",
        "_required",
        "_resolving",
        "_unnotified",
        "flushing",
        "guard",
        "identity",
        "queued_observer",
    )

    def __init__(self, identity: IdentityMap) -> None:
        self.identity = identity
        self._new: dict[str, Obj] = {}
        self._dirty: dict[str, Obj] = {}
        self._deleted: dict[str, Obj] = {}
        self._required: dict[str, Obj] = {}
        # Documents whose stored conflicts the next flush resolves (orm.conflicts.Resolving).
        self._resolving: dict[str, Any] = {}
        # Objects deleted and then re-created under the same id as another object, until the
        # write: rollback() brings them back.
        self._replaced: dict[str, Obj] = {}
        # Hook bookkeeping: documents to notify in the next round, and what receivers were
        # last told about each document (kept until the document is written, so a failed
        # flush that is retried does not notify the same changes again).
        self._unnotified: dict[str, Obj] = {}
        self._notices: dict[str, Notice] = {}
        self.flushing = False
        # One thread at a time: another one is refused, naming both (couchmapper.orm.guard).
        self.guard = ThreadGuard()
        self.queued_observer: Callable[[Obj], None] | None = None

    # Read-only views ------------------------------------------------------------------------

    new = _Table[Obj]("_new")
    """Documents to create (or, after a delete + re-create, to replace)."""
    dirty = _Table[Obj]("_dirty")
    """Persistent documents changed since loaded or written (maybe changed back)."""
    deleted = _Table[Obj]("_deleted")
    """Documents to delete."""
    required = _Table[Obj]("_required")
    """Documents whose revision the flush checks (``require_current``)."""
    resolving = _Table[Any]("_resolving")
    """Documents whose stored conflicts the next flush resolves, with how (orm.conflicts)."""
    replaced = _Table[Obj]("_replaced")
    """Deleted objects whose id a new object took, until the write."""
    unnotified = _Table[Obj]("_unnotified")
    """Documents the next hook round notifies."""
    notices = _Table["Notice"]("_notices")
    """What receivers were last told about each document, until it is written."""

    def held(self, doc_id: str) -> Obj | None:
        """The object held for ``doc_id``, pending work first (None if none).

        Never ``a or b``: an empty raw dict document is falsy.
        """
        for table in (self._deleted, self._new, self._dirty, self._required):
            found = table.get(doc_id)
            if found is not None:
                return found
        resolving = self._resolving.get(doc_id)
        if resolving is not None:
            return resolving.obj
        return self.identity.get(doc_id)

    def has_work(self, changed: Callable[[Obj], bool]) -> bool:
        """Whether a flush would write anything (``changed`` tells a dirty object's news)."""
        return bool(self._new or self._deleted or self._required or self._resolving) or any(
            changed(obj) for obj in self._dirty.values()
        )

    # Marking --------------------------------------------------------------------------------

    def queue(self, doc_id: str, obj: Obj) -> None:
        """Queue ``obj`` for the next hook round."""
        self._unnotified[doc_id] = obj
        if self.queued_observer is not None:
            self.queued_observer(obj)

    def note_first_change(self, state: InstanceState) -> None:
        """A document changed for the first time: hold it (if stored) and queue its hooks.

        Raises:
            SessionStateError: the change came from a thread other than the one working in
                the session now; what the edit already did is taken in when that one is done.
        """
        guard = self.guard
        worker = guard.worker
        if worker is not None and worker.ident != threading.get_ident():
            guard.foreign.append(state)
            guard.check("edit its documents")
            try:  # the worker finished meanwhile: take the change in now, unless it did
                guard.foreign.remove(state)
            except ValueError:
                return
        obj = state.obj
        doc_id = state.doc_id
        if obj is None or doc_id is None:
            return
        if state.status is Lifecycle.PERSISTENT:
            self._dirty[doc_id] = obj
        self.queue(doc_id, obj)

    def hand_back(self, states: list[InstanceState]) -> None:
        """Take in the documents another thread changed while one worked (see guard)."""
        for state in states:
            session = state.session
            # Still in this session (a closed session detached its objects).
            if session is not None and getattr(session, "pending", None) is self:
                self.note_first_change(state)

    def mark_dirty(self, doc_id: str, obj: Obj) -> None:
        """A stored document (re-attached) that has changes: hold it and queue its hooks."""
        self._dirty[doc_id] = obj
        self.queue(doc_id, obj)

    def mark_new(self, doc_id: str, obj: Obj) -> None:
        """A document to create."""
        self._new[doc_id] = obj
        self.queue(doc_id, obj)

    def mark_replaced(self, doc_id: str, new: InstanceState) -> None:
        """The object deleted here under ``doc_id`` gives its id to a new object (``new``).

        Delete + re-create of one id in one session is one write, an update of the stored
        document to the new content: the new object takes the old one's revision. The old
        object is detached until the write (``rollback()`` brings it back); its
        notifications are over.
        """
        old = self._deleted.pop(doc_id)
        old_state = state_of(old)
        assert old_state is not None
        new.rev = old_state.rev
        new.loaded = old_state.loaded
        new.flights = old_state.flights  # a lost tombstone may have landed
        old_state.status = Lifecycle.DETACHED
        old_state.session = None
        self._replaced[doc_id] = old
        self._unnotified.pop(doc_id, None)
        self._notices.pop(doc_id, None)  # the new object is notified as added

    def mark_deleted(self, doc_id: str, obj: Obj) -> None:
        """A document to delete (the flush writes its tombstone)."""
        self._new.pop(doc_id, None)
        self._dirty.pop(doc_id, None)
        self._deleted[doc_id] = obj
        self.queue(doc_id, obj)

    def mark_required(self, doc_id: str, obj: Obj) -> None:
        """A document whose revision the flush checks."""
        self._required[doc_id] = obj

    def mark_resolving(self, doc_id: str, resolving: Any) -> None:
        """A document whose stored conflicts the next flush resolves (held strongly)."""
        self._resolving[doc_id] = resolving

    def keep_deletion(self, doc_id: str) -> None:
        """A document written by a flush but deleted meanwhile: only its deletion is pending."""
        for table in (self._new, self._dirty, self._required):
            table.pop(doc_id, None)

    def drop_new(self, doc_id: str) -> None:
        """A never-written document deleted again: nothing to create, no longer held."""
        self._new.pop(doc_id, None)
        self.identity.discard(doc_id)

    # Hook bookkeeping -----------------------------------------------------------------------

    def take_unnotified(self, doc_id: str) -> Obj | None:
        """Remove ``doc_id`` from the notification queue; the object queued (or None)."""
        return self._unnotified.pop(doc_id, None)

    def unqueue(self, doc_id: str) -> None:
        """Nothing to notify about ``doc_id``."""
        self._unnotified.pop(doc_id, None)

    def requeue(self, doc_id: str, obj: Obj) -> None:
        """Queue ``obj`` again unless something is queued for ``doc_id`` already."""
        if doc_id not in self._unnotified:
            self.queue(doc_id, obj)

    def set_notice(self, doc_id: str, notice: Notice) -> None:
        """Record what receivers were told about ``doc_id``."""
        self._notices[doc_id] = notice

    def drop_notice(self, doc_id: str) -> None:
        """Forget what receivers were told about ``doc_id``."""
        self._notices.pop(doc_id, None)

    # Forgetting -----------------------------------------------------------------------------

    def forget(self, doc_id: str) -> None:
        """Drop every piece of pending work of ``doc_id`` (the identity map keeps it)."""
        for table in self._tables():
            table.pop(doc_id, None)

    def forget_object(self, doc_id: str, obj: Obj) -> None:
        """Drop ``obj`` entirely: its pending work and its identity map entry."""
        self.forget(doc_id)
        self.identity.discard(doc_id, obj)

    def clear(self) -> None:
        """Drop every piece of pending work of every document (the identity map keeps them)."""
        for table in self._tables():
            table.clear()

    def _tables(self) -> tuple[dict[str, Any], ...]:
        """Every table keyed by document id (all but the identity map)."""
        return (
            self._new,
            self._dirty,
            self._deleted,
            self._required,
            self._resolving,
            self._replaced,
            self._unnotified,
            self._notices,
        )

    def rollback(self, session: Any) -> None:
        """Forget pending work: restore changed objects as loaded, drop new ones, undelete."""
        for doc_id, obj in list(self._new.items()):
            state = state_of(obj)
            if state is not None:
                state.session = None
                state.status = Lifecycle.TRANSIENT
                state.reset()
            self.identity.discard(doc_id)
        restored = list(self._dirty.values()) + list(self._deleted.values())
        for replaced in self._replaced.values():
            # Deleted, then re-created as another object: the original comes back.
            state = state_of(replaced)
            if state is not None:
                self.adopt(session, replaced, state, Lifecycle.PERSISTENT)
                restored.append(replaced)  # restored with the other deletions below
        for obj in restored:
            state = state_of(obj)
            if state is not None and state.loaded is not None:
                restore(obj, state.loaded)
                state.status = Lifecycle.PERSISTENT
                state.reset()
        for obj in self._required.values():
            state = state_of(obj)
            if state is not None:
                state.require_rev = False
        self.clear()

    def mark_refreshed(self, doc_id: str, obj: Obj, raw: JSONDict) -> None:
        """``obj`` takes the stored ``raw``: clean and persistent, its pending work dropped.

        A revision check (``require_current``) stays: a refresh drops changes, not the check.
        """
        state = state_of(obj)
        assert state is not None
        restore(obj, raw)
        state.loaded = raw
        state.rev = raw.get("_rev")
        state.reset()
        state.status = Lifecycle.PERSISTENT
        required = doc_id in self._required
        self.forget(doc_id)
        if required:
            self._required[doc_id] = obj
        self.identity.set(doc_id, obj, state.obj_ref)

    def release_all(self, session: Any) -> None:
        """Detach every object of ``session`` and drop everything (the session closes)."""
        for obj in list(self.identity.values()) + list(self._new.values()):
            state = state_of(obj)
            if state is not None and state.session is session:
                state.session = None
                never_written = state.status is Lifecycle.PENDING and state.rev is None
                state.status = Lifecycle.TRANSIENT if never_written else Lifecycle.DETACHED
        self.clear()
        self.identity.clear()

    def hold(self, doc_id: str, obj: Obj, ref: Any = None) -> None:
        """Put ``obj`` in the identity map."""
        self.identity.set(doc_id, obj, ref)

    def adopt(self, session: Any, obj: Obj, state: InstanceState, status: Lifecycle) -> None:
        """``obj`` joins ``session`` with ``status`` and enters the identity map."""
        state.session = session
        state.status = status
        assert state.doc_id is not None
        self.identity.set(state.doc_id, obj, state.obj_ref)
