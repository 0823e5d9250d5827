"""Stored conflicts: seen on load, resolved with the classes' merge rules in a flush.

CouchDB keeps every leaf revision that replication, a cluster or ``new_edits=false`` brings
in, picks one as the winner and lists the others in ``_conflicts``. Every load path asks
for them (``conflicts=true``); :func:`conflicts` reads them from a loaded document.

A document marked for resolution (``Meta.resolve`` when it is loaded, or
``Session.resolve``) is resolved by the next flush: :class:`Resolver` reads its leaves
(``open_revs=all&revs=true``) and the bodies of their common ancestors (one
``open_revs=[...]`` request), merges every losing leaf into the revision the session holds,
and sends the merged document and a deletion of every losing leaf in the flush's one
``_bulk_docs``.

Write tokens: documents of a class with a non-idempotent merge rule (``"sum"`` or a
callable, see :func:`needs_token`) carry :data:`TOKEN_FIELD`, a value unique to each set of
pending edits and kept by every attempt at writing them. Two writers that make the same edit
on the same revision would otherwise send identical bodies, get the same revision id from
CouchDB, and one edit would vanish while both are told it was written; with the token they
make two leaves, a stored conflict that a resolution adds up. Each write also carries
:data:`COUNTED_FIELD`, the tokens of the recent writes whose edits it holds (its ancestors',
its own earlier attempts', the leaves a resolution merged), so an attempt that a cluster
refused but one copy stored is recognised when it surfaces, by the writer and by a
resolution, and counted once. A resolution write also lists the leaves it merged in
:data:`MERGED_FIELD` (docs/conflicts.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from couchmapper import signals
from couchmapper._log import FLUSH
from couchmapper._types import JSONDict, Obj
from couchmapper.exceptions import ConflictError, NotFoundError, ValidationError
from couchmapper.model.base import dump, restore, state_of
from couchmapper.model.registry import model_info
from couchmapper.orm.branches import (
    COUNTED_FIELD,
    MERGED_FIELD,
    TOKEN_FIELD,
    Leaf,
    RuleFor,
    edits,
    ledger,
    merge_plan,
    new_edits,
    parse_leaves,
    plain,
    three_way,
    winner,
)
from couchmapper.orm.notify import send

__all__ = [
    "Resolver",
    "Resolving",
    "conflicts",
    "found_conflicts",
    "mark_resolving",
    "needs_token",
    "stamp",
]

Fetch = Callable[..., Any]  # the backend's get, counted: (doc_id, **options) -> JSON


def conflicts(doc: Obj) -> list[str]:
    """The losing revisions of a loaded document (``_conflicts``); empty when there are none.

    The list is what CouchDB answered when the document was loaded (or last written by this
    session: a resolution write clears it).
    """
    state = state_of(doc)
    loaded = state.loaded if state is not None else None
    found = loaded.get("_conflicts") if loaded is not None else None
    return [str(rev) for rev in found] if isinstance(found, list) else []


def needs_token(obj: Obj) -> bool:
    """Whether ``obj``'s class has a non-idempotent merge rule (``"sum"`` or a callable)."""
    cls = type(obj)
    found = _TOKEN_CLASSES.get(cls)
    if found is None:
        found = _TOKEN_CLASSES[cls] = _needs_token(cls, set())
    return found


_TOKEN_CLASSES: dict[type, bool] = {}


def _needs_token(cls: type, seen: set[type]) -> bool:
    info = model_info(cls)
    if info is None or cls in seen:
        return False
    seen.add(cls)
    if any(rule != "union" for rule in info.merge_rules.values()):
        return True
    nested = [t for _, t, _ in info.fields() if isinstance(t, type)]
    return any(_needs_token(t, seen) for t in nested)


