"""One flush of a session: plan, send, apply the per-document answers, resolve conflicts.

The session's :meth:`~couchmapper.session.Session.flush` runs :func:`run_flush`: hook rounds
(:mod:`couchmapper._hooks`), then a plan made only from objects with pending work, one
``_bulk_docs`` request (or ``batch_size`` chunks), and the answers applied document by
document; conflicts are resolved by the document's policy with the sans-IO helpers of
:mod:`couchmapper.unitofwork`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from couchmapper import signals
from couchmapper._hooks import run_hooks
from couchmapper.backends.base import JSONDict
from couchmapper.conversion import model_info
from couchmapper.document import RawDocument, dump, load, state_of
from couchmapper.exceptions import (
    BackendError,
    ConflictError,
    FlushError,
    FlushFailure,
    NotFoundError,
    ValidationError,
)
from couchmapper.state import Lifecycle
from couchmapper.tracking import Change, PathKey
from couchmapper.unitofwork import (
    ConflictPolicy,
    WriteResult,
    changes_between,
    landed,
    rebase,
    results_in_order,
    without_meta,
)

if TYPE_CHECKING:
    from couchmapper.session import Session

__all__ = ["has_changes", "restore", "run_flush"]

Obj = Any  # a Document or a RawDocument


def run_flush(session: Session, progress: Callable[[int, int], None] | None) -> list[WriteResult]:
    try:
        signals.before_flush.send(session)
        run_hooks(session)
        plan = _plan(session)
    except Exception as exc:
        # Nothing was sent: no per-document failures.
        signals.flush_failed.send(session, failures=[], error=exc)
        raise
    session._flushes += 1
    if not plan:
        return []
    written: list[WriteResult] = []
    failures: list[FlushFailure] = []
    try:
        overlap = _write(session, plan, progress, written, failures)
    except BackendError as exc:
        # No (usable) answer: what was not confirmed stays pending; report it per document.
        done = {r.doc_id for r in written} | {f.doc_id for f in failures}
        failures += [
            FlushFailure(doc_id, exc.error, exc.reason, exc)
            for doc_id in plan
            if doc_id not in done
        ]
        _after_flush(session, written, failures)
        signals.flush_failed.send(session, failures=failures, error=exc)
        raise
    _after_flush(session, written, failures)
    if failures:
        flush_error = FlushError(failures)
        error: Exception = flush_error
        if overlap is not None:
            overlap.__cause__ = flush_error
            error = overlap
        signals.flush_failed.send(session, failures=failures, error=error)
        raise error
    return written


def _after_flush(
    session: Session, written: list[WriteResult], failures: list[FlushFailure]
) -> None:
    session._accepted += sum(1 for r in written if r.accepted)
    failed = [WriteResult(f.doc_id, None, f.error, f.reason) for f in failures]
    try:
        signals.after_flush.send(session, results=written + failed)
    except Exception as exc:
        # A receiver raised: flush_failed still comes before the exception leaves the flush.
        signals.flush_failed.send(session, failures=failures, error=exc)
        raise


def _plan(session: Session) -> dict[str, JSONDict]:
    """The JSON to send, by document id (only objects with pending work are visited)."""
    plan: dict[str, JSONDict] = {}
    for doc_id, obj in session._deleted.items():
        state = state_of(obj)
        assert state is not None
        tombstone: JSONDict = {"_id": doc_id, "_deleted": True}
        if state.rev is not None:
            tombstone["_rev"] = state.rev
        plan[doc_id] = tombstone
    for doc_id, obj in session._new.items():
        plan[doc_id] = dump(obj)
    for doc_id, obj in list(session._dirty.items()):
        if doc_id in plan:
            continue
        if has_changes(obj):
            plan[doc_id] = dump(obj)
        elif doc_id not in session._required:
            # Changed back to what was loaded: nothing to write. Reset the (empty) log so
            # the next change reports the object as dirty again.
            del session._dirty[doc_id]
            session._notices.pop(doc_id, None)
            session._unnotified.pop(doc_id, None)
            state = state_of(obj)
            if state is not None:
                state.reset()
    for doc_id, obj in session._required.items():
        if doc_id not in plan:
            plan[doc_id] = dump(obj)
    return plan


def _write(
    session: Session,
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
            for chunk, answered in _send_bulk(session, list(pending.values()), progress):
                # Applied chunk by chunk: a failure in a later request keeps these.
                for sent, result in zip(chunk, answered, strict=True):
                    answered_ids.add(result.doc_id)
                    if result.ok:
                        obj_merged = result.doc_id in merged
                        written.append(_written(session, result, sent, merged=obj_merged))
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
                        _remember_flight(session, doc_id, plan[doc_id], sent)
            raise
        if not conflicts:
            break
        current = _fetch_current(session, list(conflicts))
        pending = {}
        for doc_id, (_sent, _answer) in conflicts.items():
            theirs = current.get(doc_id)
            base: JSONDict | None = None
            since: list[Change] | None = None
            own = False
            lost = _after_lost_answer(session, doc_id, plan[doc_id], theirs)
            if lost is not None and lost.done is not None:
                assert lost.body is not None
                written.append(_written(session, lost.done, lost.body, merged=True))
                continue
            if lost is not None and lost.send is not None:
                pending[doc_id] = lost.send
                merged.add(doc_id)
                continue
            if lost is not None:
                base, since, own = lost.base, lost.changes, lost.own
            resolved, error = _resolve(
                session, doc_id, plan[doc_id], theirs, rebases, base=base, changes=since, own=own
            )
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


@attrs.frozen
class Flight:
    """A write whose request got no answer: it may or may not be on the server.

    Attributes:
        planned: the document as this session wanted it then (the object's JSON).
        sent: what was sent (``planned``, or a rebase of it on the server's version).
    """

    planned: JSONDict
    sent: JSONDict


def _remember_flight(session: Session, doc_id: str, planned: JSONDict, sent: JSONDict) -> None:
    """Keep an unanswered write on the object's state until the object is written."""
    obj = session._held(doc_id)
    state = state_of(obj) if obj is not None else None
    if state is None:
        return
    flights = list(state.flights or ())
    if Flight(planned, sent) not in flights:
        flights.append(Flight(planned, sent))
    state.flights = flights


def _after_lost_answer(
    session: Session, doc_id: str, planned: JSONDict, theirs: JSONDict | None
) -> _LostAnswer | None:
    """Handle a conflict on a document with unanswered writes (kept on its state).

    None when none of them is on the server (an ordinary conflict). Otherwise what to do now
    that one is known to be stored: nothing is consumed until the object is written, so a
    retry that fails again starts from the same facts.
    """
    obj = session._held(doc_id)
    state = state_of(obj) if obj is not None else None
    if state is None or not state.flights:
        return None
    found: tuple[Flight, str | None] | None = None
    for flight in reversed(state.flights):
        if flight.sent.get("_deleted"):
            if theirs is None:  # the tombstone is there (or someone else deleted it)
                found = (flight, None)
                break
            continue
        rev = _landed_revision(session, doc_id, flight.sent)
        if rev is not None:
            found = (flight, rev)
            break
    if found is None:
        return None
    flight, landed_rev = found
    if flight.sent.get("_deleted"):
        if planned.get("_deleted"):
            return _LostAnswer(done=WriteResult(doc_id, None), body=flight.sent)
        # Deleted (that landed), then created again: a create over the tombstone.
        return _LostAnswer(send={k: v for k, v in planned.items() if k != "_rev"})
    if theirs is None:
        return None  # deleted by another writer since: the policy decides
    if planned.get("_deleted"):
        if theirs["_rev"] == landed_rev:  # deleting our own landed write
            return _LostAnswer(send={"_id": doc_id, "_rev": landed_rev, "_deleted": True})
        return None  # changed by another writer since: the policy decides
    # The server holds that write plus whatever was written after it. What is left to send
    # are this session's edits since the write was planned (never the ones it carried).
    since = changes_between(flight.planned, planned)
    if not since:
        return _LostAnswer(done=WriteResult(doc_id, theirs["_rev"]), body=theirs)
    return _LostAnswer(base=flight.planned, changes=since, own=theirs["_rev"] == landed_rev)


@attrs.frozen
class _LostAnswer:
    """What to do about a document whose earlier write landed although its answer was lost.

    Exactly one of: ``done`` (written; the object takes ``body``), ``send`` (this JSON goes
    out next), or ``base``/``changes`` (re-apply these edits on the server's version, by the
    conflict policy; ``own``: nobody else wrote since, so it is no conflict at all).
    """

    done: WriteResult | None = None
    body: JSONDict | None = None
    send: JSONDict | None = None
    base: JSONDict | None = None
    changes: list[Change] | None = None
    own: bool = False


def _landed_revision(session: Session, doc_id: str, sent: JSONDict) -> str | None:
    """The revision ``sent`` became on the server, if the document's history shows it.

    The child of the revision ``sent`` named (or the first revision, for a create) must hold
    exactly ``sent``: another writer storing equal content elsewhere in the history does not
    count.
    """
    try:
        current = session._call(session.backend.get, doc_id, revs=True)
    except NotFoundError:
        return None
    info = current.get("_revisions") or {}
    start, ids = info.get("start"), info.get("ids")
    if not isinstance(start, int) or not isinstance(ids, list) or not ids:
        return None
    history = [f"{start - index}-{rev_id}" for index, rev_id in enumerate(ids)]  # newest first
    parent = sent.get("_rev")
    if parent is None:
        candidate = history[-1] if history[-1].startswith("1-") else current["_rev"]
    elif parent in history and history.index(parent) > 0:
        candidate = history[history.index(parent) - 1]
    else:
        return None
    if candidate == current["_rev"]:
        body = current
    else:
        try:
            body = session._call(session.backend.get, doc_id, rev=candidate)
        except NotFoundError:
            return None  # compacted away: cannot tell
    return candidate if landed(sent, body) else None


def _send_bulk(
    session: Session, docs: list[JSONDict], progress: Callable[[int, int], None] | None
) -> Iterator[tuple[list[JSONDict], list[WriteResult]]]:
    """Send ``docs`` in one request (or ``batch_size`` chunks); yield each answer."""
    size = session.batch_size or len(docs) or 1
    for start in range(0, len(docs), size):
        chunk = docs[start : start + size]
        answer = session._call(session.backend.bulk_docs, chunk)
        yield chunk, results_in_order(chunk, answer)
        if progress is not None:
            progress(min(start + size, len(docs)), len(docs))


def _fetch_current(session: Session, ids: list[str]) -> dict[str, JSONDict | None]:
    """The server's current version of each document (None when deleted or missing)."""
    answer = session._call(session.backend.all_docs, keys=ids, include_docs=True)
    current: dict[str, JSONDict | None] = {}
    for row in answer.get("rows", ()):
        key = row.get("key")
        if isinstance(key, str):
            doc = row.get("doc")
            current[key] = doc if isinstance(doc, dict) else None
    return current


def _resolve(
    session: Session,
    doc_id: str,
    sent: JSONDict,
    theirs: JSONDict | None,
    rebases: int,
    *,
    base: JSONDict | None = None,
    changes: Sequence[Change] | None = None,
    own: bool = False,
) -> tuple[JSONDict | None, ConflictError | None]:
    """Decide what to send after a conflict, by the document's conflict policy.

    ``sent`` is the JSON this session planned for the document (base plus its changes).
    ``base`` and ``changes`` replace the loaded state and the change log when an earlier
    write of this session landed although its answer was lost: only the edits made since
    are re-applied. ``own``: nobody wrote after that write, so they are re-applied whatever
    the policy.
    """
    obj = session._held(doc_id)
    state = state_of(obj) if obj is not None else None
    policy = _policy_for(obj, session.conflict)
    rev = sent.get("_rev")

    def refuse(reason: str) -> tuple[None, ConflictError]:
        return None, ConflictError(doc_id, rev, reason)

    if own:
        policy = "rebase"
    if state is None or policy == "raise":
        return None, ConflictError(doc_id, rev)
    if doc_id in session._required and not state.has_changes:
        return refuse(
            "Document update conflict: changed on the server since this session read it "
            "(require_current)."
        )
    if rebases >= session.max_rebase:
        return refuse(
            f"Document update conflict: still conflicting after {session.max_rebase} "
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
    if base is None and doc_id in session._replaced:
        return refuse(
            "Document update conflict: deleted and created again in this session, but "
            "changed on the server meanwhile; refresh() the stored document first, or use "
            "conflict='overwrite'."
        )
    if base is None and (state.loaded is None or state.status is Lifecycle.PENDING):
        return refuse(
            "Document update conflict: created in this session, but the server has "
            "another version; choose an unused id, or use conflict='overwrite'."
        )
    # Fields missing from stored JSON load as their defaults: compare like with like, or a
    # default that another session merely wrote out would look like a change of theirs.
    base = _normalized(obj, base if base is not None else state.loaded or {})
    theirs = _normalized(obj, theirs)
    mine = state.changes if changes is None else changes
    outcome = rebase(base, sent, mine, theirs, _rule_finder(obj))
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


def _written(session: Session, result: WriteResult, sent: JSONDict, *, merged: bool) -> WriteResult:
    """A document was written: record its new rev and loaded state; returns ``result``.

    ``merged``: ``sent`` is a rebase of the object's JSON on the server's version, so the
    object takes the merged values.
    """
    doc_id = result.doc_id
    obj = session._held(doc_id)
    state = state_of(obj) if obj is not None else None
    if state is None:
        return result
    session._notices.pop(doc_id, None)
    session._unnotified.pop(doc_id, None)
    state.flights = None
    session._replaced.pop(doc_id, None)
    for table in (session._new, session._dirty, session._deleted, session._required):
        table.pop(doc_id, None)
    if sent.get("_deleted"):
        # Gone from the database: adding the object again creates the document anew.
        state.status = Lifecycle.DETACHED
        state.session = None
        state.rev = None
        state.loaded = None
        state.reset()
        session._identity.discard(doc_id, obj)
        return result
    stored = sent  # built by this flush and copied by the backend: kept as the loaded state
    stored["_rev"] = result.rev
    if merged:
        restore(obj, stored)
    state.rev = result.rev
    state.loaded = stored
    state.reset()
    state.require_rev = False
    state.status = Lifecycle.PERSISTENT
    return result


def has_changes(obj: Obj) -> bool:
    """Whether a flush has to write ``obj``: changes, a revision check, or an unanswered write.

    With an unanswered write even a document changed back must be written: the server may
    hold that write.
    """
    state = state_of(obj)
    return state is not None and (state.has_changes or state.require_rev or bool(state.flights))


def restore(obj: Obj, raw: Mapping[str, Any]) -> None:
    """Put the fields of ``raw`` into ``obj`` in place, without recording changes."""
    if isinstance(obj, RawDocument):
        dict.clear(obj)
        fresh = RawDocument(without_meta(raw))
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
        """The outermost field on ``path`` with a merge rule, walking embedded objects."""
        if info is None:
            return None
        node: Any = obj
        for depth, key in enumerate(path):
            if isinstance(key, int) or model_info(type(node)) is None:
                return None  # inside a list or raw JSON: no declared fields below here
            descriptor = type(node).__dict__.get(key) or getattr(type(node), key, None)
            merge = getattr(getattr(descriptor, "options", None), "merge", None)
            if merge is not None:
                return (path[: depth + 1], merge)
            node = node.__dict__.get(key)
            if node is None:
                return None
        return None

    return find
