"""The sans-IO part of resolving stored conflicts: leaves, merge bases and merges.

:mod:`couchmapper.orm.conflicts` fetches a document's leaves and ancestors and writes the
resolution; these functions decide, from the answers alone, what the merged document is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

import attrs

from couchmapper._couch.json import get_path, set_path
from couchmapper._types import JSONDict
from couchmapper.orm.merge import changed_paths, changes_between, rebase
from couchmapper.tracking import MISSING, PathKey, format_path

__all__ = [
    "COUNTED_FIELD",
    "LEDGER_LIMIT",
    "MERGED_FIELD",
    "TOKEN_FIELD",
    "Leaf",
    "Outcome",
    "RuleFor",
    "edits",
    "ledger",
    "merge_plan",
    "new_edits",
    "parse_leaves",
    "plain",
    "three_way",
    "winner",
]

TOKEN_FIELD: Final = "cm_write"
"""The body field that makes each write of a class with ``sum``/callable merge rules unique."""

MERGED_FIELD: Final = "cm_merged"
"""The body field of a resolution write: the losing leaf revisions it merged."""

COUNTED_FIELD: Final = "cm_counted"
"""The body field listing the tokens of recent writes whose edits a revision holds.

One string, the tokens separated by spaces: a list of 32 strings per document made the
flush of a ``sum`` class 1.3x slower again than one string (more objects to copy, hash and
collect)."""

LEDGER_LIMIT: Final = 32
"""How many tokens ``cm_counted`` keeps (the newest)."""

_NOT_BODY = frozenset(
    {
        *("_id", "_rev", "_revisions", "_conflicts", "_deleted_conflicts"),
        *(TOKEN_FIELD, MERGED_FIELD, COUNTED_FIELD),
    }
)

RuleFor = Callable[[tuple[PathKey, ...]], Any]
"""A field path -> (the path of the field with a merge rule, the rule), or None."""


def plain(body: Mapping[str, Any]) -> JSONDict:
    """A document's fields without CouchDB's members and couchmapper's write bookkeeping."""
    return {k: v for k, v in body.items() if k not in _NOT_BODY}


def edits(body: Mapping[str, Any]) -> list[str]:
    """The write tokens whose edits a stored body holds: its own, then its ``cm_counted``.

    A write carries its parent's tokens forward (at most :data:`LEDGER_LIMIT`), the tokens
    of its own earlier attempts, and a resolution those of the leaves it merged: a token
    found here means that write's edits are in this revision.
    """
    own = body.get(TOKEN_FIELD)
    counted = body.get(COUNTED_FIELD)
    found = [own] if isinstance(own, str) else []
    if isinstance(counted, str):
        found += counted.split()
    elif isinstance(counted, list):  # as a hand-made document may hold it
        found += [t for t in counted if isinstance(t, str)]
    return found


def ledger(*sources: Iterable[str], without: str | None = None) -> list[str]:
    """The ``cm_counted`` of a write: ``sources`` in order, each token once, the newest kept."""
    out = dict.fromkeys(t for source in sources for t in source if t != without)
    return list(out)[:LEDGER_LIMIT]


def new_edits(body: Mapping[str, Any], base: Mapping[str, Any]) -> set[str]:
    """The tokens of edits ``body`` holds and its ancestor ``base`` does not.

    A resolution with no edits of its own has a derived token (``r...``): it adds nothing
    but the leaves it merged, whose tokens it lists.
    """
    return {t for t in edits(body) if not t.startswith("r")} - set(edits(base))


@attrs.frozen
class Leaf:
    """One leaf revision of a document, as ``open_revs=all&revs=true`` answers it.

    Attributes:
        rev: the leaf's revision.
        body: the stored JSON (``_id``, ``_rev`` and fields; ``_revisions`` removed).
        history: the leaf's revision and its ancestors, newest first (as far as CouchDB
            keeps them, ``_revs_limit``).
        deleted: the leaf is a deletion.
    """

    rev: str
    body: JSONDict
    history: tuple[str, ...]
    deleted: bool

    @property
    def order(self) -> tuple[bool, int, str]:
        """CouchDB's winner order: live first, then the longer branch, then the larger id."""
        pos, _, rev_id = self.rev.partition("-")
        return (not self.deleted, int(pos) if pos.isdigit() else 0, rev_id)


