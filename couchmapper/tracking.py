"""Change tracking: the change log, tracked containers, compaction and JSON Patch export.

Every mutation of a tracked document -- a field set, an edit of an embedded object, a list,
dict or set edit at any depth -- is recorded on the document's :class:`Tracker` as a
:class:`Change`. The log is compacted as it grows, so it always describes the shortest edit
from the loaded document to the current one that this module knows how to find:

* setting a path twice keeps the first old value; setting it back to that value drops it;
* adding then removing the same list item or dict key leaves nothing;
* a change inside a value that was itself set in this log is folded into that set;
* setting a container supersedes the earlier edits inside it.

``Change.value`` and ``Change.old`` are JSON values, exactly as CouchDB stores them (a
``datetime`` appears as its ISO string), detached from the live document: later edits never
alter a recorded change. This module knows nothing of sessions; the owner of a tracker is told
once, on the first change, so it can keep a dirty set without scanning.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from typing import (
    TYPE_CHECKING,
    Any,
    Final,
    Self,
    SupportsIndex,
    TypeVar,
    cast,
    overload,
)

from couchmapper._changelog import (
    MISSING,
    Change,
    ChangeList,
    PathKey,
    apply_json_patch,
    compact_into,
    format_path,
    json_copy,
    same_json,
    to_pointer,
)

__all__ = [
    "MISSING",
    "Change",
    "ChangeList",
    "PathKey",
    "TrackedDict",
    "TrackedList",
    "TrackedSet",
    "Tracker",
    "apply_json_patch",
    "detach",
    "format_path",
    "locate",
    "node_parent",
    "root_tracker",
    "set_parent",
    "to_pointer",
    "typed_container",
]

T_C = TypeVar("T_C", bound="_TrackedContainer")


class Tracker:
    """The change log of one document.

    Subclasses set :attr:`to_json` (live value -> detached JSON) and may override
    :meth:`on_first_change`, which runs once when the log goes from nothing recorded to
    something, and again only after :meth:`reset`.

    Attributes are created lazily (class-level defaults) because a tracker is made for every
    loaded document and most documents are only read.

    Its attributes are public for the tracking descriptors' hot path (``document``), which
    inlines :meth:`set_scalar`; other code reads changes through :attr:`changes`.
    """

    to_json: Callable[[Any], Any] = staticmethod(json_copy)
    log: list[Change] | None = None
    # Sets of top-level fields from one JSON scalar to another commute with every other
    # change, so they skip the ordered log: field name -> the value before the first set.
    # Only the first old value is stored; whether the field really changed (it may have been
    # set back) is decided when the changes are read, so a field set stays cheap.
    scalars: dict[str, Any] | None = None
    # The current values of scalars fields, for trackers that cannot read their object.
    scalar_values: dict[str, Any] | None = None
    # Top-level keys with entries in the ordered log (their sets must take the slow path).
    log_roots: set[PathKey] | frozenset[PathKey] = frozenset()
    # Two more side tables for hot edits under a top-level key with no entry in the ordered
    # log, so they commute with it as ``scalars`` do (the tracking descriptors and
    # ``TrackedList.append`` fill them inline). The first change recorded in the log under
    # that key moves them into the log first, in order (:meth:`_settle`).
    # Each entry has a mark (:meth:`side_mark`) that places its changes among the log's.
    # Scalar sets in an embedded object held by a document field: key of the field -> the
    # object, whose ``__dict__["_cm_sets"]`` maps its field -> [old, new, mark] and None ->
    # this tracker (there, a
    # repeated set finds its entry without walking up to the tracker).
    nested: dict[PathKey, Any] | None = None
    # Scalar appends to a list held by a document field: key -> [mark, first index, *values].
    appends: dict[PathKey, list[Any]] | None = None
    reported = False

    def current_value(self, name: str) -> Any:
        """The current value of top-level field ``name`` (subclasses read their object)."""
        return (self.scalar_values or {}).get(name, MISSING)

    def _scalar_changes(self) -> Iterator[Change]:
        for name, old in (self.scalars or {}).items():
            new = self.current_value(name)
            if new is not MISSING and not same_json(new, old):
                yield Change("replace", (name,), new, old)

    def side_mark(self) -> tuple[int, int]:
        """Where a new side-table entry falls among the ordered log's changes (for listing)."""
        nested = sum(len(_sets_of(node)) for node in (self.nested or {}).values())
        return len(self.log or ()), nested + len(self.appends or ())

    def _with_side_changes(self, log: list[Change]) -> ChangeList:
        """``log`` with the side tables' changes put where they were first recorded."""
        side: list[tuple[tuple[int, int], list[Change]]] = []
        for root, node in (self.nested or {}).items():
            for name, (old, new, mark) in _sets_of(node).items():
                if not same_json(new, old):
                    side.append((mark, [Change("replace", (root, name), new, old)]))
        for key, entry in (self.appends or {}).items():
            start = entry[1]
            adds = [Change("add", (key, start + i), v) for i, v in enumerate(entry[2:])]
            side.append((entry[0], adds))
        side.sort(key=lambda item: item[0])
        result, taken = ChangeList(), 0
        for (recorded_at, _), changes in side:
            # Side changes commute with the log (other top-level keys): any place is right;
            # the place they were recorded at keeps the listing in the order of the edits.
            position = max(taken, min(recorded_at, len(log)))
            result.extend(log[taken:position])
            result.extend(changes)
            taken = position
        result.extend(log[taken:])
        return result

    @property
    def changes(self) -> ChangeList:
        """A copy of the compacted change log."""
        result = ChangeList(self.log or ())
        if self.nested or self.appends:
            result = self._with_side_changes(result)
        if self.scalars:
            result.extend(self._scalar_changes())
        return result

    @property
    def has_changes(self) -> bool:
        """Whether anything is recorded (a field set back to its old value is no change)."""
        if self.log:
            return True
        for name, old in (self.scalars or {}).items():
            new = self.current_value(name)
            if new is not MISSING and not same_json(new, old):
                return True
        if self.appends:
            return True
        return any(
            not same_json(new, old)
            for node in (self.nested or {}).values()
            for old, new, _ in _sets_of(node).values()
        )

    def reset(self) -> None:
        """Forget every change (after a flush wrote them, or a rollback undid them)."""
        self.log = None
        self.scalars = None
        self.scalar_values = None
        self.log_roots = frozenset()
        for node in (self.nested or {}).values():
            node.__dict__.pop("_cm_sets", None)
        self.nested = None
        self.appends = None
        self.reported = False

    def on_first_change(self) -> None:
        """Called once when the first change is recorded (the owner keeps a dirty set)."""

    def report_change(self) -> None:
        """Run :meth:`on_first_change` unless it ran since the last :meth:`reset`."""
        if not self.reported:
            self.reported = True
            try:
                self.on_first_change()
            except BaseException:
                self.reported = False  # refused (another thread): report the next one too
                raise

    # Recording ---------------------------------------------------------------------------

    def can_set_scalar(self, name: str) -> bool:
        """Whether a scalar set of top-level field ``name`` may take :meth:`set_scalar`."""
        return name not in self.log_roots

    def set_scalar(self, name: str, old: Any, value: Any) -> None:
        """Record a top-level field going from one JSON scalar to another.

        Both values must be ``str``/``int``/``float``/``bool``/``None`` and
        :meth:`can_set_scalar` must have said yes. (Document field descriptors inline this
        and let :meth:`current_value` read the object instead of keeping ``scalar_values``.)
        """
        if self.scalar_values is None:
            self.scalar_values = {}
        self.scalar_values[name] = value
        if self.scalars is None:
            self.scalars = {}
        if name not in self.scalars:
            if old.__class__ is value.__class__ and old == value:
                return
            self.scalars[name] = old
            self.report_change()

    def record_replace(self, path: tuple[PathKey, ...], value: Any, old: Any) -> None:
        """Record that ``path`` now holds ``value`` (live) where it held ``old`` (live)."""
        to_json = self.to_json
        old_json = to_json(old)
        if len(path) == 1 and self.scalars and path[0] in self.scalars:
            old_json = self.scalars.pop(path[0])
        self._record(Change("replace", path, to_json(value), old_json))

    def record_add(self, path: tuple[PathKey, ...], value: Any) -> None:
        """Record a new list item or dict key at ``path``."""
        self._record(Change("add", path, self.to_json(value), MISSING))

    def record_remove(self, path: tuple[PathKey, ...], old: Any) -> None:
        """Record that the list item or dict key at ``path`` was removed."""
        self._record(Change("remove", path, MISSING, self.to_json(old)))

    def record(self, change: Change) -> None:
        """Record ``change`` (JSON values) as if the object had been edited that way."""
        self._record(change)

    def start_log(self, changes: list[Change]) -> None:
        """Make ``changes`` the log of an object with none yet (each at its own path).

        An already compact list (an upgrade on load) becomes the log at once instead of
        being compacted change by change.
        """
        assert not self.log and not self.scalars and not self.nested and not self.appends
        if changes:
            self.log = changes
            self.log_roots = {change.path[0] for change in changes}
            self.report_change()

    def _settle(self, root: PathKey) -> None:
        """Move the side-table entries under top-level key ``root`` into the ordered log."""
        appended = self.appends.pop(root, None) if self.appends else None
        node = self.nested.pop(root, None) if self.nested else None
        fields = _sets_of(node) if node is not None else None
        if node is not None:
            node.__dict__.pop("_cm_sets", None)
        if appended is not None:
            start = appended[1]
            for offset, value in enumerate(appended[2:]):
                self._record(Change("add", (root, start + offset), value))
        for name, (old, new, _) in (fields or {}).items():
            if not same_json(new, old):
                self._record(Change("replace", (root, name), new, old))

    def _record(self, change: Change) -> None:
        if change.path and change.path[0] not in self.log_roots:
            if self.nested or self.appends:
                self._settle(change.path[0])
            self.log_roots = {*self.log_roots, change.path[0]}
        log = self.log
        if log is None:
            log = self.log = []
        if not log:
            if change.op == "replace" and same_json(change.value, change.old):
                return  # e.g. sorting a sorted list
            log.append(change)
            self.report_change()
            return
        # Fast path: the previous change touched the same path (a counter being bumped).
        last = log[-1]
        if last.path == change.path and change.op == "replace" and last.op == "replace":
            if same_json(change.value, last.old):
                log.pop()
            else:
                log[-1] = Change("replace", change.path, change.value, last.old)
            self.report_change()
            return
        compact_into(log, change)
        if log:
            self.report_change()


