"""One flush of a session: plan, send, apply the per-document answers, resolve conflicts.

The session's :meth:`~couchmapper.session.Session.flush` runs :func:`run_flush`: hook rounds
(:mod:`couchmapper._hooks`), then a plan made only from objects with pending work, one
``_bulk_docs`` request (or ``batch_size`` chunks), and the answers applied document by
document; conflicts are resolved by the document's policy with the sans-IO helpers of
:mod:`couchmapper.unitofwork`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

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
    ValidationError,
)
from couchmapper.state import Lifecycle
from couchmapper.tracking import PathKey
from couchmapper.unitofwork import ConflictPolicy, WriteResult, landed, rebase, results_in_order

if TYPE_CHECKING:
    from couchmapper.session import Session

__all__ = ["has_changes", "restore", "run_flush", "without_meta"]

Obj = Any  # a Document or a RawDocument


def run_flush(session: Session, progress: Callable[[int, int], None] | None) -> list[WriteResult]:
    signals.before_flush.send(session)
    try:
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
    failed = [WriteResult(f.doc_id, None, f.error, f.reason) for f in failures]
    signals.after_flush.send(session, results=written + failed)


def _plan(session: Session) -> dict[str, JSONDict]:
    """The JSON to send, by document id (only objects with pending work are visited)."""
    plan: dict[str, JSONDict] = {}
    for doc_id, obj in session._deleted.items():
        state = state_of(obj)
        assert state is not None
        plan[doc_id] = {"_id": doc_id, "_rev": state.rev, "_deleted": True}
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
                        session._in_flight[doc_id] = (plan[doc_id], sent)
            raise
        if not conflicts:
            break
        current = _fetch_current(session, list(conflicts))
        pending = {}
        for doc_id, (sent, _answer) in conflicts.items():
            theirs = current.get(doc_id)
            if landed(sent, theirs):
                # An earlier attempt (whose answer was lost) already wrote exactly this.
                rev = theirs.get("_rev") if theirs is not None else sent.get("_rev")
                landed_result = WriteResult(doc_id, rev)
                written.append(_written(session, landed_result, sent, merged=doc_id in merged))
                continue
            flight = session._in_flight.get(doc_id)
            if flight is not None and theirs is not None and landed(flight[1], theirs):
                # A flush whose answer was lost wrote this (maybe a rebase's merge).
                if flight[0] == plan[doc_id]:
                    landed_result = WriteResult(doc_id, theirs.get("_rev"))
                    written.append(_written(session, landed_result, flight[1], merged=True))
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
            resolved, error = _resolve(session, doc_id, plan[doc_id], theirs, rebases)
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
    session: Session, doc_id: str, sent: JSONDict, theirs: JSONDict | None, rebases: int
) -> tuple[JSONDict | None, ConflictError | None]:
    """Decide what to send after a conflict, by the document's conflict policy.

    ``sent`` is the JSON this session planned for the document (base plus its changes).
    """
    obj = session._held(doc_id)
    state = state_of(obj) if obj is not None else None
    policy = _policy_for(obj, session.conflict)
    rev = sent.get("_rev")

    def refuse(reason: str) -> tuple[None, ConflictError]:
        return None, ConflictError(doc_id, rev, reason)

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
    session._in_flight.pop(doc_id, None)
    for table in (session._new, session._dirty, session._deleted, session._required):
        table.pop(doc_id, None)
    if sent.get("_deleted"):
        state.status = Lifecycle.DETACHED
        state.session = None
        state.rev = result.rev
        state.reset()
        if session._identity.get(doc_id) is obj:
            del session._identity[doc_id]
        return result
    stored = dict(sent)
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
    state = state_of(obj)
    return state is not None and (state.has_changes or state.require_rev)


def without_meta(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The body of a stored document: everything but ``_id`` and ``_rev``."""
    return {k: v for k, v in raw.items() if k not in ("_id", "_rev")}


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
        if info is None or not path or not isinstance(path[0], str):
            return None
        descriptor = getattr(type(obj), path[0], None)
        options = getattr(descriptor, "options", None)
        merge = getattr(options, "merge", None)
        return ((path[0],), merge) if merge is not None else None

    return find
