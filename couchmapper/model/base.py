"""The model bases (``Document``, ``Embedded``, ``RawDocument``) and loading/dumping objects.

A subclass of :class:`Document` or :class:`Embedded` becomes an attrs class when it is
defined (no decorator needed; type checkers see it through ``dataclass_transform``): its
:class:`~couchmapper.model.registry.ModelInfo` is made (``Meta`` parsed once), and each field
is replaced by a tracking descriptor (:mod:`couchmapper.model.fields`).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any, ClassVar, Final, TypeVar, cast, dataclass_transform

import attrs

from couchmapper.model.attachments import Attachments, attachments_of
from couchmapper.model.codecs import too_deep
from couchmapper.model.conversion import Invalid, codec_for
from couchmapper.model.fields import IdField, field, field_descriptor, resolved_fields
from couchmapper.model.raw import RawDocument, RawState
from couchmapper.model.registry import (
    DEFAULT_DISCRIMINATOR,
    ModelInfo,
    model_info,
    read_meta,
    register,
    registry,
)
from couchmapper.model.reserved import check_field_names
from couchmapper.model.validation import check_document, needs_check
from couchmapper.model.versions import read_versions, upgraded
from couchmapper.orm.merge import without_meta
from couchmapper.orm.state import InstanceState, Lifecycle
from couchmapper.tracking import MISSING, ChangeList, TrackedDict, locate

__all__ = [
    "Document",
    "Embedded",
    "RawDocument",
    "attach_state",
    "changes",
    "dump",
    "load",
    "new_from_json",
    "restore",
    "state_of",
    "with_article",
]

T = TypeVar("T")
D = TypeVar("D", bound="Document")


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
    name = None if abstract or not is_document else (type_name or cls.__name__)
    info = ModelInfo(cls, is_document, name, discriminator, resolve=resolved_fields)
    check_field_names(cls, info)
    attrs.define(
        cls,
        slots=False,
        eq=True,
        order=False,
        weakref_slot=False,
        on_setattr=attrs.setters.NO_OP,
    )
    cls.__cm_info__ = info  # type: ignore[attr-defined]
    read_meta(info)  # the one place Meta is read
    if is_document:
        read_versions(info)
    for a in attrs.fields(cls):
        setattr(cls, a.name, field_descriptor(cls, a, is_document=is_document))
    register(info)


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

    @property
    def attachments(self) -> Attachments:
        """The document's attachments by name, tracked like its fields.

        Each value is a :class:`~couchmapper.Attachment`; see docs/attachments.md.
        """
        return attachments_of(self)


attrs.define(Document, slots=False, eq=True, weakref_slot=False, on_setattr=attrs.setters.NO_OP)
# mypy sees the attrs field declared above; at run time the descriptor takes its place.
Document.id = IdField()  # type: ignore[assignment]


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
        if info.versions is None:
            obj = loader(raw, None, "")
        else:
            fresh, version = upgraded(info.versions, raw, info.cls.__name__)
            obj = loader(fresh, None, "")
    except Invalid as error:
        raise error.to_validation_error(raw.get("_id"), cls.__name__) from None
    except RecursionError:
        raise too_deep(raw).to_validation_error(raw.get("_id"), cls.__name__) from None
    if info.checked is not False and needs_check(info):
        check_document(obj, raw.get("_id"))
    # InstanceState.__init__, inlined: this runs once for every document loaded.
    state = new_state(InstanceState)
    state.doc_id = raw.get("_id")
    state.rev = raw.get("_rev")
    state.loaded = raw
    state.obj_ref = weakref.ref(obj)
    if status is not _DETACHED:
        state.status = status
    if info.versions is not None and version != info.versions.version:
        _note_version(state, info.cls.__name__, info.versions.version, version)
    obj.__dict__["_cm_state"] = state
    return obj  # type: ignore[no-any-return]


def _note_version(state: InstanceState, cls_name: str, current: int, version: int) -> None:
    """Remember that a document was upgraded on load, or is newer than its class."""
    if version < current:
        state.upgraded_from = version
    else:
        state.read_only = (
            f"{cls_name} {state.doc_id!r} is schema version {version}, newer than "
            f"{cls_name} (version {current}): loaded read-only (Meta.newer), so it is "
            "never written back with an older schema"
        )


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
    except RecursionError:
        raise too_deep(raw).to_validation_error(raw.get("_id"), cls.__name__) from None
    return obj  # type: ignore[no-any-return]


def attach_state(obj: Any, raw: dict[str, Any] | None, status: Lifecycle) -> InstanceState:
    """Give a document object its bookkeeping (loaded state ``raw``, or None when new)."""
    if raw is not None:
        doc_id = raw.get("_id")
    else:
        doc_id = None if isinstance(obj, RawDocument) else obj.__dict__.get("id")
    state = (RawState if isinstance(obj, RawDocument) else InstanceState)(
        doc_id=doc_id,
        rev=raw.get("_rev") if raw is not None else None,
        loaded=raw,
        status=status,
    )
    state.obj_ref = weakref.ref(obj)
    if isinstance(obj, RawDocument):
        obj._cm_tracker = state
        obj._cm_show_meta()
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
        out = dumper(obj)
        if info.versions is not None:
            out[info.versions.field] = info.versions.version
        return cast(dict[str, Any], out)
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


def restore(obj: Any, raw: Mapping[str, Any]) -> None:
    """Put the fields of ``raw`` into ``obj`` in place, without recording changes."""
    if isinstance(obj, RawDocument):
        dict.clear(obj)
        fresh = RawDocument(without_meta(raw))
        for value in fresh.values():
            if hasattr(value, "_cm_parent"):
                value._cm_parent = obj
        dict.update(obj, fresh)
        obj._cm_show_meta()
        return
    fresh_obj = load(type(obj), dict(raw))
    state = obj.__dict__.get("_cm_state")
    obj.__dict__.clear()
    obj.__dict__.update({k: v for k, v in fresh_obj.__dict__.items() if k != "_cm_state"})
    obj.__dict__["_cm_state"] = state
    for value in obj.__dict__.values():
        link = getattr(value, "_cm_parent", None)
        if link is fresh_obj:
            value._cm_parent = obj
        elif isinstance(getattr(value, "__dict__", None), dict) and "_cm_parent" in value.__dict__:
            value.__dict__["_cm_parent"] = (obj, value.__dict__["_cm_parent"][1])
