"""Typed documents: the ``Document`` and ``Embedded`` bases, tracking fields and the registry.

A subclass of :class:`Document` or :class:`Embedded` becomes an attrs class when it is
defined (no decorator needed; type checkers see it through ``dataclass_transform``). Each
field is then replaced by a tracking descriptor:

* reading ``obj.name`` is a plain attribute read (the descriptor has no ``__get__``, so the
  instance ``__dict__`` answers at C speed);
* class-level access ``Person.name`` returns the :class:`Field` (queries build on it);
* setting ``obj.name = value`` validates and wraps the value (lists, dicts, sets and
  embedded objects become tracked) and records a change on the document's state.
"""

from __future__ import annotations

import inspect
import sys
import weakref
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Final, TypeVar, cast, dataclass_transform

import attrs

from couchmapper._codecs import item_guard
from couchmapper.conversion import (
    JSON_SCALARS,
    Codec,
    Invalid,
    ModelInfo,
    codec_for,
    is_scalar_type,
    model_info,
)
from couchmapper.exceptions import SessionStateError
from couchmapper.orm.state import InstanceState, Lifecycle
from couchmapper.query import FieldPath, NestedAccess
from couchmapper.tracking import (
    MISSING,
    ChangeList,
    PathKey,
    TrackedDict,
    _detach,
    locate,
)

__all__ = [
    "DEFAULT_DISCRIMINATOR",
    "Document",
    "Embedded",
    "Field",
    "FieldOptions",
    "RawDocument",
    "changes",
    "dump",
    "field",
    "load",
    "new_from_json",
    "registry",
    "state_of",
]

DEFAULT_DISCRIMINATOR = "type"

T = TypeVar("T")
D = TypeVar("D", bound="Document")

MergeRule = str | Callable[[Any, Any, Any], Any]


@attrs.frozen
class FieldOptions:
    """couchmapper's own options of a field (kept in the attrs field's metadata).

    Attributes:
        merge: how a ``"rebase"`` flush combines this session's change with a concurrent
            one to the same field: ``"sum"`` (re-apply the numeric delta), ``"union"``
            (merge set members / list additions and removals) or a callable
            ``(base, mine, theirs) -> value``; None means a concurrent change conflicts.
    """

    merge: MergeRule | None = None


_METADATA_KEY = "couchmapper"


def field(
    *,
    default: Any = attrs.NOTHING,
    factory: Callable[[], Any] | None = None,
    merge: MergeRule | None = None,
    repr: bool = True,
    eq: bool = True,
    kw_only: bool = False,
    metadata: Mapping[str, Any] | None = None,
) -> Any:
    """Declare a document field with options.

    Args:
        default: the value of a field missing from the constructor call or stored document.
        factory: a callable making a fresh default (``list``, ``dict``...).
        merge: the rebase merge rule (see :class:`FieldOptions`).
        repr: include in ``repr``.
        eq: include in ``==``.
        kw_only: make the constructor argument keyword-only.
        metadata: extra attrs metadata.

    Returns:
        An attrs field definition (typed as ``Any`` so ``x: int = field(default=0)`` checks).
    """
    if merge is not None and not callable(merge) and merge not in ("sum", "union"):
        msg = f"merge must be 'sum', 'union' or a callable (base, mine, theirs), not {merge!r}"
        raise ValueError(msg)
    meta = dict(metadata or {})
    meta[_METADATA_KEY] = FieldOptions(merge=merge)
    return attrs.field(
        default=default,
        factory=factory,
        repr=repr,
        eq=eq,
        kw_only=kw_only,
        metadata=meta,
    )


# --------------------------------------------------------------------------------------
# Field descriptors.


_UNCHANGED: Final = object()


