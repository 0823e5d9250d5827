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

import functools
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO, TypeVar, overload

from blinker import Signal

from couchmapper._types import CONFLICT_POLICIES, ConflictPolicy, JSONDict, Obj
from couchmapper.backends.base import Backend
from couchmapper.exceptions import (
    ConflictError,
    DocumentNotFound,
    SessionStateError,
)
from couchmapper.model.attachments import DEFAULT_INLINE_LIMIT
from couchmapper.model.base import Document, RawDocument, attach_state, state_of
from couchmapper.orm.attachments import open_stored
from couchmapper.orm.conflicts import mark_resolving
from couchmapper.orm.database import as_backend
from couchmapper.orm.dictapi import all_ids, object_from_dict, pending_count, set_body
from couchmapper.orm.flush import FlushRun, has_changes
from couchmapper.orm.identity import IdentityMap, StrongIdentityMap, WeakIdentityMap
from couchmapper.orm.loading import Loading, check_id, describe, get_arguments, object_id
from couchmapper.orm.merge import WriteResult, without_meta
from couchmapper.orm.notify import forget_new
from couchmapper.orm.paging import Paging, default_page_key
from couchmapper.orm.pending import PendingWork
from couchmapper.orm.querying import (
    Querying,
    Row,
)
from couchmapper.orm.reads import SessionQueries
from couchmapper.orm.state import InstanceState, Lifecycle
from couchmapper.orm.stats import SessionStats, Traffic
from couchmapper.orm.subscriptions import Subscriptions

__all__ = ["Row", "Session", "SessionStats"]

D = TypeVar("D", bound=Document)