def parse_leaves(answer: Any) -> list[Leaf]:
    """The leaves in an ``open_revs=all&revs=true`` answer (``missing`` rows are skipped)."""
    leaves = []
    for row in answer if isinstance(answer, list) else ():
        doc = row.get("ok") if isinstance(row, dict) else None
        if not isinstance(doc, dict) or not isinstance(doc.get("_rev"), str):
            continue
        revisions = doc.get("_revisions") or {}
        start, ids = revisions.get("start"), revisions.get("ids")
        if isinstance(start, int) and isinstance(ids, list):
            history = tuple(f"{start - i}-{rev_id}" for i, rev_id in enumerate(ids))
        else:
            history = (doc["_rev"],)
        body = {k: v for k, v in doc.items() if k != "_revisions"}
        leaves.append(Leaf(doc["_rev"], body, history, bool(doc.get("_deleted"))))
    return leaves


def winner(leaves: Iterable[Leaf]) -> Leaf | None:
    """The leaf CouchDB picks as the winner (None when there are no leaves)."""
    return max(leaves, key=lambda leaf: leaf.order, default=None)


def merge_plan(
    target: Leaf, losers: Sequence[Leaf], merged: Iterable[str] = ()
) -> list[tuple[Leaf, str | None]]:
    """Each losing leaf with the revision to merge it from (None: no common history).

    Losers are taken in CouchDB's order (the strongest first). A loser's base is the newest
    revision of its history that the result already holds: the target's history, what the
    target's resolution merged (``merged``), and the losers merged before it. So each edit
    of the revision tree is counted exactly once, however the branches fork.
    """
    known = set(target.history) | set(merged)
    plan: list[tuple[Leaf, str | None]] = []
    for leaf in sorted(losers, key=lambda leaf: leaf.order, reverse=True):
        base = next((rev for rev in leaf.history if rev in known), None)
        plan.append((leaf, base))
        known |= set(leaf.history)
    return plan


@attrs.frozen
class Outcome:
    """A merge of losing leaves: the document, or why it cannot be written.

    Attributes:
        document: the merged fields (None when ``overlaps`` or ``unreconciled`` is set).
        overlaps: field paths both branches changed with no merge rule.
        unreconciled: field paths a two-way merge (ancestor compacted away) cannot combine.
    """

    document: JSONDict | None
    overlaps: tuple[str, ...] = ()
    unreconciled: tuple[str, ...] = ()


def three_way(
    start: JSONDict,
    branches: Sequence[tuple[JSONDict, JSONDict | None]],
    rule_for: RuleFor,
) -> Outcome:
    """Merge each ``(leaf, base)`` branch into ``start`` with the class's merge rules.

    A branch whose base body is gone (compacted, or beyond ``_revs_limit``) is merged
    two-way: fields both sides hold equal, or ``union`` fields, combine; any other
    difference is named in ``unreconciled``.
    """
    result = plain(start)
    overlaps: list[str] = []
    unreconciled: list[str] = []
    for leaf_body, base_body in branches:
        leaf = plain(leaf_body)
        if base_body is None:
            result, missed = _two_way(result, leaf, rule_for)
            unreconciled += missed
            continue
        base = plain(base_body)
        outcome = rebase(base, leaf, changes_between(base, leaf), result, rule_for)
        if outcome.document is None:
            overlaps += outcome.overlaps
        else:
            result = outcome.document
    if overlaps or unreconciled:
        return Outcome(None, tuple(dict.fromkeys(overlaps)), tuple(dict.fromkeys(unreconciled)))
    return Outcome(result)


def _two_way(result: JSONDict, leaf: JSONDict, rule_for: RuleFor) -> tuple[JSONDict, list[str]]:
    """Merge ``leaf`` into ``result`` with no common ancestor: only unions combine."""
    missed: list[str] = []
    done: set[tuple[PathKey, ...]] = set()
    for path in sorted(changed_paths(leaf, result), key=lambda p: [str(k) for k in p]):
        found = rule_for(path)
        if found is None or found[1] != "union":
            missed.append(format_path(path))
            continue
        field_path = found[0]
        if field_path in done:
            continue
        done.add(field_path)
        mine, theirs = get_path(leaf, field_path, MISSING), get_path(result, field_path, MISSING)
        items = list(theirs) if isinstance(theirs, list) else []
        items += [x for x in (mine if isinstance(mine, list) else []) if x not in items]
        set_path(result, field_path, items, MISSING)
    return result, missed