class Field(FieldPath):
    """A tracked field: the descriptor on the class, and the handle queries are built from.

    Class-level access (``Person.age``) returns the field; comparisons on it build query
    expressions (see :mod:`couchmapper.query`).

    Attributes:
        name: the attribute name (also the JSON key).
        owner: the class the field belongs to.
        type: the resolved type annotation.
        options: couchmapper's options (merge rule).
    """

    __slots__ = ("_codec", "_fast", "name", "options")

    def __init__(self, owner: type, name: str, options: FieldOptions) -> None:
        # The type is resolved on first use, so annotations may name classes defined later.
        super().__init__(owner, (name,), None)
        self.name = name
        self.options = options
        self._codec: Codec | None = None
        self._fast: frozenset[type] = frozenset()

    def __repr__(self) -> str:
        return f"<Field {self.owner.__name__}.{self.name}>"

    @property
    def type(self) -> Any:
        """The field's resolved type annotation."""
        if self._tp is None:
            self._tp = resolved_fields(self.owner)[self.name]
        return self._tp

    def _resolve(self) -> Codec:
        codec = codec_for(self.type)
        if type(self) is DocumentField and is_scalar_type(self.type):
            # Same slots, so the descriptor can take the cheaper set path from now on.
            self.__class__ = ScalarDocumentField  # type: ignore[assignment]
        self._codec = codec
        self._fast = codec.fast
        return codec

    def _incoming(self, obj: Any, value: Any) -> Any:
        """Validate and wrap a value being set (``_UNCHANGED`` when it is already there)."""
        if obj.__dict__.get(self.name, MISSING) is value:
            return _UNCHANGED  # ``doc.tags += [...]`` assigns the edited container back to itself
        return self._prepare(obj, value)

    def _prepare(self, obj: Any, value: Any) -> Any:
        codec = self._codec or self._resolve()
        if value.__class__ in self._fast:
            return value
        try:
            return codec.prepare(value, obj, self.name)
        except Invalid as error:
            doc_id, path, cls_name = _where(obj)
            raise error.to_validation_error(doc_id, cls_name, (*path, self.name)) from None


def resolved_fields(cls: type) -> dict[str, Any]:
    """Return the resolved type of every attrs field of a model class.

    String annotations are evaluated in the module of the class that declared them, with
    every model class visible by name (so classes defined inside functions resolve too).
    """
    resolved: dict[str, Any] = {}
    for a in attrs.fields(cls):
        tp = a.type
        if isinstance(tp, str):
            owner = next((k for k in cls.__mro__ if a.name in inspect.get_annotations(k)), cls)
            module = sys.modules.get(owner.__module__)
            namespace = {**_models_by_name, **(vars(module) if module is not None else {})}
            try:
                tp = eval(tp, namespace, dict(vars(owner)))
            except NameError as error:
                msg = f"cannot resolve the type of {cls.__name__}.{a.name} ({tp!r}): {error}"
                raise TypeError(msg) from None
        resolved[a.name] = tp
    return resolved


def _where(obj: Any) -> tuple[str | None, tuple[PathKey, ...], str]:
    """The document id, the path of ``obj`` in its document, and the document's class name."""
    tracker, path = locate(obj)
    root = obj
    while True:
        link = root.__dict__.get("_cm_parent") if hasattr(root, "__dict__") else None
        if link is None:
            break
        root = link[0]
    doc_id = getattr(tracker, "doc_id", None)
    if doc_id is None:
        doc_id = getattr(root, "__dict__", {}).get("id")
    return doc_id, path, type(root).__name__


class DocumentField(NestedAccess, Field):
    """A top-level field of a :class:`Document`."""

    __slots__ = ()

    def __set__(self, obj: Any, value: Any) -> None:
        if value.__class__ not in self._fast:
            value = self._incoming(obj, value)
            if value is _UNCHANGED:
                return
        d = obj.__dict__
        state = d.get("_cm_state")
        name = self.name
        if state is None:
            d[name] = value
            return
        old = d.get(name, MISSING)
        d[name] = value
        if (
            value.__class__ in JSON_SCALARS
            and old.__class__ in JSON_SCALARS
            and name not in state.log_roots
        ):
            # Tracker.set_scalar, inlined: only the first old value is kept.
            scalars = state.scalars
            if scalars is None:
                scalars = state.scalars = {}
            if name not in scalars and (old.__class__ is not value.__class__ or old != value):
                scalars[name] = old
                if not state.reported:
                    state.report_change()
        elif old is not value:
            state.record_replace((name,), value, old)
            _detach(old)


class ScalarDocumentField(Field):
    """A top-level field whose values are always JSON scalars (str, int, float, bool, None).

    Its values never hold tracked containers, so a set only has to remember the field's
    first old value: this is the hot path of every field set (see tests/benchmarks).
    """

    __slots__ = ()

    def __set__(self, obj: Any, value: Any) -> None:
        if value.__class__ not in self._fast:
            value = self._prepare(obj, value)
        d = obj.__dict__
        state = d.get("_cm_state")
        if state is not None:
            scalars = state.scalars
            if scalars is None:
                scalars = state.scalars = {}
            name = self.name
            if name not in scalars:
                old = d.get(name, MISSING)
                if old.__class__ is not value.__class__ or old != value:
                    scalars[name] = old
                    if not state.reported:
                        state.report_change()
        d[self.name] = value


