"""Names and ids CouchDB or couchmapper reserve, refused before they can do harm.

Checks made before anything is stored or sent:

* :func:`check_field_names` -- at class definition, a document field may not be named like
  the type discriminator (it would overwrite the type name, and a stored value would choose
  the class on load), like a top-level ``_`` member (CouchDB's: ``_id``, ``_rev``,
  ``_attachments``... it refuses unknown ones), like the base class's ``id``/``rev``, or
  like couchmapper's ``_cm_`` bookkeeping.
"""

from __future__ import annotations

import inspect
from typing import Any, Final

import attrs

from couchmapper.model.registry import ModelInfo

__all__ = ["check_field_names"]

_DOCUMENT_ATTRIBUTES: Final = frozenset({"id", "rev"})


def check_field_names(cls: type, info: ModelInfo) -> None:
    """Refuse a field whose name is reserved, naming it and what to do instead.

    Runs before attrs builds the class (``_id: str`` would otherwise fail inside attrs, as
    a second ``id`` argument): the class's own annotations get every rule, the fields it
    inherits only the discriminator rule (a subclass may choose another discriminator).

    Raises:
        TypeError: a field collides with the discriminator, a CouchDB ``_`` member, a base
            class attribute or couchmapper's bookkeeping.
    """
    own = [
        name
        for name, annotation in inspect.get_annotations(cls).items()
        if not _is_class_var(annotation)
    ]
    inherited = {a.name for base in cls.__mro__[1:] if attrs.has(base) for a in attrs.fields(base)}
    for name in [*own, *(inherited - set(own))]:
        problem = _name_problem(name, info, own=name in own)
        if problem is not None:
            msg = f"{cls.__name__}.{name}: {problem}"
            raise TypeError(msg)


def _is_class_var(annotation: Any) -> bool:
    """Whether an annotation declares a class variable (attrs makes no field of it)."""
    text = str(annotation).strip("'\"")
    return text.startswith(("ClassVar", "typing.ClassVar", "t.ClassVar"))


def _name_problem(name: str, info: ModelInfo, *, own: bool) -> str | None:
    if name == info.discriminator and info.is_document:
        other = "kind" if name != "kind" else "category"
        return (
            f"the field collides with the type discriminator {name!r}: documents keep their "
            "type name under that key, so the field would overwrite it and a stored value "
            f"would choose the class on load; rename the field (e.g. `{other}`), or keep the "
            'type name under another key with `discriminator="doc_type"` (or '
            "`discriminator=None`) in the class statement of the hierarchy's base class"
        )
    if not own:
        return None
    if name.startswith(("_cm", "__cm")):
        return "names starting with '_cm' hold couchmapper's bookkeeping; rename the field"
    if not info.is_document:
        return None  # CouchDB reserves nothing inside a document
    if name.startswith("_"):
        return (
            "top-level names starting with '_' are reserved by CouchDB (_id, _rev, "
            "_attachments, _conflicts, _deleted...; it refuses any other), so the document "
            f"could not be stored; rename the field (e.g. `{name.lstrip('_') or 'value'}`)"
        )
    if name in _DOCUMENT_ATTRIBUTES:
        return (
            f"`{name}` is reserved: every document has `id` (its _id) and a read-only `rev` "
            f"(its _rev); rename the field (e.g. `{name}_value`)"
        )
    return None
