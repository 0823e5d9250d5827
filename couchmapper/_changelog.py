"""Changes and change logs as JSON: ``Change``, compaction rules, JSON Pointer and Patch.

The pure half of change tracking (no live objects): :mod:`couchmapper.tracking` records
changes of live documents into logs and compacts them with the rules here.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal, TypeAlias, cast

import attrs

from couchmapper._couch.json import json_copy, same_json

__all__ = [
    "MISSING",
    "Change",
    "ChangeList",
    "Op",
    "PathKey",
    "apply_json_patch",
    "compact_into",
    "format_path",
    "json_copy",
    "same_json",
    "to_pointer",
]

PathKey: TypeAlias = str | int
Op: TypeAlias = Literal["add", "remove", "replace"]


class _Missing:
    """The type of :data:`MISSING`."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False

    def __copy__(self) -> _Missing:
        return self

    def __deepcopy__(self, memo: Any) -> _Missing:
        return self

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()
"""A value that is not there: the old value of an ``add``, the new value of a ``remove``."""


def to_pointer(path: Iterable[PathKey]) -> str:
    """Return the RFC 6901 JSON Pointer for a path of keys and list indexes."""
    return "".join("/" + str(key).replace("~", "~0").replace("/", "~1") for key in path)


def format_path(path: Iterable[PathKey]) -> str:
    """Return a path as people write it: ``address.city``, ``tags[2]``."""
    text = ""
    for key in path:
        if isinstance(key, int):
            text += f"[{key}]"
        else:
            text += f".{key}" if text else key
    return text or "(document)"


@attrs.frozen(slots=True)
class Change:
    """One recorded edit of a document.

    Attributes:
        op: ``"add"``, ``"remove"`` or ``"replace"``, as in RFC 6902.
        path: the keys from the document root: field names, dict keys, list indexes.
        value: the new JSON value (:data:`MISSING` for ``remove``).
        old: the JSON value before (:data:`MISSING` for ``add``).
    """

    op: Op
    path: tuple[PathKey, ...]
    value: Any = MISSING
    old: Any = MISSING

    @property
    def pointer(self) -> str:
        """The path as an RFC 6901 JSON Pointer (``/address/city``)."""
        return to_pointer(self.path)

    def to_json_patch(self) -> dict[str, Any]:
        """Return this change as one RFC 6902 operation."""
        operation: dict[str, Any] = {"op": self.op, "path": self.pointer}
        if self.op != "remove":
            operation["value"] = copy.deepcopy(self.value)
        return operation


class ChangeList(list[Change]):
    """The changes of one document, in the order they apply.

    Sets of top-level fields from one scalar to another commute with every other change, so
    they are listed last, whenever they happened.
    """

    def to_json_patch(self) -> list[dict[str, Any]]:
        """Return the changes as an RFC 6902 JSON Patch document."""
        return [change.to_json_patch() for change in self]

    @property
    def paths(self) -> set[str]:
        """The dotted paths touched, for quick membership tests in hooks."""
        return {format_path(change.path) for change in self}


def _is_prefix(short: tuple[PathKey, ...], long: tuple[PathKey, ...]) -> bool:
    return len(short) < len(long) and long[: len(short)] == short


def _shifts(earlier: Change, path: tuple[PathKey, ...]) -> bool:
    """Whether ``earlier`` inserted or removed a list item in a list that ``path`` goes through.

    Indexes recorded before such a change refer to other items, so compaction must not look
    further back than it.
    """
    if earlier.op == "replace" or not earlier.path or not isinstance(earlier.path[-1], int):
        return False
    parent = earlier.path[:-1]
    return len(parent) < len(path) and path[: len(parent)] == parent


def compact_into(log: list[Change], change: Change) -> None:
    """Append ``change`` to ``log``, merging it with the earlier changes it makes redundant.

    A list index names a position, not an item: after an insert or a removal the same index
    holds another item, and edits of other items of the list were recorded against the
    positions of their time. So the scan stops at any insert or removal in a list the path
    goes through, and an insert or removal is only merged when that keeps every change that
    was recorded after it valid.
    """
    path = change.path
    in_list = bool(path) and isinstance(path[-1], int)
    list_len = len(path) - 1
    same: int | None = None
    crossed = False  # passed an edit of another item of the same list
    inside: list[int] = []
    for index in range(len(log) - 1, -1, -1):
        earlier = log[index]
        earlier_path = earlier.path
        if earlier_path == path:
            if not in_list or _mergeable_in_list(earlier.op, change.op, crossed):
                same = index
            break
        if _is_prefix(earlier_path, path):
            if earlier.op != "remove" and _fold(log, index, change):
                return
            break
        if _is_prefix(path, earlier_path):
            if in_list and change.op == "add":
                break  # those were edits of the item the new one pushed along
            inside.append(index)
            continue
        if _shifts(earlier, path):
            break
        if in_list and len(earlier_path) > list_len and earlier_path[:list_len] == path[:-1]:
            crossed = True
    old = change.old
    if inside:
        # The new value replaces everything that was edited inside the old one: undo those
        # edits on a copy of the old value to get the value as it was before any of them.
        old = json_copy(old)
        for index in inside:  # newest first
            old = _undo(old, log[index], len(path))
        for index in inside:  # descending, so earlier indexes stay valid
            del log[index]
    if same is None:
        if change.op == "replace" and same_json(change.value, old):
            return  # edits inside, then set back to what it was
        log.append(Change(change.op, path, change.value, old))
        return
    first = log[same]
    merged = _merge_same_path(first, change)
    if first.op == "add":
        # An insert must keep its place: later changes were recorded with the item there.
        if merged is None:
            del log[same]
        else:
            log[same] = merged
        return
    del log[same]
    if merged is not None:
        log.append(merged)


