"""Per-object bookkeeping kept outside user objects: lifecycle, revision, change log.

Like SQLAlchemy's ``InstanceState``, an :class:`InstanceState` hangs off each tracked document
(in its ``__dict__`` under ``_cm_state``, never as a public attribute) and holds what the
session needs: the lifecycle status, the current ``_rev``, the JSON as loaded (the base of a
rebase and of "is it really changed?") and the change log it inherits from
:class:`~couchmapper.tracking.Tracker`.
"""

from __future__ import annotations

import enum
import uuid
import weakref
from typing import Any

from couchmapper.model.conversion import to_json
from couchmapper.tracking import MISSING, Tracker

__all__ = ["InstanceState", "Lifecycle"]


class Lifecycle(enum.Enum):
    """Where an object stands with respect to a session.

    * ``TRANSIENT``: not in any session, never stored.
    * ``PENDING``: added to a session, not yet written.
    * ``PERSISTENT``: stored in CouchDB and present in a session's identity map.
    * ``DELETED``: marked for deletion in a session; the flush writes a tombstone.
    * ``DETACHED``: was persistent (or deleted and flushed), no longer in a session.
    """

    TRANSIENT = "transient"
    PENDING = "pending"
    PERSISTENT = "persistent"
    DELETED = "deleted"
    DETACHED = "detached"


class InstanceState(Tracker):
    """The bookkeeping of one document object.

    Attributes:
        doc_id: the document id (None until one is assigned).
        rev: the revision loaded or last written (None for a new document).
        loaded: the JSON as loaded or last written (None for a new document).
        status: the :class:`Lifecycle` status.
        session: the owning session, if any.
        obj_ref: a weak reference to the object (set when a session takes it).
        require_rev: check the revision at flush even when nothing changed.
        flights: writes of this document whose request got no answer (they may have landed).
        attempts: the write tokens of the pending edits, with the JSON each was planned as
            (``cm_write``, for classes with ``sum``/callable merge rules), until written.
        notified: the changes already sent to signal receivers.
    """

    # Class-level defaults: a state is made for every loaded document, so only what differs
    # from the default is stored per instance.
    to_json = staticmethod(to_json)
    doc_id: str | None = None
    rev: str | None = None
    loaded: dict[str, Any] | None = None
    status: Lifecycle = Lifecycle.DETACHED
    session: Any = None
    obj_ref: weakref.ref[Any] | None = None
    require_rev = False
    # Writes whose request got no answer (``couchmapper.orm.flights.Flight``), until written.
    flights: list[Any] | None = None
    # (token, planned JSON) of each write attempt of the pending edits, oldest first.
    attempts: list[tuple[str, dict[str, Any]]] | None = None
    # Schema versions (model.versions): the version an upgrade on load started from, and why
    # a document newer than its class may not be written (None: current or not versioned).
    upgraded_from: int | None = None
    read_only: str | None = None

    def __init__(
        self,
        *,
        doc_id: str | None = None,
        rev: str | None = None,
        loaded: dict[str, Any] | None = None,
        status: Lifecycle = Lifecycle.DETACHED,
    ) -> None:
        self.doc_id = doc_id
        self.rev = rev
        self.loaded = loaded
        self.status = status

    def current_value(self, name: str) -> Any:
        """The current value of top-level field ``name`` of the object."""
        obj = self.obj_ref() if self.obj_ref is not None else None
        if obj is None:
            return super().current_value(name)
        fields = getattr(obj, "__dict__", None)
        return MISSING if fields is None else fields.get(name, MISSING)

    def write_token(self, planned: dict[str, Any]) -> tuple[str, list[str]]:
        """The ``cm_write`` token of a write of ``planned``, and the earlier attempts' tokens.

        Every attempt at writing the same pending edits (a rebase after a conflict, a retry
        after a lost answer, the next flush) carries the same token, so wherever one of them
        is stored its edits are recognised as these. Edits that changed since the last
        attempt get a new token; the earlier ones are listed in the write's ``cm_counted``,
        since it holds their edits too.
        """
        attempts = self.attempts or []
        if attempts and attempts[-1][1] == planned:
            token = attempts[-1][0]
        else:
            token = uuid.uuid4().hex[:20]
            self.attempts = attempts = [*attempts, (token, planned)]
        return token, [t for t, _ in reversed(attempts[:-1])]

    def reset(self) -> None:
        """Forget every change, and the write tokens of the edits that were pending."""
        super().reset()
        if self.attempts is not None:
            self.attempts = None

    @property
    def obj(self) -> Any:
        """The object, if a session has taken it and it is still alive."""
        return self.obj_ref() if self.obj_ref is not None else None

    def on_first_change(self) -> None:
        """Tell the owning session that this document has become dirty."""
        if self.session is not None:
            self.session.pending.note_first_change(self)

    def __repr__(self) -> str:
        return f"<InstanceState {self.doc_id!r} {self.status.value} rev={self.rev!r}>"


def _prime_attribute_names(cls: type, names: tuple[str, ...]) -> None:
    """Enter every per-instance attribute name in the class's shared instance-dict keys.

    CPython keeps a class's instance attributes inline (no dict object of their own) while
    their names fit its shared keys; a name first set once those are full makes that
    instance build a real dict: one more object for the garbage collector per changed
    document (``reported``, ``scalars``...) in a large session. Setting every name on one
    throwaway instance, in a fixed order, puts them all in the keys from the start.
    """
    probe: Any = object.__new__(cls)
    for name in names:
        setattr(probe, name, None)


_prime_attribute_names(
    InstanceState,
    (
        *("doc_id", "rev", "loaded", "obj_ref", "status", "session", "require_rev", "flights"),
        "attempts",
        *("log", "scalars", "scalar_values", "log_roots", "nested", "appends", "reported"),
    ),
)
