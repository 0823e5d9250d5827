"""Every signal couchmapper sends, declared once (blinker).

Document signals have the document's class as sender (a raw dict document has
:class:`~couchmapper.model.base.RawDocument`); a receiver connected to a base class, including
:class:`~couchmapper.model.base.Document`, also fires for its subclasses. Session signals have
the session as sender.

Receivers are held strongly by default, so a lambda or inner function does not disconnect
silently when it goes out of scope; pass ``weak=True`` to :meth:`blinker.Signal.connect` to
opt into weak references.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from typing import Any

from blinker import ANY, NamedSignal, Namespace

__all__ = [
    "after_flush",
    "before_flush",
    "conflict_found",
    "document_added",
    "document_changed",
    "document_deleted",
    "document_loaded",
    "flush_failed",
    "namespace",
]


_CONNECTIONS = itertools.count()  # stamps: which receiver was connected first, across sets


class _ConnectionOrder(set[Any]):
    """A set that iterates in the order its items were added: blinker's ``Signal.set_class``.

    blinker files a signal's receiver ids in one set per sender and calls the union of the
    ANY set and the sender's set; each item keeps the stamp of when it was added, so that
    union too is in connection order.
    """

    def __init__(self, stamps: dict[Any, int] | None = None) -> None:
        super().__init__(stamps or ())
        self._stamps: dict[Any, int] = dict(stamps or {})

    def add(self, item: Any) -> None:
        if item not in self._stamps:
            super().add(item)
            self._stamps[item] = next(_CONNECTIONS)

    def discard(self, item: Any) -> None:
        super().discard(item)
        self._stamps.pop(item, None)

    def remove(self, item: Any) -> None:
        super().remove(item)
        del self._stamps[item]

    def clear(self) -> None:
        super().clear()
        self._stamps.clear()

    def pop(self) -> Any:
        item = next(iter(self._stamps))
        self.remove(item)
        return item

    def __iter__(self) -> Iterator[Any]:
        return iter(self._stamps)

    def __or__(self, other: AbstractSet[Any]) -> _ConnectionOrder:
        stamps = dict(self._stamps)
        if isinstance(other, _ConnectionOrder):
            for item, stamp in other._stamps.items():
                stamps[item] = min(stamp, stamps.get(item, stamp))
        else:
            for item in other:
                stamps.setdefault(item, next(_CONNECTIONS))
        return _ConnectionOrder(dict(sorted(stamps.items(), key=lambda pair: pair[1])))

    def copy(self) -> _ConnectionOrder:
        return _ConnectionOrder(self._stamps)


class _StrongSignal(NamedSignal):
    """A named signal whose receivers are held strongly unless ``weak=True`` is passed.

    Receivers are called in connection order (blinker's public ``set_class`` hook).
    """

    set_class = _ConnectionOrder

    def connect(self, receiver: Callable[..., Any], sender: Any = ANY, weak: bool = False) -> Any:
        return super().connect(receiver, sender=sender, weak=weak)


class _Namespace(Namespace):
    def signal(self, name: str, doc: str | None = None) -> NamedSignal:
        if name not in self:
            self[name] = _StrongSignal(name, doc)
        return self[name]


namespace = _Namespace()
"""The blinker namespace holding couchmapper's signals."""

document_loaded = namespace.signal(
    "document_loaded",
    doc="""A document was loaded from CouchDB into a session.

    Sender: the document's class. Keyword arguments: ``session``, ``document``.
    """,
)

document_added = namespace.signal(
    "document_added",
    doc="""A new document was added to a session; sent during flush, before it is written.

    Sender: the document's class. Keyword arguments: ``session``, ``document``, ``changes``
    (empty for a new document). Receivers may add, change and delete documents through
    ``session``; those go out in the same ``_bulk_docs`` request.
    """,
)

document_changed = namespace.signal(
    "document_changed",
    doc="""A stored document was changed; sent during flush, before it is written.

    Sender: the document's class. Keyword arguments: ``session``, ``document`` and ``changes``
    (the :class:`~couchmapper.tracking.Change` list since the document's last notification;
    each ``old`` is the value at that notification, so a receiver that edits a document
    already notified makes it notified again in the next round with only the new edits).
    Receivers may edit documents through ``session``.
    """,
)

document_deleted = namespace.signal(
    "document_deleted",
    doc="""A stored document was marked for deletion; sent during flush, before it is written.

    Sender: the document's class. Keyword arguments: ``session``, ``document``, ``changes``
    (the changes made before the deletion, if any).
    """,
)

conflict_found = namespace.signal(
    "conflict_found",
    doc="""A document loaded into a session has stored conflicts (losing leaf revisions).

    Sender: the document's class. Keyword arguments: ``session``, ``document`` and
    ``revisions`` (the losing revisions, as CouchDB lists them in ``_conflicts``). Sent after
    ``document_loaded``. Receivers may call ``session.resolve(document)``: the resolution is
    written by the next flush, in its one ``_bulk_docs`` (see docs/conflicts.md).
    """,
)

before_flush = namespace.signal(
    "before_flush",
    doc="""A flush is starting, before any hook round. Sender: the session. No keyword arguments.

    Receivers may still edit documents; the hook rounds notify those edits.
    """,
)

after_flush = namespace.signal(
    "after_flush",
    doc="""A flush sent its documents. Sender: the session.

    Keyword arguments: ``results``, a list of :class:`~couchmapper.orm.merge.WriteResult`,
    one per document of the flush: the new ``rev`` of each written document, ``error`` and
    ``reason`` of each that was not (also when the server stopped answering part way). Not
    sent when the flush had nothing to write or stopped before sending.
    """,
)

flush_failed = namespace.signal(
    "flush_failed",
    doc="""A flush is about to raise. Sender: the session.

    Keyword arguments: ``failures`` (a list of :class:`~couchmapper.exceptions.FlushFailure`,
    one per document not written; empty when nothing was sent, e.g. a receiver raised or
    :class:`~couchmapper.exceptions.HookLimitError`) and ``error`` (the exception about to be
    raised; also sent when a ``before_flush`` or ``after_flush`` receiver raises). Documents
    that failed keep their changes; already notified changes are not notified again when the
    flush is retried, and receivers that had returned are not called again.
    """,
)
