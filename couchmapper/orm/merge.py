"""The sans-IO core of a flush: per-document results, "did it land?", and rebase merges.

Nothing here talks to a server. The session builds the ``_bulk_docs`` payload, sends it
through its backend, and hands the answers to these functions to decide what became of each
document and, for the ``"rebase"`` conflict policy, what to send next.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from couchmapper._couch.json import get_path, same_once_stored, set_path
from couchmapper._types import ConflictPolicy, MergeRule, Obj
from couchmapper.model.attachments import comparable_members
from couchmapper.model.registry import model_info
from couchmapper.tracking import MISSING, Change, PathKey, format_path

__all__ = [
    "RebaseResult",
    "WriteResult",
    "changed_paths",
    "changes_between",
    "landed",
    "policy_for",
    "rebase",
    "results_in_order",
    "rule_finder",
    "without_meta",
]


_SERVER_KEYS = frozenset({"_rev", "_revisions", "_conflicts", "_deleted_conflicts", "_local_seq"})


@attrs.frozen
class WriteResult:
    """What became of one document sent in a flush.

    Attributes:
        doc_id: the document id.
        rev: the new revision (None on failure).
        error: CouchDB's error name on failure (``"conflict"``, ``"forbidden"``...).
        reason: CouchDB's explanation on failure.
        accepted: CouchDB answered ``"accepted": true`` (HTTP 202): the revision is stored,
            but on fewer copies of a cluster than the write quorum. The other copies were
            unreachable (nodes down: internal replication copies it when they come back) or
            refused it (a concurrent write; see "Clusters" in docs/backends.md). A written
            document, never retried or reported failed.
    """

    doc_id: str
    rev: str | None = None
    error: str | None = None
    reason: str | None = None
    accepted: bool = False

    @property
    def ok(self) -> bool:
        """Whether the document was written."""
        return self.error is None


def results_in_order(
    sent: Sequence[Mapping[str, Any]], answer: Sequence[Mapping[str, Any]]
) -> list[WriteResult]:
    """Pair each sent document with its ``_bulk_docs`` answer (CouchDB keeps request order)."""
    results = []
    for doc, row in zip(sent, answer, strict=False):
        doc_id = str(row.get("id", doc.get("_id")))
        if "error" in row:
            results.append(WriteResult(doc_id, None, str(row["error"]), str(row.get("reason", ""))))
        else:
            results.append(
                WriteResult(doc_id, str(row["rev"]), accepted=row.get("accepted") is True)
            )
    for doc in sent[len(answer) :]:
        results.append(
            WriteResult(str(doc.get("_id")), None, "unknown", "no answer for this document")
        )
    return results


def without_meta(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The body of a stored document: everything but ``_id`` and ``_rev``."""
    return {k: v for k, v in raw.items() if k not in ("_id", "_rev")}