@attrs.define
class Resolving:
    """A document the next flush resolves, and how.

    Attributes:
        obj: the document object.
        how: ``"merge"``, ``"winner"`` or a callable ``(base, winner, losers) -> merged``.
        merged: the merged document given to ``Session.resolve`` (used instead of ``how``).
        owed: losing leaves this session deleted whose merged winner was not written (its
            write met a conflict): merged into the next attempt, never lost.
    """

    obj: Obj
    how: str | Callable[..., Any]
    merged: JSONDict | None = None
    owed: list[tuple[Leaf, JSONDict | None]] = attrs.field(factory=list)


@attrs.define
class _Sent:
    """What one resolution sent for a document (for settling after the answers)."""

    doc_id: str
    branches: list[tuple[Leaf, JSONDict | None]]
    deletion: bool = False  # the document itself is deleted: every leaf goes
    tombstones: dict[int, Leaf] = attrs.field(factory=dict)  # id(sent JSON) -> loser
    failed: list[Leaf] = attrs.field(factory=list)
    deleted: list[Leaf] = attrs.field(factory=list)


class Resolver:
    """The resolution step of one flush (used by :class:`~couchmapper.orm.flush.FlushRun`).

    Args:
        pending: the session's pending work (its ``resolving`` table).
        fetch: the counted backend ``get``.
        rule_finder: a document object -> its merge-rule lookup.
        unresolved: where conflicts that cannot be merged are reported (doc id -> error).
    """

    def __init__(
        self,
        pending: Any,
        fetch: Fetch,
        rule_finder: Callable[[Obj], RuleFor],
        unresolved: dict[str, ConflictError],
    ) -> None:
        self.pending = pending
        self.fetch = fetch
        self.rule_finder = rule_finder
        self.unresolved = unresolved
        self.sent: dict[str, _Sent] = {}
        self.outgoing: dict[str, JSONDict] = {}  # doc id -> the JSON sent for it this round
        self.changed: set[str] = set()  # ids whose sent JSON is a merge (objects take it)

    def prepare(
        self, to_send: Mapping[str, JSONDict], plan: Mapping[str, JSONDict]
    ) -> list[JSONDict]:
        """The documents to send for ``to_send``: resolved, stamped, tombstones after each.

        ``plan``: the JSON the flush planned for each document (the edits a token stands for).

        A document held only for a resolution that finds nothing left to resolve (another
        session did it) is not written at all.
        """
        self.sent, self.outgoing = {}, {}
        out: list[JSONDict] = []
        for doc_id, body in to_send.items():
            obj = self.pending.held(doc_id)
            entry = self.pending.resolving.get(doc_id)
            if entry is not None and body.get("_deleted"):
                out += self._delete_all(doc_id, body)
                continue
            if entry is not None:
                docs = self._resolve(doc_id, body, entry, plan.get(doc_id, body))
                if docs is not None:
                    out += docs
                    if docs:
                        self.outgoing[doc_id] = docs[0]
                    continue
            self.outgoing[doc_id] = stamp(body, obj, plan.get(doc_id, body))
            out.append(self.outgoing[doc_id])
        return out

    def _resolve(
        self, doc_id: str, body: JSONDict, entry: Resolving, planned: JSONDict
    ) -> list[JSONDict] | None:
        """The merged winner and the losers' tombstones (None: send ``body`` as it is)."""
        leaves = self._leaves(doc_id, revs=True)
        live = [leaf for leaf in leaves if not leaf.deleted]
        target = next((leaf for leaf in live if leaf.rev == body.get("_rev")), None)
        if target is None and self._nothing_else(doc_id, entry.obj):
            # Written since it was loaded, and nothing of ours to keep: take the winner.
            target = winner(live)
            if target is None:
                return None
            _refreshed(entry.obj, target.body)
            body = dict(target.body)
        if target is None:
            # Written since it was loaded: the write meets a conflict, the rebase brings the
            # current revision, and the next round resolves on it.
            return None
        obj = entry.obj
        state = state_of(obj)
        pure = entry.merged is None and not (state is not None and state.has_changes)
        token = ""
        earlier: list[str] = []
        if needs_token(obj) and not pure and state is not None:
            token, earlier = state.write_token(planned)
        # The edits the result holds already: the target's, and this session's own (an
        # attempt of them a cluster refused may be stored as one of the losers).
        counted = {*edits(target.body), *earlier, *([token] if token else [])}
        merged_revs = _merged_by(target.body)
        rule_for = self.rule_finder(entry.obj)
        owed = self._owed(doc_id, entry, merged_revs, counted, rule_for, live=live)
        losers = [leaf for leaf in live if leaf is not target]
        if not losers and not owed:
            self.unresolved.pop(doc_id, None)
            if self._nothing_else(doc_id, entry.obj):
                self.pending.forget(doc_id)
                state = state_of(entry.obj)
                if state is not None and state.loaded is not None:
                    state.loaded = {k: v for k, v in state.loaded.items() if k != "_conflicts"}
                return []
            return None
        branches = owed + self._branches(
            doc_id, target, losers, merged_revs, rule_for, edits_in=counted
        )
        document = self._merged(doc_id, body, target, branches, entry)
        if document is None:
            return None
        document["_id"], document["_rev"] = doc_id, target.rev
        if needs_token(obj):
            revs = sorted(leaf.rev for leaf, _ in branches)
            token = token or _token(target.rev, revs)
            document[TOKEN_FIELD] = token
            document[MERGED_FIELD] = revs
            # The losers' edits are in the result only when the merge rules merged them (a
            # "winner" resolution drops them; a callable or a given document may).
            merging = entry.merged is None and entry.how == "merge"
            held = edits(target.body)
            # Newest first, so the bound drops old tokens: the merged leaves' own tokens,
            # the target's, then what else the merged branches brought.
            brought = [edits(leaf.body) for leaf, _ in branches] if merging else []
            tops = [found[0] for found in brought if found]
            rest = [t for found in brought for t in found[1:] if t not in held]
            document[COUNTED_FIELD] = " ".join(ledger(earlier, tops, held, rest, without=token))
        sent = _Sent(doc_id, branches)
        out = [document]
        for leaf in losers:
            tombstone: JSONDict = {"_id": doc_id, "_rev": leaf.rev, "_deleted": True}
            sent.tombstones[id(tombstone)] = leaf
            out.append(tombstone)
        self.sent[doc_id] = sent
        self.changed.add(doc_id)
        self.unresolved.pop(doc_id, None)
        return out

    def _delete_all(self, doc_id: str, tombstone: JSONDict) -> list[JSONDict]:
        """A deleted document marked for resolution: every live leaf goes, not just one.

        Deleting only the winner would make a losing leaf the winner: the document would
        come back with an older version.
        """
        self.outgoing[doc_id] = tombstone
        out = [tombstone]
        sent = _Sent(doc_id, [], deletion=True)
        for leaf in self._leaves(doc_id):
            if not leaf.deleted and leaf.rev != tombstone.get("_rev"):
                other: JSONDict = {"_id": doc_id, "_rev": leaf.rev, "_deleted": True}
                sent.tombstones[id(other)] = leaf
                out.append(other)
        self.sent[doc_id] = sent
        return out

    def _owed(
        self,
        doc_id: str,
        entry: Resolving,
        merged: set[str],
        counted: set[str],
        rule_for: RuleFor,
        *,
        live: list[Leaf],
    ) -> list[tuple[Leaf, JSONDict | None]]:
        """The owed branches still to merge, from bases that hold what is counted already.

        An owed loser another session merged meanwhile is dropped (listed in the target's
        ``cm_merged``, or all its edits in the target's tokens); one partly merged (a leaf
        on its branch was) is merged from a base that holds that part.
        """
        out: list[tuple[Leaf, JSONDict | None]] = []
        for leaf, owed_base in entry.owed:
            base_rev = owed_base.get("_rev") if owed_base is not None else None
            if leaf.rev in merged or _counted(doc_id, leaf, owed_base, base_rev, counted):
                continue
            base = owed_base
            if (
                isinstance(base_rev, str)
                and base is not None
                and new_edits(leaf.body, base) & counted
            ):
                base = self._adjusted_base(
                    doc_id, leaf, base, base_rev, counted, rule_for, _by_token(live)
                )
            out.append((leaf, base))
        return out

    def _leaves(self, doc_id: str, *, revs: bool = False) -> list[Leaf]:
        """Every leaf of the document (none when it is gone: purged, or never stored)."""
        try:
            return parse_leaves(self.fetch(doc_id, open_revs="all", revs=revs))
        except NotFoundError:
            return []

    def _nothing_else(self, doc_id: str, obj: Obj) -> bool:
        """Whether ``obj`` was planned only for its resolution (no edits, checks or flights)."""
        state = state_of(obj)
        if state is None or doc_id in self.pending.required or doc_id in self.pending.new:
            return False
        return not (state.has_changes or state.require_rev or state.flights)

    def _branches(
        self,
        doc_id: str,
        target: Leaf,
        losers: list[Leaf],
        merged: set[str],
        rule_for: RuleFor,
        *,
        edits_in: set[str],
    ) -> list[tuple[Leaf, JSONDict | None]]:
        """Each loser with its base body (None when compacted away or unknown).

        ``edits_in``: the tokens of the edits the result holds already. A branch whose edits
        are all among them (an attempt a cluster refused but one copy stored, written again
        since) is merged from itself: it adds nothing. One whose edits are partly among them
        (a resolution that merged such an attempt, beside its own edits) is merged from a
        base that holds the counted ones, found through its ``cm_merged``.
        """
        plan = merge_plan(target, losers, merged)
        known = _by_token([target, *losers])
        wanted = sorted({base for leaf, base in plan if base is not None and base != leaf.rev})
        bodies: dict[str, JSONDict] = {}
        if wanted:
            for leaf in parse_leaves(self.fetch(doc_id, open_revs=wanted)):
                bodies[leaf.rev] = leaf.body
        counted = set(merged)
        out: list[tuple[Leaf, JSONDict | None]] = []
        for leaf, base in plan:
            body = leaf.body if base == leaf.rev else bodies.get(base or "")
            fresh = new_edits(leaf.body, body) if body is not None else _own_edit(leaf, base)
            again = fresh & edits_in
            seen = _counted(doc_id, leaf, body, base, edits_in)
            held = set(edits_in)
            edits_in |= set(edits(leaf.body))
            if seen:
                counted |= _merged_by(leaf.body)
                out.append((leaf, leaf.body))  # every edit of this branch is counted already
                continue
            # Leaves this branch merged that the result merged too (by revision), or edits
            # of it the result holds (by token): merged from a base that holds them.
            twice = _merged_by(leaf.body) & counted
            if (again or twice) and body is not None and base is not None:
                body = self._adjusted_base(
                    doc_id, leaf, body, base, held, rule_for, known, twice=twice
                )
            counted |= _merged_by(leaf.body)
            out.append((leaf, body))
        return out

    def _adjusted_base(  # noqa: PLR0917 (recursive: the same arguments one level down)
        self,
        doc_id: str,
        leaf: Leaf,
        base: JSONDict,
        base_rev: str,
        held: set[str],
        rule_for: RuleFor,
        known: Mapping[str, Leaf],
        depth: int = 0,
        *,
        twice: set[str] | None = None,
    ) -> JSONDict | None:
        """A base for merging ``leaf`` that holds the edits of its branch already ``held``.

        The branch from ``base`` to ``leaf`` brought edits (tokens) of which some are held
        by the result already: a revision on the branch whose edits are all held becomes the
        base; an edit the branch holds through a leaf it merged (``cm_merged``) is added to
        the base by merging that leaf, the same way, one level down; an earlier attempt of
        the leaf's own edits (listed in its ``cm_counted``) that is stored as another leaf
        (``known``: the leaves by token) is added by its own write, from its parent.
        Merging ``leaf`` from the returned base then adds only the edits not held. ``twice``:
        leaves the branch merged that the result merged too, known by revision (their
        writers may have carried no token): added to the base the same way. None (a two-way
        merge, which reports what it cannot reconcile) when a body is gone or the nesting is
        too deep.
        """
        twice = twice or set()
        if depth > _MAX_NESTING:
            return None
        again = new_edits(leaf.body, base) & held
        if not again and not twice:
            return base
        path: list[Leaf] = []
        if again:
            between = list(leaf.history[1 : leaf.history.index(base_rev)])  # newest first
            if between:
                path = parse_leaves(self.fetch(doc_id, open_revs=between, revs=True))
            for ancestor in sorted(path, key=lambda p: between.index(p.rev)):
                if _counted(doc_id, ancestor, base, base_rev, held):
                    base, base_rev = ancestor.body, ancestor.rev  # the newest held in full
                    break
            path = [p for p in path if p.rev in leaf.history[1 : leaf.history.index(base_rev)]]
            again = new_edits(leaf.body, base) & held
            if not again and not twice:
                return base
        below = leaf.history[leaf.history.index(base_rev) :]
        merged = sorted(set().union(*(_merged_by(r.body) for r in [*path, leaf])))
        found = parse_leaves(self.fetch(doc_id, open_revs=merged, revs=True)) if merged else []
        if not twice <= {other.rev for other in found}:
            return None  # a leaf merged twice is gone (compacted)
        for other in found:
            if not (new_edits(other.body, base) & again or other.rev in twice):
                continue
            fork = next((rev for rev in other.history if rev in below), None)
            fork_body = self._body(doc_id, fork)
            if fork is None or fork_body is None:
                return None
            fork_body = self._adjusted_base(
                doc_id, other, fork_body, fork, set(edits(base)), rule_for, known, depth + 1
            )
            if fork_body is None:
                return None
            document = three_way(base, [(other.body, fork_body)], rule_for).document
            if document is None:
                return None
            holds = list(dict.fromkeys([*edits(base), *edits(other.body)]))
            base = {**document, "_rev": base_rev, COUNTED_FIELD: holds}
            if not twice and not new_edits(leaf.body, base) & held:
                return base
        for token in sorted(new_edits(leaf.body, base) & held):
            attempt = known.get(token)
            if attempt is None or attempt.rev == leaf.rev or len(attempt.history) < 2:
                continue
            if _merged_by(attempt.body):
                continue  # a resolution's own share cannot be told apart: merged as it is
            parent = self._body(doc_id, attempt.history[1])
            pair = [(attempt.body, parent)] if parent is not None else []
            document = three_way(base, pair, rule_for).document if pair else None
            if document is None:
                return None
            holds = list(dict.fromkeys([*edits(base), token]))
            base = {**document, "_rev": base_rev, COUNTED_FIELD: holds}
        return base

    def _body(self, doc_id: str, rev: str | None) -> JSONDict | None:
        """The stored body of revision ``rev`` (None when it is gone, or no revision)."""
        if rev is None:
            return None
        found = parse_leaves(self.fetch(doc_id, open_revs=[rev]))
        return found[0].body if found else None

    def _merged(
        self,
        doc_id: str,
        body: JSONDict,
        target: Leaf,
        branches: list[tuple[Leaf, JSONDict | None]],
        entry: Resolving,
    ) -> JSONDict | None:
        """The resolved document's fields by ``entry``'s mode (None: reported, unresolved)."""
        if entry.merged is not None:
            return plain(entry.merged)
        if entry.how == "winner":
            return plain(body)
        if callable(entry.how):
            return self._by_callable(doc_id, body, target, branches, entry)
        rule_for = self.rule_finder(entry.obj)
        outcome = three_way(body, [(leaf.body, base) for leaf, base in branches], rule_for)
        if outcome.document is not None:
            return outcome.document
        if outcome.overlaps:
            reason = "Stored conflict left unresolved: both branches changed the same field."
        else:
            reason = (
                "Stored conflict left unresolved: the common ancestor was compacted away and a "
                "two-way merge cannot reconcile these fields."
            )
        self.unresolved[doc_id] = ConflictError(
            doc_id,
            target.rev,
            reason,
            paths=outcome.overlaps + outcome.unreconciled,
            mine=plain(body),
            theirs=None,
        )
        return None

    def _by_callable(
        self,
        doc_id: str,
        body: JSONDict,
        target: Leaf,
        branches: list[tuple[Leaf, JSONDict | None]],
        entry: Resolving,
    ) -> JSONDict:
        """Call ``Meta.resolve(base, winner, losers)``: base is the oldest common ancestor."""
        base = next((b for _, b in branches if b is not None), None) if len(branches) == 1 else None
        if len(branches) > 1:
            common = set(target.history).intersection(*(leaf.history for leaf, _ in branches))
            newest = max(common, key=lambda rev: int(rev.split("-", 1)[0]), default=None)
            found = parse_leaves(self.fetch(doc_id, open_revs=[newest])) if newest else []
            base = found[0].body if found else None
        how = entry.how
        assert callable(how)
        result = how(
            None if base is None else plain(base),
            plain(body),
            [plain(leaf.body) for leaf, _ in branches],
        )
        if isinstance(result, Mapping):
            return plain(result)
        try:
            return plain(dump(result))
        except (ValidationError, TypeError, AttributeError) as exc:
            msg = f"Meta.resolve of document {doc_id!r} returned {result!r}: not a document"
            raise TypeError(msg) from exc

    def record(self, sent: JSONDict, ok: bool) -> bool:
        """Note the answer for ``sent`` if it is a loser's tombstone; True when it was one."""
        doc_id = sent.get("_id")
        info = self.sent.get(doc_id) if isinstance(doc_id, str) else None
        leaf = info.tombstones.get(id(sent)) if info is not None else None
        if info is None or leaf is None:
            return False
        (info.deleted if ok else info.failed).append(leaf)
        return True

    def settle(self, written: set[str]) -> dict[str, JSONDict]:
        """After the answers: owed merges kept, and the documents to resolve again now.

        The merged winner written but a loser's deletion refused (another writer extended
        or deleted that leaf): resolve again on the new revision, whose ``cm_merged`` says
        what is already counted. The winner refused but losers deleted: their branches are
        owed to the next attempt (kept on the pending entry, so even a failed flush keeps
        them).
        """
        again: dict[str, JSONDict] = {}
        for doc_id, info in self.sent.items():
            entry = self.pending.resolving.get(doc_id)
            if info.deletion:
                continue  # a leaf another writer extended meanwhile stays: it is newer news
            if doc_id in written:
                if info.failed:
                    obj = self.pending.held(doc_id)
                    how: Any = entry.how if entry is not None else "merge"
                    if obj is not None:
                        self.pending.mark_resolving(doc_id, Resolving(obj, how))
                        again[doc_id] = dump(obj)
                continue
            if entry is not None and info.deleted:
                gone = {leaf.rev for leaf in info.deleted}
                entry.owed += [(leaf, base) for leaf, base in info.branches if leaf.rev in gone]
        return again


