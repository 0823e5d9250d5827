"""Hook rounds of a flush: which signal each document is due, and who receives it.

Before a flush writes anything it notifies receivers of every document added, changed or
deleted since its last notification (``document_added`` / ``document_changed`` /
``document_deleted``); receivers may edit documents through the session, and those edits are
notified in the next round, until a round leaves nothing. What receivers were told is kept per
document (a :class:`Notice`) until the document is written, so a failed flush that is retried
does not notify the same changes twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
from blinker import Signal

from couchmapper import signals
from couchmapper.backends.base import JSONDict
from couchmapper.document import dump, state_of
from couchmapper.exceptions import HookLimitError, ValidationError
from couchmapper.state import Lifecycle
from couchmapper.tracking import MISSING, Change, ChangeList, PathKey

if TYPE_CHECKING:
    from couchmapper.session import Session

__all__ = ["Notice", "disconnect_all", "run_hooks", "send"]

Obj = Any  # a Document or a RawDocument


def run_hooks(session: Session) -> None:
    """Notify receivers of every document changed since its last notification, in rounds.

    A round notifies what the previous one left; receivers' edits are picked up by the
    next round. Stops when a round leaves nothing; past ``hook_rounds`` rounds raises
    :class:`HookLimitError` naming the receivers that changed documents in the last rounds.
    """
    if not any(signal.receivers for signal in _DOCUMENT_SIGNALS):
        # Nobody listens: nothing to tell, and no notification to record. Documents stay
        # queued until written, so a receiver connected before a retry still hears of them.
        return
    recheck = True  # first round: pick up edits made since an earlier (failed) flush
    last_producers: list[str] = []
    for round_no in range(session.hook_rounds + 1):
        if recheck:
            _collect_changed_notices(session)
        if not session._unnotified:
            return
        if round_no == session.hook_rounds:
            break
        # Watch who edits in the last few rounds: a cycle's receivers, to name them.
        watched = round_no >= session.hook_rounds - _WATCHED_ROUNDS
        producers: list[str] | None = [] if watched else None
        session._receivers_ran = False
        for doc_id in list(session._unnotified):
            obj = session._unnotified.pop(doc_id, None)
            if obj is None:
                continue  # a receiver expunged it, or deleted it before it was written
            try:
                _notify(session, doc_id, obj, producers)
            except BaseException:
                # Not delivered: the next flush notifies it again (and the rest of the round).
                session._unnotified.setdefault(doc_id, obj)
                raise
        # Only receivers can have changed documents during a round.
        recheck = session._receivers_ran
        if producers is not None:
            last_producers += producers
    raise HookLimitError(session.hook_rounds, list(dict.fromkeys(last_producers)))


def _collect_changed_notices(session: Session) -> None:
    """Queue notified documents that changed again since (re-sets of a field included)."""
    for doc_id, notice in session._notices.items():
        if doc_id in session._unnotified:
            continue
        state = state_of(notice.obj)
        if state is None or state.session is not session:
            continue
        deleted = state.status is Lifecycle.DELETED
        if (deleted and not notice.deleted) or (not deleted and state.changes != notice.changes):
            session._unnotified[doc_id] = notice.obj


def _notify(session: Session, doc_id: str, obj: Obj, producers: list[str] | None) -> None:
    """Send the one signal ``obj`` is due (if any), then record what receivers were told."""
    state = state_of(obj)
    if state is None or state.session is not session:
        return
    notice = session._notices.get(doc_id)
    if notice is None or notice.obj is not obj:
        notice = Notice(obj)
    cls = type(obj)
    current = state.changes
    signal: Signal | None = None
    changes = ChangeList()
    if state.status is Lifecycle.DELETED:
        if not notice.deleted:
            signal = signals.document_deleted
            changes = _since(notice, current)
    elif state.status is Lifecycle.PENDING and not notice.added:
        signal = signals.document_added
    else:
        changes = _since(notice, current)
        if changes:
            signal = signals.document_changed
    snapshot = notice.snapshot
    if signal is not None and _has_document_receivers(cls):
        # The JSON as receivers see it now: the old values of the next notification.
        snapshot = _snapshot(obj)
    if signal is not None:
        _deliver(session, signal, cls, producers, session=session, document=obj, changes=changes)
        if signal is signals.document_added:
            notice.added = True
        elif signal is signals.document_deleted:
            notice.deleted = True
    notice.changes = current
    notice.snapshot = snapshot
    session._notices[doc_id] = notice


def _deliver(
    owner: Session, signal: Signal, cls: type, producers: list[str] | None, **kwargs: Any
) -> None:
    """Call each receiver of ``signal`` for ``cls`` once (base-class receivers included).

    ``kwargs`` are the signal's (``session``, ``document``, ``changes``). With ``producers``
    (the last allowed round), note the receivers that changed documents.
    """
    if not signal.receivers:
        return
    for receiver in _receivers(signal, cls):
        owner._receivers_ran = True
        if producers is None:
            receiver(cls, **kwargs)
            continue
        before = _fingerprint(owner)
        receiver(cls, **kwargs)
        if _fingerprint(owner) != before:
            producers.append(_receiver_name(receiver))


def _fingerprint(session: Session) -> dict[str, tuple[int, Lifecycle, ChangeList]]:
    """Every document with pending work, its status and changes (to see who edits)."""
    found: dict[str, tuple[int, Lifecycle, ChangeList]] = {}
    for table in (session._new, session._dirty, session._deleted):
        for doc_id, obj in table.items():
            state = state_of(obj)
            if state is not None:
                found[doc_id] = (id(obj), state.status, state.changes)
    return found


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


_WATCHED_ROUNDS = 5  # the round limit error names who edited in this many last rounds

_DOCUMENT_SIGNALS = (signals.document_added, signals.document_changed, signals.document_deleted)


def _has_document_receivers(cls: type) -> bool:
    return any(signal.receivers and _receivers(signal, cls) for signal in _DOCUMENT_SIGNALS)


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


def disconnect_all(subscriptions: list[tuple[Signal, Callable[..., Any]]]) -> None:
    for signal, receiver in subscriptions:
        signal.disconnect(receiver)
    subscriptions.clear()


def _receivers(signal: Signal, cls: type) -> list[Any]:
    """Receivers for ``cls`` and every base class (each once), then the ANY receivers."""
    found: dict[int, Any] = {}
    for base in cls.__mro__:
        for receiver in signal.receivers_for(base):
            found.setdefault(id(receiver), receiver)
    return list(found.values())


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
