"""Generated load and dump functions of model classes: source built apart from compiling it.

As attrs does (``_make_*_script`` returning ``(script, globs)``), :func:`load_script` and
:func:`dump_script` only build the source of one class's function and the names it uses;
:func:`compile_script` compiles it under a file name that names the class
(``<couchmapper load mod.Qual>``) and registers the source in :mod:`linecache`, so a
traceback or a debugger points at the class and can show the generated lines.

The functions fill the instance's ``__dict__`` directly instead of calling ``__init__``: a
load must not run the tracking descriptors or the defaults of fields that are present, and
validating instead of coercing needs the type checks inline.
"""

from __future__ import annotations

import linecache
from collections.abc import Callable, Sequence
from typing import Any, cast

import attrs

from couchmapper.model.codecs import JSON_SCALARS, Codec, Invalid, bad, tracked_class
from couchmapper.model.registry import ModelInfo
from couchmapper.tracking import MISSING, TrackedList

__all__ = ["FieldCode", "compile_script", "dump_script", "load_script"]

Script = tuple[str, dict[str, Any]]

_scripts: dict[str, str] = {}  # file name -> the source compiled under it


@attrs.frozen
class FieldCode:
    """What the generated code needs of one field.

    Attributes:
        name: the field name (also the JSON key).
        codec: the codec of the field's type.
        default: the attrs default (``attrs.NOTHING``: required).
        list_items: for ``list[scalar]`` fields, the item codec (lists load inline).
    """

    name: str
    codec: Codec
    default: Any
    list_items: Codec | None = None


def compile_script(kind: str, cls: type, script: str, globs: dict[str, Any]) -> Callable[..., Any]:
    """Compile the ``kind`` function of ``cls`` from ``script``, named after the class."""
    base = f"<couchmapper {kind} {cls.__module__}.{cls.__qualname__}"
    filename, count = f"{base}>", 1
    # Classes redefined under one name (tests, reloads) keep their own source lines.
    while _scripts.setdefault(filename, script) != script:
        count += 1
        filename = f"{base}-{count}>"
    code = compile(script, filename, "exec")
    linecache.cache[filename] = (len(script), None, script.splitlines(True), filename)
    exec(code, globs)
    return cast(Callable[..., Any], globs[kind])


def _default_source(name: str, default: Any, globs: dict[str, Any]) -> str:
    """Source for the value of a missing field (empty: the field is required)."""
    if default is attrs.NOTHING:
        return ""
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        globs[f"f_{name}"] = default.factory
        if default.takes_self:
            return f"c_{name}.prepare(f_{name}(inst), inst, {name!r})"
        return f"c_{name}.prepare(f_{name}(), inst, {name!r})"
    globs[f"v_{name}"] = default
    return f"c_{name}.prepare(v_{name}, inst, {name!r})"


def _is_fast(var: str, name: str, fast: frozenset[type]) -> str:
    """Source testing whether ``var`` passes through unchanged (``is`` for one class)."""
    if len(fast) == 1:
        (only,) = fast
        if only in JSON_SCALARS:
            return f"{var}.__class__ is {'NoneType' if only is type(None) else only.__name__}"
    return f"{var}.__class__ in fast_{name}"


def _all_fast(items: list[Any], fast: frozenset[type]) -> bool:
    # A plain loop: all() over a generator costs twice as much for short lists.
    for item in items:  # noqa: SIM110
        if item.__class__ not in fast:
            return False
    return True


def load_script(info: ModelInfo, fields: Sequence[FieldCode]) -> Script:
    """The source of ``load(raw, parent, key)`` for ``info.cls``, and its globals."""
    globs: dict[str, Any] = {
        "cls": info.cls,
        "MISSING": MISSING,
        "Invalid": Invalid,
        "NoneType": type(None),
        "new": object.__new__,
        "new_list": list.__new__,
        "extend": list.extend,
        "all_fast": _all_fast,
        "bad": lambda raw: bad(f"{info.cls.__name__} object", raw),
    }
    known = {f.name for f in fields}
    lines = [
        "def load(raw, parent, key):",
        "    if raw.__class__ is not dict:",
        "        raise bad(raw)",
        "    inst = new(cls)",
        "    d = inst.__dict__",
        "    errors = None",
        "    missing = 0",
    ]
    if info.is_document:
        known |= {"_id", "_rev"}
        lines += ["    d['id'] = raw.get('_id')", "    if '_rev' not in raw: missing += 1"]
        lines += ["    if '_id' not in raw: missing += 1"]
        if info.discriminator is not None:
            known.add(info.discriminator)
            lines += [f"    if {info.discriminator!r} not in raw: missing += 1"]
    for spec in fields:
        lines += _load_field(spec, globs)
    globs["known"] = frozenset(known)
    lines += [
        f"    if len(raw) + missing > {len(known)}:",
        "        d['_cm_extra'] = {k: v for k, v in raw.items() if k not in known}",
        "    if errors:",
        "        raise Invalid(errors)",
        "    if parent is not None:",
        "        d['_cm_parent'] = (parent, key)",
        "    return inst",
    ]
    return "\n".join(lines) + "\n", globs


def _load_field(spec: FieldCode, globs: dict[str, Any]) -> list[str]:
    """The lines of ``load`` that fill one field."""
    name, codec = spec.name, spec.codec
    globs[f"c_{name}"] = codec
    globs[f"fast_{name}"] = codec.fast
    default_src = _default_source(name, spec.default, globs)
    # A subscript in a try is cheaper than .get() when the key is there (3.11: zero-cost try).
    lines = [
        "    try:",
        f"        v = raw[{name!r}]",
        "    except KeyError:",
        "        v = MISSING",
        f"    if {_is_fast('v', name, codec.fast)}:",
        f"        d[{name!r}] = v",
    ]
    if spec.list_items is not None:
        # A list of scalars, inlined: no call, no per-item conversion.
        globs[f"list_{name}"] = tracked_class(TrackedList, spec.list_items)
        globs[f"ifast_{name}"] = spec.list_items.fast
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
    return lines


def dump_script(info: ModelInfo, fields: Sequence[FieldCode]) -> Script:
    """The source of ``dump(inst)`` for ``info.cls``, and its globals."""
    globs: dict[str, Any] = {"MISSING": MISSING, "Invalid": Invalid, "NoneType": type(None)}
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
    for spec in fields:
        name, codec = spec.name, spec.codec
        globs[f"c_{name}"] = codec
        globs[f"fast_{name}"] = codec.fast
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
    return "\n".join(lines) + "\n", globs