def _body(doc: Mapping[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in doc.items() if k not in _SERVER_KEYS}
    if "_attachments" in body:  # inline data sent, stubs stored: compare what both tell
        body["_attachments"] = comparable_members(body["_attachments"])
    return body


def landed(sent: Mapping[str, Any], current: Mapping[str, Any] | None) -> bool:
    """Whether the server's current document shows that ``sent`` was already written.

    A retry after a lost answer meets a conflict (or "already exists" for a create); when
    the document on the server holds exactly what was sent, the earlier attempt landed.
    """
    if sent.get("_deleted"):
        return current is None or bool(current.get("_deleted"))
    if current is None or current.get("_deleted"):
        return False
    return same_once_stored(_body(sent), _body(current))


def changed_paths(
    base: Any, theirs: Any, prefix: tuple[PathKey, ...] = ()
) -> set[tuple[PathKey, ...]]:
    """The smallest paths at which two JSON values differ (dicts are compared key by key)."""
    if isinstance(base, dict) and isinstance(theirs, dict):
        found: set[tuple[PathKey, ...]] = set()
        for key in base.keys() | theirs.keys():
            if key in _SERVER_KEYS:
                continue
            found |= changed_paths(base.get(key, MISSING), theirs.get(key, MISSING), (*prefix, key))
        return found
    return set() if same_once_stored(base, theirs) else {prefix}


def changes_between(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Change]:
    """The changes that turn ``before`` into ``after`` (lists are replaced whole)."""
    found = []
    for path in sorted(changed_paths(dict(before), dict(after)), key=lambda p: [str(k) for k in p]):
        old, new = get_path(before, path, MISSING), get_path(after, path, MISSING)
        if old is MISSING:
            found.append(Change("add", path, new))
        elif new is MISSING:
            found.append(Change("remove", path, MISSING, old))
        else:
            found.append(Change("replace", path, new, old))
    return found


def _overlaps(path: tuple[PathKey, ...], others: Iterable[tuple[PathKey, ...]]) -> bool:
    return any(p[: len(path)] == path or path[: len(p)] == p for p in others)


@attrs.frozen
class RebaseResult:
    """The outcome of re-applying one document's changes on the server's current version.

    Attributes:
        document: the JSON to send (None when there were overlaps).
        overlaps: dotted paths both sides changed with no merge rule to combine them.
    """

    document: dict[str, Any] | None
    overlaps: tuple[str, ...] = ()


def _already_there(theirs: Any, change: Change) -> bool:
    """Whether the server's document already shows ``change`` at its path."""
    current = get_path(theirs, change.path, MISSING)
    if change.op == "remove":
        return current is MISSING
    return current is not MISSING and same_once_stored(current, change.value)


def _union(base: Any, mine: Any, theirs: Any) -> Any:
    base_items = base if isinstance(base, list) else []
    mine_items = mine if isinstance(mine, list) else []
    theirs_items = theirs if isinstance(theirs, list) else []
    added = [x for x in mine_items if x not in base_items]
    removed = [x for x in base_items if x not in mine_items]
    merged = [x for x in theirs_items if x not in removed]
    merged += [x for x in added if x not in merged]
    return merged


def _sum(base: Any, mine: Any, theirs: Any) -> Any:
    numbers = (int, float)
    if not all(isinstance(v, numbers) and not isinstance(v, bool) for v in (base, mine, theirs)):
        msg = "merge='sum' needs numbers on every side"
        raise TypeError(msg)
    return theirs + (mine - base)


def _apply_change(doc: dict[str, Any], change: Change) -> bool:
    """Apply one recorded change to ``doc``; False when it no longer fits the document."""
    path = change.path
    parent = get_path(doc, path[:-1], MISSING)
    key = path[-1]
    try:
        if change.op == "remove":
            del parent[key]
        elif change.op == "add" and isinstance(parent, list):
            if not isinstance(key, int) or key > len(parent):
                return False
            parent.insert(key, _copy(change.value))
        else:
            if isinstance(parent, list) and (not isinstance(key, int) or key >= len(parent)):
                return False
            parent[key] = _copy(change.value)
    except (KeyError, IndexError, TypeError):
        return False
    return True


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def rebase(
    base: Mapping[str, Any],
    mine: Mapping[str, Any],
    changes: Sequence[Change],
    theirs: Mapping[str, Any],
    rule_for: Callable[[tuple[PathKey, ...]], tuple[tuple[PathKey, ...], MergeRule] | None],
) -> RebaseResult:
    """Re-apply this session's ``changes`` on ``theirs``, the server's current document.

    Args:
        base: the document as this session loaded it.
        mine: the document as this session wants it (``base`` plus ``changes``).
        changes: this session's recorded changes.
        theirs: the server's current document.
        rule_for: for a change path, the path of the field that has a merge rule and the
            rule, or None.

    Returns:
        The document to send, or the overlapping paths when both sides changed the same
        place and no merge rule combines them.
    """
    remote = changed_paths(dict(base), dict(theirs))
    result = _copy(dict(theirs))
    overlaps: list[str] = []
    merged_fields: set[tuple[PathKey, ...]] = set()
    for change in changes:
        if not _overlaps(change.path, remote):
            if not _apply_change(result, change):
                overlaps.append(format_path(change.path))
            continue
        found = rule_for(change.path)
        if found is None:
            # Without a merge rule, both sides making the same change is no conflict. (With
            # one it may be: two increments of 1 -> 2 are two increments.)
            if not _already_there(theirs, change):
                overlaps.append(format_path(change.path))
            continue
        field_path, rule = found
        if field_path in merged_fields:
            continue
        merged_fields.add(field_path)
        values = (
            get_path(base, field_path, MISSING),
            get_path(mine, field_path, MISSING),
            get_path(theirs, field_path, MISSING),
        )
        if MISSING in values and rule != "union":
            overlaps.append(format_path(field_path))
            continue
        merge: Callable[[Any, Any, Any], Any]
        if rule == "sum":
            merge = _sum
        elif rule == "union":
            merge = _union
        else:
            merge = rule  # type: ignore[assignment]
        try:
            set_path(result, field_path, merge(*values), MISSING)
        except (TypeError, ValueError):
            overlaps.append(format_path(field_path))
    if overlaps:
        return RebaseResult(None, tuple(dict.fromkeys(overlaps)))
    return RebaseResult(result)


def policy_for(obj: Obj, default: ConflictPolicy) -> ConflictPolicy:
    """The conflict policy of ``obj``'s class (its ``Meta.conflict``), else ``default``."""
    info = model_info(type(obj))
    return info.conflict if info is not None and info.conflict is not None else default


def rule_finder(obj: Obj) -> Callable[[tuple[PathKey, ...]], Any]:
    """The merge rule lookup of ``obj``'s class, for :func:`rebase`'s ``rule_for``."""

    def find(path: tuple[PathKey, ...]) -> Any:
        """The outermost field on ``path`` with a merge rule, walking embedded objects."""
        node: Any = obj
        for depth, key in enumerate(path):
            info = model_info(type(node))
            if isinstance(key, int) or info is None:
                return None  # inside a list or raw JSON: no declared fields below here
            merge = info.merge_rules.get(key)
            if merge is not None:
                return (path[: depth + 1], merge)
            node = node.__dict__.get(key)
            if node is None:
                return None
        return None

    return find
