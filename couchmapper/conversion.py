"""Conversion between CouchDB's JSON and live, tracked Python values.

couchmapper owns one :class:`cattrs.Converter` (:data:`converter`); the global one is never
touched. Each type gets a :class:`Codec` -- load (JSON to live value), dump (live value to JSON)
and prepare (a value assigned in Python to the live value stored) -- and the converter's
structure/unstructure hooks dispatch to them, so ``converter.structure(raw, Person)`` and
``converter.unstructure(person)`` work as cattrs users expect.

For model classes (documents and embedded objects) the load and dump functions are generated
per class, as cattrs does, but they fill the instance's ``__dict__`` directly instead of calling
``__init__``: a load must not run the tracking descriptors or the defaults of fields that are
present, and validating instead of coercing (cattrs' primitive hooks call ``str(value)``)
needs the type checks inline. That keeps a load cheaper than pydantic's ``model_validate``
(see ``tests/benchmarks``).

Errors: every bad value of one object is collected with its path, and the caller raises one
:class:`~couchmapper.exceptions.ValidationError` naming the document id and every field path.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import functools
import linecache
import math
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal, TypeAlias, TypeVar

import attrs
import cattrs

from couchmapper.exceptions import FieldError, ValidationError
from couchmapper.tracking import (
    MISSING,
    PathKey,
    TrackedDict,
    TrackedList,
    TrackedSet,
    format_path,
    locate,
    set_parent,
    typed_container,
)

__all__ = [
    "JSON_SCALARS",
    "Codec",
    "Invalid",
    "ModelInfo",
    "codec_for",
    "converter",
    "is_scalar_type",
    "model_info",
    "to_json",
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


def _bad(expected: str, value: Any) -> Invalid:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return Invalid([((), expected, f"got {type(value).__name__} {shown}")])


@attrs.frozen
class Codec:
    """How one type is loaded, dumped and assigned.

    Attributes:
        expected: the type as people write it, for error messages.
        fast: classes whose values pass through load, dump and prepare unchanged.
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


@attrs.define
class ModelInfo:
    """What conversion needs to know of a model class (document or embedded object).

    Attributes:
        cls: the class.
        is_document: True for top-level documents (``_id``/``_rev``, discriminator).
        type_name: the discriminator value written for this class (None: abstract).
        discriminator: the JSON key that holds the type name (``"type"`` by default).
        resolve: returns the resolved type of each field of a class.
        subclasses: type name -> class for this class and every subclass (polymorphic load).
    """

    cls: type
    is_document: bool
    type_name: str | None = None
    discriminator: str | None = None
    subclasses: dict[str, type] = attrs.field(factory=dict)
    resolve: Callable[[type], dict[str, Any]] = attrs.field(default=None, repr=False)
    loader: Loader | None = attrs.field(default=None, repr=False)
    _fields: list[tuple[str, Any, Any]] | None = None

    def fields(self) -> list[tuple[str, Any, Any]]:
        """(name, resolved type, attrs default) for every tracked field, ``id`` excluded."""
        if self._fields is None:
            types_ = self.resolve(self.cls)
            self._fields = [
                (a.name, types_[a.name], a.default)
                for a in attrs.fields(self.cls)
                if not (self.is_document and a.name == "id")
            ]
        return self._fields


def model_info(cls: type) -> ModelInfo | None:
    """Return the :class:`ModelInfo` of a model class, or None for anything else."""
    info = cls.__dict__.get("__cm_info__") if isinstance(cls, type) else None
    return info if isinstance(info, ModelInfo) else None


# --------------------------------------------------------------------------------------
# Codecs for scalars.


def _scalar_codec(expected: str, classes: frozenset[type]) -> Codec:
    def load(value: Any, parent: Any, key: PathKey) -> Any:
        if value.__class__ in classes:
            return value
        raise _bad(expected, value)

    def dump(value: Any) -> Any:
        if value.__class__ in classes:
            return value
        raise _bad(expected, value)

    return Codec(expected, classes, load, dump, load)