def _sets_of(node: Any) -> dict[str, list[Any]]:
    """The ``nested`` side-table entries kept on an embedded object (see Tracker)."""
    sets = node.__dict__.get("_cm_sets", {})
    return {name: entry for name, entry in sets.items() if name is not None}


# --------------------------------------------------------------------------------------
# Tracked containers.
#
# Every tracked node (container or embedded object) knows its parent and its key in it; the
# path of a change is found by walking up, so nodes never store paths that list edits would
# make stale. A list child's index is looked up by identity when a change is recorded.


def locate(node: Any) -> tuple[Tracker | None, tuple[PathKey, ...]]:
    """Return the tracker of the document ``node`` lives in, and ``node``'s path there."""
    keys: list[PathKey] = []
    while True:
        parent, key = node_parent(node)
        if parent is None:
            return root_tracker(node), tuple(reversed(keys))
        if isinstance(parent, list):
            key = _index_of(parent, node)
        keys.append(key)
        node = parent


def _index_of(items: list[Any], node: Any) -> int:
    for index, item in enumerate(items):
        if item is node:
            return index
    msg = "tracked list item is no longer in its list"
    raise RuntimeError(msg)


def node_parent(node: Any) -> tuple[Any, PathKey]:
    """Return a tracked node's parent and key (``(None, "")`` at the top)."""
    if isinstance(node, _TrackedContainer):
        return node._cm_parent, node._cm_key
    link = getattr(node, "__dict__", {}).get("_cm_parent")
    if link is None:
        return None, ""
    return cast(tuple[Any, PathKey], link)