class EmbeddedField(NestedAccess, Field):
    """A field of an :class:`Embedded` object; changes are recorded at its full path."""

    __slots__ = ()

    def __set__(self, obj: Any, value: Any) -> None:
        if value.__class__ not in self._fast:
            value = self._incoming(obj, value)
            if value is _UNCHANGED:
                return
        d = obj.__dict__
        old = d.get(self.name, MISSING)
        d[self.name] = value
        if d.get("_cm_parent") is None or old is value:
            return
        tracker, path = locate(obj)
        if tracker is not None:
            tracker.record_replace((*path, self.name), value, old)
        _detach(old)


class IdField:
    """The ``id`` field: free until the document enters a session, then fixed."""

    __slots__ = ()

    def __set__(self, obj: Any, value: Any) -> None:
        if value is not None and value.__class__ is not str:
            msg = f"{type(obj).__name__}.id must be a str, not {type(value).__name__}"
            raise TypeError(msg)
        d = obj.__dict__
        state = d.get("_cm_state")
        if state is not None and state.status is not Lifecycle.TRANSIENT and d.get("id") != value:
            msg = (
                f"cannot change the id of {type(obj).__name__} {d.get('id')!r}: it is "
                f"{state.status.value}; create a new document with the new id instead"
            )
            raise SessionStateError(msg)
        d["id"] = value


# --------------------------------------------------------------------------------------
# The bases.


_models_by_name: dict[str, type] = {}
"""Model classes by name: resolves string annotations of classes defined in functions."""

registry: dict[str, dict[str, type]] = {}
"""discriminator key -> type name -> class, for loading a document whose class is unknown."""


def _register(cls: type, info: ModelInfo) -> None:
    if info.type_name is None or info.discriminator is None:
        return
    names = registry.setdefault(info.discriminator, {})
    existing = names.get(info.type_name)
    if existing is not None and existing is not cls and _qualified(existing) != _qualified(cls):
        msg = (
            f"type name {info.type_name!r} is already used by {_qualified(existing)}; "
            f"give {_qualified(cls)} another one with `type_name=...` in its class statement"
        )
        raise TypeError(msg)
    names[info.type_name] = cls
    for base in cls.__mro__:
        base_info = model_info(base)
        if base_info is not None and base_info.discriminator == info.discriminator:
            base_info.subclasses[info.type_name] = cls


_POLICIES: Final = ("raise", "rebase", "overwrite")


_META_OPTIONS: Final = ("conflict", "indexes")


def _check_meta(cls: type) -> None:
    """Refuse a ``class Meta`` setting a session would otherwise ignore or misread."""
    meta = cls.__dict__.get("Meta")
    if meta is None:
        return
    unknown = sorted(k for k in vars(meta) if not k.startswith("_") and k not in _META_OPTIONS)
    if unknown:
        msg = (
            f"{cls.__name__}.Meta has unknown option(s) {', '.join(unknown)}; "
            f"the options are {', '.join(_META_OPTIONS)}"
        )
        raise ValueError(msg)
    policy = getattr(meta, "conflict", None)
    if policy is not None and policy not in _POLICIES:
        msg = f"{cls.__name__}.Meta.conflict must be one of {', '.join(_POLICIES)}, not {policy!r}"
        raise ValueError(msg)
    names = {a.name for a in attrs.fields(cls)} | {"_id", "_rev", "id"}
    info = model_info(cls)
    if info is not None and info.discriminator:
        names.add(info.discriminator)
    for index in getattr(meta, "indexes", ()):
        fields = getattr(index, "fields", None)
        if not isinstance(fields, tuple):
            msg = f"{cls.__name__}.Meta.indexes holds {index!r}; write cm.Index({index!r}, ...)"
            raise TypeError(msg)
        for name in fields:
            top = name.split(".", 1)[0]
            if top not in names:
                msg = f"{cls.__name__}.Meta.indexes: {cls.__name__} has no field {top!r}"
                raise ValueError(msg)


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _build_model(
    cls: type,
    *,
    is_document: bool,
    type_name: str | None,
    discriminator: str | Any | None,
    abstract: bool,
) -> None:
    """Turn a freshly defined subclass into an attrs class with tracking fields."""
    parent_info = next((model_info(b) for b in cls.__mro__[1:] if model_info(b)), None)
    if discriminator is MISSING:
        discriminator = parent_info.discriminator if parent_info else DEFAULT_DISCRIMINATOR
    attrs.define(
        cls,
        slots=False,
        eq=True,
        order=False,
        weakref_slot=False,
        on_setattr=attrs.setters.NO_OP,
    )
    name = None if abstract or not is_document else (type_name or cls.__name__)
    info = ModelInfo(cls, is_document, name, discriminator, resolve=resolved_fields)
    cls.__cm_info__ = info  # type: ignore[attr-defined]
    _check_meta(cls)
    _models_by_name[cls.__name__] = cls
    field_class = DocumentField if is_document else EmbeddedField
    for a in attrs.fields(cls):
        descriptor: Field | IdField
        if is_document and a.name == "id":
            descriptor = IdField()
        else:
            descriptor = field_class(cls, a.name, a.metadata.get(_METADATA_KEY, FieldOptions()))
        setattr(cls, a.name, descriptor)
    if is_document:
        _register(cls, info)


