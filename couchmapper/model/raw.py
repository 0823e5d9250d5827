"""Raw dict documents of the python-couchdb compatible dict API.

A :class:`RawDocument` behaves like python-couchdb's ``couchdb.client.Document``: a mapping
holding ``_id`` and ``_rev`` (first, as CouchDB sends them) with ``.id`` and ``.rev``. Its
bookkeeping (:class:`RawState`) owns both values and shows them in the mapping whenever they
change -- when the session assigns the id, a flush writes a revision, a refresh or rollback
restores the body -- so they are always current and never part of the change log.

Writing ``_id`` or ``_rev`` through the mapping of a document a session knows raises
:class:`~couchmapper.exceptions.SessionStateError` (the id is fixed, the revision is the
session's); writing the value they already have is accepted and does nothing, so a body read
from the document can be written back whole. ``clear()`` keeps them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from couchmapper.exceptions import SessionStateError
from couchmapper.model.attachments import Attachments, attachments_of
from couchmapper.model.codecs import item_guard
from couchmapper.model.conversion import codec_for
from couchmapper.orm.state import InstanceState
from couchmapper.tracking import MISSING, TrackedDict

__all__ = ["META_KEYS", "RawDocument", "RawState"]

META_KEYS: Final = ("_id", "_rev")


class RawDocument(TrackedDict):
    """A plain-dict document of the dict API: a tracked dict with its own state.

    Like ``couchdb.client.Document``, it holds ``_id`` and ``_rev`` as keys (kept current
    by the session; not tracked as changes) and has ``.id`` and ``.rev``.
    """

    __slots__ = ("__weakref__", "_cm_attachments", "_cm_tracker")
    _cm_wrap = staticmethod(item_guard(codec_for(Any).prepare))

    def __init__(self, items: Mapping[str, Any] | None = None) -> None:
        self._cm_tracker: InstanceState | None = None
        self._cm_attachments: Attachments | None = None
        super().__init__(items or {})

    @property
    def attachments(self) -> Attachments:
        """The document's attachments by name, tracked like its fields.

        Each value is a :class:`~couchmapper.Attachment`; see docs/attachments.md.
        """
        return attachments_of(self)

    @property
    def id(self) -> str | None:
        """The document's ``_id``."""
        if self._cm_tracker is not None:
            return self._cm_tracker.doc_id
        found = dict.get(self, "_id")
        return found if isinstance(found, str) else None

    @property
    def rev(self) -> str | None:
        """The revision this dict was loaded or last written at."""
        return self._cm_tracker.rev if self._cm_tracker is not None else None

    def __setitem__(self, key: Any, value: Any) -> None:
        if key in META_KEYS and self._cm_tracker is not None:
            if dict.get(self, key, MISSING) != value:
                self._refuse(key, "set")
            return
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        if key in META_KEYS and self._cm_tracker is not None and key in self:
            self._refuse(key, "delete")
        super().__delitem__(key)

    def clear(self) -> None:
        """Remove every field; ``_id`` and ``_rev`` stay (they are the session's)."""
        for key in [k for k in self if self._cm_tracker is None or k not in META_KEYS]:
            del self[key]

    def _refuse(self, key: str, action: str) -> None:
        what = (
            "the id of a stored or added document is fixed (create a new document instead)"
            if key == "_id"
            else "the session sets _rev when it writes the document (flush() to update it)"
        )
        msg = f"cannot {action} {key!r} of document {self.id!r}: {what}"
        raise SessionStateError(msg)

    def _cm_show_meta(self) -> None:
        """Put the state's ``_id`` and ``_rev`` first in the mapping (drop a missing one)."""
        state = self._cm_tracker
        meta = {}
        if state is not None and state.doc_id is not None:
            meta["_id"] = state.doc_id
        if state is not None and state.rev is not None:
            meta["_rev"] = state.rev
        present = [k for k in META_KEYS if k in self]
        head = list(dict.keys(self))[: len(meta)]
        if present == list(meta) and head == list(meta):
            for key, value in meta.items():  # in place: the order is right
                dict.__setitem__(self, key, value)
            return
        body = [(k, v) for k, v in dict.items(self) if k not in META_KEYS]
        dict.clear(self)
        dict.update(self, meta)
        dict.update(self, body)


class RawState(InstanceState):
    """The bookkeeping of a :class:`RawDocument`: ``doc_id`` and ``rev`` show in its mapping."""

    _doc_id: str | None = None
    _rev: str | None = None

    @property
    def doc_id(self) -> str | None:
        """The document id."""
        return self._doc_id

    @doc_id.setter
    def doc_id(self, value: str | None) -> None:
        self._doc_id = value
        self._show()

    @property
    def rev(self) -> str | None:
        """The revision loaded or last written."""
        return self._rev

    @rev.setter
    def rev(self, value: str | None) -> None:
        self._rev = value
        self._show()

    def _show(self) -> None:
        obj = self.obj
        if isinstance(obj, RawDocument) and obj._cm_tracker is self:
            obj._cm_show_meta()
