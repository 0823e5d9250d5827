"""The unit-of-work session: identity map, lifecycle, dict API, signals and the one-request flush.

A :class:`Session` is an editing session over one CouchDB database. Objects loaded through it
are held in an identity map (one object per document id); every change to them is tracked by
their fields; :meth:`Session.flush` sends every new, changed and deleted document in one
``_bulk_docs`` request and applies the per-document answers. Nothing is lost: a document the
server refused stays pending with its changes, and a flush cut by a network failure can simply
be run again.

Sessions are not thread-safe: use one per thread (or per request).
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar, overload

import attrs
from blinker import Signal

from couchmapper import signals
from couchmapper._queries import QueryMixin, Row, ViewResult
from couchmapper.backends.base import Backend, JSONDict
from couchmapper.conversion import model_info
from couchmapper.document import (
    Document,
    RawDocument,
    attach_state,
    dump,
    load,
    registry,
    state_of,
)
from couchmapper.exceptions import (
    BackendError,
    ConflictError,
    DocumentNotFound,
    FieldError,
    FlushError,
    FlushFailure,
    HookLimitError,
    SessionStateError,
    ValidationError,
)
from couchmapper.query import View
from couchmapper.state import InstanceState, Lifecycle
from couchmapper.tracking import MISSING, Change, ChangeList, PathKey
from couchmapper.unitofwork import ConflictPolicy, WriteResult, landed, rebase, results_in_order

__all__ = ["Row", "Session", "SessionStats"]

D = TypeVar("D", bound=Document)
Obj = Any  # a Document or a RawDocument


@attrs.frozen
class SessionStats:
    """Counts describing a session (see :meth:`Session.stats`)."""

    identity_map: int
    new: int
    dirty: int
    deleted: int
    flushes: int
    requests: int


def _as_backend(database: Any) -> Backend:
    # python-couchdb first: probing its Database against the protocol could touch the network.
    if type(database).__module__.split(".")[0] == "couchdb":
        from couchmapper.backends.couchdb import CouchDBBackend

        if type(database).__name__ != "Database":
            msg = (
                f"Session needs a couchdb.Database, not a couchdb {type(database).__name__}; "
                "e.g. Session(couchdb.Server(url)['dbname'])"
            )
            raise TypeError(msg)
        return CouchDBBackend(database)
    if database is None or isinstance(database, str):
        from couchmapper.connect import connect

        return connect(database)
    if isinstance(database, Backend):
        return database
    msg = (
        "Session needs a backend (cm.connect(...)), a couchdb.Database or a database URL, "
        f"not {type(database).__name__}"
    )
    raise TypeError(msg)


class Session(QueryMixin):
    """An editing session over one CouchDB database.

    Args:
        database: a backend (``cm.connect(...)``), a python-couchdb ``Database``, or a URL.
        conflict: what a flush does when a document was changed on the server meanwhile:
            ``"raise"`` (default), ``"rebase"`` (re-apply this session's changes on the
            current version where they do not overlap; merge rules combine overlaps) or
            ``"overwrite"`` (last writer wins). Classes may set their own with
            ``class Meta: conflict = "rebase"``.
        autoflush: flush before each query so results include pending changes.
        weak_identity_map: hold clean objects weakly, so long scans don't grow memory.
        max_rebase: how many times one flush rebases before giving up.
        hook_rounds: how many rounds of signal receivers a flush runs before giving up.
        batch_size: split flushes of more documents than this into several requests.
    """

    def __init__(
        self,
        database: Any = None,
        *,
        conflict: ConflictPolicy = "raise",
        autoflush: bool = False,
        weak_identity_map: bool = True,
        max_rebase: int = 5,
        hook_rounds: int = 100,
        batch_size: int | None = None,
    ) -> None:
        if conflict not in ("raise", "rebase", "overwrite"):
            msg = f"conflict must be 'raise', 'rebase' or 'overwrite', not {conflict!r}"
            raise ValueError(msg)
        self.backend: Backend = _as_backend(database)
        self.conflict: ConflictPolicy = conflict
        self.autoflush = autoflush
        self.max_rebase = max_rebase
        self.hook_rounds = hook_rounds
        self.batch_size = batch_size
        self._identity: weakref.WeakValueDictionary[str, Obj] | dict[str, Obj] = (
            weakref.WeakValueDictionary() if weak_identity_map else {}
        )
        # Strong references to everything with pending work, keyed by document id.
        self._new: dict[str, Obj] = {}
        self._dirty: dict[str, Obj] = {}
        self._deleted: dict[str, Obj] = {}
        self._required: dict[str, Obj] = {}
        # Hook bookkeeping: documents to notify in the next round, and what receivers were
        # last told about each document (kept until the document is written, so a failed
        # flush that is retried does not notify the same changes again).
        self._unnotified: dict[str, Obj] = {}
        self._notices: dict[str, _Notice] = {}
        self._flushing = False
        self._receivers_ran = False
        # Documents of a request that got no answer: id -> (planned JSON, JSON sent).
        self._in_flight: dict[str, tuple[JSONDict, JSONDict]] = {}
        self._subscriptions: list[tuple[Signal, Callable[..., Any]]] = []
        # A session dropped without close() still disconnects its session-scoped receivers.
        weakref.finalize(self, _disconnect_all, self._subscriptions)
        self._closed = False
        self._flushes = 0
        self._requests = 0

    # ------------------------------------------------------------------------------------
    # Basics.

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._identity)} loaded"
        return f"<Session {self.backend!r} {state}>"

    @property
    def name(self) -> str:
        """The database name."""
        return self.backend.name

    def info(self) -> JSONDict:
        """The database's ``GET /db`` answer."""
        self._check_open()
        info: JSONDict = self._call(self.backend.info)
        return info

    def __enter__(self) -> Session:
        self._check_open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            try:
                self.flush()
            finally:
                self.close()
        else:
            self.rollback()
            self.close()

    def close(self) -> None:
        """Detach every object and refuse further use. Pending work is dropped."""
        if self._closed:
            return
        for obj in list(self._identity.values()) + list(self._new.values()):
            state = state_of(obj)
            if state is not None and state.session is self:
                state.session = None
                never_written = state.status is Lifecycle.PENDING and state.rev is None
                state.status = Lifecycle.TRANSIENT if never_written else Lifecycle.DETACHED
        _disconnect_all(self._subscriptions)
        self._identity.clear()
        self._forget_pending()
        self._closed = True

    def _forget_pending(self) -> None:
        self._new.clear()
        self._dirty.clear()
        self._deleted.clear()
        self._required.clear()
        self._unnotified.clear()
        self._notices.clear()
        self._in_flight.clear()

    def _held(self, doc_id: str) -> Obj | None:
        """The object this session holds for ``doc_id``, pending work first (None if none).

        Never ``a or b``: an empty raw dict document is falsy.
        """
        for table in (self._deleted, self._new, self._dirty, self._required):
            found = table.get(doc_id)
            if found is not None:
                return found
        return self._identity.get(doc_id)

    def _check_open(self) -> None:
        if self._closed:
            msg = "this session is closed; open a new Session to keep working"
            raise SessionStateError(msg)

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self._requests += 1
        return method(*args, **kwargs)

    def stats(self) -> SessionStats:
        """Counts of objects by state, flushes and requests made."""
        return SessionStats(
            identity_map=len(self._identity),
            new=len(self._new),
            dirty=sum(1 for o in self._dirty.values() if _has_changes(o)),
            deleted=len(self._deleted),
            flushes=self._flushes,
            requests=self._requests,
        )

    # ------------------------------------------------------------------------------------
    # Tracking hooks.

    def _on_first_change(self, state: InstanceState) -> None:
        doc_id = state.doc_id
        if doc_id is None:
            return
        obj = self._held(doc_id)
        if obj is not None and state_of(obj) is state:
            if state.status is Lifecycle.PERSISTENT:
                self._dirty[doc_id] = obj
            self._unnotified[doc_id] = obj

    def _adopt(self, obj: Obj, state: InstanceState, status: Lifecycle) -> None:
        state.session = self
        state.status = status
        assert state.doc_id is not None
        self._identity[state.doc_id] = obj

    # ------------------------------------------------------------------------------------
    # Adding and deleting.

    def add(self, obj: Obj) -> Obj:
        """Add a new document (a client-side uuid4 hex ``_id`` is assigned unless set).

        Adding a document that was loaded elsewhere (detached) makes it persistent here.

        Raises:
            SessionStateError: the object belongs to another session, or another object
                with the same id is already in this session.
        """
        self._check_open()
        state = state_of(obj)
        if state is not None and state.session is not None and state.session is not self:
            msg = (
                f"{_describe(obj)} belongs to another session; expunge it there first, or "
                f"load it in this session with get()"
            )
            raise SessionStateError(msg)
        if state is not None and state.session is self:
            if state.status is Lifecycle.DELETED:
                msg = f"{_describe(obj)} is deleted in this session; flush or rollback first"
                raise SessionStateError(msg)
            return obj  # already here: adding twice is harmless
        doc_id = _object_id(obj) or uuid.uuid4().hex
        existing = self._held(doc_id)
        if existing is not None and existing is not obj and doc_id not in self._deleted:
            msg = (
                f"document {doc_id!r} is already in this session as another object; "
                f"modify that object (session.get) instead of adding a new one"
            )
            raise SessionStateError(msg)
        if not isinstance(obj, RawDocument):
            obj.__dict__["id"] = doc_id
        if state is not None and state.status is Lifecycle.DETACHED and state.rev is not None:
            self._adopt(obj, state, Lifecycle.PERSISTENT)
            if state.has_changes:
                self._dirty[doc_id] = obj
                self._unnotified[doc_id] = obj
            return obj
        if state is None:
            state = attach_state(obj, None, Lifecycle.PENDING)
        state.doc_id = doc_id
        replaced = self._deleted.pop(doc_id, None)
        if replaced is not None:
            # Delete + re-create of one id in one session: one write, an update of the
            # stored document to the new content.
            old_state = state_of(replaced)
            assert old_state is not None
            state.rev = old_state.rev
            state.loaded = old_state.loaded
            old_state.status = Lifecycle.DETACHED
            old_state.session = None
            self._unnotified.pop(doc_id, None)
            self._notices.pop(doc_id, None)  # the new object is notified as added
        self._adopt(obj, state, Lifecycle.PENDING)
        self._new[doc_id] = obj
        self._unnotified[doc_id] = obj
        return obj

    def add_all(self, objects: Iterable[Obj]) -> None:
        """Add several new documents."""
        for obj in objects:
            self.add(obj)

    def delete(self, obj: Obj) -> None:
        """Mark a document for deletion; the flush writes the tombstone.

        Deleting a pending (never written) document just drops it.

        Raises:
            SessionStateError: the object is transient, detached or in another session.
        """
        self._check_open()
        state = self._own_state(obj, "delete")
        doc_id = state.doc_id
        assert doc_id is not None
        if state.status is Lifecycle.DELETED:
            return
        if state.status is Lifecycle.PENDING and state.rev is None:
            self._new.pop(doc_id, None)
            self._unnotified.pop(doc_id, None)
            self._notices.pop(doc_id, None)
            self._identity.pop(doc_id, None)
            state.session = None
            state.status = Lifecycle.TRANSIENT
            return
        self._new.pop(doc_id, None)
        self._dirty.pop(doc_id, None)
        state.status = Lifecycle.DELETED
        self._deleted[doc_id] = obj
        self._unnotified[doc_id] = obj

    def _own_state(self, obj: Obj, action: str) -> InstanceState:
        state = state_of(obj)
        if state is None or state.status is Lifecycle.TRANSIENT:
            msg = f"cannot {action} {_describe(obj)}: it is transient (never added); add it first"
            raise SessionStateError(msg)
        if state.session is not self:
            where = "another session" if state.session is not None else "no session (detached)"
            msg = f"cannot {action} {_describe(obj)}: it belongs to {where}; use session.add()"
            raise SessionStateError(msg)
        return state

    def expunge(self, obj: Obj) -> None:
        """Remove an object from this session (its pending work is dropped); it becomes detached."""
        self._check_open()
        state = self._own_state(obj, "expunge")
        doc_id = state.doc_id
        assert doc_id is not None
        for table in (self._new, self._dirty, self._deleted, self._required, self._unnotified):
            table.pop(doc_id, None)
        self._notices.pop(doc_id, None)
        self._in_flight.pop(doc_id, None)
        if self._identity.get(doc_id) is obj:
            del self._identity[doc_id]
        state.session = None
        state.status = Lifecycle.TRANSIENT if state.rev is None else Lifecycle.DETACHED

    def clear(self, *, discard: bool = False) -> None:
        """Empty the identity map.

        Raises:
            SessionStateError: there is unflushed work and ``discard`` is false.
        """
        self._check_open()
        if self.has_pending() and not discard:
            msg = "the session has unflushed changes; flush() first or clear(discard=True)"
            raise SessionStateError(msg)
        for obj in list(self._identity.values()):
            self.expunge(obj)
        self._forget_pending()

    def has_pending(self) -> bool:
        """Whether a flush would write anything."""
        return bool(self._new or self._deleted or self._required) or any(
            _has_changes(obj) for obj in self._dirty.values()
        )

    def require_current(self, obj: Obj) -> None:
        """Check at flush that ``obj`` is still at the revision this session read.

        The document is sent unchanged with its ``_rev``; a concurrent edit makes the flush
        report a conflict even though this session changed nothing in it.
        """
        self._check_open()
        state = self._own_state(obj, "require_current for")
        assert state.doc_id is not None
        state.require_rev = True
        self._required[state.doc_id] = obj

    def rollback(self) -> None:
        """Forget pending work: restore loaded state of changed objects, drop new ones, undelete."""
        if self._closed:
            return
        for doc_id, obj in list(self._new.items()):
            state = state_of(obj)
            if state is not None:
                state.session = None
                state.status = Lifecycle.TRANSIENT
                state.reset()
            self._identity.pop(doc_id, None)
        for obj in list(self._dirty.values()) + list(self._deleted.values()):
            state = state_of(obj)
            if state is not None and state.loaded is not None:
                _restore(obj, state.loaded)
                state.status = Lifecycle.PERSISTENT
                state.reset()
        for obj in self._required.values():
            state = state_of(obj)
            if state is not None:
                state.require_rev = False
        self._forget_pending()

    def refresh(self, obj: Obj) -> None:
        """Reload an object's fields from the server, dropping its unflushed changes.

        A pending deletion is undone too: afterwards the object is persistent and clean.

        Raises:
            DocumentNotFound: the document no longer exists (the object is expunged).
            SessionStateError: the object was never written, or is not in this session.
        """
        self._check_open()
        state = self._own_state(obj, "refresh")
        doc_id = state.doc_id
        assert doc_id is not None
        if state.status is Lifecycle.PENDING and state.rev is None:
            msg = (
                f"cannot refresh {_describe(obj)}: it was never written, so the server has "
                "nothing to refresh it from; flush() it first, or expunge() it"
            )
            raise SessionStateError(msg)
        try:
            raw = self._call(self.backend.get, doc_id)
        except DocumentNotFound:
            self.expunge(obj)
            raise
        _restore(obj, raw)
        state.loaded = raw
        state.rev = raw.get("_rev")
        state.reset()
        state.status = Lifecycle.PERSISTENT
        for table in (self._new, self._dirty, self._deleted, self._unnotified):
            table.pop(doc_id, None)
        self._notices.pop(doc_id, None)
        self._in_flight.pop(doc_id, None)
        self._identity[doc_id] = obj

    # ------------------------------------------------------------------------------------
    # Loading.

    @overload
    def get(self, cls: type[D], doc_id: str) -> D | None: ...
    @overload
    def get(self, cls: str) -> Any: ...
    def get(self, cls: type[D] | str, doc_id: str | None = None) -> Any:
        """Return the document with this id, or None when it does not exist.

        ``get(Person, id)`` loads a ``Person`` (or the subclass its type field names);
        ``get(id)`` picks the class from the type discriminator, or returns a tracked dict.

        Raises:
            ValidationError: the stored document has values of the wrong type, or is of a
                type unrelated to ``cls``.
        """
        self._check_open()
        if isinstance(cls, str):
            if doc_id is not None:
                msg = "get() takes (Class, id) or (id), not two ids"
                raise TypeError(msg)
            doc_id, target = cls, None
        else:
            target = cls
        if not isinstance(doc_id, str):
            msg = f"get() needs a document id (str), not {type(doc_id).__name__}"
            raise TypeError(msg)
        found = self._lookup(doc_id)
        if found is not None:
            return self._check_type(found, target)
        try:
            raw = self._call(self.backend.get, doc_id)
        except DocumentNotFound:
            return None
        return self._load(raw, target)

    def _lookup(self, doc_id: str) -> Obj | None:
        """An object already in the session (None for unknown or pending-deleted ids)."""
        if doc_id in self._deleted:
            return _DELETED
        return self._identity.get(doc_id)

    def _check_type(self, obj: Obj, target: type | None) -> Any:
        if obj is _DELETED:
            return None
        if target is not None and not isinstance(obj, target):
            # The same error as loading such a document from the server (document.load).
            doc_id = _object_id(obj)
            info = model_info(type(obj))
            if info is None:
                what = "a raw dict document"
            else:
                what = f"of type {info.type_name!r} ({type(obj).__name__})"
            message = f"document {doc_id!r} is {what}, not a {target.__name__}"
            raise ValidationError(doc_id, [FieldError("type", target.__name__, message)])
        return obj

    def _load(self, raw: JSONDict, target: type | None) -> Obj:
        doc_id = raw["_id"]
        existing = self._lookup(doc_id)
        if existing is not None:
            return self._check_type(existing, target)
        cls = target if target is not None else _class_for(raw)
        if cls is None:
            obj: Obj = RawDocument(_without_meta(raw))
            attach_state(obj, raw, Lifecycle.PERSISTENT)
        else:
            obj = load(cls, raw, status=Lifecycle.PERSISTENT)
        state = state_of(obj)
        assert state is not None
        self._adopt(obj, state, Lifecycle.PERSISTENT)
        _send(signals.document_loaded, type(obj), session=self, document=obj)
        return obj

    def get_many(self, cls: type[D] | None, ids: Sequence[str]) -> list[Any]:
        """Return the documents with these ids in order (None for missing), in one request."""
        self._check_open()
        wanted = [doc_id for doc_id in dict.fromkeys(ids) if self._lookup(doc_id) is None]
        # Held here until returned: the identity map may hold clean objects weakly only.
        found: dict[str, Obj] = {}
        if wanted:
            answer = self._call(self.backend.all_docs, keys=wanted, include_docs=True)
            for row in answer.get("rows", ()):
                doc = row.get("doc")
                if doc is not None:
                    found[doc["_id"]] = self._load(doc, cls)
        result: list[Any] = []
        for doc_id in ids:
            obj = found[doc_id] if doc_id in found else self._lookup(doc_id)  # {} is falsy
            result.append(None if obj is None else self._check_type(obj, cls))
        return result

    def load_rows(self, docs: Iterable[JSONDict], cls: type[D] | None = None) -> list[Any]:
        """Identity-map already fetched documents (from a query) and return the objects."""
        return [self._load(doc, cls) for doc in docs]

    # ------------------------------------------------------------------------------------
    # The dict API of the seed project.

    def create(self, doc: Mapping[str, Any]) -> str:
        """Add a new raw dict document; returns its id (client-side uuid4 hex unless given)."""
        body = dict(doc)
        doc_id = body.pop("_id", None) or uuid.uuid4().hex
        body.pop("_rev", None)
        obj = RawDocument(body)
        state = attach_state(obj, None, Lifecycle.TRANSIENT)
        state.doc_id = doc_id
        self.add(obj)
        return str(doc_id)

    def __getitem__(self, doc_id: str) -> Any:
        found = self.get(doc_id)
        if found is None:
            raise DocumentNotFound(doc_id)
        return found

    def __setitem__(self, doc_id: str, doc: Mapping[str, Any]) -> None:
        existing = self.get(doc_id)
        body = _without_meta(dict(doc))
        if existing is None:
            self.create({**body, "_id": doc_id})
        elif isinstance(existing, RawDocument):
            for key in [k for k in existing if k not in body]:
                del existing[key]
            for key, value in body.items():
                if existing.get(key, _DELETED) != value:
                    existing[key] = value
        else:
            msg = f"document {doc_id!r} is a {type(existing).__name__}; set its fields instead"
            raise SessionStateError(msg)

    def __delitem__(self, doc_id: str) -> None:
        self.delete(self[doc_id])

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, str) and self.get(doc_id) is not None

    def __len__(self) -> int:
        count = int(self.info().get("doc_count", 0))
        return count + len(self._new) - sum(1 for i in self._deleted if i not in self._new)

    def view(self, view: View | str, **options: Any) -> ViewResult:
        """Query a design-document view; rows' ``doc`` come from the identity map.

        ``view`` is a :class:`~couchmapper.query.View` declared on a class or ``"ddoc/view"``.
        Pending deletions are dropped from the rows; ``result.stale`` says whether pending
        changes may make the answer out of date (see :meth:`QueryMixin.view`).
        """
        if isinstance(view, str):
            view = "/".join(_split_view_name(view))  # also python-couchdb's long form
        return QueryMixin.view(self, view, **options)

    # ------------------------------------------------------------------------------------
    # Signals.

    def on(
        self, signal: Signal, sender: Any = None
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Connect a receiver for this session only (disconnected when the session closes).

        ``@session.on(signals.document_changed, sender=Tag)`` connects a function that fires
        only for this session's documents; ``@session.on(signals.after_flush)`` only for this
        session's flushes. ``sender`` (document signals) is a class: receivers of a base class
        fire for its subclasses. The receiver is held strongly until the session is closed
        (or garbage collected).
        """
        self._check_open()
        owner = weakref.ref(self)

        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            def receiver(sender_: Any, **kwargs: Any) -> Any:
                session = owner()
                # Document signals name the session in ``session``; session signals send it.
                origin = kwargs.get("session", sender_)
                if session is not None and origin is session:
                    return fn(sender_, **kwargs)
                return None

            receiver.__name__ = getattr(fn, "__name__", "receiver")
            receiver.__qualname__ = getattr(fn, "__qualname__", receiver.__name__)
            receiver.__module__ = getattr(fn, "__module__", receiver.__module__)
            receiver.__wrapped__ = fn  # type: ignore[attr-defined]
            if sender is None:
                signal.connect(receiver, weak=False)
            else:
                signal.connect(receiver, sender=sender, weak=False)
            self._subscriptions.append((signal, receiver))
            return fn

        return decorator

    def _run_hooks(self) -> None:
        """Notify receivers of every document changed since its last notification, in rounds.

        A round notifies what the previous one left; receivers' edits are picked up by the
        next round. Stops when a round leaves nothing; past ``hook_rounds`` rounds raises
        :class:`HookLimitError` naming the receivers that changed documents in the last rounds.
        """
        recheck = True  # first round: pick up edits made since an earlier (failed) flush
        last_producers: list[str] = []
        for round_no in range(self.hook_rounds + 1):
            if recheck:
                self._collect_changed_notices()
            if not self._unnotified:
                return
            if round_no == self.hook_rounds:
                break
            # Watch who edits in the last few rounds: a cycle's receivers, to name them.
            watched = round_no >= self.hook_rounds - _WATCHED_ROUNDS
            producers: list[str] | None = [] if watched else None
            self._receivers_ran = False
            for doc_id in list(self._unnotified):
                obj = self._unnotified.pop(doc_id, None)
                if obj is None:
                    continue  # a receiver expunged it, or deleted it before it was written
                try:
                    self._notify(doc_id, obj, producers)
                except BaseException:
                    # Not delivered: the next flush notifies it again (and the rest of the round).
                    self._unnotified.setdefault(doc_id, obj)
                    raise
            # Only receivers can have changed documents during a round.
            recheck = self._receivers_ran
            if producers is not None:
                last_producers += producers
        raise HookLimitError(self.hook_rounds, list(dict.fromkeys(last_producers)))

    def _collect_changed_notices(self) -> None:
        """Queue notified documents that changed again since (re-sets of a field included)."""
        for doc_id, notice in self._notices.items():
            if doc_id in self._unnotified:
                continue
            state = state_of(notice.obj)
            if state is None or state.session is not self:
                continue
            deleted = state.status is Lifecycle.DELETED
            if (deleted and not notice.deleted) or (
                not deleted and state.changes != notice.changes
            ):
                self._unnotified[doc_id] = notice.obj

    def _notify(self, doc_id: str, obj: Obj, producers: list[str] | None) -> None:
        """Send the one signal ``obj`` is due (if any), then record what receivers were told."""
        state = state_of(obj)
        if state is None or state.session is not self:
            return
        notice = self._notices.get(doc_id)
        if notice is None or notice.obj is not obj:
            notice = _Notice(obj)
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
            self._deliver(signal, cls, producers, session=self, document=obj, changes=changes)
            if signal is signals.document_added:
                notice.added = True
            elif signal is signals.document_deleted:
                notice.deleted = True
        notice.changes = current
        notice.snapshot = snapshot
        self._notices[doc_id] = notice

    def _deliver(
        self, signal: Signal, cls: type, producers: list[str] | None, **kwargs: Any
    ) -> None:
        """Call each receiver of ``signal`` for ``cls`` once (base-class receivers included).

        With ``producers`` (the last allowed round), note the receivers that changed documents.
        """
        if not signal.receivers:
            return
        for receiver in _receivers(signal, cls):
            self._receivers_ran = True
            if producers is None:
                receiver(cls, **kwargs)
                continue
            before = self._fingerprint()
            receiver(cls, **kwargs)
            if self._fingerprint() != before:
                producers.append(_receiver_name(receiver))

    def _fingerprint(self) -> dict[str, tuple[int, Lifecycle, ChangeList]]:
        """Every document with pending work, its status and changes (to see who edits)."""
        found: dict[str, tuple[int, Lifecycle, ChangeList]] = {}
        for table in (self._new, self._dirty, self._deleted):
            for doc_id, obj in table.items():
                state = state_of(obj)
                if state is not None:
                    found[doc_id] = (id(obj), state.status, state.changes)
        return found

    def _prepare_query(self) -> None:
        # Queries made by receivers during a flush read the pending state through the
        # read-your-writes overlay; autoflush must not start a flush inside the flush.
        self._check_open()
        if self.autoflush and not self._flushing:
            self.flush()

    # ------------------------------------------------------------------------------------
    # Flush.

    def flush(self, *, progress: Callable[[int, int], None] | None = None) -> list[WriteResult]:
        """Write every pending change in one ``_bulk_docs`` request.

        Sends ``before_flush``, then runs hook rounds (``document_added`` /
        ``document_changed`` / ``document_deleted``; receivers may add more edits, which the
        next round notifies), then sends new, changed and deleted documents together, applies
        the per-document answers and resolves conflicts by the conflict policy. Only objects
        with pending work are visited: the cost does not depend on how many clean objects the
        session holds. ``after_flush`` gets one result per document of the request(s);
        ``flush_failed`` is sent before any exception leaves the flush.

        Args:
            progress: called with (documents sent so far, documents to send) after each
                request; with ``batch_size`` a large flush makes several requests.

        Returns:
            One :class:`WriteResult` per document written.

        Raises:
            FlushError: some documents were not written; they stay pending with their
                changes. ``failures`` lists each id with CouchDB's error and reason.
            ConflictError: a ``"rebase"`` met changes on both sides of the same field with
                no merge rule (``paths``, ``base``, ``mine``, ``theirs``); its ``__cause__``
                is the :class:`FlushError` listing every failure of the flush.
            HookLimitError: receivers kept changing documents; nothing was sent.
            BackendUnavailable: the server did not answer; everything not confirmed stays
                pending, and flushing again is safe.
            SessionStateError: ``flush()`` was called by a receiver during this flush.
        """
        self._check_open()
        if self._flushing:
            msg = (
                "flush() called during this session's flush (from a signal receiver?); edits "
                "made by receivers go out with the running flush, so just make them"
            )
            raise SessionStateError(msg)
        self._flushing = True
        try:
            return self._flush(progress)
        finally:
            self._flushing = False

    def _flush(self, progress: Callable[[int, int], None] | None) -> list[WriteResult]:
        signals.before_flush.send(self)
        try:
            self._run_hooks()
            plan = self._plan()
        except Exception as exc:
            # Nothing was sent: no per-document failures.
            signals.flush_failed.send(self, failures=[], error=exc)
            raise
        self._flushes += 1
        if not plan:
            return []
        written: list[WriteResult] = []
        failures: list[FlushFailure] = []
        try:
            overlap = self._write(plan, progress, written, failures)
        except BackendError as exc:
            # No (usable) answer: what was not confirmed stays pending; report it per document.
            done = {r.doc_id for r in written} | {f.doc_id for f in failures}
            failures += [
                FlushFailure(doc_id, exc.error, exc.reason, exc)
                for doc_id in plan
                if doc_id not in done
            ]
            self._after_flush(written, failures)
            signals.flush_failed.send(self, failures=failures, error=exc)
            raise
        self._after_flush(written, failures)
        if failures:
            flush_error = FlushError(failures)
            error: Exception = flush_error
            if overlap is not None:
                overlap.__cause__ = flush_error
                error = overlap
            signals.flush_failed.send(self, failures=failures, error=error)
            raise error
        return written

    def _after_flush(self, written: list[WriteResult], failures: list[FlushFailure]) -> None:
        failed = [WriteResult(f.doc_id, None, f.error, f.reason) for f in failures]
        signals.after_flush.send(self, results=written + failed)

    def _plan(self) -> dict[str, JSONDict]:
        """The JSON to send, by document id (only objects with pending work are visited)."""
        plan: dict[str, JSONDict] = {}
        for doc_id, obj in self._deleted.items():
            state = state_of(obj)
            assert state is not None
            plan[doc_id] = {"_id": doc_id, "_rev": state.rev, "_deleted": True}
        for doc_id, obj in self._new.items():
            plan[doc_id] = dump(obj)
        for doc_id, obj in list(self._dirty.items()):
            if doc_id in plan:
                continue
            if _has_changes(obj):
                plan[doc_id] = dump(obj)
            elif doc_id not in self._required:
                # Changed back to what was loaded: nothing to write. Reset the (empty) log so
                # the next change reports the object as dirty again.
                del self._dirty[doc_id]
                self._notices.pop(doc_id, None)
                state = state_of(obj)
                if state is not None:
                    state.reset()
        for doc_id, obj in self._required.items():
            if doc_id not in plan:
                plan[doc_id] = dump(obj)
        return plan

    def _write(
        self,
        plan: dict[str, JSONDict],
        progress: Callable[[int, int], None] | None,
        written: list[WriteResult],
        failures: list[FlushFailure],
    ) -> ConflictError | None:
        """Send the plan, then resolve conflicts by policy; returns a rebase's overlap error.

        Results and failures are appended to ``written`` and ``failures`` as they arrive, so
        the caller has them even when a later request raises.
        """
        overlap: ConflictError | None = None
        pending = plan
        merged: set[str] = set()  # sent JSON differs from the object: a rebase merged it
        rebases = 0
        while pending:
            conflicts: dict[str, tuple[JSONDict, WriteResult]] = {}
            answered_ids: set[str] = set()
            try:
                for chunk, answered in self._send_bulk(list(pending.values()), progress):
                    # Applied chunk by chunk: a failure in a later request keeps these.
                    for sent, result in zip(chunk, answered, strict=True):
                        answered_ids.add(result.doc_id)
                        if result.ok:
                            obj_merged = result.doc_id in merged
                            written.append(self._written(result, sent, merged=obj_merged))
                        elif result.error in ("conflict", "file_exists"):
                            conflicts[result.doc_id] = (sent, result)
                        else:
                            failures.append(
                                FlushFailure(result.doc_id, result.error or "", result.reason or "")
                            )
            except BackendError as exc:
                if exc.status is None or exc.status >= 500:
                    # No answer: the server may have applied the request. Remember what was
                    # sent, so the next flush can recognise it (a rebase's merge especially).
                    for doc_id, sent in pending.items():
                        if doc_id not in answered_ids:
                            self._in_flight[doc_id] = (plan[doc_id], sent)
                raise
            if not conflicts:
                break
            current = self._fetch_current(list(conflicts))
            pending = {}
            for doc_id, (sent, _answer) in conflicts.items():
                theirs = current.get(doc_id)
                if landed(sent, theirs):
                    # An earlier attempt (whose answer was lost) already wrote exactly this.
                    rev = theirs.get("_rev") if theirs is not None else sent.get("_rev")
                    landed_result = WriteResult(doc_id, rev)
                    written.append(self._written(landed_result, sent, merged=doc_id in merged))
                    continue
                flight = self._in_flight.get(doc_id)
                if flight is not None and theirs is not None and landed(flight[1], theirs):
                    # A flush whose answer was lost wrote this (maybe a rebase's merge).
                    if flight[0] == plan[doc_id]:
                        landed_result = WriteResult(doc_id, theirs.get("_rev"))
                        written.append(self._written(landed_result, flight[1], merged=True))
                        continue
                    reason = (
                        "Document update conflict: an earlier flush of this document was "
                        "written although its answer was lost, and the document was changed "
                        "since; refresh() it and apply the new changes again."
                    )
                    lost = ConflictError(doc_id, plan[doc_id].get("_rev"), reason)
                    failures.append(FlushFailure(doc_id, "conflict", reason, lost))
                    continue
                # Rebase from what this session wants (the planned JSON), never from an earlier
                # merge: that would count the other writers' changes as ours (sum: twice).
                resolved, error = self._resolve(doc_id, plan[doc_id], theirs, rebases)
                if resolved is not None:
                    pending[doc_id] = resolved
                    merged.add(doc_id)
                    continue
                assert error is not None
                if error.paths and overlap is None:
                    overlap = error
                failures.append(FlushFailure(doc_id, "conflict", error.reason, error))
            rebases += 1
        return overlap

    def _send_bulk(
        self, docs: list[JSONDict], progress: Callable[[int, int], None] | None
    ) -> Iterator[tuple[list[JSONDict], list[WriteResult]]]:
        """Send ``docs`` in one request (or ``batch_size`` chunks); yield each answer."""
        size = self.batch_size or len(docs) or 1
        for start in range(0, len(docs), size):
            chunk = docs[start : start + size]
            answer = self._call(self.backend.bulk_docs, chunk)
            yield chunk, results_in_order(chunk, answer)
            if progress is not None:
                progress(min(start + size, len(docs)), len(docs))

    def _fetch_current(self, ids: list[str]) -> dict[str, JSONDict | None]:
        """The server's current version of each document (None when deleted or missing)."""
        answer = self._call(self.backend.all_docs, keys=ids, include_docs=True)
        current: dict[str, JSONDict | None] = {}
        for row in answer.get("rows", ()):
            key = row.get("key")
            if isinstance(key, str):
                doc = row.get("doc")
                current[key] = doc if isinstance(doc, dict) else None
        return current

    def _resolve(
        self, doc_id: str, sent: JSONDict, theirs: JSONDict | None, rebases: int
    ) -> tuple[JSONDict | None, ConflictError | None]:
        """Decide what to send after a conflict, by the document's conflict policy.

        ``sent`` is the JSON this session planned for the document (base plus its changes).
        """
        obj = self._held(doc_id)
        state = state_of(obj) if obj is not None else None
        policy = _policy_for(obj, self.conflict)
        rev = sent.get("_rev")

        def refuse(reason: str) -> tuple[None, ConflictError]:
            return None, ConflictError(doc_id, rev, reason)

        if state is None or policy == "raise":
            return None, ConflictError(doc_id, rev)
        if doc_id in self._required and not state.has_changes:
            return refuse(
                "Document update conflict: changed on the server since this session read it "
                "(require_current)."
            )
        if rebases >= self.max_rebase:
            return refuse(
                f"Document update conflict: still conflicting after {self.max_rebase} "
                f"{policy} attempt(s) (raise max_rebase to allow more)."
            )
        if policy == "overwrite":
            again = dict(sent)
            if theirs is not None:
                again["_rev"] = theirs["_rev"]
            else:
                again.pop("_rev", None)  # deleted on the server: write over the tombstone
            return again, None
        # rebase
        if theirs is None:
            return refuse("Document update conflict: deleted on the server.")
        if sent.get("_deleted"):
            return refuse(
                "Document update conflict: deleted in this session but changed on the server; "
                "refresh() and delete again, or use conflict='overwrite'."
            )
        if state.loaded is None or state.status is Lifecycle.PENDING:
            return refuse(
                "Document update conflict: created in this session, but the server has "
                "another version; choose an unused id, or use conflict='overwrite'."
            )
        # Fields missing from stored JSON load as their defaults: compare like with like, or a
        # default that another session merely wrote out would look like a change of theirs.
        base = _normalized(obj, state.loaded)
        theirs = _normalized(obj, theirs)
        outcome = rebase(base, sent, state.changes, theirs, _rule_finder(obj))
        if outcome.document is None:
            return None, ConflictError(
                doc_id,
                rev,
                "Document update conflict: both sides changed the same field.",
                paths=outcome.overlaps,
                base=base,
                mine=sent,
                theirs=theirs,
            )
        merged = outcome.document
        merged["_id"] = doc_id
        merged["_rev"] = theirs["_rev"]
        return merged, None

    def _written(self, result: WriteResult, sent: JSONDict, *, merged: bool) -> WriteResult:
        """A document was written: record its new rev and loaded state; returns ``result``.

        ``merged``: ``sent`` is a rebase of the object's JSON on the server's version, so the
        object takes the merged values.
        """
        doc_id = result.doc_id
        obj = self._held(doc_id)
        state = state_of(obj) if obj is not None else None
        if state is None:
            return result
        self._notices.pop(doc_id, None)
        self._in_flight.pop(doc_id, None)
        for table in (self._new, self._dirty, self._deleted, self._required):
            table.pop(doc_id, None)
        if sent.get("_deleted"):
            state.status = Lifecycle.DETACHED
            state.session = None
            state.rev = result.rev
            state.reset()
            if self._identity.get(doc_id) is obj:
                del self._identity[doc_id]
            return result
        stored = dict(sent)
        stored["_rev"] = result.rev
        if merged:
            _restore(obj, stored)
        state.rev = result.rev
        state.loaded = stored
        state.reset()
        state.require_rev = False
        state.status = Lifecycle.PERSISTENT
        return result


_DELETED: Any = object()


def _split_view_name(name: str) -> tuple[str, str]:
    """``"ddoc/view"`` or ``"_design/ddoc/_view/view"`` (python-couchdb's forms) -> parts."""
    parts = name.split("/")
    if len(parts) == 4 and parts[0] == "_design" and parts[2] == "_view":
        return parts[1], parts[3]
    if len(parts) == 2 and all(parts):
        return parts[0], parts[1]
    msg = f"view name must be 'ddoc/view' or '_design/ddoc/_view/view', not {name!r}"
    raise ValueError(msg)


def _object_id(obj: Obj) -> str | None:
    state = state_of(obj)
    if state is not None and state.doc_id is not None:
        return state.doc_id
    if isinstance(obj, RawDocument):
        return None
    value = obj.__dict__.get("id")
    return value if isinstance(value, str) else None


def _describe(obj: Obj) -> str:
    doc_id = _object_id(obj)
    return f"{type(obj).__name__} {doc_id!r}" if doc_id else f"a new {type(obj).__name__}"


def _has_changes(obj: Obj) -> bool:
    state = state_of(obj)
    return state is not None and (state.has_changes or state.require_rev)


def _without_meta(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if k not in ("_id", "_rev")}


def _class_for(raw: Mapping[str, Any]) -> type | None:
    for discriminator, names in registry.items():
        name = raw.get(discriminator)
        if isinstance(name, str) and name in names:
            return names[name]
    return None


def _restore(obj: Obj, raw: Mapping[str, Any]) -> None:
    """Put the fields of ``raw`` into ``obj`` in place, without recording changes."""
    if isinstance(obj, RawDocument):
        dict.clear(obj)
        fresh = RawDocument(_without_meta(raw))
        for value in fresh.values():
            if hasattr(value, "_cm_parent"):
                value._cm_parent = obj
        dict.update(obj, fresh)
        return
    fresh_obj = load(type(obj), dict(raw))
    state = obj.__dict__.get("_cm_state")
    obj.__dict__.clear()
    obj.__dict__.update({k: v for k, v in fresh_obj.__dict__.items() if k != "_cm_state"})
    obj.__dict__["_cm_state"] = state
    for value in obj.__dict__.values():
        link = getattr(value, "_cm_parent", None)
        if link is fresh_obj:
            value._cm_parent = obj
        elif isinstance(getattr(value, "__dict__", None), dict) and "_cm_parent" in value.__dict__:
            value.__dict__["_cm_parent"] = (obj, value.__dict__["_cm_parent"][1])


def _body_differs(obj: Obj, sent: JSONDict) -> bool:
    current = dump(obj)
    return {k: v for k, v in current.items() if k != "_rev"} != {
        k: v for k, v in sent.items() if k != "_rev"
    }


def _normalized(obj: Obj, raw: JSONDict) -> JSONDict:
    """``raw`` as this object's class writes it (defaults filled in); ``raw`` if it can't."""
    if isinstance(obj, RawDocument):
        return raw
    try:
        return dump(load(type(obj), dict(raw)))
    except (ValidationError, TypeError, ValueError):
        return raw


def _policy_for(obj: Obj, default: ConflictPolicy) -> ConflictPolicy:
    meta = getattr(type(obj), "Meta", None)
    policy = getattr(meta, "conflict", None)
    return policy if policy in ("raise", "rebase", "overwrite") else default


def _rule_finder(obj: Obj) -> Callable[[tuple[PathKey, ...]], Any]:
    info = model_info(type(obj))

    def find(path: tuple[PathKey, ...]) -> Any:
        if info is None or not path or not isinstance(path[0], str):
            return None
        descriptor = getattr(type(obj), path[0], None)
        options = getattr(descriptor, "options", None)
        merge = getattr(options, "merge", None)
        return ((path[0],), merge) if merge is not None else None

    return find


@attrs.define(eq=False)
class _Notice:
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


def _since(notice: _Notice, current: ChangeList) -> ChangeList:
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


def _notified_value(notice: _Notice, path: tuple[PathKey, ...]) -> tuple[Any] | None:
    """``(value,)`` that ``path`` had at the notification, or None when unknown."""
    if notice.snapshot is not None:
        return (_value_at(notice.snapshot, path),)
    for change in reversed(notice.changes):
        if change.path == path:
            return (change.value,)
    return None


def _disconnect_all(subscriptions: list[tuple[Signal, Callable[..., Any]]]) -> None:
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


def _send(signal: Signal, cls: type, **kwargs: Any) -> None:
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