def found_conflicts(session: Any, pending: Any, doc_id: str, obj: Obj, revs: list[str]) -> None:
    """A document with stored conflicts was loaded: mark it by ``Meta.resolve``, then signal.

    Marked first, so a ``conflict_found`` receiver sees it marked and may still override it
    with ``session.resolve(doc, merged)``.
    """
    info = model_info(type(obj))
    if info is not None and info.resolution is not None:
        mark_resolving(pending, doc_id, obj)
    send(signals.conflict_found, type(obj), session=session, document=obj, revisions=revs)


def _refreshed(obj: Obj, raw: JSONDict) -> None:
    """``obj`` becomes the stored revision ``raw`` (it has no edits of its own)."""
    state = state_of(obj)
    assert state is not None
    restore(obj, raw)
    state.rev = raw["_rev"]
    state.loaded = dict(raw)
    state.reset()


def mark_resolving(pending: Any, doc_id: str, obj: Obj, merged: Any = None) -> None:
    """Mark ``obj`` for resolution by the next flush (``merged``: the winner to write)."""
    info = model_info(type(obj))
    how: str | Callable[..., Any] = "merge"
    if info is not None and info.resolution is not None:
        how = info.resolution
    body: JSONDict | None = None
    if merged is not None:
        body = dict(merged) if isinstance(merged, Mapping) else dump(merged)
    previous = pending.resolving.get(doc_id)
    owed = previous.owed if previous is not None else []
    pending.mark_resolving(doc_id, Resolving(obj, how, body, owed))


