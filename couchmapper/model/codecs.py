"""Codecs: how values of each type are loaded from JSON, dumped to JSON and assigned.

A :class:`Codec` per type -- scalars, strings standing for dates, decimals, uuids and bytes,
enums, literals and raw JSON (``Any``); lists, tuples, sets, dicts and unions are in
:mod:`couchmapper.model.containers`. Model classes get generated codecs in
:mod:`couchmapper.model.conversion`, which also picks the codec of a type.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import math
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final, TypeAlias, TypeVar

import attrs

from couchmapper.exceptions import FieldError, ValidationError
from couchmapper.tracking import (
    PathKey,
    TrackedDict,
    TrackedList,
    TrackedSet,
    format_path,
    locate,
    node_parent,
    set_parent,
    typed_container,
)

__all__ = [
    "ANY_CODEC",
    "JSON_SCALARS",
    "MAX_DEPTH",
    "TEXT_CODECS",
    "Codec",
    "Dumper",
    "Invalid",
    "Loader",
    "bad",
    "check_json_value",
    "collect",
    "enum_codec",
    "float_codec",
    "item_guard",
    "literal_codec",
    "plain",
    "scalar_codec",
    "too_deep",
    "tracked_class",
]

JSON_SCALARS: Final[frozenset[type]] = frozenset({str, int, float, bool, type(None)})
"""The classes that are JSON values as they are."""

T_C = TypeVar("T_C", TrackedList, TrackedDict)
Loader: TypeAlias = Callable[[Any, Any, PathKey], Any]
Dumper: TypeAlias = Callable[[Any], Any]


class Invalid(Exception):
    """Bad values found while converting; ``errors`` holds (path, expected, message) each."""

    def __init__(self, errors: list[tuple[tuple[PathKey, ...], str, str]]) -> None:
        self.errors = errors
        super().__init__(errors)

    def prefixed(self, key: PathKey) -> list[tuple[tuple[PathKey, ...], str, str]]:
        """The errors with ``key`` put in front of each path."""
        return [((key, *path), expected, message) for path, expected, message in self.errors]

    def prefixed_path(
        self, prefix: tuple[PathKey, ...]
    ) -> list[tuple[tuple[PathKey, ...], str, str]]:
        """The errors with the path ``prefix`` put in front of each path."""
        return [((*prefix, *path), expected, message) for path, expected, message in self.errors]

    def to_validation_error(
        self, doc_id: str | None, cls_name: str = "", path: tuple[PathKey, ...] = ()
    ) -> ValidationError:
        """Turn the collected errors into the public exception.

        Args:
            doc_id: the id of the document the values belong to.
            cls_name: the document's class name, for the message.
            path: where the converted value sits in the document (put before every path).
        """
        errors = [FieldError(format_path((*path, *p)), e, m) for p, e, m in self.errors]
        return ValidationError(doc_id, errors, cls_name)


def bad(expected: str, value: Any) -> Invalid:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return Invalid([((), expected, f"got {type(value).__name__} {shown}")])


@attrs.frozen
class Codec:
    """How one type is loaded, dumped and assigned.

    Attributes:
        expected: the type as people write it, for error messages.
        fast: classes whose values pass through load, dump and prepare unchanged (except
            the ``checked`` ones, which ``prepare`` still validates: NaN floats).
        load: JSON value -> live value; ``(value, parent, key)``, raises :class:`Invalid`.
        dump: live value -> JSON value; raises :class:`Invalid`.
        prepare: a value assigned in Python -> the live value to store (validated, wrapped
            for tracking, attached to ``parent``); raises :class:`Invalid`.
    """

    expected: str
    fast: frozenset[type]
    load: Loader
    dump: Dumper
    prepare: Loader
    checked: frozenset[type] = frozenset()

    @property
    def set_fast(self) -> frozenset[type]:
        """Classes whose values an assignment stores unchanged, without calling ``prepare``."""
        return self.fast - self.checked


# --------------------------------------------------------------------------------------
# Codecs for scalars.


def scalar_codec(expected: str, classes: frozenset[type]) -> Codec:
    def load(value: Any, parent: Any, key: PathKey) -> Any:
        if value.__class__ in classes:
            return value
        raise bad(expected, value)

    def dump(value: Any) -> Any:
        if value.__class__ in classes:
            return value
        raise bad(expected, value)

    return Codec(expected, classes, load, dump, load)


def float_codec() -> Codec:
    """Floats (ints accepted); a NaN or infinity set in Python is refused: JSON cannot carry it.

    Loads and dumps pass floats through (CouchDB never sends NaN; a flush checks each
    document before sending it), so only ``prepare`` pays for the check (``checked``).
    """
    isfinite = math.isfinite

    def load(value: Any, parent: Any, key: PathKey) -> Any:
        if value.__class__ is float:
            return value
        if value.__class__ is int:
            return float(value)
        raise bad("float", value)

    def dump(value: Any) -> Any:
        if value.__class__ is float or value.__class__ is int:
            return value
        raise bad("float", value)

    def prepare(value: Any, parent: Any, key: PathKey) -> Any:
        if value.__class__ is float and not isfinite(value):
            message = f"got {value!r}, which JSON cannot carry (no NaN or infinity)"
            raise Invalid([((), "float", message)])
        return load(value, parent, key)

    return Codec("float", _FLOAT, load, dump, prepare, checked=_FLOAT)


_FLOAT: Final = frozenset({float})


def _text_codec(
    expected: str,
    live: type,
    parse: Callable[[str], Any],
    render: Callable[[Any], str],
    *,
    exact: bool = True,
    valid: Callable[[Any], bool] | None = None,
) -> Codec:
    """A value stored in JSON as a string (dates, decimals, uuids, bytes).

    ``valid`` refuses values of the right class that could not be loaded back (NaN decimals).
    """

    def load(value: Any, parent: Any, key: PathKey) -> Any:
        if value.__class__ is not str:
            raise bad(f"{expected} (as a string)", value)
        try:
            return parse(value)
        except (ValueError, TypeError, InvalidOperation, binascii.Error):
            raise bad(expected, value) from None

    def accepts(value: Any) -> bool:
        right_class = value.__class__ is live if exact else isinstance(value, live)
        return right_class and (valid is None or valid(value))

    def dump(value: Any) -> Any:
        if accepts(value):
            return render(value)
        raise bad(expected, value)

    def prepare(value: Any, parent: Any, key: PathKey) -> Any:
        if accepts(value):
            return value
        raise bad(expected, value)

    return Codec(expected, frozenset(), load, dump, prepare)


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _b64encode(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _datetime_parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)


def _decimal_parse(text: str) -> Decimal:
    value = Decimal(text)
    if not value.is_finite():
        raise ValueError(text)
    return value


TEXT_CODECS: Final[dict[Any, Codec]] = {
    dt.datetime: _text_codec("datetime", dt.datetime, _datetime_parse, dt.datetime.isoformat),
    dt.date: _text_codec("date", dt.date, dt.date.fromisoformat, dt.date.isoformat),
    dt.time: _text_codec("time", dt.time, dt.time.fromisoformat, dt.time.isoformat),
    Decimal: _text_codec("Decimal", Decimal, _decimal_parse, str, valid=Decimal.is_finite),
    uuid.UUID: _text_codec("UUID", uuid.UUID, uuid.UUID, str),
    bytes: _text_codec("bytes", bytes, _b64decode, _b64encode),
}


def enum_codec(cls: type[enum.Enum]) -> Codec:
    members = {member.value: member for member in cls}
    expected = f"{cls.__name__} ({', '.join(repr(v) for v in members)})"

    def load(value: Any, parent: Any, key: PathKey) -> Any:
        try:
            if value.__class__ in JSON_SCALARS and value.__class__ is not bool:
                return members[value]
        except (KeyError, TypeError):
            pass
        raise bad(expected, value)

    def dump(value: Any) -> Any:
        if isinstance(value, cls):
            return value.value
        raise bad(expected, value)

    def prepare(value: Any, parent: Any, key: PathKey) -> Any:
        if isinstance(value, cls):
            return value
        raise bad(expected, value)

    return Codec(expected, frozenset(), load, dump, prepare)


def literal_codec(values: tuple[Any, ...]) -> Codec:
    allowed = {(type(v), v) for v in values}
    expected = f"one of {', '.join(repr(v) for v in values)}"

    def check(value: Any, parent: Any = None, key: PathKey = "") -> Any:
        if (type(value), value) in allowed:
            return value
        raise bad(expected, value)

    return Codec(expected, frozenset(), check, check, check)


# --------------------------------------------------------------------------------------
# Any: raw JSON, tracked in place.


MAX_DEPTH: Final = 100
"""How many levels of objects and arrays a value may nest inside a document field.