def root_tracker(node: Any) -> Tracker | None:
    """Return the tracker attached to a top-level node, if any."""
    if isinstance(node, _TrackedContainer):
        return cast("Tracker | None", getattr(node, "_cm_tracker", None))
    return cast("Tracker | None", getattr(node, "__dict__", {}).get("_cm_state"))


def set_parent(node: Any, parent: Any, key: PathKey) -> None:
    """Attach a tracked node to its parent."""
    if isinstance(node, _TrackedContainer):
        node._cm_parent = parent
        node._cm_key = key
    else:
        node.__dict__["_cm_parent"] = (parent, key)


class _TrackedContainer:
    """Shared parts of the tracked containers (a mixin; the concrete classes add slots).

    ``_cm_wrap`` (validate and wrap an item stored into the container) is a class attribute:
    :func:`typed_container` makes one subclass per item type, so a container costs two slots.
    """

    if not TYPE_CHECKING:
        # The concrete classes declare the two slots (a mixin with a non-empty layout cannot
        # be combined with list, dict or set); hidden from mypy, which would otherwise reject
        # assigning them through the mixin type.
        __slots__ = ()
    _cm_parent: Any
    _cm_key: PathKey

    if TYPE_CHECKING:

        def to_plain(self) -> Any:
            """Return an untracked deep copy (each concrete container defines it)."""

    def _cm_locate(self) -> tuple[Tracker | None, tuple[PathKey, ...]]:
        return locate(self)


