"""What couchmapper knows of each model class, read once when the class is defined.

Every :class:`~couchmapper.model.base.Document` and
:class:`~couchmapper.model.base.Embedded` subclass gets a :class:`ModelInfo` (in its
``__cm_info__``): its discriminator and type name, its subclasses by type name, the merge
rules of its fields and what its ``class Meta`` declares (conflict policy, indexes). ``Meta``
is validated and parsed here, once; the session, the flush and ``sync_design`` read the info,
never ``Meta``. :data:`registry` maps type names to classes for loading a document whose class
is not known beforehand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import attrs

from couchmapper._types import CONFLICT_POLICIES, ConflictPolicy, MergeRule

if TYPE_CHECKING:
    from couchmapper.model.codecs import Dumper, Loader
    from couchmapper.model.versions import Versioning

__all__ = [
    "DEFAULT_DISCRIMINATOR",
    "METADATA_KEY",
    "META_OPTIONS",
    "RESOLVE_MODES",
    "FieldOptions",
    "ModelInfo",
    "model_info",
    "models_by_name",
    "read_meta",
    "register",
    "registry",
]

DEFAULT_DISCRIMINATOR: Final = "type"

METADATA_KEY: Final = "couchmapper"
"""The key of couchmapper's :class:`FieldOptions` in an attrs field's metadata."""

META_OPTIONS: Final = (
    "conflict",
    "indexes",
    "allow_reserved_ids",
    "version",
    "version_field",
    "newer",
    "resolve",
    "attachment_merge",
)
"""What a model's ``class Meta`` may set."""

RESOLVE_MODES: Final = ("merge", "winner")
"""The named ``Meta.resolve`` modes (a callable is the third kind)."""


@attrs.frozen
class FieldOptions:
    """couchmapper's own options of a field (kept in the attrs field's metadata).

    Attributes:
        merge: how a ``"rebase"`` flush combines this session's change with a concurrent
            one to the same field: ``"sum"`` (re-apply the numeric delta), ``"union"``
            (merge set members / list additions and removals) or a callable
            ``(base, mine, theirs) -> value``; None means a concurrent change conflicts.
        validators: callables ``(instance, field, value)`` run at each set, on load and
            before a flush; each raises ``ValueError`` or ``TypeError`` to refuse the value.
    """

    merge: MergeRule | None = None
    validators: tuple[Callable[[Any, Any, Any], Any], ...] = ()


@attrs.define
class ModelInfo:
    """What couchmapper knows of a model class (document or embedded object).

    Attributes:
        cls: the class.
        is_document: True for top-level documents (``_id``/``_rev``, discriminator).
        type_name: the discriminator value written for this class (None: abstract).
        discriminator: the JSON key that holds the type name (``"type"`` by default).
        subclasses: type name -> class for this class and every subclass (polymorphic load).
        resolve: returns the resolved type of each field of a class.
        loader: the generated load function (set when the class is first converted).
        dumper: the generated dump function (likewise).
        conflict: the class's conflict policy (``Meta.conflict``; None: the session's).
        indexes: the indexes ``Meta`` declares for the class (inherited with ``Meta``).
        index_owner: the class whose own ``Meta`` declares the indexes (itself or a base).
        merge_rules: field name -> merge rule, for the fields that have one.
        allow_reserved_ids: documents of the class may have ``_design/`` and ``_local/`` ids
            (``Meta.allow_reserved_ids``, inherited with ``Meta``).
        validators: field name -> the field's validators, for the fields that have some.
        checked: whether loads and flushes must validate documents of the class (its fields'
            validators, ``__validate__``, or those of embedded classes); None: not known yet.
        versions: the class's schema version and upgrade steps (``Meta.version``; None: the
            class is not versioned); see :mod:`couchmapper.model.versions`.
        resolution: how stored conflicts of loaded documents are resolved automatically
            (``Meta.resolve``: ``"merge"``, ``"winner"`` or a callable; None: never).
        attachment_merge: what a ``"rebase"`` does when this session and another writer
            both changed the same attachment (``Meta.attachment_merge``): ``"ours"`` (this
            session's edit wins, last writer wins per attachment) or None (a conflict).
    """

    cls: type
    is_document: bool
    type_name: str | None = None
    discriminator: str | None = None
    subclasses: dict[str, type] = attrs.field(factory=dict)
    resolve: Callable[[type], dict[str, Any]] = attrs.field(default=None, repr=False)
    loader: Loader | None = attrs.field(default=None, repr=False)
    dumper: Dumper | None = attrs.field(default=None, repr=False)
    conflict: ConflictPolicy | None = None
    indexes: tuple[Any, ...] = ()
    index_owner: type | None = None
    merge_rules: dict[str, MergeRule] = attrs.field(factory=dict)
    allow_reserved_ids: bool = False
    validators: dict[str, tuple[Callable[[Any, Any, Any], Any], ...]] = attrs.field(factory=dict)
    checked: bool | None = None
    versions: Versioning | None = None
    resolution: str | Callable[..., Any] | None = None
    attachment_merge: str | None = None
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