Tracking, dumping and comparing values recurse once per level, so a value nested deeper
than Python's recursion limit allows would fail with a bare ``RecursionError`` wherever it
is touched. Values past this limit are refused with a :class:`ValidationError` naming the
document and the path instead: on assignment, and when a stored document is loaded.
"""

_TOO_DEEP = f"at most {MAX_DEPTH} levels of nested objects and arrays"


def check_json_value(value: Any, room: int = MAX_DEPTH) -> None:
    """Raise :class:`Invalid` listing every value of ``value`` that is not JSON.

    Also refuses containers more than ``room`` levels deep. Iterative, so a hostile value
    cannot exhaust the stack while it is being checked.
    """
    errors: list[tuple[tuple[PathKey, ...], str, str]] = []
    stack: list[tuple[tuple[PathKey, ...], Any, int]] = [((), value, 0)]
    while stack:
        path, item, depth = stack.pop()
        if item.__class__ in JSON_SCALARS:
            if item.__class__ is float and not math.isfinite(item):
                errors += bad("a finite JSON number", item).prefixed_path(path)
            continue
        if not isinstance(item, (list, tuple, Mapping)):
            errors += bad("a JSON value", item).prefixed_path(path)
            continue
        if depth >= room:
            levels = f"more than {MAX_DEPTH} levels of nested objects and arrays"
            errors.append((path, _TOO_DEEP, levels))
            continue
        if isinstance(item, Mapping):
            members: list[tuple[tuple[PathKey, ...], Any, int]] = []
            for key, member in item.items():
                if key.__class__ is not str:
                    errors.append(((*path, key), "JSON object with string keys", f"key {key!r}"))
                else:
                    members.append(((*path, key), member, depth + 1))
            stack.extend(reversed(members))
        else:
            stack.extend(
                ((*path, i), member, depth + 1) for i, member in reversed(list(enumerate(item)))
            )
    if errors:
        raise Invalid(errors)


def too_deep(value: Any) -> Invalid:
    """The error for a value whose conversion ran out of stack: its deepest path.

    For nesting the per-field check does not see (a recursive embedded class, say): found
    iteratively, after the fact, so the error names the place instead of a RecursionError.
    """
    deepest: tuple[PathKey, ...] = ()
    stack: list[tuple[tuple[PathKey, ...], Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if len(path) > len(deepest):
            deepest = path
        if isinstance(item, Mapping):
            stack.extend(((*path, key), member) for key, member in item.items())
        elif isinstance(item, list):
            stack.extend(((*path, i), member) for i, member in enumerate(item))
    shown = deepest[: MAX_DEPTH + 1]
    return Invalid([(shown, _TOO_DEEP, f"{len(deepest)} levels deep: too deep to convert")])


def _root_of(node: Any) -> Any:
    """The top of the document ``node`` sits in (``node`` itself when it has no parent)."""
    parent, _ = node_parent(node)
    while parent is not None:
        node = parent
        parent, _ = node_parent(node)
    return node


def _depth_of(node: Any) -> int:
    """How many levels of objects and arrays ``node`` sits below its document's top."""
    depth = 0
    parent, _ = node_parent(node)
    while parent is not None:
        depth += 1
        parent, _ = node_parent(parent)
    return depth


