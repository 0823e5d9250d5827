"""The dict API of a session (python-couchdb's ``Database``): the work behind its dunders.

``session.create(doc)``, ``iter(session)``, ``session[id] = doc``, ``len(session)``: the
session's methods check their arguments and call these, which see pending work so the answers
include what the next flush will write.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from couchmapper._types import Obj
from couchmapper.exceptions import SessionStateError
from couchmapper.model.base import RawDocument, attach_state, new_from_json, state_of
from couchmapper.model.raw import META_KEYS
from couchmapper.orm.loading import class_for
from couchmapper.orm.merge import without_meta
from couchmapper.orm.pending import PendingWork
from couchmapper.orm.state import Lifecycle
from couchmapper.tracking import MISSING

__all__ = ["all_ids", "object_from_dict", "pending_count", "set_body"]

_PAGE = 1000


def object_from_dict(doc: Mapping[str, Any]) -> tuple[str, Obj]:
    """``(id, object)`` for a new document given as a dict (a uuid4 hex id unless given).

    A dict whose type field names a registered document class becomes an object of that
    class; any other dict a tracked :class:`~couchmapper.model.base.RawDocument`.
    """
    body = dict(doc)
    given = body.pop("_id", None)
    doc_id = uuid.uuid4().hex if given is None else str(given)
    body.pop("_rev", None)
    cls = class_for(body)
    if cls is not None:
        return doc_id, new_from_json(cls, {**body, "_id": doc_id})
    obj = RawDocument(body)
    state = attach_state(obj, None, Lifecycle.TRANSIENT)
    state.doc_id = doc_id
    return doc_id, obj


def all_ids(all_docs: Callable[..., Any], pending: PendingWork) -> Iterator[str]:
    """Every document id (``all_docs`` pages of 1000), pending creations in, deletions out."""
    start: str | None = None
    seen: set[str] = set()
    while True:
        options: dict[str, Any] = {"limit": _PAGE}
        if start is not None:
            options.update(startkey=start, skip=1)
        rows = all_docs(**options).get("rows", [])
        for row in rows:
            doc_id = row["id"]
            seen.add(doc_id)
            if not doc_id.startswith("_design/") and doc_id not in pending.deleted:
                yield doc_id
        if len(rows) < _PAGE:
            break
        start = rows[-1]["id"]
    yield from (doc_id for doc_id in list(pending.new) if doc_id not in seen)


def set_body(doc_id: str, existing: Obj, doc: Mapping[str, Any]) -> None:
    """Make the raw dict document ``existing`` hold ``doc`` (changing only what differs).

    Raises:
        SessionStateError: ``existing`` is an object of a document class.
    """
    body = without_meta(dict(doc))
    if not isinstance(existing, RawDocument):
        msg = f"document {doc_id!r} is a {type(existing).__name__}; set its fields instead"
        raise SessionStateError(msg)
    for key in [k for k in existing if k not in body and k not in META_KEYS]:
        del existing[key]
    for key, value in body.items():
        if existing.get(key, MISSING) != value:
            existing[key] = value


def pending_count(pending: PendingWork) -> int:
    """Documents the next flush creates minus those it deletes (for ``len(session)``)."""
    # Writes whose answer was lost may already be counted by the server: skip them.
    created = sum(
        1
        for doc_id, obj in pending.new.items()
        if doc_id not in pending.replaced and not getattr(state_of(obj), "flights", None)
    )
    deleted = sum(
        1 for obj in pending.deleted.values() if not getattr(state_of(obj), "flights", None)
    )
    return created - deleted