def stamp(body: JSONDict, obj: Obj | None, planned: JSONDict) -> JSONDict:
    """``body`` with its write token and ledger when its class needs them (a copy; else ``body``).

    ``body`` is based on its parent revision, whose ``cm_write`` and ``cm_counted`` it holds
    (the loaded JSON, or the server's version a rebase started from): the write's ledger is
    its own earlier attempts' tokens, then those. An object this session wrote last keeps
    them in its loaded state.
    """
    state = state_of(obj) if obj is not None else None
    if state is None or body.get("_deleted") or not needs_token(obj):
        return body
    token, earlier = state.write_token(planned)
    loaded = state.loaded
    parent = loaded if loaded is not None and loaded.get("_rev") == body.get("_rev") else body
    out = {k: v for k, v in body.items() if k not in (MERGED_FIELD, COUNTED_FIELD)}
    out[TOKEN_FIELD] = token
    counted = ledger(earlier, edits(parent), without=token)
    if counted:
        out[COUNTED_FIELD] = " ".join(counted)
    return out


_MAX_NESTING = 4  # merged leaves that merged leaves...: deeper, a two-way merge reports it


def _counted(
    doc_id: str, leaf: Leaf, base: JSONDict | None, base_rev: Any, edits_in: set[str]
) -> bool:
    """Whether every edit of ``leaf`` since its base revision is counted in ``edits_in``.

    Such a leaf is a write a cluster refused though one copy stored it, written again since;
    or a loser that another session merged while this one deleted it (a deletion owed after
    this session's merged winner was refused): merged again it would count twice.

    Each revision on the branch since the base must have brought a token of its own: a
    revision without one (a client that writes no tokens) is an edit nothing accounts for.
    """
    if base is not None:
        fresh = new_edits(leaf.body, base)
        brought = set(edits(leaf.body)) - set(edits(base))
    else:
        fresh = brought = _own_edit(leaf, base_rev)
    steps = leaf.history.index(base_rev) if base_rev in leaf.history else None
    if not fresh or not fresh <= edits_in or steps is None or len(brought) < steps:
        return False
    FLUSH.debug("%s: leaf %s holds only edits counted already", doc_id, leaf.rev)
    return True


