"""Codecs of containers and unions: lists, tuples, sets, dicts and ``A | B``.

Lists and dicts load into tracked containers (:mod:`couchmapper.tracking`) attached to their
parent; every bad item is collected with its index or key, so one error names them all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from couchmapper.model.codecs import (
    T_C,
    Codec,
    Invalid,
    bad,
    collect,
    plain,
    tracked_class,
)
from couchmapper.tracking import PathKey, TrackedDict, TrackedList, TrackedSet

__all__ = ["dict_codec", "list_codec", "set_codec", "sort_key", "tuple_codec", "union_codec"]


def _fresh(cls: type[T_C], parent: Any, key: PathKey) -> T_C:
    """An empty tracked container attached to ``parent`` (items are added untracked)."""
    tracked = cls.__new__(cls)
    tracked._cm_parent = parent
    tracked._cm_key = key
    return tracked


def _adopted(value: Any, cls: type, parent: Any, key: PathKey) -> bool:
    """Attach a detached container of exactly the right class instead of copying it."""
    if type(value) is not cls:
        return False
    container: Any = value
    if container._cm_parent is not None:
        return False
    container._cm_parent = parent
    container._cm_key = key
    return True


def list_codec(item: Codec, expected: str) -> Codec:
    fast = item.fast
    tracked_list = tracked_class(TrackedList, item)
    extend = list.extend

    def load(value: Any, parent: Any, key: PathKey) -> Any:
        if value.__class__ is not list:
            raise bad(expected, value)
        tracked = _fresh(tracked_list, parent, key)
        for x in value:
            if x.__class__ not in fast:
                break
        else:
            extend(tracked, value)
            return tracked
        errors: list[Any] = []
        extend(tracked, collect(value, lambda i, v: item.load(v, tracked, i), errors))
        if errors:
            raise Invalid(errors)
        return tracked

    def dump(value: Any) -> Any:
        if not isinstance(value, list):
            raise bad(expected, value)
        for x in value:
            if x.__class__ not in fast:
                break
        else:
            return list(value)
        errors: list[Any] = []
        out = collect(value, lambda i, v: item.dump(v), errors)
        if errors:
            raise Invalid(errors)
        return out

    def prepare(value: Any, parent: Any, key: PathKey) -> Any:
        if _adopted(value, tracked_list, parent, key):
            return value
        if not isinstance(value, (list, tuple)):
            raise bad(expected, value)
        tracked = _fresh(tracked_list, parent, key)
        errors: list[Any] = []
        items = collect(plain(value), lambda i, v: item.prepare(v, tracked, i), errors)
        if errors:
            raise Invalid(errors)
        extend(tracked, items)
        return tracked

    return Codec(expected, frozenset(), load, dump, prepare)


def tuple_codec(items: tuple[Codec, ...] | None, rest: Codec | None, expected: str) -> Codec:
    def pick(index: int) -> Codec:
        if items is not None:
            return items[index]
        assert rest is not None
        return rest

    def check_length(value: Any) -> None:
        if items is not None and len(value) != len(items):
            msg = f"{len(value)} item(s) instead of {len(items)}"
            raise Invalid([((), expected, msg)])

    def load(value: Any, parent: Any, key: PathKey) -> Any:
        if value.__class__ is not list:
            raise bad(expected, value)
        check_length(value)
        errors: list[Any] = []
        out = collect(value, lambda i, v: _frozen(pick(i).load(v, None, i)), errors)
        if errors:
            raise Invalid(errors)
        return tuple(out)

    def dump(value: Any) -> Any:
        if not isinstance(value, tuple):
            raise bad(expected, value)
        check_length(value)
        errors: list[Any] = []
        out = collect(value, lambda i, v: pick(i).dump(v), errors)
        if errors:
            raise Invalid(errors)
        return out

    def prepare(value: Any, parent: Any, key: PathKey) -> Any:
        if not isinstance(value, (tuple, list)):
            raise bad(expected, value)
        check_length(value)
        errors: list[Any] = []
        out = collect(value, lambda i, v: _frozen(pick(i).prepare(v, None, i)), errors)
        if errors:
            raise Invalid(errors)
        return tuple(out)

    return Codec(expected, frozenset(), load, dump, prepare)


def _frozen(value: Any) -> Any:
    """Tuples are immutable: their items are stored untracked."""
    return plain(value)


def sort_key(value: Any) -> tuple[str, Any]:
    return (type(value).__name__, value)


def set_codec(item: Codec, expected: str, frozen: bool) -> Codec:
    def build(values: list[Any], parent: Any, key: PathKey) -> Any:
        if frozen:
            return frozenset(values)
        return TrackedSet(values, parent=parent, key=key)

    def load(value: Any, parent: Any, key: PathKey) -> Any:
        if value.__class__ is not list:
            raise bad(expected, value)
        errors: list[Any] = []
        out = collect(value, lambda i, v: _frozen(item.load(v, None, i)), errors)
        if errors:
            raise Invalid(errors)
        return build(out, parent, key)

    def dump(value: Any) -> Any:
        if not isinstance(value, (set, frozenset)):
            raise bad(expected, value)
        errors: list[Any] = []
        out = collect(list(value), lambda i, v: item.dump(v), errors)
        if errors:
            raise Invalid(errors)
        try:
            return sorted(out)
        except TypeError:
            return sorted(out, key=sort_key)

    def prepare(value: Any, parent: Any, key: PathKey) -> Any:
        if not isinstance(value, (set, frozenset, list, tuple)):
            raise bad(expected, value)
        errors: list[Any] = []
        out = collect(list(value), lambda i, v: _frozen(item.prepare(v, None, i)), errors)
        if errors:
            raise Invalid(errors)
        return build(out, parent, key)

    return Codec(expected, frozenset(), load, dump, prepare)


def dict_codec(key_codec: Codec, item: Codec, expected: str) -> Codec:
    fast = item.fast
    tracked_dict = tracked_class(TrackedDict, item)
    update = dict.update

    def check_key(key: Any) -> None:
        if key.__class__ is not str:
            raise Invalid([((), "str keys", f"key {key!r} is a {type(key).__name__}")])
        if key_codec.fast != frozenset({str}):
            key_codec.load(key, None, "")

    def load(value: Any, parent: Any, key: PathKey) -> Any:
        if value.__class__ is not dict:
            raise bad(expected, value)
        tracked = _fresh(tracked_dict, parent, key)
        errors: list[Any] = []

        def one(k: Any, v: Any) -> Any:
            check_key(k)
            return v if v.__class__ in fast else item.load(v, tracked, k)

        items = collect(value, one, errors, keyed=True)
        if errors:
            raise Invalid(errors)
        update(tracked, items)
        return tracked

    def dump(value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise bad(expected, value)
        errors: list[Any] = []

        def one(k: Any, v: Any) -> Any:
            check_key(k)
            return v if v.__class__ in fast else item.dump(v)

        out = collect(value, one, errors, keyed=True)
        if errors:
            raise Invalid(errors)
        return out

    def prepare(value: Any, parent: Any, key: PathKey) -> Any:
        if _adopted(value, tracked_dict, parent, key):
            return value
        if not isinstance(value, Mapping):
            raise bad(expected, value)
        tracked = _fresh(tracked_dict, parent, key)
        errors: list[Any] = []

        def one(k: Any, v: Any) -> Any:
            check_key(k)
            return item.prepare(v, tracked, k)

        items = collect(plain(value), one, errors, keyed=True)
        if errors:
            raise Invalid(errors)
        update(tracked, items)
        return tracked

    return Codec(expected, frozenset(), load, dump, prepare)


# --------------------------------------------------------------------------------------
# Unions.


def union_codec(members: list[Codec], expected: str) -> Codec:
    fast = frozenset[type]().union(*(m.fast for m in members))
    checked = frozenset[type]().union(*(m.checked for m in members))
    set_fast = fast - checked

    # ``X | None`` with a value that is not None: X's own errors (with their paths inside
    # the value) say more than "expected X | None".
    not_none = [m for m in members if m.fast != frozenset({type(None)})]
    only = not_none[0] if len(not_none) == 1 else None

    def attempt(method: Callable[[Codec], Any], value: Any) -> Any:
        if only is not None and value is not None:
            try:
                return method(only)
            except Invalid as error:
                if any(path for path, _, _ in error.errors):
                    raise
        else:
            for member in members:
                try:
                    return method(member)
                except Invalid:
                    continue
        raise bad(expected, value)

    def load(value: Any, parent: Any, key: PathKey) -> Any:
        for member in members:
            if value.__class__ in member.fast:
                return value
        return attempt(lambda m: m.load(value, parent, key), value)

    def dump(value: Any) -> Any:
        if value.__class__ in fast:
            return value
        return attempt(lambda m: m.dump(value), value)

    def prepare(value: Any, parent: Any, key: PathKey) -> Any:
        if value.__class__ in set_fast:
            return value
        return attempt(lambda m: m.prepare(value, parent, key), value)

    return Codec(expected, fast, load, dump, prepare, checked)


# --------------------------------------------------------------------------------------
# Models: generated per class.