def _plain_wrap(value: Any, parent: Any, key: PathKey) -> Any:
    """Wrap raw JSON containers for tracking (the default for containers of ``Any``)."""
    if isinstance(value, _TrackedContainer) or not isinstance(value, (list, dict)):
        if isinstance(value, _TrackedContainer) and value._cm_parent is None:
            set_parent(value, parent, key)
            return value
        if isinstance(value, _TrackedContainer):
            value = value.to_plain()
        else:
            return value
    if isinstance(value, list):
        return TrackedList(value, parent=parent, key=key)
    return TrackedDict(value, parent=parent, key=key)


_typed: dict[tuple[type, Callable[..., Any], frozenset[type]], type] = {}
_JSON_SCALARS: Final[frozenset[type]] = frozenset({str, int, float, bool, type(None)})
_NO_FIELDS: Final[dict[str, Any]] = {}


def typed_container(
    base: type[T_C],
    wrap: Callable[[Any, Any, PathKey], Any],
    name: str,
    fast: frozenset[type] = frozenset(),
) -> type[T_C]:
    """Return the subclass of a tracked container whose items are wrapped by ``wrap``.

    ``fast``: classes of items that ``wrap`` returns unchanged (it is skipped for them).
    """
    key = (base, wrap, fast)
    cls = _typed.get(key)
    if cls is None:
        namespace = {"__slots__": (), "_cm_wrap": staticmethod(wrap), "_cm_fast": fast}
        cls = type(f"{base.__name__}[{name}]", (base,), namespace)
        _typed[key] = cls
    return cast(type[T_C], cls)