def _mergeable_in_list(first: Op, then: Op, crossed: bool) -> bool:
    """Whether two changes at one list index are of one item and may become one change.

    ``crossed``: other items of the list were edited in between (recorded against positions
    that an insert or removal merged away would shift).
    """
    if first == "remove":
        return then == "add" and not crossed  # remove + insert at one place: a replace
    if then == "add":
        return False  # a new item pushed the earlier one along
    if first == "add":
        return then == "replace" or not crossed
    return True


def _merge_same_path(first: Change, then: Change) -> Change | None:
    """Combine two changes of one path into one (or none, when they cancel out)."""
    if first.op == "add":
        if then.op == "remove":
            return None  # added, then removed: nothing happened
        return Change("add", then.path, then.value, MISSING)
    if first.op == "remove":
        if then.op == "add":
            # remove + add at one place is a replace (slice assignment, pop + insert)
            if same_json(first.old, then.value):
                return None
            return Change("replace", then.path, then.value, first.old)
        return Change(then.op, then.path, then.value, first.old)  # cannot happen twice
    # first is a replace
    if then.op == "remove":
        return Change("remove", then.path, MISSING, first.old)
    if same_json(then.value, first.old):
        return None
    return Change("replace", then.path, then.value, first.old)


def _fold(log: list[Change], index: int, change: Change) -> bool:
    """Fold ``change`` into the value of the earlier change at ``index`` that contains it."""
    earlier = log[index]
    value = json_copy(earlier.value)
    try:
        _apply(value, change.path[len(earlier.path) :], change.op, change.value)
    except (KeyError, IndexError, TypeError):
        return False  # the shapes disagree (e.g. a set stored as a list): keep both changes
    if earlier.op == "replace" and same_json(value, earlier.old):
        del log[index]
    else:
        log[index] = Change(earlier.op, earlier.path, value, earlier.old)
    return True


def _apply(target: Any, rel: tuple[PathKey, ...], op: str, value: Any) -> None:
    parent = target
    for key in rel[:-1]:
        parent = parent[key]
    key = rel[-1]
    if op == "replace":
        parent[key] = json_copy(value)
    elif op == "add":
        if isinstance(parent, list):
            parent.insert(cast(int, key), json_copy(value))
        else:
            parent[key] = json_copy(value)
    else:
        del parent[key]


def _undo(value: Any, change: Change, depth: int) -> Any:
    """Undo ``change`` (which lies inside ``value``, ``depth`` keys down) on ``value``."""
    rel = change.path[depth:]
    inverse = {"add": "remove", "remove": "add", "replace": "replace"}[change.op]
    # KeyError & co: the container was replaced wholesale since; nothing inside it to undo.
    with contextlib.suppress(KeyError, IndexError, TypeError):
        _apply(value, rel, inverse, change.old)
    return value


# --------------------------------------------------------------------------------------
# JSON Patch application (used by tests, by rebase, and by users who ship diffs elsewhere).


def apply_json_patch(document: Any, patch: Iterable[Mapping[str, Any]]) -> Any:
    """Apply RFC 6902 ``add``/``remove``/``replace`` operations to a copy of ``document``.

    Raises:
        ValueError: an operation does not fit the document.
    """
    result = json_copy(document)
    for operation in patch:
        keys = _parse_pointer(operation["path"])
        op = operation["op"]
        if not keys:
            if op in ("add", "replace"):
                result = json_copy(operation["value"])
                continue
            msg = "cannot remove the whole document"
            raise ValueError(msg)
        parent = result
        try:
            for key in keys[:-1]:
                parent = parent[int(key)] if isinstance(parent, list) else parent[key]
            last: PathKey = keys[-1]
            if isinstance(parent, list):
                last = len(parent) if last == "-" else int(last)
                if op == "add":
                    if not 0 <= last <= len(parent):
                        raise IndexError(last)
                    parent.insert(last, json_copy(operation["value"]))
                elif op == "replace":
                    parent[last] = json_copy(operation["value"])
                else:
                    del parent[last]
            elif op == "add":
                parent[last] = json_copy(operation["value"])
            elif op == "replace":
                if last not in parent:
                    raise KeyError(last)
                parent[last] = json_copy(operation["value"])
            else:
                del parent[last]
        except (KeyError, IndexError, TypeError, ValueError) as error:
            msg = f"patch operation {dict(operation)!r} does not apply: {error!r}"
            raise ValueError(msg) from None
    return result


def _parse_pointer(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        msg = f"invalid JSON pointer {pointer!r}"
        raise ValueError(msg)
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer[1:].split("/")]