def _any_wrap(value: Any, parent: Any, key: PathKey) -> Any:
    if value.__class__ in JSON_SCALARS:
        return value
    if isinstance(value, (TrackedList, TrackedDict)) and value._cm_parent is None:
        set_parent(value, parent, key)
        return value
    if isinstance(value, (list, tuple)):
        return _AnyList(list(value), parent=parent, key=key)
    if isinstance(value, Mapping):
        return _AnyDict(value, parent=parent, key=key)
    return value


def _any_prepare(value: Any, parent: Any, key: PathKey) -> Any:
    if value.__class__ not in JSON_SCALARS or value.__class__ is float:
        room = MAX_DEPTH - _depth_of(parent) if parent is not None else MAX_DEPTH
        check_json_value(plain(value), room)
    return _any_wrap(plain(value), parent, key)


# Values that ``_any_prepare`` stores unchanged (floats are checked for NaN and infinity).
ANY_SET_FAST: Final = JSON_SCALARS - _FLOAT

_item_guards: dict[Loader, Loader] = {}


def item_guard(prepare: Loader) -> Loader:
    """Wrap an item ``prepare`` for a tracked container: bad items raise ValidationError.

    Inside a model the field descriptors turn :class:`Invalid` into the public error; a
    container edit (``doc.tags.append(5)``) has no descriptor in between, so its wrap does it.
    One guard per ``prepare`` keeps one container class per item type.
    """
    guard = _item_guards.get(prepare)
    if guard is None:

        def guard(value: Any, parent: Any, key: PathKey) -> Any:
            try:
                return prepare(value, parent, key)
            except Invalid as error:
                tracker, path = locate(parent)
                if not isinstance(parent, list):
                    path = (*path, key)
                doc_id = getattr(tracker, "doc_id", None)
                owner = getattr(tracker, "obj", None)
                if owner is None:  # a document in no session yet: name it by its own id
                    owner = _root_of(parent)
                    doc_id = getattr(owner, "__dict__", {}).get("id") if doc_id is None else doc_id
                cls_name = type(owner).__name__ if owner is not None else ""
                raise error.to_validation_error(doc_id, cls_name, path) from None

        _item_guards[prepare] = guard
    return guard


