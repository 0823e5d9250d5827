"""One flush of a session, as an object: plan, send, apply the answers, resolve conflicts.

:meth:`Session.flush <couchmapper.orm.session.Session.flush>` makes a :class:`FlushRun` and
calls :meth:`FlushRun.run`: ``before_flush``, the hook rounds (:mod:`couchmapper.orm.notify`),
a plan made only from objects with pending work, one ``_bulk_docs`` request (or several:
``batch_size`` chunks, else :func:`chunks` by count and size), and the answers applied
document by document; conflicts are resolved by each document's policy with the sans-IO
helpers of :mod:`couchmapper.orm.merge`. Writes whose answer was lost are remembered as
:class:`Flight` records (:mod:`couchmapper.orm.flights`). The run holds what it has learnt
(written, failures, documents whose JSON a rebase merged); the session's tables change only
through its :class:`~couchmapper.orm.pending.PendingWork`.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from couchmapper import signals
from couchmapper._log import FLUSH, counts_conflicts, logged_flush
from couchmapper._types import ConflictPolicy, JSONDict, Obj
from couchmapper.exceptions import (
    BackendError,
    ConflictError,
    FlushError,
    FlushFailure,
    ValidationError,
)
from couchmapper.model.base import RawDocument, dump, load, restore, state_of
from couchmapper.model.versions import unsettled
from couchmapper.orm.attachments import AttachmentWork
from couchmapper.orm.branches import TOKEN_FIELD, edits, parse_leaves
from couchmapper.orm.conflicts import Resolver
from couchmapper.orm.encoding import chunks, encodable, read_only_failure
from couchmapper.orm.flights import after_lost_answer, remember_flight
from couchmapper.orm.merge import (
    WriteResult,
    changes_between,
    policy_for,
    rebase,
    results_in_order,
    rule_finder,
    without_meta,
)
from couchmapper.orm.notify import forget_new, run_hooks
from couchmapper.orm.pending import PendingWork
from couchmapper.orm.state import Lifecycle
from couchmapper.orm.stats import Traffic
from couchmapper.tracking import Change

if TYPE_CHECKING:
    from couchmapper.orm.session import Session

__all__ = ["FlushRun", "chunks", "has_changes", "keep_late"]

Progress = Callable[[int, int], None]

_RESOLVE_AGAIN = 5  # rounds a flush spends on losing leaves extended while it resolved them


class FlushRun:
    """One flush: what it planned, what came back, and what it still has to do.

    Attributes:
        written: the documents written so far.
        failures: the documents refused so far.
        merged: ids whose sent JSON differs from the object (a rebase merged it).
        rebases: how many conflict rounds ran.
        conflicts_since: when the first conflict came back (the rebase budget runs from it).
        expired: whether the rebase time budget (``rebase_timeout``) is spent.
        overlap: the first rebase that met changes on both sides of one field.
    """

    def __init__(
        self, session: Session, pending: PendingWork, traffic: Traffic, progress: Progress | None
    ) -> None:
        self.session = session
        self.pending = pending
        self.traffic = traffic
        self.progress = progress
        self.plan: dict[str, JSONDict] = {}
        self.written: list[WriteResult] = []
        self.written_at: dict[str, int] = {}  # doc id -> its result's index in ``written``
        self.failures: list[FlushFailure] = []
        self.merged: set[str] = set()
        self.rebases = 0
        self.overlap: ConflictError | None = None
        self.conflicts_since: float | None = None  # the rebase budget runs from here
        self.expired = False  # the rebase time budget is spent
        # Once the progress callback ran, objects may differ from what was planned for them.
        self.callback_ran = False
        self.attachments = AttachmentWork(session)  # inline, streamed, settled
        # The counted get, not a bound method of the run: no reference cycle.
        fetch = functools.partial(traffic.call, session.backend.get)
        self.resolver = Resolver(pending, fetch, rule_finder, session.unresolved)

    @logged_flush
    def run(self) -> list[WriteResult]:
        """Notify, plan, send, and apply the answers; raise what the flush failed with."""
        session = self.session
        try:
            signals.before_flush.send(session)
            run_hooks(session, self.pending)
            self.plan = self.make_plan()
        except Exception as exc:
            # Nothing was sent: no per-document failures.
            signals.flush_failed.send(session, failures=[], error=exc)
            raise
        self.traffic.flushes += 1
        if not self.plan and not self.failures:
            return []
        try:
            if self.plan:
                self.write()
            self.attachments.upload(self)
        except BackendError as exc:
            self.attachments.keep_pending(self)
            # No (usable) answer: what was not confirmed stays pending; report it per document.
            done = {r.doc_id for r in self.written} | {f.doc_id for f in self.failures}
            self.failures += [
                FlushFailure(doc_id, exc.error, exc.reason, exc)
                for doc_id in self.plan
                if doc_id not in done
            ]
            self._after_flush()
            signals.flush_failed.send(session, failures=self.failures, error=exc)
            raise
        self._after_flush()
        if self.failures:
            flush_error = FlushError(self.failures)
            error: Exception = flush_error
            if self.overlap is not None:
                self.overlap.__cause__ = flush_error
                error = self.overlap
            signals.flush_failed.send(session, failures=self.failures, error=error)
            raise error
        return self.written

    def _record(self, result: WriteResult) -> None:
        """Keep ``result``: one per document, the last (a resolution may write one twice)."""
        index = self.written_at.setdefault(result.doc_id, len(self.written))
        if index == len(self.written):
            self.written.append(result)
        else:
            self.written[index] = result

    def _after_flush(self) -> None:
        self.traffic.accepted += sum(1 for r in self.written if r.accepted)
        failed = [WriteResult(f.doc_id, None, f.error, f.reason) for f in self.failures]
        try:
            signals.after_flush.send(self.session, results=self.written + failed)
        except Exception as exc:
            # A receiver raised: flush_failed still comes before the exception leaves the flush.
            signals.flush_failed.send(self.session, failures=self.failures, error=exc)
            raise

    def make_plan(self) -> dict[str, JSONDict]:
        """The JSON to send, by document id (only objects with pending work are visited).

        A document that cannot be encoded (a value written around the checks: NaN, a wrong
        type) fails alone and stays pending (recorded in ``failures``); sending it would make
        CouchDB refuse the whole request.
        """
        pending = self.pending
        plan: dict[str, JSONDict] = {}

        def add(doc_id: str, obj: Obj) -> None:
            body = read_only_failure(doc_id, obj) or encodable(doc_id, obj)
            if isinstance(body, FlushFailure):
                self.failures.append(body)
            else:
                plan[doc_id] = body

        for doc_id, obj in list(pending.deleted.items()):
            state = state_of(obj)
            assert state is not None
            if state.rev is None and not state.flights and doc_id not in pending.replaced:
                # Created, then deleted while a flush ran that did not write it: nothing to do.
                self._forget_unwritten(doc_id, obj)
                continue
            refused = read_only_failure(doc_id, obj)
            if refused is not None:
                self.failures.append(refused)
                continue
            tombstone: JSONDict = {"_id": doc_id, "_deleted": True}
            if state.rev is not None:
                tombstone["_rev"] = state.rev
            plan[doc_id] = tombstone
        for doc_id, obj in pending.new.items():
            add(doc_id, obj)
        for doc_id, obj in list(pending.dirty.items()):
            if doc_id in plan or doc_id in pending.new:
                continue
            if has_changes(obj):
                add(doc_id, obj)
            elif doc_id not in pending.required:
                # Changed back to what was loaded: nothing to write. Reset the (empty) log so
                # the next change reports the object as dirty again.
                pending.forget(doc_id)
                state = state_of(obj)
                if state is not None:
                    state.reset()
        for doc_id, obj in pending.required.items():
            if doc_id not in plan and doc_id not in pending.new and doc_id not in pending.dirty:
                add(doc_id, obj)
        for doc_id, entry in pending.resolving.items():
            if doc_id not in plan:  # stored conflicts to resolve, with no edits of its own
                add(doc_id, entry.obj)
        self.attachments.prepare(plan, pending.held, self.failures)
        return plan

    def _forget_unwritten(self, doc_id: str, obj: Obj) -> None:
        """Drop a deleted document that was never written: it becomes transient again."""
        forget_new(self.pending, doc_id, obj)
        self.pending.forget_object(doc_id, obj)
        state = state_of(obj)
        if state is not None:
            state.session = None
            state.status = Lifecycle.TRANSIENT
            state.reset()

    def write(self) -> None:
        """Send the plan, then resolve conflicts by policy until nothing is left to send.

        Results and failures are recorded as they arrive, so the caller has them even when
        a later request raises.
        """
        to_send = self.plan
        while to_send:
            conflicts, written = self._send(to_send)
            again = self.resolver.settle(written)  # what this round wrote, not earlier ones
            if self.rebases >= _RESOLVE_AGAIN:
                # Leaves extended again and again: left stored, the next load resolves them.
                again = {}
            if not conflicts and not again:
                break
            to_send = self._after_conflicts(conflicts) if conflicts else {}
            to_send.update(again)
            self.rebases += 1

    def _send(self, to_send: dict[str, JSONDict]) -> tuple[list[str], set[str]]:
        """Send ``to_send``, apply the answers; the ids that met a conflict, and those written."""
        conflicts: list[str] = []
        written: set[str] = set()
        answered_ids: set[str] = set()
        resolver = self.resolver
        # Resolutions of stored conflicts: merged winners, losers' tombstones after each.
        docs = resolver.prepare(to_send, self.plan)
        try:
            for chunk, answered in self._send_bulk(docs):
                # Applied chunk by chunk: a failure in a later request keeps these.
                for sent, result in zip(chunk, answered, strict=True):
                    if resolver.record(sent, result.ok):
                        continue
                    answered_ids.add(result.doc_id)
                    if result.ok:
                        merged = result.doc_id in self.merged or result.doc_id in resolver.changed
                        planned = self._planned(result.doc_id)
                        self._record(self._written(result, sent, merged=merged, planned=planned))
                        written.add(result.doc_id)
                    elif result.error in ("conflict", "file_exists"):
                        conflicts.append(result.doc_id)
                    else:
                        self.failures.append(
                            FlushFailure(result.doc_id, result.error or "", result.reason or "")
                        )
        except BackendError as exc:
            if exc.status is None or exc.status >= 500:
                # No answer: the server may have applied the request. Remember what was
                # sent, so the next flush can recognise it (a rebase's merge especially).
                for doc_id, sent in to_send.items():
                    if doc_id not in answered_ids:
                        out = resolver.outgoing.get(doc_id, sent)  # stamped with its token
                        remember_flight(self.pending.held(doc_id), self.plan[doc_id], out)
            raise
        return conflicts, written

    @counts_conflicts
    def _after_conflicts(self, conflicts: list[str]) -> dict[str, JSONDict]:
        """Decide, for each conflicting document, what to send next (or record a failure)."""
        if self.conflicts_since is None:
            self.conflicts_since = time.monotonic()
        self.expired = self._back_off(conflicts, self.conflicts_since)
        current = self._fetch_current(conflicts)
        fetch = self._fetch
        to_send: dict[str, JSONDict] = {}
        for doc_id in conflicts:
            theirs = current.get(doc_id)
            planned = self.plan[doc_id]
            obj = self.pending.held(doc_id)
            if self._resolution_only(doc_id, obj, theirs):
                assert theirs is not None
                to_send[doc_id] = dict(theirs)  # resolved again on the current revision
                continue
            stored = self._stored_anyway(doc_id, obj, theirs)
            if stored is not None:
                FLUSH.debug("%s: a write answered 409 is stored in %s", doc_id, stored.rev)
            if stored is not None and stored.attempt == planned:
                result = WriteResult(doc_id, stored.rev, accepted=True)
                late = self._planned(doc_id)
                self._record(self._written(result, stored.body, merged=True, planned=late))
                continue
            if stored is not None:
                # An earlier attempt, with fewer of these edits, is stored: the rest goes on.
                resolved, error = self._resolve(
                    doc_id,
                    planned,
                    stored.body,
                    base=stored.attempt,
                    changes=changes_between(stored.attempt, planned),
                    own=stored.own,
                )
                if resolved is not None:
                    to_send[doc_id] = resolved
                    self.merged.add(doc_id)
                    continue
                assert error is not None
                self.failures.append(FlushFailure(doc_id, "conflict", error.reason, error))
                continue
            lost = after_lost_answer(obj, doc_id, planned, theirs, fetch)
            if lost is not None and lost.done is not None:
                assert lost.body is not None
                late = self._planned(doc_id)
                self._record(self._written(lost.done, lost.body, merged=True, planned=late))
                continue
            if lost is not None and lost.send is not None:
                to_send[doc_id] = lost.send
                self.merged.add(doc_id)
                continue
            if lost is None:
                resolved, error = self._resolve(doc_id, planned, theirs)
            else:
                resolved, error = self._resolve(
                    doc_id, planned, theirs, base=lost.base, changes=lost.changes, own=lost.own
                )
            if resolved is not None:
                to_send[doc_id] = resolved
                self.merged.add(doc_id)
                continue
            assert error is not None
            if error.paths and self.overlap is None:
                self.overlap = error
            self.failures.append(FlushFailure(doc_id, "conflict", error.reason, error))
        return to_send

    def _stored_anyway(
        self, doc_id: str, obj: Obj | None, theirs: JSONDict | None
    ) -> Stored | None:
        """Where an attempt at this write answered 409 is stored all the same, if it is.

        A cluster coordinator answers 409 when most copies refused a write, though one copy
        may have stored it: it comes back as a leaf (the winner or a stored conflict), or
        inside a revision that merged it, or was written on it (its ``cm_counted``). The
        attempts' ``cm_write`` tokens find it; rebasing it would apply the edits twice.
        """
        state = state_of(obj) if obj is not None else None
        attempts = list(state.attempts or ()) if state is not None else []
        if not attempts or theirs is None:
            return None

        def newest(body: JSONDict) -> int | None:
            """The index of the newest attempt ``body`` holds (attempts are oldest first)."""
            held = set(edits(body))
            return max((i for i, (t, _) in enumerate(attempts) if t in held), default=None)

        found = newest(theirs)
        if found is not None:
            token, attempt = attempts[found]
            own = theirs.get(TOKEN_FIELD) == token  # nobody wrote after it
            return Stored(str(theirs["_rev"]), dict(theirs), attempt, own)
        others = theirs.get("_conflicts")
        if not isinstance(others, list) or not others:
            return None
        for leaf in parse_leaves(self._fetch(doc_id, open_revs=[str(r) for r in others])):
            found = newest(leaf.body)
            if not leaf.deleted and found is not None and attempts[found][1] == self.plan[doc_id]:
                return Stored(leaf.rev, dict(leaf.body), attempts[found][1])
        return None

    def _resolution_only(self, doc_id: str, obj: Obj | None, theirs: JSONDict | None) -> bool:
        """A stored-conflict resolution with no edits met a conflict: take the current version.

        The object becomes the server's current version (as a refresh would) and the next
        round resolves its conflicts, if any are left, on it.
        """
        state = state_of(obj) if obj is not None else None
        if doc_id not in self.pending.resolving or theirs is None or state is None:
            return False
        if has_changes(obj) or doc_id in self.pending.required:
            return False
        restore(obj, theirs)
        state.rev = theirs["_rev"]
        state.loaded = dict(theirs)
        state.reset()
        return True

    def _back_off(self, conflicts: list[str], started: float) -> bool:
        """Wait before another attempt at conflicting writes; True once the time budget is spent.

        Writers that met each other would meet again if they all retried at once: each waits a
        random time up to ``rebase_delay * 2**rebases`` (at most ``rebase_max_delay``, and never
        past the budget), so the retries spread out ("full jitter"). No wait when every conflict
        is simply reported (policy ``"raise"``).
        """
        session = self.session
        left = session.rebase_timeout - (time.monotonic() - started)
        if left <= 0:
            return True
        held = self.pending.held
        if any(policy_for(held(doc_id), session.conflict) != "raise" for doc_id in conflicts):
            ceiling = min(session.rebase_max_delay, session.rebase_delay * 2**self.rebases, left)
            if ceiling > 0:
                time.sleep(random.uniform(0, ceiling))
        return False

    def _fetch(self, doc_id: str, **options: Any) -> JSONDict:
        fetched: JSONDict = self.traffic.call(self.session.backend.get, doc_id, **options)
        return fetched

    def _send_bulk(
        self, docs: list[JSONDict]
    ) -> Iterator[tuple[list[JSONDict], list[WriteResult]]]:
        """Send ``docs`` in one request (or several, see :func:`chunks`); yield each answer."""
        session = self.session
        bulk_docs = session.backend.bulk_docs
        done = 0
        limits = (session.max_request_docs, session.max_request_bytes)
        for chunk in chunks(docs, session.batch_size, *limits):
            answer = self.traffic.call(bulk_docs, chunk)
            yield chunk, results_in_order(chunk, answer)
            done += len(chunk)
            if self.progress is not None:
                self.callback_ran = True
                self.progress(done, len(docs))

    def _fetch_current(self, ids: list[str]) -> dict[str, JSONDict | None]:
        """The server's current version of each document (None when deleted or missing)."""
        all_docs = self.session.backend.all_docs
        answer = self.traffic.call(all_docs, keys=ids, include_docs=True, conflicts=True)
        current: dict[str, JSONDict | None] = {}
        for row in answer.get("rows", ()):
            key = row.get("key")
            if isinstance(key, str):
                doc = row.get("doc")
                current[key] = doc if isinstance(doc, dict) else None
        return current

    def _resolve(
        self,
        doc_id: str,
        sent: JSONDict,
        theirs: JSONDict | None,
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
        obj = self.pending.held(doc_id)
        state = state_of(obj) if obj is not None else None
        policy = "rebase" if own else policy_for(obj, self.session.conflict)
        rev = sent.get("_rev")
        if state is None or policy == "raise":
            return None, ConflictError(doc_id, rev)
        refusal = self._refusal(doc_id, sent, theirs, policy, state, lost=base is not None)
        if refusal is not None:
            return None, ConflictError(doc_id, rev, refusal)
        if policy == "overwrite":
            again = dict(sent)
            if theirs is not None:
                again["_rev"] = theirs["_rev"]
            else:
                again.pop("_rev", None)  # deleted on the server: write over the tombstone
            return again, None
        assert theirs is not None
        # Fields missing from stored JSON load as their defaults: compare like with like, or a
        # default that another session merely wrote out would look like a change of theirs.
        base = _normalized(obj, base if base is not None else state.loaded or {})
        theirs = _normalized(obj, theirs)
        mine = state.changes if changes is None else changes
        if state.upgraded_from is not None:
            mine = unsettled(base, mine)
        outcome = self.attachments.rebase(
            doc_id, base=base, sent=sent, changes=mine, theirs=theirs, rule_for=rule_finder(obj)
        )
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

    def _refusal(
        self,
        doc_id: str,
        sent: JSONDict,
        theirs: JSONDict | None,
        policy: ConflictPolicy,
        state: Any,
        *,
        lost: bool,
    ) -> str | None:
        """Why ``policy`` cannot resolve this conflict (None when it can)."""
        if doc_id in self.pending.required and not state.has_changes:
            return (
                "Document update conflict: changed on the server since this session read it "
                "(require_current)."
            )
        max_rebase = self.session.max_rebase
        if max_rebase is not None and self.rebases >= max_rebase:
            return (
                f"Document update conflict: still conflicting after {max_rebase} "
                f"{policy} attempt(s) (raise max_rebase to allow more)."
            )
        if self.expired:
            timeout = self.session.rebase_timeout
            return (
                f"Document update conflict: still conflicting after {self.rebases} {policy} "
                f"attempt(s) in {timeout:g} s (raise rebase_timeout to allow more)."
            )
        if policy == "overwrite":
            return None
        if theirs is None:
            return "Document update conflict: deleted on the server."
        if sent.get("_deleted"):
            return (
                "Document update conflict: deleted in this session but changed on the server; "
                "refresh() and delete again, or use conflict='overwrite'."
            )
        if not lost and doc_id in self.pending.replaced:
            return (
                "Document update conflict: deleted and created again in this session, but "
                "changed on the server meanwhile; refresh() the stored document first, or use "
                "conflict='overwrite'."
            )
        if not lost and (state.loaded is None or state.status is Lifecycle.PENDING):
            return (
                "Document update conflict: created in this session, but the server has "
                "another version; choose an unused id, or use conflict='overwrite'."
            )
        return None

    def _planned(self, doc_id: str) -> JSONDict | None:
        """The JSON planned for ``doc_id`` if its object may have changed since, else None.

        User code may have changed it: the progress callback, or another thread (refused, but
        what its edits did is kept: :mod:`couchmapper.orm.guard`).
        """
        guard = self.pending.guard
        late = self.callback_ran or guard.foreign or guard.intruded
        return self.plan.get(doc_id) if late else None

    def _written(
        self,
        result: WriteResult,
        sent: JSONDict,
        *,
        merged: bool,
        planned: JSONDict | None = None,
    ) -> WriteResult:
        """A document was written: record its new rev and loaded state; returns ``result``.

        ``merged``: ``sent`` is a rebase of the object's JSON on the server's version, so the
        object takes the merged values. ``planned``: the JSON the flush planned for the object,
        given when user code ran since; edits made after it stay pending (:func:`keep_late`).
        """
        doc_id = result.doc_id
        obj = self.pending.held(doc_id)
        state = state_of(obj) if obj is not None else None
        if state is None:
            return result
        if planned is not None and not sent.get("_deleted"):
            if state.status is Lifecycle.DELETED:
                # Deleted after the update was planned: the deletion stays pending, on the new rev.
                state.rev = result.rev
                state.loaded = {**sent, "_rev": result.rev}
                self.pending.keep_deletion(doc_id)
                return result
            now = dump(obj)
            if without_meta(now) != without_meta(planned):
                self._written(result, sent, merged=merged)
                keep_late(obj, planned, now)
                return result
        state.flights = None
        if sent.get("_deleted"):
            # Gone from the database: adding the object again creates the document anew.
            self.pending.forget_object(doc_id, obj)
            state.status = Lifecycle.DETACHED
            state.session = None
            state.rev = None
            state.loaded = None
            state.reset()
            return result
        self.pending.forget(doc_id)
        stored = sent  # built by this flush and copied by the backend: kept as the loaded state
        stored["_rev"] = result.rev
        self.attachments.settle(obj, stored, str(result.rev))
        if merged:
            restore(obj, stored)
        state.rev = result.rev
        state.loaded = stored
        state.reset()
        state.require_rev = False
        state.status = Lifecycle.PERSISTENT
        return result


@attrs.frozen
class Stored:
    """A write answered 409 that is stored all the same (:meth:`FlushRun._stored_anyway`).

    Attributes:
        rev: the revision holding it.
        body: that revision's JSON.
        attempt: the JSON the stored attempt was planned as (the flush's plan: all of it).
        own: ``rev`` is that attempt itself: nobody wrote after it.
    """

    rev: str
    body: JSONDict
    attempt: JSONDict
    own: bool = False


def keep_late(obj: Obj, planned: JSONDict, now: JSONDict) -> None:
    """Keep pending the edits made to ``obj`` after its JSON was planned (just written).

    The edits (``planned`` to ``now``) are re-applied on what was stored the way a rebase
    re-applies them on another writer's version (merge rules included: a counter bumped
    meanwhile adds up), and recorded as the object's changes since the write.
    """
    state = state_of(obj)
    assert state is not None and state.loaded is not None
    stored = state.loaded
    base, mine = without_meta(planned), without_meta(now)
    outcome = rebase(
        base, mine, changes_between(base, mine), without_meta(stored), rule_finder(obj)
    )
    # Both the late edit and the merge changed one field without a rule: the later edit wins.
    target = outcome.document if outcome.document is not None else mine
    if target != mine:
        restore(obj, {**target, "_id": stored["_id"], "_rev": stored["_rev"]})
    for change in changes_between(without_meta(stored), target):
        state.record(change)


def has_changes(obj: Obj) -> bool:
    """Whether a flush has to write ``obj``: changes, a revision check, or an unanswered write.

    With an unanswered write even a document changed back must be written: the server may
    hold that write.
    """
    state = state_of(obj)
    return state is not None and (state.has_changes or state.require_rev or bool(state.flights))


def _normalized(obj: Obj, raw: JSONDict) -> JSONDict:
    """``raw`` as this object's class writes it (defaults filled in); ``raw`` if it can't."""
    if isinstance(obj, RawDocument):
        return raw
    try:
        return dump(load(type(obj), dict(raw)))
    except (ValidationError, TypeError, ValueError):
        return raw
