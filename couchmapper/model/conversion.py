"""Conversion between CouchDB's JSON and live, tracked Python values.

couchmapper owns one :class:`cattrs.Converter` (:data:`converter`); the global one is never
touched. Each type gets a :class:`Codec` -- load (JSON to live value), dump (live value to JSON)
and prepare (a value assigned in Python to the live value stored) -- and the converter's
structure/unstructure hooks dispatch to them, so ``converter.structure(raw, Person)`` and
``converter.unstructure(person)`` work as cattrs users expect.

For model classes (documents and embedded objects) the load and dump functions are generated
per class, as cattrs does (:mod:`couchmapper.model.codegen`), but they fill the instance's
``__dict__`` directly instead of calling ``__init__``: validating instead of coercing
(cattrs' primitive hooks call ``str(value)``) needs the type checks inline. That keeps a load
cheaper than pydantic's ``model_validate`` (see ``tests/benchmarks``).

Errors: every bad value of one object is collected with its path, and the caller raises one
:class:`~couchmapper.exceptions.ValidationError` naming the document id and every field path.
"""

from __future__ import annotations

import enum
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any, Final, Literal

import cattrs

from couchmapper.model.codecs import (
    ANY_CODEC,
    JSON_SCALARS,
    TEXT_CODECS,
    Codec,
    Invalid,
    bad,
    enum_codec,
    float_codec,
    literal_codec,
    scalar_codec,
)
from couchmapper.model.codegen import FieldCode, compile_script, dump_script, load_script
from couchmapper.model.containers import (
    dict_codec,
    list_codec,
    set_codec,
    sort_key,
    tuple_codec,
    union_codec,
)
from couchmapper.model.registry import ModelInfo, model_info
from couchmapper.tracking import MISSING, PathKey

__all__ = [
    "JSON_SCALARS",
    "Codec",
    "Invalid",
    "codec_for",
    "converter",
    "is_scalar_type",
    "to_json",
]


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
        return ANY_CODEC
    if tp is None or tp is type(None):
        return scalar_codec("None", frozenset({type(None)}))
    if tp is str:
        return scalar_codec("str", frozenset({str}))
    if tp is bool:
        return scalar_codec("bool", frozenset({bool}))
    if tp is int:
        return scalar_codec("int", frozenset({int}))
    if tp is float:
        return float_codec()
    if tp in TEXT_CODECS:
        return TEXT_CODECS[tp]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return enum_codec(tp)
    info = model_info(tp) if isinstance(tp, type) else None
    if info is not None:
        return _model_codec(info)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    expected = _type_name(tp)
    if origin is Literal:
        return literal_codec(args)
    if origin is typing.Union or origin is types.UnionType:
        return union_codec([codec_for(arg) for arg in args], expected)
    if origin in (list, typing.List) or tp is list:  # noqa: UP006
        return list_codec(codec_for(args[0] if args else Any), expected)
    if origin in (set, frozenset) or tp in (set, frozenset):
        frozen = (origin or tp) is frozenset
        return set_codec(codec_for(args[0] if args else Any), expected, frozen=frozen)
    if origin is tuple or tp is tuple:
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            return tuple_codec(None, codec_for(args[0] if args else Any), expected)
        return tuple_codec(tuple(codec_for(arg) for arg in args), None, expected)
    if origin in (dict, typing.Dict, Mapping) or tp is dict:  # noqa: UP006
        key_type, value_type = args if args else (str, Any)
        return dict_codec(codec_for(key_type), codec_for(value_type), expected)
    if origin is typing.Annotated:
        return codec_for(args[0])
    msg = f"couchmapper cannot store values of type {expected}"
    raise TypeError(msg)


def _model_codec(info: ModelInfo) -> Codec:
    cls = info.cls
    expected = cls.__name__
    fields = _field_codes(info)
    load = info.loader = compile_script("load", cls, *load_script(info, fields))
    dump = info.dumper = compile_script("dump", cls, *dump_script(info, fields))

    def prepare(value: Any, parent: Any, key: PathKey) -> Any:
        if not isinstance(value, cls):
            raise bad(expected, value)
        if value.__dict__.get("_cm_parent") is not None:
            # Already part of a document: store a copy so one object never has two parents.
            value = load(dump(value), None, key)
        if parent is not None:
            value.__dict__["_cm_parent"] = (parent, key)
        return value

    return Codec(expected, frozenset(), load, dump, prepare)


def _field_codes(info: ModelInfo) -> list[FieldCode]:
    """What the generated load and dump functions need of each field of ``info.cls``."""
    found = []
    for name, tp, default in info.fields():
        list_items = None
        if typing.get_origin(tp) is list and typing.get_args(tp):
            items = codec_for(typing.get_args(tp)[0])
            if items.fast and items.fast <= JSON_SCALARS:
                list_items = items
        found.append(FieldCode(name, codec_for(tp), default, list_items))
    return found


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
        if base in TEXT_CODECS:
            return TEXT_CODECS[base].dump(value)
    if isinstance(value, (set, frozenset)):
        items = [to_json(item) for item in value]
        try:
            return sorted(items)
        except TypeError:
            return sorted(items, key=sort_key)
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
