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

import enum
import functools
import linecache
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

import attrs
import cattrs

from couchmapper._codecs import (
    ANY_CODEC,
    JSON_SCALARS,
    TEXT_CODECS,
    Codec,
    Dumper,
    Invalid,
    Loader,
    bad,
    dict_codec,
    enum_codec,
    float_codec,
    list_codec,
    literal_codec,
    scalar_codec,
    set_codec,
    sort_key,
    tracked_class,
    tuple_codec,
    union_codec,
)
from couchmapper.tracking import (
    MISSING,
    PathKey,
    TrackedList,
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
    dumper: Dumper | None = attrs.field(default=None, repr=False)
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
    dump = info.dumper = _make_dumper(info)

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
    namespace["bad"] = lambda raw: bad(f"{info.cls.__name__} object", raw)
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
            namespace[f"list_{name}"] = tracked_class(
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