def _float_codec() -> Codec:
    def load(value: Any, parent: Any, key: PathKey) -> Any:
        if value.__class__ is float:
            return value
        if value.__class__ is int:
            return float(value)
        raise _bad("float", value)

    def dump(value: Any) -> Any:
        if value.__class__ is float or value.__class__ is int:
            return value
        raise _bad("float", value)

    return Codec("float", frozenset({float}), load, dump, load)


def _text_codec(
    expected: str,
    live: type,
    parse: Callable[[str], Any],
    render: Callable[[Any], str],
    exact: bool = True,
) -> Codec:
    """A value stored in JSON as a string (dates, decimals, uuids, bytes)."""

    def load(value: Any, parent: Any, key: PathKey) -> Any:
        if value.__class__ is not str:
            raise _bad(f"{expected} (as a string)", value)
        try:
            return parse(value)
        except (ValueError, TypeError, InvalidOperation, binascii.Error):
            raise _bad(expected, value) from None

    def accepts(value: Any) -> bool:
        return value.__class__ is live if exact else isinstance(value, live)

    def dump(value: Any) -> Any:
        if accepts(value):
            return render(value)
        raise _bad(expected, value)

    def prepare(value: Any, parent: Any, key: PathKey) -> Any:
        if accepts(value):
            return value
        raise _bad(expected, value)

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


_TEXT_CODECS: Final[dict[Any, Codec]] = {
    dt.datetime: _text_codec("datetime", dt.datetime, _datetime_parse, dt.datetime.isoformat),
    dt.date: _text_codec("date", dt.date, dt.date.fromisoformat, dt.date.isoformat),
    dt.time: _text_codec("time", dt.time, dt.time.fromisoformat, dt.time.isoformat),
    Decimal: _text_codec("Decimal", Decimal, _decimal_parse, str),
    uuid.UUID: _text_codec("UUID", uuid.UUID, uuid.UUID, str),
    bytes: _text_codec("bytes", bytes, _b64decode, _b64encode),
}


def _enum_codec(cls: type[enum.Enum]) -> Codec:
    members = {member.value: member for member in cls}
    expected = f"{cls.__name__} ({', '.join(repr(v) for v in members)})"

    def load(value: Any, parent: Any, key: PathKey) -> Any:
        try:
            if value.__class__ in JSON_SCALARS and value.__class__ is not bool:
                return members[value]
        except (KeyError, TypeError):
            pass
        raise _bad(expected, value)

    def dump(value: Any) -> Any:
        if isinstance(value, cls):
            return value.value
        raise _bad(expected, value)

    def prepare(value: Any, parent: Any, key: PathKey) -> Any:
        if isinstance(value, cls):
            return value
        raise _bad(expected, value)

    return Codec(expected, frozenset(), load, dump, prepare)


def _literal_codec(values: tuple[Any, ...]) -> Codec:
    allowed = {(type(v), v) for v in values}
    expected = f"one of {', '.join(repr(v) for v in values)}"

    def check(value: Any, parent: Any = None, key: PathKey = "") -> Any:
        if (type(value), value) in allowed:
            return value
        raise _bad(expected, value)

    return Codec(expected, frozenset(), check, check, check)


# --------------------------------------------------------------------------------------
# Any: raw JSON, tracked in place.


def _check_json(value: Any) -> None:
    if value.__class__ in JSON_SCALARS:
        if value.__class__ is float and not math.isfinite(value):
            raise _bad("a finite JSON number", value)
        return
    if isinstance(value, (list, tuple)):
        errors = []
        for index, item in enumerate(value):
            try:
                _check_json(item)
            except Invalid as error:
                errors += error.prefixed(index)
        if errors:
            raise Invalid(errors)
        return
    if isinstance(value, Mapping):
        errors = []
        for key, item in value.items():
            if key.__class__ is not str:
                errors.append(((), "JSON object with string keys", f"key {key!r}"))
                continue
            try:
                _check_json(item)
            except Invalid as error:
                errors += error.prefixed(key)
        if errors:
            raise Invalid(errors)
        return
    raise _bad("a JSON value", value)


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
        _check_json(_plain(value))
    return _any_wrap(_plain(value), parent, key)


_item_guards: dict[Loader, Loader] = {}