def tracked_class(base: type[T_C], item: Codec) -> type[T_C]:
    """The tracked container class (list or dict) whose items are of ``item``'s type."""
    return typed_container(base, item_guard(item.prepare), item.expected, item.set_fast)


_AnyList = typed_container(TrackedList, item_guard(_any_prepare), "Any", ANY_SET_FAST)
_AnyDict = typed_container(TrackedDict, item_guard(_any_prepare), "Any", ANY_SET_FAST)


def _any_load(value: Any, parent: Any, key: PathKey) -> Any:
    if value.__class__ in JSON_SCALARS:
        return value
    # Checked before wrapping, which recurses once per level.
    check_json_value(value, MAX_DEPTH - _depth_of(parent) if parent is not None else MAX_DEPTH)
    return _any_wrap(value, parent, key)


def plain(value: Any) -> Any:
    if isinstance(value, (TrackedList, TrackedDict, TrackedSet)):
        return value.to_plain()
    return value


def _any_dump(value: Any) -> Any:
    if value.__class__ in JSON_SCALARS:
        if value.__class__ is float and not math.isfinite(value):
            raise bad("a finite JSON number", value)
        return value
    try:
        if isinstance(value, (list, tuple)):
            return [_any_dump(item) for item in value]
        if isinstance(value, Mapping):
            return {key: _any_dump(item) for key, item in value.items()}
    except Invalid:
        check_json_value(value)  # the same refusal, with the path of each bad value
        raise
    raise bad("a JSON value", value)


# Floats set in Python are checked: NaN and infinities are refused.
ANY_CODEC: Final = Codec(
    "Any (JSON)", JSON_SCALARS, _any_load, _any_dump, _any_prepare, checked=_FLOAT
)


# --------------------------------------------------------------------------------------
# Containers.


def collect(
    items: Any, convert: Callable[[Any, Any], Any], errors: list[Any], keyed: bool = False
) -> Any:
    """Convert each item, gathering errors with their index (or key) instead of stopping."""
    if keyed:
        out_dict = {}
        for key, item in items.items():
            try:
                out_dict[key] = convert(key, item)
            except Invalid as error:
                errors += error.prefixed(key)
        return out_dict
    out = []
    for index, item in enumerate(items):
        try:
            out.append(convert(index, item))
        except Invalid as error:
            errors += error.prefixed(index)
    return out
