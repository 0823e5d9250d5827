"""Names and ids CouchDB or couchmapper reserve, refused before they can do harm.

Checks made before anything is stored or sent:

* :func:`check_field_names` -- at class definition, a document field may not be named like
  the type discriminator (it would overwrite the type name, and a stored value would choose
  the class on load), like a top-level ``_`` member (CouchDB's: ``_id``, ``_rev``,
  ``_attachments``... it refuses unknown ones), like the base class's ``id``/``rev``, or
  like couchmapper's ``_cm_`` bookkeeping.
* :func:`check_read_id` -- an id given to ``get``, ``get_many``, ``session[id]``, ``in``...
  must name a document: ``""`` or ``"_all_docs"`` would name the database or one of its
  endpoints, and the request would answer something else.
* :func:`check_typed_id` -- a typed document's id may not start with ``_`` (``_design/``
  and ``_local/`` ids make design or local documents, invisible to queries) nor be empty,
  unless its class says ``class Meta: allow_reserved_ids = True``.
"""

from __future__ import annotations

import inspect
from typing import Any, Final

import attrs

from couchmapper.exceptions import FieldError, ValidationError
from couchmapper.model.registry import ModelInfo, model_info

__all__ = ["check_field_names", "check_read_id", "check_typed_id"]

_DOCUMENT_ATTRIBUTES: Final = frozenset({"id", "rev"})
_ID_PREFIXES: Final = ("_design/", "_local/")


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


def check_read_id(doc_id: str) -> None:
    """Refuse an id that names no document (checked before any request is made).

    Raises:
        ValidationError: ``doc_id`` is empty, or starts with ``_`` without being a
            ``_design/...`` or ``_local/...`` id (``"_all_docs"``, ``"_changes"``...).
    """
    if doc_id and (doc_id[0] != "_" or _is_special(doc_id)):
        return
    if not doc_id:
        why = "an empty id names the database, not a document"
    else:
        why = (
            "ids starting with '_' are reserved by CouchDB (this one names an endpoint or "
            "nothing); only '_design/<name>' and '_local/<name>' ids name documents"
        )
    raise ValidationError(doc_id, [FieldError("_id", "a document id", why)])


def check_typed_id(doc_id: str, cls: type) -> None:
    """Refuse an id a document of ``cls`` may not have (before it is stored or requested).

    Raises:
        ValidationError: ``doc_id`` is empty, or starts with ``_`` and ``cls`` does not
            allow reserved ids (``class Meta: allow_reserved_ids = True``).
    """
    if doc_id and doc_id[0] != "_":
        return
    if not doc_id:
        why = "an empty id; leave `id` unset (None) to get a generated one"
    elif (info := model_info(cls)) is not None and info.allow_reserved_ids:
        check_read_id(doc_id)
        return
    elif _is_special(doc_id):
        kind = "a design" if doc_id.startswith("_design/") else "a local"
        why = (
            f"this id would make it {kind} document, invisible to queries; set "
            f"`class Meta: allow_reserved_ids = True` on {cls.__name__} if that is meant"
        )
    else:
        why = "ids starting with '_' are reserved by CouchDB"
    raise ValidationError(doc_id, [FieldError("id", "a document id", why)], cls.__name__)


def _is_special(doc_id: str) -> bool:
    """A ``_design/<name>`` or ``_local/<name>`` id."""
    return any(doc_id.startswith(p) and len(doc_id) > len(p) for p in _ID_PREFIXES)