models_by_name: dict[str, type] = {}
"""Model classes by name: resolves string annotations of classes defined in functions."""

registry: dict[str, dict[str, type]] = {}
"""discriminator key -> type name -> class, for loading a document whose class is unknown."""


def register(info: ModelInfo) -> None:
    """File a document class under its type name (and in its bases' ``subclasses``).

    Raises:
        TypeError: another class (not a redefinition of this one) has the type name.
    """
    cls = info.cls
    models_by_name[cls.__name__] = cls
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


def read_meta(info: ModelInfo) -> None:
    """Check the class's ``Meta`` and the options of its fields; record them on ``info``.

    Raises:
        ValueError: ``Meta`` sets an unknown option, an unknown policy, or indexes a field
            the class does not have.
        TypeError: ``Meta.indexes`` holds something other than ``cm.Index``, or
            ``Meta.allow_reserved_ids`` is not a bool.
    """
    cls = info.cls
    own = cls.__dict__.get("Meta")
    if own is not None:
        _check_meta(cls, own, info)
    # As attribute lookup finds it: the nearest Meta in the MRO, whichever class declares it.
    meta = getattr(cls, "Meta", None)
    policy = getattr(meta, "conflict", None)
    info.conflict = policy if policy in CONFLICT_POLICIES else None
    info.indexes = tuple(getattr(meta, "indexes", ()))
    info.allow_reserved_ids = getattr(meta, "allow_reserved_ids", False) is True
    resolution = getattr(meta, "resolve", None)
    info.resolution = resolution if resolution in RESOLVE_MODES or callable(resolution) else None
    info.attachment_merge = "ours" if getattr(meta, "attachment_merge", None) == "ours" else None
    info.index_owner = next(
        (k for k in cls.__mro__ if getattr(vars(k).get("Meta"), "indexes", None)), None
    )
    for a in attrs.fields(cls):
        options = a.metadata.get(METADATA_KEY)
        if isinstance(options, FieldOptions) and options.merge is not None:
            info.merge_rules[a.name] = options.merge
        if isinstance(options, FieldOptions) and options.validators:
            info.validators[a.name] = options.validators


def _check_meta(cls: type, meta: type, info: ModelInfo) -> None:
    """Refuse a ``class Meta`` setting a session would otherwise ignore or misread."""
    unknown = sorted(k for k in vars(meta) if not k.startswith("_") and k not in META_OPTIONS)
    if unknown:
        msg = (
            f"{cls.__name__}.Meta has unknown option(s) {', '.join(unknown)}; "
            f"the options are {', '.join(META_OPTIONS)}"
        )
        raise ValueError(msg)
    policy = getattr(meta, "conflict", None)
    if policy is not None and policy not in CONFLICT_POLICIES:
        choices = ", ".join(CONFLICT_POLICIES)
        msg = f"{cls.__name__}.Meta.conflict must be one of {choices}, not {policy!r}"
        raise ValueError(msg)
    resolution = getattr(meta, "resolve", None)
    if resolution is not None and resolution not in RESOLVE_MODES and not callable(resolution):
        msg = (
            f'{cls.__name__}.Meta.resolve must be "merge", "winner" or a callable '
            f"(base, winner, losers) -> merged, not {resolution!r}"
        )
        raise ValueError(msg)
    attachment_merge = getattr(meta, "attachment_merge", None)
    if attachment_merge not in (None, "ours"):
        msg = (
            f'{cls.__name__}.Meta.attachment_merge must be "ours" (or left out: a concurrent '
            f"edit of the same attachment is then a conflict), not {attachment_merge!r}"
        )
        raise ValueError(msg)
    if not isinstance(getattr(meta, "allow_reserved_ids", False), bool):
        msg = f"{cls.__name__}.Meta.allow_reserved_ids must be True or False"
        raise TypeError(msg)
    names = {a.name for a in attrs.fields(cls)} | {"_id", "_rev", "id"}
    if info.discriminator:
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