class TrackedList(_TrackedContainer, list[Any]):
    """A list that records every edit (``append``, ``del``, slice assignment, ``sort``...)."""

    # The in-place operators below return Self where the binary ones return a plain container;
    # mypy flags that pairing (typeshed's own stubs carry the same ``ignore[misc]``).

    __slots__ = ("_cm_key", "_cm_parent")
    _cm_wrap: Callable[[Any, Any, PathKey], Any] = staticmethod(_plain_wrap)
    # Item classes ``_cm_wrap`` returns unchanged (``_plain_wrap`` keeps every scalar).
    _cm_fast: frozenset[type] = _JSON_SCALARS

    def __init__(self, items: Iterable[Any] = (), *, parent: Any = None, key: PathKey = "") -> None:
        self._cm_parent = parent
        self._cm_key = key
        wrap = self._cm_wrap
        list.__init__(self, (wrap(item, self, 0) for item in items))

    def to_plain(self) -> list[Any]:
        """Return an untracked deep copy."""
        return [_to_plain(item) for item in self]

    def __reduce_ex__(self, protocol: SupportsIndex) -> Any:
        return (list, (self.to_plain(),))

    def __copy__(self) -> list[Any]:
        return list(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        return self.to_plain()

    # Edits -------------------------------------------------------------------------------

    def _wrapped(self, value: Any) -> Any:
        return self._cm_wrap(value, self, 0)

    def append(self, value: Any) -> None:
        if value.__class__ not in self._cm_fast:
            value = self._cm_wrap(value, self, 0)
        list.append(self, value)
        parent = self._cm_parent
        if parent is None:
            return
        # Fast path: a scalar appended to a list held by a document field, while that field
        # has nothing in the ordered log, goes to the ``appends`` side table (see Tracker).
        state = getattr(parent, "__dict__", _NO_FIELDS).get("_cm_state")
        key = self._cm_key
        if state is not None and value.__class__ in _JSON_SCALARS and key not in state.log_roots:
            appends = state.appends
            if appends is None:
                appends = state.appends = {}
            entry = appends.get(key)
            if entry is None:
                appends[key] = [state.side_mark(), len(self) - 1, value]
            else:
                entry.append(value)
            if not state.reported:
                state.report_change()
            return
        tracker, path = self._cm_locate()
        if tracker is not None:
            tracker.record_add((*path, len(self) - 1), value)

    def insert(self, index: SupportsIndex, value: Any) -> None:
        value = self._wrapped(value)
        position = _clamp_insert(len(self), int(index))
        list.insert(self, position, value)
        tracker, path = self._cm_locate()
        if tracker is not None:
            tracker.record_add((*path, position), value)

    def extend(self, values: Iterable[Any]) -> None:
        for value in list(values):
            self.append(value)

    def __iadd__(self, values: Iterable[Any]) -> Self:  # type: ignore[misc]
        self.extend(values)
        return self

    def __imul__(self, times: SupportsIndex) -> Self:
        original = self.to_plain()
        if int(times) <= 0:
            self.clear()
        else:
            for _ in range(int(times) - 1):
                self.extend(copy.deepcopy(original))
        return self

    def pop(self, index: SupportsIndex = -1) -> Any:
        position = int(index)
        if position < 0:
            position += len(self)
        value = list.pop(self, index)
        tracker, path = self._cm_locate()
        if tracker is not None:
            tracker.record_remove((*path, position), value)
        detach(value)
        return value

    def remove(self, value: Any) -> None:
        self.pop(self.index(value))

    def clear(self) -> None:
        while self:
            self.pop()

    @overload
    def __setitem__(self, index: SupportsIndex, value: Any) -> None: ...
    @overload
    def __setitem__(self, index: slice, value: Iterable[Any]) -> None: ...
    def __setitem__(self, index: SupportsIndex | slice, value: Any) -> None:
        if isinstance(index, slice):
            self._set_slice(index, value)
            return
        position = int(index)
        if position < 0:
            position += len(self)
        old = self[position]
        new = self._wrapped(value)
        list.__setitem__(self, position, new)
        detach(old)
        tracker, path = self._cm_locate()
        if tracker is not None:
            tracker.record_replace((*path, position), new, old)

    def _set_slice(self, index: slice, values: Iterable[Any]) -> None:
        values = list(values)
        start, stop, step = index.indices(len(self))
        if step != 1:
            with self._whole_list_change():
                new_items = [self._wrapped(value) for value in values]
                list.__setitem__(self, index, new_items)
            return
        stop = max(start, stop)
        for _ in range(stop - start):
            self.pop(start)
        for offset, value in enumerate(values):
            self.insert(start + offset, value)

    @overload
    def __delitem__(self, index: SupportsIndex) -> None: ...
    @overload
    def __delitem__(self, index: slice) -> None: ...
    def __delitem__(self, index: SupportsIndex | slice) -> None:
        if isinstance(index, slice):
            positions = range(*index.indices(len(self)))
            for position in sorted(positions, reverse=True):
                self.pop(position)
            return
        self.pop(index)

    def sort(self, *, key: Any = None, reverse: bool = False) -> None:
        with self._whole_list_change():
            list.sort(self, key=key, reverse=reverse)

    def reverse(self) -> None:
        with self._whole_list_change():
            list.reverse(self)

    def _whole_list_change(self) -> _WholeChange:
        return _WholeChange(self)


class _WholeChange:
    """Record a reordering edit of a container as one replace of the whole container."""

    def __init__(self, container: TrackedList | TrackedSet) -> None:
        self.container = container
        self.tracker, self.path = container._cm_locate()
        self.old = container.to_plain() if self.tracker is not None else None

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        if self.tracker is not None:
            self.tracker.record_replace(self.path, self.container, self.old)


def _clamp_insert(length: int, index: int) -> int:
    if index < 0:
        index = max(0, length + index)
    return min(index, length)


def detach(value: Any) -> None:
    """Cut ``value`` (a tracked container or embedded object) loose from its parent."""
    if isinstance(value, _TrackedContainer):
        value._cm_parent = None
    elif hasattr(value, "__dict__") and "_cm_parent" in value.__dict__:
        value.__dict__["_cm_parent"] = None


def _to_plain(value: Any) -> Any:
    if isinstance(value, (TrackedList, TrackedDict, TrackedSet)):
        return value.to_plain()
    return value


class TrackedDict(_TrackedContainer, dict[Any, Any]):
    """A dict that records every edit (``d[k] = v``, ``del``, ``pop``, ``update``...)."""

    __slots__ = ("_cm_key", "_cm_parent")
    _cm_wrap: Callable[[Any, Any, PathKey], Any] = staticmethod(_plain_wrap)

    def __init__(
        self,
        items: Mapping[Any, Any] | Iterable[tuple[Any, Any]] = (),
        *,
        parent: Any = None,
        key: PathKey = "",
    ) -> None:
        self._cm_parent = parent
        self._cm_key = key
        wrap = self._cm_wrap
        pairs = items.items() if isinstance(items, Mapping) else items
        dict.__init__(self, ((k, wrap(v, self, k)) for k, v in pairs))

    def to_plain(self) -> dict[Any, Any]:
        """Return an untracked deep copy."""
        return {key: _to_plain(value) for key, value in self.items()}

    def __reduce_ex__(self, protocol: SupportsIndex) -> Any:
        return (dict, (self.to_plain(),))

    def __copy__(self) -> dict[Any, Any]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[Any, Any]:
        return self.to_plain()

    def __setitem__(self, key: Any, value: Any) -> None:
        new = self._cm_wrap(value, self, key)
        old = dict.get(self, key, MISSING)
        dict.__setitem__(self, key, new)
        tracker, path = self._cm_locate()
        if tracker is not None:
            if old is MISSING:
                tracker.record_add((*path, key), new)
            else:
                tracker.record_replace((*path, key), new, old)
        if old is not MISSING and old is not new:
            detach(old)

    def __delitem__(self, key: Any) -> None:
        old = dict.pop(self, key)
        tracker, path = self._cm_locate()
        if tracker is not None:
            tracker.record_remove((*path, key), old)
        detach(old)

    _sentinel: Final = object()

    def pop(self, key: Any, default: Any = _sentinel) -> Any:
        if key not in self:
            if default is TrackedDict._sentinel:
                raise KeyError(key)
            return default
        value = dict.__getitem__(self, key)
        del self[key]
        return value

    def popitem(self) -> tuple[Any, Any]:
        if not self:
            msg = "popitem(): dictionary is empty"
            raise KeyError(msg)
        key = next(reversed(self.keys()))
        return key, self.pop(key)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return dict.__getitem__(self, key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def __ior__(self, other: Any) -> Self:  # type: ignore[misc]
        self.update(other)
        return self

    def clear(self) -> None:
        for key in list(self):
            del self[key]


class TrackedSet(_TrackedContainer, set[Any]):
    """A set that records its edits.

    JSON has no sets: a set is stored as a sorted array, so an edit is recorded as one
    ``replace`` of the whole array (positions in it mean nothing).
    """

    __slots__ = ("_cm_key", "_cm_parent")

    def __init__(self, items: Iterable[Any] = (), *, parent: Any = None, key: PathKey = "") -> None:
        self._cm_parent = parent
        self._cm_key = key
        set.__init__(self, items)

    def to_plain(self) -> set[Any]:
        """Return an untracked copy."""
        return set(self)

    def __reduce_ex__(self, protocol: SupportsIndex) -> Any:
        return (set, (self.to_plain(),))

    def __copy__(self) -> set[Any]:
        return set(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> set[Any]:
        return set(self)

    def _edit(self, method: Callable[..., Any], *args: Any) -> Any:
        tracker, path = self._cm_locate()
        if tracker is None:
            return method(self, *args)
        before = set(self)
        result = method(self, *args)
        if before != self:
            tracker.record_replace(path, self, before)
        return result

    def add(self, value: Any) -> None:
        self._edit(set.add, value)

    def discard(self, value: Any) -> None:
        self._edit(set.discard, value)

    def remove(self, value: Any) -> None:
        self._edit(set.remove, value)

    def pop(self) -> Any:
        return self._edit(set.pop)

    def clear(self) -> None:
        self._edit(set.clear)

    def update(self, *others: Iterable[Any]) -> None:
        self._edit(set.update, *others)

    def difference_update(self, *others: Iterable[Any]) -> None:
        self._edit(set.difference_update, *others)

    def intersection_update(self, *others: Iterable[Any]) -> None:
        self._edit(set.intersection_update, *others)

    def symmetric_difference_update(self, other: Iterable[Any]) -> None:
        self._edit(set.symmetric_difference_update, other)

    def __ior__(self, other: AbstractSet[Any]) -> Self:  # type: ignore[misc]
        self.update(other)
        return self

    def __iand__(self, other: AbstractSet[Any]) -> Self:  # type: ignore[misc]
        self.intersection_update(other)
        return self

    def __isub__(self, other: AbstractSet[Any]) -> Self:  # type: ignore[misc]
        self.difference_update(other)
        return self

    def __ixor__(self, other: AbstractSet[Any]) -> Self:  # type: ignore[misc]
        self.symmetric_difference_update(other)
        return self

    def __iter__(self) -> Iterator[Any]:
        return set.__iter__(self)
