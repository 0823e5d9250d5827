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

from collections.abc import Callable, Iterable, Iterator
from collections.abc import Set as AbstractSet
from typing import Any

from blinker import ANY, NamedSignal, Namespace

__all__ = [
    "after_flush",
    "before_flush",
    "document_added",
    "document_changed",
    "document_deleted",
    "document_loaded",
    "flush_failed",
    "namespace",
]


class _ConnectionOrder(set[Any]):
    """A set that iterates in insertion order: blinker's ``Signal.set_class`` for our signals.

    blinker files receivers in sets and calls them in set order; with this class its
    ``receivers_for`` and ``send`` yield receivers in the order they were connected.
    """

    def __init__(self, items: Iterable[Any] = ()) -> None:
        super().__init__()
        self._order: dict[Any, None] = {}
        for item in items:
            self.add(item)

    def add(self, item: Any) -> None:
        super().add(item)
        self._order[item] = None

    def discard(self, item: Any) -> None:
        super().discard(item)
        self._order.pop(item, None)

    def remove(self, item: Any) -> None:
        super().remove(item)
        del self._order[item]

    def clear(self) -> None:
        super().clear()
        self._order.clear()

    def pop(self) -> Any:
        item = next(iter(self._order))
        self.remove(item)
        return item

    def __iter__(self) -> Iterator[Any]:
        return iter(self._order)

    def __or__(self, other: AbstractSet[Any]) -> _ConnectionOrder:
        union = _ConnectionOrder(self)
        for item in other:
            union.add(item)
        return union

    def copy(self) -> _ConnectionOrder:
        return _ConnectionOrder(self)


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

before_flush = namespace.signal(
    "before_flush",
    doc="""A flush is starting, before any hook round. Sender: the session. No keyword arguments.

    Receivers may still edit documents; the hook rounds notify those edits.
    """,
)

after_flush = namespace.signal(
    "after_flush",
    doc="""A flush sent its documents. Sender: the session.

    Keyword arguments: ``results``, a list of :class:`~couchmapper.unitofwork.WriteResult`,
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
