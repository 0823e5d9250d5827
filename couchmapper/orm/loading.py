"""Loading documents into a session: the identity map first, then the server.

A :class:`Loading` turns stored JSON into the session's objects: one object per document id
(an object already held is returned as it is), the class picked from ``cls`` or from the type
discriminator (a tracked dict when no class matches), ``document_loaded`` sent once per
object. The session's ``get``/``get_many``/``load_rows`` and its queries load through it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from couchmapper import signals
from couchmapper._types import JSONDict, Obj
from couchmapper.exceptions import DocumentNotFound, FieldError, QueryLoadError, ValidationError
from couchmapper.model.base import (
    RawDocument,
    attach_state,
    dump,
    load,
    state_of,
    with_article,
)
from couchmapper.model.registry import model_info, registry
from couchmapper.model.reserved import check_read_id, check_typed_id
from couchmapper.model.versions import upgrade_changes
from couchmapper.orm.conflicts import found_conflicts
from couchmapper.orm.notify import send
from couchmapper.orm.part import SessionPart
from couchmapper.orm.state import Lifecycle

__all__ = ["Loading", "check_id", "class_for", "describe", "get_arguments", "object_id"]

_DELETED: Any = object()  # a pending deletion: loading the id finds nothing


class Loading(SessionPart):
    """Loads documents into one session (the identity map answers first)."""

    def get(self, doc_id: str, target: type | None) -> Any:
        """The object for ``doc_id`` (loaded if not held), or None when there is none.

        Raises:
            ValidationError: ``doc_id`` names no document of ``target`` (before any request).
        """
        check_id(doc_id, target)
        found = self.lookup(doc_id)
        if found is not None:
            return self.check_type(found, target)
        try:
            raw = self.traffic.call(self.session.backend.get, doc_id, conflicts=True)
        except DocumentNotFound:
            return None
        return self.load(raw, target)

    def lookup(self, doc_id: str) -> Obj | None:
        """An object already in the session (a marker for pending deletions; None if none)."""
        if doc_id in self.pending.deleted:
            return _DELETED
        return self.pending.identity.get(doc_id)

    def check_type(self, obj: Obj, target: type | None) -> Any:
        """``obj`` (None for a pending deletion), if it is a ``target``.

        Raises:
            ValidationError: ``obj`` is not a ``target``.
        """
        if obj is _DELETED:
            return None
        if target is not None and not isinstance(obj, target):
            # The same error as loading such a document from the server (model.base.load).
            doc_id = object_id(obj)
            info = model_info(type(obj))
            if info is None:
                what = "a raw dict document"
            else:
                what = f"of type {info.type_name!r} ({type(obj).__name__})"
            message = f"document {doc_id!r} is {what}, not {with_article(target.__name__)}"
            raise ValidationError(doc_id, [FieldError("type", target.__name__, message)])
        return obj

    def load(self, raw: JSONDict, target: type | None) -> Obj:
        """The session's object for the stored document ``raw`` (made if not held)."""
        doc_id = raw["_id"]
        existing = self.lookup(doc_id)
        if existing is not None:
            return self.check_type(existing, target)
        cls = target if target is not None else class_for(raw)
        if cls is None:
            obj: Obj = RawDocument(raw)  # _id and _rev first, as python-couchdb's Document
            attach_state(obj, raw, Lifecycle.PERSISTENT)
        else:
            obj = load(cls, raw, status=Lifecycle.PERSISTENT)
        state = state_of(obj)
        assert state is not None
        self.pending.adopt(self.session, obj, state, Lifecycle.PERSISTENT)
        if state.upgraded_from is not None and self.session.write_upgrades:
            # The upgrade is a change like any other: the object is dirty and hooks see it.
            # The log is empty and the changes are at distinct paths (already compact), so
            # they become the log at once rather than being compacted one by one.
            state.start_log(upgrade_changes(raw, dump(obj)))
        send(signals.document_loaded, type(obj), session=self.session, document=obj)
        losing = raw.get("_conflicts")
        if isinstance(losing, list) and losing:
            found_conflicts(self.session, self.pending, doc_id, obj, list(losing))
        return obj

    def get_many(self, cls: type | None, ids: Sequence[str]) -> list[Any]:
        """The objects for ``ids`` in order (None for missing), fetched in one request.

        Raises:
            ValidationError: an id names no document of ``cls`` (before the request).
            QueryLoadError: documents that could not be loaded (each named); ``results``
                holds the list with None in their places.
        """
        for doc_id in ids:
            check_id(doc_id, cls)
        wanted = [doc_id for doc_id in dict.fromkeys(ids) if self.lookup(doc_id) is None]
        # Held here until returned: the identity map may hold clean objects weakly only.
        found: dict[str, Obj] = {}
        failures: list[ValidationError] = []
        if wanted:
            all_docs: Callable[..., Any] = self.session.backend.all_docs
            answer = self.traffic.call(all_docs, keys=wanted, include_docs=True, conflicts=True)
            for row in answer.get("rows", ()):
                doc = row.get("doc")
                if doc is not None:
                    try:
                        found[doc["_id"]] = self.load(doc, cls)
                    except ValidationError as error:  # the others still load
                        failures.append(error)
        result: list[Any] = []
        for doc_id in ids:
            obj = found[doc_id] if doc_id in found else self.lookup(doc_id)  # {} is falsy
            result.append(None if obj is None else self.check_type(obj, cls))
        if failures:
            raise QueryLoadError(failures, result)
        return result


def check_id(doc_id: Any, cls: type | None) -> None:
    """Refuse, before any request, an id that no document of ``cls`` (None: any) can have.

    Raises:
        TypeError: ``doc_id`` is not a str.
        ValidationError: ``doc_id`` is empty or reserved for ``cls``.
    """
    if not isinstance(doc_id, str):
        msg = f"a document id must be a str, not {type(doc_id).__name__}"
        raise TypeError(msg)
    if cls is None:
        check_read_id(doc_id)
    else:
        check_typed_id(doc_id, cls)


def get_arguments(cls: type | str, doc_id: str | None) -> tuple[str, type | None]:
    """``(doc_id, class or None)`` from ``get(Class, id)`` or ``get(id)``.

    Raises:
        TypeError: two ids, or an id that is not a str.
    """
    if isinstance(cls, str):
        if doc_id is not None:
            msg = "get() takes (Class, id) or (id), not two ids"
            raise TypeError(msg)
        doc_id, target = cls, None
    else:
        target = cls
    if not isinstance(doc_id, str):
        msg = f"get() needs a document id (str), not {type(doc_id).__name__}"
        raise TypeError(msg)
    return doc_id, target


def object_id(obj: Obj) -> str | None:
    """The id of a document object (None when it has none yet)."""
    state = state_of(obj)
    if state is not None and state.doc_id is not None:
        return state.doc_id
    if isinstance(obj, RawDocument):
        return obj.id  # a new dict's own "_id" key, as python-couchdb saves it
    value = obj.__dict__.get("id")
    return value if isinstance(value, str) else None


def describe(obj: Obj) -> str:
    """``Class 'id'`` (or ``a new Class``) for error messages."""
    doc_id = object_id(obj)
    return f"{type(obj).__name__} {doc_id!r}" if doc_id else f"a new {type(obj).__name__}"


def class_for(raw: Mapping[str, Any]) -> type | None:
    """The registered class a stored document's type discriminator names (None if none)."""
    for discriminator, names in registry.items():
        name = raw.get(discriminator)
        if isinstance(name, str) and name in names:
            return names[name]
    return None