class Session(SessionQueries):
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
        max_rebase: how many times one flush may rebase (or overwrite) a document before
            giving up; None (default): as often as ``rebase_timeout`` allows.
        rebase_timeout: seconds one flush may spend on conflicting writes before reporting
            them (the budget of its rebase attempts).
        rebase_delay: before the n-th attempt, wait a random time up to
            ``rebase_delay * 2**n`` seconds, so contending writers spread out...
        rebase_max_delay: ...but never more than this (seconds).
        hook_rounds: how many rounds of signal receivers a flush runs before giving up.
        batch_size: split flushes of more documents than this into several requests.
            Without it, a flush sends at most :attr:`max_request_docs` documents and
            :attr:`max_request_bytes` of JSON per request (ordinary flushes: one request).
        write_upgrades: a document upgraded on load (``Meta.version``) is dirty, so the next
            flush writes it; False for read-only work (objects are still upgraded in memory).
        page_key: the secret that signs :meth:`find_page` tokens; by default
            ``$COUCHMAPPER_PAGE_KEY``, else a random key per process (tokens then work only
            in this process: give every worker of an app the same key).
        attachment_inline_limit: new attachments up to this many bytes travel inline
            (base64) in the flush's ``_bulk_docs``; larger ones are streamed after it, one
            request each (default 64 KiB).
        max_attachment_size: refuse (before sending) a new attachment larger than this, as
            CouchDB's ``[couchdb] max_attachment_size`` would (default: no check).

    Attributes:
        pending: the session's pending work and identity map (read it; change it through
            the session's methods).
    """

    #: Without ``batch_size``, the most documents one ``_bulk_docs`` request of a flush holds.
    max_request_docs: int = 5_000
    #: Without ``batch_size``, the most JSON one request holds; 16 MiB is twice CouchDB's default
    #: ``max_document_size`` (8,000,000 bytes), so the largest storable documents still go two
    #: at a time; a larger document is sent alone (and refused by the server, by itself).
    max_request_bytes: int = 16 * 1024 * 1024

    def __init__(
        self,
        database: Any = None,
        *,
        conflict: ConflictPolicy = "raise",
        autoflush: bool = False,
        weak_identity_map: bool = True,
        max_rebase: int | None = None,
        rebase_timeout: float = 30.0,
        rebase_delay: float = 0.005,
        rebase_max_delay: float = 0.25,
        hook_rounds: int = 100,
        batch_size: int | None = None,
        write_upgrades: bool = True,
        page_key: bytes | None = None,
        attachment_inline_limit: int = DEFAULT_INLINE_LIMIT,
        max_attachment_size: int | None = None,
    ) -> None:
        if conflict not in CONFLICT_POLICIES:
            msg = f"conflict must be 'raise', 'rebase' or 'overwrite', not {conflict!r}"
            raise ValueError(msg)
        self.backend: Backend = as_backend(database)
        self.conflict: ConflictPolicy = conflict
        self.autoflush = autoflush
        self.max_rebase = max_rebase
        self.rebase_timeout = rebase_timeout
        self.rebase_delay = rebase_delay
        self.rebase_max_delay = rebase_max_delay
        self.hook_rounds = hook_rounds
        self.batch_size = batch_size
        self.write_upgrades = write_upgrades
        self.page_key = page_key if page_key is not None else default_page_key()
        self.attachment_inline_limit = attachment_inline_limit
        self.max_attachment_size = max_attachment_size
        identity: IdentityMap = WeakIdentityMap() if weak_identity_map else StrongIdentityMap()
        # The one owner of every pending table (and of the identity map).
        self.pending = PendingWork(identity)
        # The pending work, not a bound method of the session: no reference cycle.
        self._traffic = Traffic(self.pending.guard, self.pending.hand_back)
        self._run: FlushRun | None = None  # the flush that is running (its plan is sending)
        self._queries = Querying(self, self.pending, self._traffic)
        self._paging = Paging(self, self.pending, self._traffic)
        self._loading = Loading(self, self.pending, self._traffic)
        self._subscriptions = Subscriptions(self)
        self._closed = False
        #: Stored conflicts a flush could not resolve, by document id (docs/conflicts.md).
        self.unresolved: dict[str, ConflictError] = {}

    # ------------------------------------------------------------------------------------
    # Basics.

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self.pending.identity)} loaded"
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
        if exc_type is not None:
            self.rollback()
            self.close()
            return
        # A failed flush leaves the session open: its documents stay pending with their
        # changes, so the caller can inspect the error, fix them and flush again.
        self.flush()
        self.close()

    def close(self) -> None:
        """Detach every object and refuse further use. Pending work is dropped."""
        self.pending.guard.check("close it")
        if self._closed:
            return
        self._subscriptions.disconnect_all()
        self.pending.release_all(self)
        self._closed = True

    def _check_open(self, action: str = "use it") -> None:
        self.pending.guard.check(action)
        if self._closed:
            msg = "this session is closed; open a new Session to keep working"
            raise SessionStateError(msg)

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self._traffic.call(method, *args, **kwargs)

    def open_attachment(self, obj: Obj, name: str) -> BinaryIO:
        """A binary stream of stored attachment ``name`` of ``obj`` (``att.open()`` calls it).

        Read in pieces at the revision the object is at; length and digest are checked at
        the end. Raises :class:`AttachmentError` when it changed on the server.
        """
        self._check_open("read an attachment through it")
        return open_stored(self, self._traffic, obj, name)

    def stats(self) -> SessionStats:
        """Counts of objects by state, flushes, requests made and writes only accepted."""
        pending = self.pending
        pending.guard.check("read its stats")
        return SessionStats(
            identity_map=len(pending.identity),
            new=len(pending.new),
            dirty=sum(1 for o in pending.dirty.values() if has_changes(o)),
            deleted=len(pending.deleted),
            flushes=self._traffic.flushes,
            requests=self._traffic.requests,
            accepted=self._traffic.accepted,
        )

    # ------------------------------------------------------------------------------------
    # Adding and deleting.

    def add(self, obj: Obj) -> Obj:
        """Add a new document (a client-side uuid4 hex ``_id`` is assigned unless set).

        Adding a document that was loaded elsewhere (detached) makes it persistent here.

        Raises:
            SessionStateError: the object belongs to another session, or another object
                with the same id is already in this session.
            ValidationError: the id is empty or reserved (a typed document's ``_design/``,
                ``_local/`` or other ``_`` id without ``Meta.allow_reserved_ids``).
        """
        self._check_open()
        state = state_of(obj)
        if state is not None and state.session is not None and state.session is not self:
            msg = (
                f"{describe(obj)} belongs to another session; expunge it there first, or "
                f"load it in this session with get()"
            )
            raise SessionStateError(msg)
        if state is not None and state.session is self:
            if state.status is Lifecycle.DELETED:
                msg = f"{describe(obj)} is deleted in this session; flush or rollback first"
                raise SessionStateError(msg)
            return obj  # already here: adding twice is harmless
        given = object_id(obj)
        doc_id = uuid.uuid4().hex if given is None else given
        check_id(doc_id, None if isinstance(obj, RawDocument) else type(obj))
        existing = self.pending.held(doc_id)
        if existing is not None and existing is not obj and doc_id not in self.pending.deleted:
            msg = (
                f"document {doc_id!r} is already in this session as another object; "
                f"modify that object (session.get) instead of adding a new one"
            )
            raise SessionStateError(msg)
        if not isinstance(obj, RawDocument):
            obj.__dict__["id"] = doc_id
        if state is not None and state.status is Lifecycle.DETACHED and state.rev is not None:
            self.pending.adopt(self, obj, state, Lifecycle.PERSISTENT)
            if state.has_changes or state.flights:
                self.pending.mark_dirty(doc_id, obj)
            else:
                # Changed and set back elsewhere: forget that, so the next change reports.
                state.reset()
            return obj
        if state is None:
            state = attach_state(obj, None, Lifecycle.PENDING)
        state.doc_id = doc_id
        if doc_id in self.pending.deleted:
            self.pending.mark_replaced(doc_id, state)  # rollback() puts the deleted one back
        self.pending.adopt(self, obj, state, Lifecycle.PENDING)
        self.pending.mark_new(doc_id, obj)
        return obj

    def add_all(self, objects: Iterable[Obj]) -> None:
        """Add several new documents."""
        for obj in objects:
            self.add(obj)

    def delete(self, obj: Obj) -> None:
        """Mark a document for deletion; the flush writes the tombstone.

        Deleting a pending (never written) document just drops it; if a flush that failed
        had already sent ``document_added`` for it, the next flush sends ``document_deleted``.

        Raises:
            SessionStateError: the object is transient, detached or in another session.
        """
        self._check_open()
        state = self._own_state(obj, "delete")
        doc_id = state.doc_id
        assert doc_id is not None
        if state.status is Lifecycle.DELETED:
            return
        never_written = state.status is Lifecycle.PENDING and state.rev is None
        # Planned by the flush that is sending (from its progress callback): it may still be
        # written, so it is a pending deletion, dropped by the next flush if it was not.
        planned = self._run is not None and doc_id in self._run.plan
        if never_written and not state.flights and not planned:
            self.pending.drop_new(doc_id)
            forget_new(self.pending, doc_id, obj)
            state.session = None
            state.status = Lifecycle.TRANSIENT
            return
        state.status = Lifecycle.DELETED
        self.pending.mark_deleted(doc_id, obj)

    def _own_state(self, obj: Obj, action: str) -> InstanceState:
        state = state_of(obj)
        if state is None or state.status is Lifecycle.TRANSIENT:
            msg = f"cannot {action} {describe(obj)}: it is transient (never added); add it first"
            raise SessionStateError(msg)
        if state.session is not self:
            where = "another session" if state.session is not None else "no session (detached)"
            msg = f"cannot {action} {describe(obj)}: it belongs to {where}; use session.add()"
            raise SessionStateError(msg)
        return state

    def resolve(self, obj: Obj, merged: Any = None) -> None:
        """Resolve the stored conflicts of a loaded document in the next flush.

        ``merged`` (a mapping or an object of the document's class) is written as the
        winner; without it the class's ``Meta.resolve`` mode applies (``"merge"`` when it has
        none). The merged winner and the deletion of every losing leaf go in the flush's one
        ``_bulk_docs``. A conflict that cannot be merged stays and is reported in
        :attr:`unresolved`. See docs/conflicts.md.

        Raises:
            SessionStateError: the object is not a stored document of this session.
        """
        self._check_open()
        state = self._own_state(obj, "resolve")
        if state.doc_id is None or state.rev is None:
            msg = f"cannot resolve {describe(obj)}: it was never written, so it has no conflicts"
            raise SessionStateError(msg)
        mark_resolving(self.pending, state.doc_id, obj, merged)

    def expunge(self, obj: Obj) -> None:
        """Remove an object from this session (its pending work is dropped); it becomes detached."""
        self._check_open()
        state = self._own_state(obj, "expunge")
        doc_id = state.doc_id
        assert doc_id is not None
        self.pending.forget_object(doc_id, obj)
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
        for obj in list(self.pending.identity.values()):
            self.expunge(obj)
        self.pending.clear()

    def has_pending(self) -> bool:
        """Whether a flush would write anything."""
        self.pending.guard.check("use it")
        return self.pending.has_work(has_changes)

    def require_current(self, obj: Obj) -> None:
        """Check at flush that ``obj`` is still at the revision this session read.

        The document is sent unchanged with its ``_rev``; a concurrent edit makes the flush
        report a conflict even though this session changed nothing in it.
        """
        self._check_open()
        state = self._own_state(obj, "require_current for")
        assert state.doc_id is not None
        state.require_rev = True
        self.pending.mark_required(state.doc_id, obj)

    def rollback(self) -> None:
        """Forget pending work: restore loaded state of changed objects, drop new ones, undelete."""
        self.pending.guard.check("roll it back")
        if self._closed:
            return
        self.pending.rollback(self)

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
                f"cannot refresh {describe(obj)}: it was never written, so the server has "
                "nothing to refresh it from; flush() it first, or expunge() it"
            )
            raise SessionStateError(msg)
        try:
            raw = self._call(self.backend.get, doc_id, conflicts=True)
        except DocumentNotFound:
            self.expunge(obj)
            raise
        self.pending.mark_refreshed(doc_id, obj, raw)

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
                type unrelated to ``cls``; or ``doc_id`` names no document (``""``,
                ``"_all_docs"``...; checked before any request).
        """
        self._check_open()
        return self._loading.get(*get_arguments(cls, doc_id))

    def get_many(self, cls: type[D] | None, ids: Sequence[str]) -> list[Any]:
        """Return the documents with these ids in order (None for missing), in one request.

        Raises:
            QueryLoadError: documents that could not be loaded (each named); ``results``
                holds the list with None in their places.
            ValidationError: an id names no document (checked before the request).
        """
        self._check_open()
        return self._loading.get_many(cls, ids)

    def load_rows(self, docs: Iterable[JSONDict], cls: type[D] | None = None) -> list[Any]:
        """Identity-map already fetched documents (from a query) and return the objects."""
        self._check_open()
        load = self._loading.load
        return [load(doc, cls) for doc in docs]

    # ------------------------------------------------------------------------------------
    # The dict API of the seed project.

    def create(self, doc: Mapping[str, Any]) -> str:
        """Add a new document from a dict; returns its id (client-side uuid4 hex unless given).

        A dict whose type field names a registered document class becomes an object of that
        class (validated, and seen by queries on the class); any other dict stays a tracked
        :class:`~couchmapper.model.base.RawDocument`.

        Raises:
            ValidationError: the dict names a class but its values do not fit it, or its
                ``_id`` is empty or reserved.
        """
        doc_id, obj = object_from_dict(doc)
        self.add(obj)
        return doc_id

    def __iter__(self) -> Iterator[str]:
        """The ids of every document, as python-couchdb's ``Database`` iterates them.

        Pending creations are included and pending deletions left out; design documents are
        not listed.
        """
        self._check_open()
        return all_ids(functools.partial(self._call, self.backend.all_docs), self.pending)

    def __getitem__(self, doc_id: str) -> Any:
        found = self.get(doc_id)
        if found is None:
            raise DocumentNotFound(doc_id)
        return found

    def __setitem__(self, doc_id: str, doc: Mapping[str, Any]) -> None:
        existing = self.get(doc_id)
        if existing is None:
            self.create({**without_meta(dict(doc)), "_id": doc_id})
        else:
            set_body(doc_id, existing, doc)

    def __delitem__(self, doc_id: str) -> None:
        self.delete(self[doc_id])

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, str) and self.get(doc_id) is not None

    def __len__(self) -> int:
        return int(self.info().get("doc_count", 0)) + pending_count(self.pending)

    # ------------------------------------------------------------------------------------
    # Signals.

    def on(
        self, signal: Signal, sender: Any = None
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Connect a receiver for this session only (disconnected when the session closes).

        ``@session.on(signals.document_changed, sender=Tag)`` connects a function that fires
        only for this session's documents; ``@session.on(signals.after_flush)`` only for this
        session's flushes. ``sender`` (document signals) is a class: receivers of a base class
        fire for its subclasses. The session holds the function: it is disconnected when the
        session is closed or garbage collected, even when it refers to the session itself.
        """
        self._check_open()

        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            self._subscriptions.connect(signal, sender, fn)
            return fn

        return decorator

    # ------------------------------------------------------------------------------------
    # Flush.

    def flush(self, *, progress: Callable[[int, int], None] | None = None) -> list[WriteResult]:
        """Write every pending change in one ``_bulk_docs`` request (several for a huge flush).

        Sends ``before_flush``, then runs hook rounds (``document_added`` /
        ``document_changed`` / ``document_deleted``; receivers may add more edits, which the
        next round notifies), then sends new, changed and deleted documents together, applies
        the per-document answers and resolves conflicts by the conflict policy. Only objects
        with pending work are visited: the cost does not depend on how many clean objects the
        session holds. ``after_flush`` gets one result per document of the request(s);
        ``flush_failed`` is sent before any exception leaves the flush.

        Args:
            progress: called with (documents sent so far, documents to send) after each
                request: a flush of more than ``max_request_docs`` documents or
                ``max_request_bytes`` of JSON (or ``batch_size``) makes several. Edits it
                makes to documents of this flush stay pending for the next one.

        Returns:
            One :class:`WriteResult` per document written: its last write, when resolving a
            stored conflict took two (a loser was extended meanwhile).

        Raises:
            FlushError: some documents were not written; they stay pending with their
                changes. ``failures`` lists each id with CouchDB's error and reason.
            ConflictError: a ``"rebase"`` met changes on both sides of the same field with
                no merge rule (``paths``, ``base``, ``mine``, ``theirs``); its ``__cause__``
                is the :class:`FlushError` listing every failure of the flush.
            HookLimitError: receivers kept changing documents; nothing was sent.
            BackendUnavailable: the server did not answer; everything not confirmed stays
                pending, and flushing again is safe.
            SessionStateError: ``flush()`` was called by a receiver during this flush, or
                from a thread while another one works in the session.
        """
        self._check_open("flush it")
        if self.pending.flushing:
            msg = (
                "flush() called during this session's flush (from a signal receiver?); edits "
                "made by receivers go out with the running flush, so just make them"
            )
            raise SessionStateError(msg)
        guard = self.pending.guard
        entered = guard.enter("flushing")
        self.pending.flushing = True
        self._run = FlushRun(self, self.pending, self._traffic, progress)
        try:
            self.pending.hand_back(guard.take_foreign())
            return self._run.run()
        finally:
            self.pending.flushing = False
            self._run = None
            if entered:
                self.pending.hand_back(guard.leave())