@dataclass_transform(field_specifiers=(field, attrs.field))
class _Model:
    """Shared behaviour of documents and embedded objects."""

    __cm_info__: ClassVar[ModelInfo]

    def __init_subclass__(
        cls,
        *,
        type_name: str | None = None,
        discriminator: str | Any | None = MISSING,
        abstract: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("_cm_base", False):
            return
        _build_model(
            cls,
            is_document=issubclass(cls, Document),
            type_name=type_name,
            discriminator=discriminator,
            abstract=abstract,
        )


class Embedded(_Model):
    """Base class of nested objects: stored inside a document, tracked in place, no ``_id``.

    Class options: none. Unknown JSON fields inside an embedded object are kept and written
    back unchanged.
    """

    _cm_base: ClassVar[bool] = True

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_cm_")}


class Document(_Model):
    """Base class of top-level documents.

    Class statement options::

        class Person(cm.Document, type_name="person", discriminator="type"): ...

    * ``type_name``: the discriminator value written for this class (default: the class name).
    * ``discriminator``: the JSON key holding the type name (default ``"type"``, inherited;
      ``None`` turns polymorphic loading off for the hierarchy).
    * ``abstract=True``: the class is never stored itself (no type name), only subclasses.

    Every document has ``id`` (CouchDB's ``_id``; keyword-only) and a read-only ``rev``.
    """

    _cm_base: ClassVar[bool] = True
    # Keyword-only, so subclasses may declare required fields after it.
    id: str | None = attrs.field(default=None, kw_only=True)

    @property
    def rev(self) -> str | None:
        """The CouchDB revision this object was loaded or last written at."""
        state = self.__dict__.get("_cm_state")
        return state.rev if state is not None else None


attrs.define(Document, slots=False, eq=True, weakref_slot=False, on_setattr=attrs.setters.NO_OP)
# mypy sees the attrs field declared above; at run time the descriptor takes its place.
Document.id = IdField()  # type: ignore[assignment]


class RawDocument(TrackedDict):
    """A plain-dict document of the dict API: a tracked dict with its own state."""

    __slots__ = ("__weakref__", "_cm_tracker")
    _cm_wrap = staticmethod(item_guard(codec_for(Any).prepare))

    def __init__(self, items: Mapping[str, Any] | None = None) -> None:
        self._cm_tracker: InstanceState | None = None
        super().__init__(items or {})

    @property
    def id(self) -> str | None:
        """The document's ``_id`` (kept outside the dict, like a Document's ``id``)."""
        return self._cm_tracker.doc_id if self._cm_tracker is not None else None

    @property
    def rev(self) -> str | None:
        """The revision this dict was loaded or last written at."""
        return self._cm_tracker.rev if self._cm_tracker is not None else None


# --------------------------------------------------------------------------------------
# Loading, dumping, inspecting.


def state_of(obj: Any) -> InstanceState | None:
    """Return the bookkeeping of a document object (None when it has none yet)."""
    # A Document keeps it in its __dict__ (an Embedded object has none); a RawDocument has a slot.
    fields = getattr(obj, "__dict__", None)
    state = fields.get("_cm_state") if fields is not None else getattr(obj, "_cm_tracker", None)
    return state if isinstance(state, InstanceState) else None


def _subclass_for(cls: type, info: ModelInfo, raw: Mapping[str, Any], name: Any) -> type:
    """Return the class a document of type ``name`` loads as, when asked for as ``cls``."""
    found = info.subclasses.get(name) if isinstance(name, str) else None
    if found is None:
        known = (
            registry.get(info.discriminator or "", {}).get(name) if isinstance(name, str) else None
        )
        what = f"of type {name!r}" + (f" ({known.__name__})" if known else "")
        msg = f"document {raw.get('_id')!r} is {what}, not {with_article(cls.__name__)}"
        raise Invalid([((info.discriminator or "type",), cls.__name__, msg)])
    return found


def with_article(name: str) -> str:
    """``"a Person"``, ``"an Article"``."""
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _info(cls: type) -> ModelInfo:
    info = model_info(cls)
    if info is None or not info.is_document:
        msg = f"{cls!r} is not a Document class"
        raise TypeError(msg)
    return info


def load(cls: type[D], raw: Mapping[str, Any], *, status: Lifecycle = Lifecycle.DETACHED) -> D:
    """Load a stored document (decoded JSON) into a tracked object of ``cls`` or a subclass.

    The subclass is chosen by the type discriminator. The object's changes are tracked from
    now on; ``raw`` is kept as the loaded state and must not be mutated afterwards.

    Raises:
        ValidationError: a value has the wrong type (every bad field is listed), or the
            document is of an unrelated type.
    """
    info = cls.__dict__.get("__cm_info__")
    if info is None or not info.is_document:
        info = _info(cls)
    if type(raw) is not dict:
        raw = dict(raw)
    try:
        discriminator = info.discriminator
        if discriminator is not None:
            name = raw.get(discriminator)
            if name is not None and name != info.type_name:
                info = _info(_subclass_for(cls, info, raw, name))
        loader = info.loader or codec_for(info.cls).load
        obj = loader(raw, None, "")
    except Invalid as error:
        raise error.to_validation_error(raw.get("_id"), cls.__name__) from None
    # InstanceState.__init__, inlined: this runs once for every document loaded.
    state = new_state(InstanceState)
    state.doc_id = raw.get("_id")
    state.rev = raw.get("_rev")
    state.loaded = raw
    state.obj_ref = weakref.ref(obj)
    if status is not _DETACHED:
        state.status = status
    obj.__dict__["_cm_state"] = state
    return obj  # type: ignore[no-any-return]


_DETACHED: Final = Lifecycle.DETACHED


new_state = object.__new__


def new_from_json(cls: type[D], raw: Mapping[str, Any]) -> D:
    """A new (transient) object of ``cls`` or a subclass from JSON, validated; no state yet.

    Raises:
        ValidationError: a value has the wrong type (every bad field is listed).
    """
    info = _info(cls)
    raw = dict(raw)
    try:
        discriminator = info.discriminator
        name = raw.get(discriminator) if discriminator is not None else None
        if name is not None and name != info.type_name:
            info = _info(_subclass_for(cls, info, raw, name))
        obj = codec_for(info.cls).load(raw, None, "")
    except Invalid as error:
        raise error.to_validation_error(raw.get("_id"), cls.__name__) from None
    return obj  # type: ignore[no-any-return]


def attach_state(obj: Any, raw: dict[str, Any] | None, status: Lifecycle) -> InstanceState:
    """Give a document object its bookkeeping (loaded state ``raw``, or None when new)."""
    if raw is not None:
        doc_id = raw.get("_id")
    else:
        doc_id = None if isinstance(obj, RawDocument) else obj.__dict__.get("id")
    state = InstanceState(
        doc_id=doc_id,
        rev=raw.get("_rev") if raw is not None else None,
        loaded=raw,
        status=status,
    )
    state.obj_ref = weakref.ref(obj)
    if isinstance(obj, RawDocument):
        obj._cm_tracker = state
    else:
        obj.__dict__["_cm_state"] = state
    return state


def dump(obj: Any) -> dict[str, Any]:
    """Return the JSON a document object is stored as (``_id``, ``_rev``, type, fields, extras).

    Raises:
        ValidationError: a field holds a value of the wrong type; names every field path.
    """
    if isinstance(obj, TrackedDict):
        out = obj.to_plain()
        state = state_of(obj)
        if state is not None:
            if state.doc_id is not None:
                out["_id"] = state.doc_id
            if state.rev is not None:
                out["_rev"] = state.rev
        return cast(dict[str, Any], out)
    info = model_info(type(obj))
    if info is None:
        msg = f"{type(obj).__name__} is not a couchmapper document"
        raise TypeError(msg)
    try:
        dumper = info.dumper or codec_for(info.cls).dump
        return cast(dict[str, Any], dumper(obj))
    except Invalid as error:
        raise error.to_validation_error(obj.__dict__.get("id"), type(obj).__name__) from None


def changes(obj: Any) -> ChangeList:
    """Return the changes recorded on a document since it was loaded or last flushed.

    For an embedded object, the changes of its document inside it (paths stay full).
    A transient document (never loaded, not in a session) has no changes.
    """
    tracker, path = locate(obj)
    if tracker is None:
        return ChangeList()
    found = tracker.changes
    if not path:
        return found
    return ChangeList(c for c in found if c.path[: len(path)] == path)
