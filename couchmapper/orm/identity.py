"""The identity map: one object per document id in a session.

:class:`WeakIdentityMap` holds objects weakly, so a long scan over clean documents does not
grow memory (the session holds new, changed and deleted objects strongly elsewhere). It keeps
plain weak references -- the very ``weakref.ref`` each document's state already has, so a load
creates none -- and sweeps the entries of collected objects as it grows, instead of a callback
per object as :class:`weakref.WeakValueDictionary` does (a third of the cost of a load into a
session, measured in ``tests/benchmarks``).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any

__all__ = ["IdentityMap", "StrongIdentityMap", "WeakIdentityMap"]


class WeakIdentityMap:
    """Document id -> object, holding objects weakly."""

    __slots__ = ("_refs", "_since_sweep")

    def __init__(self) -> None:
        self._refs: dict[str, weakref.ref[Any]] = {}
        self._since_sweep = 0

    def get(self, doc_id: str) -> Any:
        """The object with this id, or None (also when it was garbage collected)."""
        ref = self._refs.get(doc_id)
        if ref is None:
            return None
        obj = ref()
        if obj is None:
            del self._refs[doc_id]
        return obj

    def set(self, doc_id: str, obj: Any, ref: weakref.ref[Any] | None = None) -> None:
        """Map ``doc_id`` to ``obj`` (``ref``: an existing weak reference to it, to reuse)."""
        self._refs[doc_id] = ref if ref is not None and ref() is obj else weakref.ref(obj)
        self._since_sweep += 1
        # Amortised O(1): sweep once the map has grown by half since the last sweep.
        if self._since_sweep > 1024 and self._since_sweep * 2 > len(self._refs):
            self._sweep()

    def _sweep(self) -> None:
        dead = [doc_id for doc_id, ref in self._refs.items() if ref() is None]
        for doc_id in dead:
            del self._refs[doc_id]
        self._since_sweep = 0

    def discard(self, doc_id: str, obj: Any = None) -> None:
        """Forget ``doc_id`` (only if it maps to ``obj``, when given)."""
        if obj is None or self.get(doc_id) is obj:
            self._refs.pop(doc_id, None)

    def values(self) -> list[Any]:
        """The live objects."""
        return [obj for ref in list(self._refs.values()) if (obj := ref()) is not None]

    def clear(self) -> None:
        """Forget everything."""
        self._refs.clear()
        self._since_sweep = 0

    def __len__(self) -> int:
        self._sweep()
        return len(self._refs)

    def __iter__(self) -> Iterator[str]:
        self._sweep()
        return iter(list(self._refs))


class StrongIdentityMap:
    """Document id -> object, holding every object strongly (``weak_identity_map=False``)."""

    __slots__ = ("_objects",)

    def __init__(self) -> None:
        self._objects: dict[str, Any] = {}

    def get(self, doc_id: str) -> Any:
        """The object with this id, or None."""
        return self._objects.get(doc_id)

    def set(self, doc_id: str, obj: Any, ref: weakref.ref[Any] | None = None) -> None:
        """Map ``doc_id`` to ``obj``."""
        self._objects[doc_id] = obj

    def discard(self, doc_id: str, obj: Any = None) -> None:
        """Forget ``doc_id`` (only if it maps to ``obj``, when given)."""
        if obj is None or self._objects.get(doc_id) is obj:
            self._objects.pop(doc_id, None)

    def values(self) -> list[Any]:
        """The objects."""
        return list(self._objects.values())

    def clear(self) -> None:
        """Forget everything."""
        self._objects.clear()

    def __len__(self) -> int:
        return len(self._objects)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._objects))


IdentityMap = WeakIdentityMap | StrongIdentityMap
