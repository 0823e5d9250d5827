"""Hook rounds of a flush: which signal each document is due, and who receives it.

Before a flush writes anything it notifies receivers of every document added, changed or
deleted since its last notification (``document_added`` / ``document_changed`` /
``document_deleted``); receivers may edit documents through the session, and those edits are
notified in the next round, until a round leaves nothing. What receivers were told is kept per
document (a :class:`Notice`) until the document is written, so a failed flush that is retried
does not notify the same changes twice; a notification cut short by a receiver that raised
(a :class:`Delivery`) remembers which receivers returned, and the retry calls only the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
from blinker import Signal

from couchmapper import signals
from couchmapper._types import JSONDict, Obj
from couchmapper.exceptions import HookLimitError, ValidationError
from couchmapper.model.base import dump, state_of
from couchmapper.orm.merge import changes_between, without_meta
from couchmapper.orm.state import InstanceState, Lifecycle
from couchmapper.tracking import MISSING, Change, ChangeList, PathKey

if TYPE_CHECKING:
    from couchmapper.orm.pending import PendingWork
    from couchmapper.orm.session import Session

__all__ = ["Delivery", "Notice", "forget_new", "run_hooks", "send"]


def run_hooks(session: Session, pending: PendingWork) -> None:
    """Notify receivers of every document changed since its last notification, in rounds.

    A round notifies what the previous one left; receivers' edits are picked up by the
    next round. Stops when a round leaves nothing; past ``hook_rounds`` rounds raises
    :class:`HookLimitError` naming the receivers that changed documents in the last rounds.
    """
    if not any(signal.receivers for signal in _DOCUMENT_SIGNALS):
        # Nobody listens: nothing to tell, and no notification to record. Documents stay
        # queued until written, so a receiver connected before a retry still hears of them.
        return
    limit = session.hook_rounds
    hooks = _Round(session, pending)
    try:
        recheck = True  # first round: pick up edits made since an earlier (failed) flush
        for round_no in range(limit + 1):
            if recheck:
                _collect_changed_notices(session, pending)
            if not pending.unnotified:
                return
            if round_no == limit:
                break
            if hooks.watch is None and round_no >= limit - _WATCHED_ROUNDS:
                # Watch who edits in the last few rounds: a cycle's receivers, to name them.
                hooks.watch = _Watch(session, pending)
            hooks.receivers_ran = False
            for doc_id in list(pending.unnotified):
                obj = pending.take_unnotified(doc_id)
                if obj is None:
                    continue  # a receiver expunged it, or deleted it before it was written
                try:
                    _notify(hooks, doc_id, obj)
                except BaseException:
                    # Not (fully) delivered: the next flush delivers the rest (and the round's).
                    pending.requeue(doc_id, obj)
                    raise
            # Only receivers can have changed documents during a round.
            recheck = hooks.receivers_ran
        producers = hooks.watch.producers if hooks.watch is not None else []
        raise HookLimitError(limit, list(dict.fromkeys(producers)))
    finally:
        if hooks.watch is not None:
            hooks.watch.stop()


@attrs.define(eq=False)
class _Round:
    """One run of hook rounds: whether receivers ran this round, and the watch if any."""

    session: Session
    pending: PendingWork
    watch: _Watch | None = None
    receivers_ran: bool = False


def _collect_changed_notices(session: Session, pending: PendingWork) -> None:
    """Queue notified documents that changed again since (re-sets of a field included)."""
    for doc_id, notice in list(pending.notices.items()):
        if doc_id in pending.unnotified:
            continue
        state = state_of(notice.obj)
        if state is None or state.session is not session:
            continue
        deleted = state.status is Lifecycle.DELETED
        if (deleted and not notice.deleted) or (not deleted and state.changes != notice.changes):
            pending.queue(doc_id, notice.obj)


def _notify(hooks: _Round, doc_id: str, obj: Obj) -> None:
    """Deliver the one signal ``obj`` is due (if any), then record what receivers were told."""
    session, pending = hooks.session, hooks.pending
    notice = pending.notices.get(doc_id)
    if notice is not None and (notice.dropped or notice.obj is not obj):
        if notice.dropped:
            # A new document deleted before it was written, after its document_added: its
            # document_deleted (before any object that took its id is announced as added).
            _complete(hooks, doc_id, notice)
        notice = None
    state = state_of(obj)
    if state is None or state.session is not session:
        return
    if notice is None:
        notice = Notice(obj)
    if notice.delivery is None:
        notice.delivery = _due(notice, obj, state)
        if notice.delivery is None:
            notice.changes = state.changes
            pending.set_notice(doc_id, notice)
            return
    pending.set_notice(doc_id, notice)
    _complete(hooks, doc_id, notice)


def _due(notice: Notice, obj: Obj, state: InstanceState) -> Delivery | None:
    """The notification ``obj`` is due since ``notice`` (None when nothing changed)."""
    current = state.changes
    signal: Signal | None = None
    changes = ChangeList()
    if state.status is Lifecycle.DELETED:
        if not notice.deleted:
            signal = signals.document_deleted
            changes = _since(notice, current)
    elif state.status is Lifecycle.PENDING and not notice.added:
        if state.loaded is not None and state.rev is not None:
            # Deleted and created again in this session: one write that turns the stored
            # document into this one, told as a change from what was stored.
            changes = ChangeList(changes_between(without_meta(state.loaded), _body(obj)))
            snapshot = _snapshot(obj) if _has_document_receivers(type(obj)) else None
            return Delivery(signals.document_changed, changes, current, snapshot, replaces=True)
        signal = signals.document_added
    else:
        changes = _since(notice, current)
        if changes:
            signal = signals.document_changed
    if signal is None:
        return None
    snapshot = notice.snapshot
    if _has_document_receivers(type(obj)):
        # The JSON as receivers see it now: the old values of the next notification.
        snapshot = _snapshot(obj)
    return Delivery(signal, changes, current, snapshot)


def _complete(hooks: _Round, doc_id: str, notice: Notice) -> None:
    """Deliver ``notice.delivery`` to every receiver that has not had it yet, then record it.

    A receiver that raises stops the delivery; the ones that returned are remembered, so
    the next flush calls only the rest (each receiver hears of each change exactly once).
    """
    delivery = notice.delivery
    assert delivery is not None
    obj = notice.obj
    _deliver(hooks, delivery, type(obj), session=hooks.session, document=obj)
    notice.delivery = None
    if delivery.signal is signals.document_added or delivery.replaces:
        notice.added = True
    elif delivery.signal is signals.document_deleted:
        notice.deleted = True
    notice.changes = delivery.log
    notice.snapshot = delivery.snapshot
    if notice.dropped and hooks.pending.notices.get(doc_id) is notice:
        hooks.pending.drop_notice(doc_id)  # never written, now gone: nothing more to tell


def _deliver(hooks: _Round, delivery: Delivery, cls: type, /, **kwargs: Any) -> None:
    """Call each receiver of the delivery's signal for ``cls`` not called yet (once each).

    Base-class receivers included. With ``watch`` (the last allowed rounds), note the
    receivers that changed documents.
    """
    if not delivery.signal.receivers:
        return
    watch = hooks.watch
    for receiver in _receivers(delivery.signal, cls):
        # A weakly connected bound method is a new object each time, but an equal one.
        if receiver in delivery.delivered:
            continue
        hooks.receivers_ran = True
        if watch is None:
            receiver(cls, changes=delivery.changes, **kwargs)
        elif watch.call(receiver, cls, changes=delivery.changes, **kwargs):
            watch.producers.append(_receiver_name(receiver))
        delivery.delivered.append(receiver)


def forget_new(pending: PendingWork, doc_id: str, obj: Obj) -> None:
    """Hook bookkeeping of a new document deleted before it was written (the session drops it).

    Nothing is written for it; but receivers that were told ``document_added`` (by a flush
    that then failed) get ``document_deleted`` at the next flush, so they can undo what they
    did (an audit entry, a counter).
    """
    notice = pending.notices.get(doc_id)
    if notice is not None and notice.obj is obj and not notice.dropped:
        # Announced, even if a receiver error cut its document_added short.
        announced = notice.added or (
            notice.delivery is not None and bool(notice.delivery.delivered)
        )
        if announced:
            state = state_of(obj)
            current = state.changes if state is not None else ChangeList()
            notice.dropped = True
            notice.delivery = Delivery(
                signals.document_deleted, _since(notice, current), current, notice.snapshot
            )
            pending.queue(doc_id, obj)
            return
    if notice is not None and notice.dropped:
        pending.queue(doc_id, notice.obj)  # an earlier object of this id: still to tell
        return
    pending.unqueue(doc_id)
    pending.drop_notice(doc_id)


@attrs.define(eq=False)
class Delivery:
    """One notification of one document, until every receiver has had it.

    A receiver that raises aborts the flush: ``delivered`` keeps the receivers that already
    returned, so the retry calls only the others, with the same ``changes``.
    """

    signal: Signal
    changes: ChangeList  # what receivers are told
    log: ChangeList  # the document's change log when the notification was made
    snapshot: JSONDict | None  # the JSON then (old values of the next notification)
    delivered: list[Any] = attrs.Factory(list)  # the receivers called
    replaces: bool = False  # the document_changed of a delete + re-create (counts as added)


@attrs.define(eq=False)
class Notice:
    """What signal receivers were last told about one document object.

    Kept until the document is written (or the session forgets it), so a flush that failed
    and is retried notifies only what changed since.
    """

    obj: Obj
    added: bool = False  # document_added was sent
    deleted: bool = False  # document_deleted was sent
    changes: ChangeList = attrs.Factory(ChangeList)  # the change log at the notification
    snapshot: JSONDict | None = None  # the JSON at the notification (old values of the next)
    delivery: Delivery | None = None  # a notification not yet delivered to every receiver
    dropped: bool = False  # a new document deleted before it was written, after being added


_WATCHED_ROUNDS = 5  # the round limit error names who edited in this many last rounds


class _Watch:
    """Who edits documents during the watched (last allowed) rounds, at the cost of the edits.

    Receivers change documents through the session (``add``, ``delete``, the first change
    of a clean document: each queues the document for notification, which the pending
    work's ``queued_observer`` reports here), or by editing a document that already has
    changes, which tells the session nothing. For those, the states of documents with
    pending work switch to a subclass whose change-log attributes note each access; after a
    receiver returns, only the documents it touched are compared with what they were. So a
    receiver call costs what it touches, never a scan of every pending document.
    """

    def __init__(self, session: Session, pending: PendingWork) -> None:
        self.session = session
        self.pending = pending
        self.producers: list[str] = []
        self.recording = False
        self.touched: dict[int, InstanceState] = {}
        self.queued: list[Obj] = []
        # Watched states: id -> (state, its class before, (status, changes) last seen).
        self.states: dict[int, tuple[InstanceState, type, tuple[Lifecycle, ChangeList]]] = {}
        _WATCHES[id(session)] = self
        pending.queued_observer = self.queued_by_receiver
        for table in (pending.new, pending.dirty, pending.deleted, pending.unnotified):
            for obj in table.values():
                self.watch(obj)
        for notice in pending.notices.values():
            self.watch(notice.obj)

    def queued_by_receiver(self, obj: Obj) -> None:
        """A document was queued for notification (noted while a receiver runs)."""
        if self.recording:
            self.queued.append(obj)

    def watch(self, obj: Obj) -> bool:
        """Start watching ``obj``'s state (or refresh what was last seen); whether it changed."""
        state = state_of(obj)
        if state is None or state.session is not self.session:
            return False
        return self._look(state)

    def _look(self, state: InstanceState) -> bool:
        seen = (state.status, state.changes)
        known = self.states.get(id(state))
        if known is not None:
            self.states[id(state)] = (state, known[1], seen)
            return seen != known[2]
        original = _UNWATCHED.get(type(state), type(state))
        self.states[id(state)] = (state, original, seen)
        state.__class__ = _watched_class(original)
        return True

    def call(self, receiver: Any, *args: Any, **kwargs: Any) -> bool:
        """Call ``receiver``; whether it changed any document of the session."""
        self.touched.clear()
        self.queued.clear()
        self.recording = True
        try:
            receiver(*args, **kwargs)
        finally:
            self.recording = False
        produced = bool(self.queued)
        for obj in self.queued:
            self.watch(obj)
        for state in list(self.touched.values()):
            if id(state) in self.states and self._look(state):
                produced = True
        self.touched.clear()
        self.queued.clear()
        return produced

    def stop(self) -> None:
        """Put every watched state and the session's queue back as they were."""
        for state, original, _seen in self.states.values():
            state.__class__ = original
        self.states.clear()
        self.pending.queued_observer = None
        if _WATCHES.get(id(self.session)) is self:
            del _WATCHES[id(self.session)]


_WATCHES: dict[int, _Watch] = {}  # id(session) -> its watch, while one runs


_WATCHED_CLASSES: dict[type, type] = {}
_UNWATCHED: dict[type, type] = {}
_CHANGE_LOG_ATTRIBUTES = ("log", "scalars", "scalar_values", "log_roots", "nested", "appends")


def _watched_class(cls: type) -> type:
    """A subclass of state class ``cls`` whose change-log attributes note every access."""
    found = _WATCHED_CLASSES.get(cls)
    if found is None:
        namespace = {name: _noting(name, getattr(cls, name)) for name in _CHANGE_LOG_ATTRIBUTES}
        found = type(f"Watched{cls.__name__}", (cls,), namespace)
        _WATCHED_CLASSES[cls] = found
        _UNWATCHED[found] = cls
    return found


def _noting(name: str, default: Any) -> property:
    """A property for change-log attribute ``name`` that tells the watch of its session."""

    def note(state: Any) -> None:
        watch = _WATCHES.get(id(state.session))
        if watch is not None and watch.recording:
            watch.touched[id(state)] = state

    def get(state: Any) -> Any:
        note(state)
        return state.__dict__.get(name, default)

    def set_(state: Any, value: Any) -> None:
        note(state)
        state.__dict__[name] = value

    return property(get, set_)


_DOCUMENT_SIGNALS = (signals.document_added, signals.document_changed, signals.document_deleted)


def _has_document_receivers(cls: type) -> bool:
    return any(signal.receivers and _receivers(signal, cls) for signal in _DOCUMENT_SIGNALS)


def _body(obj: Obj) -> JSONDict:
    """The stored form of ``obj`` without ``_id``/``_rev`` ({} when it does not validate)."""
    try:
        return without_meta(dump(obj))
    except (ValidationError, TypeError, ValueError):
        return {}


def _snapshot(obj: Obj) -> JSONDict | None:
    try:
        return dump(obj)
    except (ValidationError, TypeError, ValueError):
        return None  # the flush reports it; old values fall back to the change log


def _value_at(doc: Any, path: tuple[PathKey, ...]) -> Any:
    """The JSON value at ``path`` in ``doc`` (MISSING when there is none)."""
    for key in path:
        in_dict = isinstance(doc, dict) and isinstance(key, str) and key in doc
        in_list = isinstance(doc, list) and isinstance(key, int) and 0 <= key < len(doc)
        if not (in_dict or in_list):
            return MISSING
        doc = doc[key]
    return doc


def _related(a: tuple[PathKey, ...], b: tuple[PathKey, ...]) -> bool:
    """Whether one path is the other or inside it."""
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def _since(notice: Notice, current: ChangeList) -> ChangeList:
    """The changes made since ``notice``, with the values of that time as old values.

    ``current`` is the compacted change log now; ``notice.changes`` was the log then. A change
    that is new (or differs) is reported with the old value the path had at the notification;
    a notified change that has disappeared (set back to the loaded value) is reported as the
    edit that undid it.
    """
    seen = notice.changes
    if not seen:
        return ChangeList(current)
    fresh = ChangeList()
    for change in current:
        if change in seen:
            continue
        old = _notified_value(notice, change.path)
        if old is None:
            fresh.append(change)  # nothing known about this path then: the loaded value
            continue
        value = old[0]
        if change.op == "add" and isinstance(change.path[-1], int):
            fresh.append(change)  # a list insert stays an insert
        elif change.op == "remove":
            if value is not MISSING:
                fresh.append(Change("remove", change.path, MISSING, value))
        elif value is MISSING:
            fresh.append(Change("add", change.path, change.value, MISSING))
        elif value != change.value or type(value) is not type(change.value):
            fresh.append(Change("replace", change.path, change.value, value))
    for change in seen:
        if change in current or any(_related(change.path, c.path) for c in current):
            continue
        # Set back to the loaded value since the notification: report the undoing edit.
        if change.op == "add":
            fresh.append(Change("remove", change.path, MISSING, change.value))
        elif change.op == "remove":
            fresh.append(Change("add", change.path, change.old, MISSING))
        else:
            fresh.append(Change("replace", change.path, change.old, change.value))
    return fresh


def _notified_value(notice: Notice, path: tuple[PathKey, ...]) -> tuple[Any] | None:
    """``(value,)`` that ``path`` had at the notification, or None when unknown."""
    if notice.snapshot is not None:
        return (_value_at(notice.snapshot, path),)
    for change in reversed(notice.changes):
        if change.path == path:
            return (change.value,)
    return None


def _receivers(signal: Signal, cls: type) -> list[Any]:
    """Receivers for ``cls``, its base classes and ANY, each once, in a stable order.

    couchmapper's signals keep their receivers in ordered sets (blinker's public
    ``Signal.set_class``), so blinker yields those connected to ANY and to ``cls`` in
    connection order; the receivers of each base class follow, nearest base first. A flush
    behaves the same on every run.
    """
    return list(dict.fromkeys(r for base in cls.__mro__ for r in signal.receivers_for(base)))


def send(signal: Signal, cls: type, **kwargs: Any) -> None:
    """Send a document signal so receivers of base classes fire too (each exactly once)."""
    if not signal.receivers:
        return
    for receiver in _receivers(signal, cls):
        receiver(cls, **kwargs)


def _receiver_name(receiver: Any) -> str:
    """``module.qualified.name`` of a receiver (its repr when it has no name)."""
    name = getattr(receiver, "__qualname__", None) or getattr(receiver, "__name__", None)
    if not isinstance(name, str):
        return repr(receiver)
    module = getattr(receiver, "__module__", None)
    return f"{module}.{name}" if isinstance(module, str) and module else name