def _by_token(leaves: list[Leaf]) -> dict[str, Leaf]:
    """The live leaves by their ``cm_write`` token."""
    found = ((leaf.body.get(TOKEN_FIELD), leaf) for leaf in leaves if not leaf.deleted)
    return {token: leaf for token, leaf in found if isinstance(token, str)}


def _own_edit(leaf: Leaf, base: str | None) -> set[str]:
    """The token of a leaf that is one plain write on ``base`` (whose body is gone), if it is."""
    token = leaf.body.get(TOKEN_FIELD)
    one_write = len(leaf.history) > 1 and leaf.history[1] == base and not _merged_by(leaf.body)
    return {token} if one_write and isinstance(token, str) and not token.startswith("r") else set()


def _merged_by(body: Mapping[str, Any]) -> set[str]:
    """The losing leaves a resolution write merged (its ``cm_merged``)."""
    found = body.get(MERGED_FIELD)
    return {str(rev) for rev in found} if isinstance(found, list) else set()


def _token(target: str, merged: Sequence[str]) -> str:
    """The token of a resolution with no edits: the same for every session that makes it.

    Two sessions resolving the same conflict send the same body on the same revision, so
    CouchDB gives both writes one revision id and stores the merge once.
    """
    digest = hashlib.sha1(" ".join([target, *merged]).encode(), usedforsecurity=False)
    return "r" + digest.hexdigest()[:31]