def _item_guard(prepare: Loader) -> Loader:
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
                raise error.to_validation_error(doc_id, "", path) from None

        _item_guards[prepare] = guard
    return guard


def _tracked_class(base: type[T_C], item: Codec) -> type[T_C]:
    """The tracked container class (list or dict) whose items are of ``item``'s type."""
    return typed_container(base, _item_guard(item.prepare), item.expected)


_AnyList = typed_container(TrackedList, _item_guard(_any_prepare), "Any")
_AnyDict = typed_container(TrackedDict, _item_guard(_any_prepare), "Any")


def _any_load(value: Any, parent: Any, key: PathKey) -> Any:
    if value.__class__ in JSON_SCALARS:
        return value
    return _any_wrap(value, parent, key)


def _plain(value: Any) -> Any:
    if isinstance(value, (TrackedList, TrackedDict, TrackedSet)):
        return value.to_plain()
    return value


def _any_dump(value: Any) -> Any:
    if value.__class__ in JSON_SCALARS:
        return value
    if isinstance(value, (list, tuple)):
        return [_any_dump(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _any_dump(item) for key, item in value.items()}
    return to_json(value)


_ANY_CODEC: Final = Codec("Any (JSON)", JSON_SCALARS, _any_load, _any_dump, _any_prepare)


# --------------------------------------------------------------------------------------
# Containers.


def _collect(
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


def _list_codec(item: Codec, expected: str) -> Codec:
    fast = item.fast
    tracked_list = _tracked_class(TrackedList, item)
    new_list = list.__new__
    extend = list.extend

    def load(value: Any, parent: Any, key: PathKey) -> Any:
        if value.__class__ is not list:
            raise _bad(expected, value)
        tracked = new_list(tracked_list)
        tracked._cm_parent = parent
        tracked._cm_key = key
        for x in value:
            if x.__class__ not in fast:
                break
        else:
            extend(tracked, value)
            return tracked
        errors: list[Any] = []
        extend(tracked, _collect(value, lambda i, v: item.load(v, tracked, i), errors))
        if errors:
            raise Invalid(errors)
        return tracked

    def dump(value: Any) -> Any:
        if not isinstance(value, list):
            raise _bad(expected, value)
        for x in value:
            if x.__class__ not in fast:
                break
        else:
            return list(value)
        errors: list[Any] = []
        out = _collect(value, lambda i, v: item.dump(v), errors)
        if errors:
            raise Invalid(errors)
        return out

    def prepare(value: Any, parent: Any, key: PathKey) -> Any:
        if value.__class__ is tracked_list and value._cm_parent is None:
            value._cm_parent = parent
            value._cm_key = key
            return value
        if not isinstance(value, (list, tuple)):
            raise _bad(expected, value)
        tracked = new_list(tracked_list)
        tracked._cm_parent = parent
        tracked._cm_key = key
        errors: list[Any] = []
        items = _collect(_plain(value), lambda i, v: item.prepare(v, tracked, i), errors)
        if errors:
            raise Invalid(errors)
        extend(tracked, items)
        return tracked

    return Codec(expected, frozenset(), load, dump, prepare)


def _tuple_codec(items: tuple[Codec, ...] | None, rest: Codec | None, expected: str) -> Codec:
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
            raise _bad(expected, value)
        check_length(value)
        errors: list[Any] = []
        out = _collect(value, lambda i, v: _frozen(pick(i).load(v, None, i)), errors)
        if errors:
            raise Invalid(errors)
        return tuple(out)

    def dump(value: Any) -> Any:
        if not isinstance(value, tuple):
            raise _bad(expected, value)
        check_length(value)
        errors: list[Any] = []
        out = _collect(value, lambda i, v: pick(i).dump(v), errors)
        if errors:
            raise Invalid(errors)
        return out

    def prepare(value: Any, parent: Any, key: PathKey) -> Any:
        if not isinstance(value, (tuple, list)):
            raise _bad(expected, value)
        check_length(value)
        errors: list[Any] = []
        out = _collect(value, lambda i, v: _frozen(pick(i).prepare(v, None, i)), errors)
        if errors:
            raise Invalid(errors)
        return tuple(out)

    return Codec(expected, frozenset(), load, dump, prepare)


def _frozen(value: Any) -> Any:
    """Tuples are immutable: their items are stored untracked."""
    return _plain(value)


def _sort_key(value: Any) -> tuple[str, Any]:
    return (type(value).__name__, value)


def _set_codec(item: Codec, expected: str, frozen: bool) -> Codec:
    def build(values: list[Any], parent: Any, key: PathKey) -> Any:
        if frozen:
            return frozenset(values)
        return TrackedSet(values, parent=parent, key=key)

    def load(value: Any, parent: Any, key: PathKey) -> Any:
        if value.__class__ is not list:
            raise _bad(expected, value)
        errors: list[Any] = []
        out = _collect(value, lambda i, v: _frozen(item.load(v, None, i)), errors)
        if errors:
            raise Invalid(errors)
        return build(out, parent, key)

    def dump(value: Any) -> Any:
        if not isinstance(value, (set, frozenset)):
            raise _bad(expected, value)
        errors: list[Any] = []
        out = _collect(list(value), lambda i, v: item.dump(v), errors)
        if errors:
            raise Invalid(errors)
        try:
            return sorted(out)
        except TypeError:
            return sorted(out, key=_sort_key)

    def prepare(value: Any, parent: Any, key: PathKey) -> Any:
        if not isinstance(value, (set, frozenset, list, tuple)):
            raise _bad(expected, value)
        errors: list[Any] = []
        out = _collect(list(value), lambda i, v: _frozen(item.prepare(v, None, i)), errors)
        if errors:
            raise Invalid(errors)
        return build(out, parent, key)

    return Codec(expected, frozenset(), load, dump, prepare)


def _dict_codec(key_codec: Codec, item: Codec, expected: str) -> Codec:
    fast = item.fast
    tracked_dict = _tracked_class(TrackedDict, item)
    new_dict = dict.__new__
    update = dict.update

    def check_key(key: Any) -> None:
        if key.__class__ is not str:
            raise Invalid([((), "str keys", f"key {key!r} is a {type(key).__name__}")])
        if key_codec.fast != frozenset({str}):
            key_codec.load(key, None, "")

    def load(value: Any, parent: Any, key: PathKey) -> Any:
        if value.__class__ is not dict:
            raise _bad(expected, value)
        tracked = new_dict(tracked_dict)
        tracked._cm_parent = parent
        tracked._cm_key = key
        errors: list[Any] = []

        def one(k: Any, v: Any) -> Any:
            check_key(k)
            return v if v.__class__ in fast else item.load(v, tracked, k)

        items = _collect(value, one, errors, keyed=True)
        if errors:
            raise Invalid(errors)
        update(tracked, items)
        return tracked

    def dump(value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise _bad(expected, value)
        errors: list[Any] = []

        def one(k: Any, v: Any) -> Any:
            check_key(k)
            return v if v.__class__ in fast else item.dump(v)

        out = _collect(value, one, errors, keyed=True)
        if errors:
            raise Invalid(errors)
        return out

    def prepare(value: Any, parent: Any, key: PathKey) -> Any:
        if value.__class__ is tracked_dict and value._cm_parent is None:
            value._cm_parent = parent
            value._cm_key = key
            return value
        if not isinstance(value, Mapping):
            raise _bad(expected, value)
        tracked = new_dict(tracked_dict)
        tracked._cm_parent = parent
        tracked._cm_key = key
        errors: list[Any] = []

        def one(k: Any, v: Any) -> Any:
            check_key(k)
            return item.prepare(v, tracked, k)

        items = _collect(_plain(value), one, errors, keyed=True)
        if errors:
            raise Invalid(errors)
        update(tracked, items)
        return tracked

    return Codec(expected, frozenset(), load, dump, prepare)


# --------------------------------------------------------------------------------------
# Unions.


def _union_codec(members: list[Codec], expected: str) -> Codec:
    fast = frozenset[type]().union(*(m.fast for m in members))

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
        raise _bad(expected, value)

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
        if value.__class__ in fast:
            return value
        return attempt(lambda m: m.prepare(value, parent, key), value)

    return Codec(expected, fast, load, dump, prepare)


# --------------------------------------------------------------------------------------
# Models: generated per class.


def is_scalar_type(tp: Any) -> bool:
    """Whether every value of ``tp`` is a JSON scalar (str, int, float, bool or None)."""
    if tp in JSON_SCALARS or tp is None:
        return True
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        return all(is_scalar_type(arg) for arg in args)
    if origin is Literal:
        return all(type(arg) in JSON_SCALARS for arg in args)
    return False


def _type_name(tp: Any) -> str:
    if tp is type(None) or tp is None:
        return "None"
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " | ".join(_type_name(arg) for arg in typing.get_args(tp))
    return repr(tp).replace("typing.", "")


@functools.cache
def codec_for(tp: Any) -> Codec:
    """Return the codec of a type annotation (cached per type)."""
    if tp is Any or tp is object:
        return _ANY_CODEC
    if tp is None or tp is type(None):
        return _scalar_codec("None", frozenset({type(None)}))
    if tp is str:
        return _scalar_codec("str", frozenset({str}))
    if tp is bool:
        return _scalar_codec("bool", frozenset({bool}))
    if tp is int:
        return _scalar_codec("int", frozenset({int}))
    if tp is float:
        return _float_codec()
    if tp in _TEXT_CODECS:
        return _TEXT_CODECS[tp]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum_codec(tp)
    info = model_info(tp) if isinstance(tp, type) else None
    if info is not None:
        return _model_codec(info)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    expected = _type_name(tp)
    if origin is Literal:
        return _literal_codec(args)
    if origin is typing.Union or origin is types.UnionType:
        return _union_codec([codec_for(arg) for arg in args], expected)
    if origin in (list, typing.List) or tp is list:  # noqa: UP006
        return _list_codec(codec_for(args[0] if args else Any), expected)
    if origin in (set, frozenset) or tp in (set, frozenset):
        frozen = (origin or tp) is frozenset
        return _set_codec(codec_for(args[0] if args else Any), expected, frozen=frozen)
    if origin is tuple or tp is tuple:
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            return _tuple_codec(None, codec_for(args[0] if args else Any), expected)
        return _tuple_codec(tuple(codec_for(arg) for arg in args), None, expected)
    if origin in (dict, typing.Dict, Mapping) or tp is dict:  # noqa: UP006
        key_type, value_type = args if args else (str, Any)
        return _dict_codec(codec_for(key_type), codec_for(value_type), expected)
    if origin is typing.Annotated:
        return codec_for(args[0])
    msg = f"couchmapper cannot store values of type {expected}"
    raise TypeError(msg)


_counter = 0


def _compile(name: str, source: str, namespace: dict[str, Any]) -> Callable[..., Any]:
    """Compile generated source, registered in linecache so debuggers can step through it."""
    global _counter
    _counter += 1
    filename = f"<couchmapper generated {name} {_counter}>"
    code = compile(source, filename, "exec")
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(code, namespace)
    return typing.cast(Callable[..., Any], namespace[name])


def _model_codec(info: ModelInfo) -> Codec:
    cls = info.cls
    expected = cls.__name__
    load = info.loader = _make_loader(info)
    dump = _make_dumper(info)

    def prepare(value: Any, parent: Any, key: PathKey) -> Any:
        if not isinstance(value, cls):
            raise _bad(expected, value)
        if value.__dict__.get("_cm_parent") is not None:
            # Already part of a document: store a copy so one object never has two parents.
            value = load(dump(value), None, key)
        if parent is not None:
            value.__dict__["_cm_parent"] = (parent, key)
        return value

    return Codec(expected, frozenset(), load, dump, prepare)


def _default_source(name: str, default: Any, namespace: dict[str, Any]) -> str:
    """Source for the value of a missing field (None: the field is required)."""
    if default is attrs.NOTHING:
        return ""
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        namespace[f"f_{name}"] = default.factory
        if default.takes_self:
            return f"c_{name}.prepare(f_{name}(inst), inst, {name!r})"
        return f"c_{name}.prepare(f_{name}(), inst, {name!r})"
    namespace[f"v_{name}"] = default
    return f"c_{name}.prepare(v_{name}, inst, {name!r})"


def _is_fast(var: str, name: str, fast: frozenset[type]) -> str:
    """Source testing whether ``var`` passes through unchanged (``is`` for one class)."""
    if len(fast) == 1:
        (only,) = fast
        if only in JSON_SCALARS:
            return f"{var}.__class__ is {'NoneType' if only is type(None) else only.__name__}"
    return f"{var}.__class__ in fast_{name}"


def _scalar_list_items(tp: Any) -> frozenset[type] | None:
    """The item classes of ``list[scalar]``, which loads without converting items."""
    if typing.get_origin(tp) is not list:
        return None
    args = typing.get_args(tp)
    fast = codec_for(args[0]).fast if args else frozenset()
    return fast if fast and fast <= JSON_SCALARS else None


def _all_fast(items: list[Any], fast: frozenset[type]) -> bool:
    # A plain loop: all() over a generator costs twice as much for short lists.
    for item in items:  # noqa: SIM110
        if item.__class__ not in fast:
            return False
    return True


def _make_loader(info: ModelInfo) -> Loader:
    namespace: dict[str, Any] = {
        "cls": info.cls,
        "MISSING": MISSING,
        "Invalid": Invalid,
        "NoneType": type(None),
    }
    known = {name for name, _, _ in info.fields()}
    lines = [
        "def load(raw, parent, key):",
        "    if raw.__class__ is not dict:",
        "        raise bad(raw)",
        "    inst = new(cls)",
        "    d = inst.__dict__",
        "    errors = None",
        "    missing = 0",
    ]
    namespace["new"] = object.__new__
    namespace["new_list"] = list.__new__
    namespace["extend"] = list.extend
    namespace["all_fast"] = _all_fast
    namespace["bad"] = lambda raw: _bad(f"{info.cls.__name__} object", raw)
    if info.is_document:
        known |= {"_id", "_rev"}
        lines += ["    d['id'] = raw.get('_id')", "    if '_rev' not in raw: missing += 1"]
        lines += ["    if '_id' not in raw: missing += 1"]
        if info.discriminator is not None:
            known.add(info.discriminator)
            lines += [f"    if {info.discriminator!r} not in raw: missing += 1"]
    for name, tp, default in info.fields():
        codec = codec_for(tp)
        namespace[f"c_{name}"] = codec
        namespace[f"fast_{name}"] = codec.fast
        default_src = _default_source(name, default, namespace)
        # A subscript in a try is cheaper than .get() when the key is there (3.11: zero-cost try).
        lines += [
            "    try:",
            f"        v = raw[{name!r}]",
            "    except KeyError:",
            "        v = MISSING",
            f"    if {_is_fast('v', name, codec.fast)}:",
        ]
        lines += [f"        d[{name!r}] = v"]
        item_fast = _scalar_list_items(tp)
        if item_fast is not None:
            # A list of scalars, inlined: no call, no per-item conversion.
            namespace[f"list_{name}"] = _tracked_class(
                TrackedList, codec_for(typing.get_args(tp)[0])
            )
            namespace[f"ifast_{name}"] = item_fast
            lines += [
                "    elif v.__class__ is list and all_fast(v, ifast_" + name + "):",
                f"        t = new_list(list_{name})",
                "        t._cm_parent = inst",
                f"        t._cm_key = {name!r}",
                "        extend(t, v)",
                f"        d[{name!r}] = t",
            ]
        lines += ["    elif v is MISSING:", "        missing += 1"]
        if default_src:
            lines += [f"        d[{name!r}] = {default_src}"]
        else:
            lines += [
                "        errors = (errors or [])",
                f"        errors.append((({name!r},), {codec.expected!r}, 'missing'))",
            ]
        lines += [
            "    else:",
            "        try:",
            f"            d[{name!r}] = c_{name}.load(v, inst, {name!r})",
            "        except Invalid as error:",
            f"            errors = (errors or []) + error.prefixed({name!r})",
        ]
    namespace["known"] = frozenset(known)
    lines += [
        f"    if len(raw) + missing > {len(known)}:",
        "        d['_cm_extra'] = {k: v for k, v in raw.items() if k not in known}",
        "    if errors:",
        "        raise Invalid(errors)",
        "    if parent is not None:",
        "        d['_cm_parent'] = (parent, key)",
        "    return inst",
    ]
    return _compile("load", "\n".join(lines) + "\n", namespace)


def _make_dumper(info: ModelInfo) -> Dumper:
    namespace: dict[str, Any] = {"MISSING": MISSING, "Invalid": Invalid, "NoneType": type(None)}
    lines = ["def dump(inst):", "    d = inst.__dict__", "    errors = None", "    out = {}"]
    if info.is_document:
        lines += ["    if d.get('id') is not None:", "        out['_id'] = d['id']"]
        lines += [
            "    state = d.get('_cm_state')",
            "    if state is not None and state.rev is not None:",
            "        out['_rev'] = state.rev",
        ]
        if info.discriminator is not None and info.type_name is not None:
            lines += [f"    out[{info.discriminator!r}] = {info.type_name!r}"]
    for name, tp, _ in info.fields():
        codec = codec_for(tp)
        namespace[f"c_{name}"] = codec
        namespace[f"fast_{name}"] = codec.fast
        lines += [
            f"    v = d.get({name!r}, MISSING)",
            f"    if {_is_fast('v', name, codec.fast)}:",
            f"        out[{name!r}] = v",
            "    elif v is MISSING:",
            "        errors = (errors or [])",
            f"        errors.append((({name!r},), {codec.expected!r}, 'not set'))",
            "    else:",
            "        try:",
            f"            out[{name!r}] = c_{name}.dump(v)",
            "        except Invalid as error:",
            f"            errors = (errors or []) + error.prefixed({name!r})",
        ]
    lines += [
        "    extra = d.get('_cm_extra')",
        "    if extra:",
        "        for k, v in extra.items():",
        "            out.setdefault(k, v)",
        "    if errors:",
        "        raise Invalid(errors)",
        "    return out",
    ]
    return _compile("dump", "\n".join(lines) + "\n", namespace)


# --------------------------------------------------------------------------------------
# The converter.


def to_json(value: Any) -> Any:
    """Return the JSON form of any live value (by its runtime type); JSON scalars as they are."""
    if value.__class__ in JSON_SCALARS or value is MISSING:
        return value
    return converter.unstructure(value)


def _unstructure_by_runtime_type(value: Any) -> Any:
    cls = type(value)
    info = model_info(cls)
    if info is not None:
        return codec_for(info.cls).dump(value)
    if isinstance(value, enum.Enum):
        return to_json(value.value)
    for base in cls.__mro__:
        if base in _TEXT_CODECS:
            return _TEXT_CODECS[base].dump(value)
    if isinstance(value, (set, frozenset)):
        items = [to_json(item) for item in value]
        try:
            return sorted(items)
        except TypeError:
            return sorted(items, key=_sort_key)
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    if isinstance(value, Mapping):
        return {key: to_json(item) for key, item in value.items()}
    msg = f"cannot convert {type(value).__name__} to JSON"
    raise TypeError(msg)


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter()

    def structure(value: Any, tp: Any) -> Any:
        try:
            return codec_for(tp).load(value, None, "")
        except Invalid as error:
            raise error.to_validation_error(None, _type_name(tp)) from None

    def supported(tp: Any) -> bool:
        try:
            codec_for(tp)
        except TypeError:
            return False
        return True

    def unstructure(value: Any) -> Any:
        try:
            return _unstructure_by_runtime_type(value)
        except Invalid as error:
            raise error.to_validation_error(None, type(value).__name__) from None

    conv.register_structure_hook_func(supported, structure)
    # cattrs dispatches primitives before predicate hooks (and coerces: ``str(5)``).
    for scalar in (str, int, float, bool):
        conv.register_structure_hook(scalar, structure)
    conv.register_unstructure_hook_func(
        lambda cls: cls not in JSON_SCALARS,
        unstructure,
    )
    return conv


converter: Final = _make_converter()
"""couchmapper's own cattrs converter (never the global one)."""
