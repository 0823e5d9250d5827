"""Tracking fields: ``field()`` and the descriptors that record every change.

Each field of a model class is replaced by a descriptor when the class is defined:

* reading ``obj.name`` is a plain attribute read (the descriptor has no ``__get__``, so the
  instance ``__dict__`` answers at C speed);
* class-level access ``Person.name`` returns the :class:`Field` (queries build on it);
* setting ``obj.name = value`` validates and wraps the value (lists, dicts, sets and
  embedded objects become tracked) and records a change on the document's state.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import attrs

from couchmapper._types import MergeRule
from couchmapper.exceptions import SessionStateError, ValidationError
from couchmapper.model.codecs import JSON_SCALARS, Codec, Invalid
from couchmapper.model.conversion import codec_for, is_scalar_type
from couchmapper.model.registry import METADATA_KEY, FieldOptions, models_by_name
from couchmapper.model.reserved import check_typed_id
from couchmapper.model.validation import Validator, field_errors
from couchmapper.orm.state import Lifecycle
from couchmapper.query import FieldPath, NestedAccess
from couchmapper.tracking import MISSING, PathKey, detach, locate

__all__ = [
    "DocumentField",
    "EmbeddedField",
    "Field",
    "IdField",
    "ScalarDocumentField",
    "field",
    "field_descriptor",
    "resolved_fields",
]


def field(
    *,
    default: Any = attrs.NOTHING,
    factory: Callable[[], Any] | None = None,
    merge: MergeRule | None = None,
    validator: Validator | Sequence[Validator] | None = None,
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
        validator: a callable ``(instance, field, value)`` or a list of them (as attrs'),
            raising ``ValueError`` or ``TypeError`` to refuse a value; they run at each set,
            on load and before a flush (see docs/evolving.md).
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
    validators = _validators(validator)
    meta = dict(metadata or {})
    meta[METADATA_KEY] = FieldOptions(merge=merge, validators=validators)
    return attrs.field(
        default=default,
        factory=factory,
        repr=repr,
        eq=eq,
        kw_only=kw_only,
        metadata=meta,
    )


def _validators(validator: Validator | Sequence[Validator] | None) -> tuple[Validator, ...]:
    """``field(validator=...)`` as a tuple, each one checked to be callable."""
    if validator is None:
        return ()
    found = tuple(validator) if isinstance(validator, Sequence) else (validator,)
    for one in found:
        if not callable(one):
            msg = f"validator must be a callable (instance, field, value) or a list, not {one!r}"
            raise TypeError(msg)
    return found


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

    __slots__ = ("_codec", "_fast", "_floats", "name", "options")

    def __init__(self, owner: type, name: str, options: FieldOptions) -> None:
        # The type is resolved on first use, so annotations may name classes defined later.
        super().__init__(owner, (name,), None)
        self.name = name
        self.options = options
        self._codec: Codec | None = None
        self._fast: frozenset[type] = frozenset()
        self._floats = False  # floats are valid values, once checked to be finite

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
        self._fast = codec.set_fast
        self._floats = float in codec.checked
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
            namespace = {**models_by_name, **(vars(module) if module is not None else {})}
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
            detach(old)


class ScalarDocumentField(Field):
    """A top-level field whose values are always JSON scalars (str, int, float, bool, None).

    Its values never hold tracked containers, so a set only has to remember the field's
    first old value: this is the hot path of every field set (see tests/benchmarks).
    """

    __slots__ = ()

    def __set__(self, obj: Any, value: Any) -> None:
        if value.__class__ not in self._fast and not (
            # A finite float, inlined (inf - inf and nan - nan are nan, never 0).
            value.__class__ is float and self._floats and value - value == 0.0
        ):
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
        # Values of the field's fast classes (str for a str field...) need no validation;
        # a field with validators has no fast classes (_Validated), so it always takes
        # _incoming, where they run.
        if value.__class__ not in self._fast:
            value = self._incoming(obj, value)
            if value is _UNCHANGED:
                return
        d = obj.__dict__
        # Hot path (``doc.address.city = x`` again): the field is in its document's ``nested``
        # side table (see Tracker), so only its current value is updated there.
        sets = d.get("_cm_sets")
        if sets is not None and value.__class__ in JSON_SCALARS:
            entry = sets.get(self.name)
            # Reading the tracker's table (``sets[None]`` is the tracker) lets a hook round's
            # watch, which notes reads of the change-log attributes, see this edit.
            if entry is not None and sets[None].nested is not None:
                entry[1] = d[self.name] = value
                return
        link = d.get("_cm_parent")
        if link is None:  # not in a document (yet): nothing to record
            d[self.name] = value
            return
        name = self.name
        old = d.get(name, MISSING)
        d[name] = value
        if old is not value:
            self._record(obj, link, value, old)

    def _record(self, obj: Any, link: tuple[Any, PathKey], value: Any, old: Any) -> None:
        """Record a set of this field of ``obj`` (``link``: its parent and key there)."""
        name = self.name
        if value.__class__ in JSON_SCALARS and old.__class__ in JSON_SCALARS:
            # A first scalar set in an embedded object held by a document field whose key has
            # nothing in the ordered log: kept in the ``nested`` side table (see Tracker).
            parent = getattr(link[0], "__dict__", None)
            state = parent.get("_cm_state") if parent is not None else None
            if state is not None and link[1] not in state.log_roots:
                if old.__class__ is not value.__class__ or old != value:
                    mark = state.side_mark()
                    if state.nested is None:
                        state.nested = {}
                    state.nested[link[1]] = obj
                    obj.__dict__.setdefault("_cm_sets", {None: state})[name] = [old, value, mark]
                    if not state.reported:
                        state.report_change()
                return
        tracker, path = locate(obj)
        if tracker is not None:
            tracker.record_replace((*path, name), value, old)
        detach(old)


class _Validated(Field):
    """Runs the field's validators on each value set (mixed into the validated classes).

    Only fields declared with ``validator=`` get these classes, chosen when the class is
    defined, so the descriptors of other fields pay nothing for validation.
    """

    __slots__ = ()

    def _resolve(self) -> Codec:
        codec = super()._resolve()
        self._fast = frozenset()  # every set takes ``_incoming``, which validates
        return codec

    def _incoming(self, obj: Any, value: Any) -> Any:
        value = super()._incoming(obj, value)
        if value is not _UNCHANGED:
            doc_id, path, cls_name = _where(obj)
            errors = field_errors(self.options.validators, obj, self, value, (*path, self.name))
            if errors:
                raise ValidationError(doc_id, errors, cls_name)
        return value


class ValidatedDocumentField(_Validated, DocumentField):
    """A top-level document field with validators."""

    __slots__ = ()


class ValidatedEmbeddedField(_Validated, EmbeddedField):
    """A field of an embedded object with validators."""

    __slots__ = ()


class IdField:
    """The ``id`` field: free until the document enters a session, then fixed."""

    __slots__ = ()

    def __set__(self, obj: Any, value: Any) -> None:
        if value is not None and value.__class__ is not str:
            msg = f"{type(obj).__name__}.id must be a str, not {type(value).__name__}"
            raise TypeError(msg)
        if value is not None:
            check_typed_id(value, type(obj))
        d = obj.__dict__
        state = d.get("_cm_state")
        if state is not None and state.status is not Lifecycle.TRANSIENT and d.get("id") != value:
            msg = (
                f"cannot change the id of {type(obj).__name__} {d.get('id')!r}: it is "
                f"{state.status.value}; create a new document with the new id instead"
            )
            raise SessionStateError(msg)
        d["id"] = value


def field_descriptor(cls: type, attribute: attrs.Attribute[Any], *, is_document: bool) -> Any:
    """The tracking descriptor that replaces attrs field ``attribute`` on model ``cls``."""
    if is_document and attribute.name == "id":
        return IdField()
    options = attribute.metadata.get(METADATA_KEY, FieldOptions())
    field_class: type[Field]
    if options.validators:
        field_class = ValidatedDocumentField if is_document else ValidatedEmbeddedField
    else:
        field_class = DocumentField if is_document else EmbeddedField
    return field_class(cls, attribute.name, options)
