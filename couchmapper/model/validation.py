"""Validators: per-field callables and a class's whole-document ``__validate__`` check.

A field declared with ``cm.field(validator=...)`` runs its validators (attrs-style
``(instance, field, value)``, raising ``ValueError`` or ``TypeError``) each time a value is
set. A class may also define ``__validate__(self)``, which sees the whole document and yields
``(path, message)`` pairs (or raises ``ValueError``/``TypeError``: one error for the whole
document). Both run when a document is loaded and before a flush writes it; every error of a
document is reported together in one :class:`~couchmapper.exceptions.ValidationError`.

Nothing here knows of sessions: the flush and the loaders call :func:`document_errors`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeAlias, get_args

from couchmapper.exceptions import FieldError, ValidationError
from couchmapper.model.registry import ModelInfo, model_info
from couchmapper.tracking import MISSING, PathKey, format_path

__all__ = [
    "VALIDATE_METHOD",
    "Validator",
    "check_document",
    "document_errors",
    "field_errors",
    "needs_check",
]

Validator: TypeAlias = Callable[[Any, Any, Any], Any]
"""A field validator: ``(instance, field, value)``; raises ``ValueError``/``TypeError``."""

VALIDATE_METHOD = "__validate__"
"""The name of a class's whole-document check."""


def field_errors(
    validators: Sequence[Validator],
    obj: Any,
    field: Any,
    value: Any,
    path: Sequence[PathKey],
) -> list[FieldError]:
    """The errors the ``validators`` of ``field`` find in ``value`` (each one runs)."""
    errors = []
    for validator in validators:
        try:
            validator(obj, field, value)
        except (ValueError, TypeError) as exc:
            name = getattr(validator, "__name__", type(validator).__name__)
            errors.append(FieldError(format_path(path), f"to pass {name}", str(exc)))
    return errors


def document_errors(obj: Any) -> list[FieldError]:
    """Every error the validators of ``obj``'s class (and its embedded objects) find.

    Returns an empty list at once for a class with no validation anywhere.
    """
    info = model_info(type(obj))
    if info is None or not needs_check(info):
        return []
    errors: list[FieldError] = []
    _object_errors(obj, info, (), errors)
    return errors


def check_document(obj: Any, doc_id: str | None) -> None:
    """Raise a :class:`ValidationError` listing every error :func:`document_errors` finds.

    Args:
        obj: a document object.
        doc_id: its id, for the message.
    """
    errors = document_errors(obj)
    if errors:
        raise ValidationError(doc_id, errors, type(obj).__name__)


def needs_check(info: ModelInfo) -> bool:
    """Whether objects of the class have anything to validate (worked out once per class)."""
    if info.checked is None:
        info.checked = False  # a class that embeds itself must not recurse forever
        own = bool(info.validators) or callable(getattr(info.cls, VALIDATE_METHOD, None))
        info.checked = own or any(
            needs_check(found) for found in _embedded_infos(tp for _, tp, _ in info.fields())
        )
    return info.checked


def _embedded_infos(types_: Iterable[Any]) -> Iterable[ModelInfo]:
    """The model infos of the embedded classes a field's type mentions (``list[Address]``)."""
    for tp in types_:
        found = model_info(tp) if isinstance(tp, type) else None
        if found is not None:
            yield found
        yield from _embedded_infos(get_args(tp))


def _object_errors(
    obj: Any, info: ModelInfo, path: tuple[PathKey, ...], errors: list[FieldError]
) -> None:
    """Validate one document or embedded object at ``path``, then what it holds."""
    cls = info.cls
    fields = obj.__dict__
    for name, validators in info.validators.items():
        value = fields.get(name, MISSING)
        if value is not MISSING:
            field = getattr(cls, name)
            errors += field_errors(validators, obj, field, value, (*path, name))
    check = getattr(obj, VALIDATE_METHOD, None)
    if callable(check):
        errors += _check_errors(check, path)
    for name, tp, _ in info.fields():
        if any(needs_check(found) for found in _embedded_infos((tp,))):
            _value_errors(fields.get(name), (*path, name), errors)


def _check_errors(check: Callable[[], Any], path: tuple[PathKey, ...]) -> list[FieldError]:
    """The ``(path, message)`` pairs a ``__validate__`` method yields, as field errors."""
    try:
        found = list(check() or ())
    except (ValueError, TypeError) as exc:
        return [FieldError(format_path(path), "to pass __validate__", str(exc))]
    errors = []
    for item in found:
        where, message = item
        full = (*path, *(where.split(".") if where else ()))
        errors.append(FieldError(format_path(full), "to pass __validate__", str(message)))
    return errors


def _value_errors(value: Any, path: tuple[PathKey, ...], errors: list[FieldError]) -> None:
    """Validate the embedded objects inside one field's value (at any depth of containers)."""
    info = model_info(type(value)) if value is not None else None
    if info is not None:
        if needs_check(info):
            _object_errors(value, info, path, errors)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _value_errors(item, (*path, key), errors)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _value_errors(item, (*path, index), errors)
