"""Attachments as part of a document's tracked state: ``cm.Attachment`` and ``doc.attachments``.

A document's ``_attachments`` member is the one source of truth (typed documents keep it
among their unknown fields, raw dict documents as a key). Stored attachments are the stubs
CouchDB sent (``{"content_type", "revpos", "digest", "length", "stub": true}``), new ones a
descriptor (``{"content_type", "length"}``) whose bytes wait in an :class:`Attachment` until
the flush sends them. :class:`Attachments` is a mapping over that member: adding, replacing
and deleting an attachment rewrite the member (copy on write, so the loaded JSON is never
touched) and record a change at ``/_attachments/<name>`` (metadata, never bytes), so hooks
see it, rollback restores the stubs and the document becomes dirty.

Bodies are never downloaded on load: :meth:`Attachment.read` and :meth:`Attachment.open`
ask the document's session (``session.open_attachment``) when first used.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Iterator, MutableMapping
from typing import IO, Any, BinaryIO

from couchmapper._changelog import MISSING, Change
from couchmapper.exceptions import AttachmentError, SessionStateError

__all__ = [
    "DEFAULT_INLINE_LIMIT",
    "Attachment",
    "Attachments",
    "attachments_of",
    "check_name",
    "comparable_members",
    "md5_digest",
]

DEFAULT_INLINE_LIMIT = 64 * 1024
"""Attachments up to this many bytes travel inline (base64) in the flush's ``_bulk_docs``."""

_KEY = "_cm_attachments"


def md5_digest(hasher: Any) -> str:
    """CouchDB's form of a digest: ``md5-<base64>``."""
    return "md5-" + base64.b64encode(hasher.digest()).decode()


def check_name(doc_id: str | None, name: Any) -> str:
    """Refuse a name CouchDB refuses (not a non-empty str, or starting with ``_``)."""
    if not isinstance(name, str) or not name:
        msg = f"an attachment name must be a non-empty str, not {name!r}"
        raise AttachmentError(doc_id, str(name), msg)
    if name.startswith("_"):
        msg = "CouchDB refuses attachment names that start with '_'"
        raise AttachmentError(doc_id, name, msg)
    return name


def comparable_members(found: Any) -> Any:
    """``_attachments`` as both a write and the stored result show it: type and length each.

    What was sent carries inline ``data``, what is stored stubs (whose digest may be of the
    server's gzip bytes): a write is recognised on the server by name, type and length.
    """
    if not isinstance(found, dict):
        return found
    out: dict[str, Any] = {}
    for name, entry in found.items():
        if not isinstance(entry, dict):
            out[name] = entry
            continue
        length = entry.get("length")
        data = entry.get("data")
        if isinstance(data, str):
            try:
                length = len(base64.b64decode(data))
            except ValueError:
                length = data
        out[name] = {"content_type": entry.get("content_type"), "length": length}
    return out


def _remaining(source: IO[bytes]) -> int | None:
    """How many bytes a seekable file has left from where it stands (None if unknown)."""
    try:
        if not source.seekable():
            return None
        here = source.tell()
        end = source.seek(0, io.SEEK_END)
        source.seek(here)
    except (OSError, ValueError, AttributeError):
        return None
    return end - here


class Attachment:
    """An attachment: new data to write (bytes or a binary file), or a stored one.

    A new attachment holds its data until a flush writes it; a stored one holds CouchDB's
    metadata and reads its body on demand, at the revision its document was loaded at.

    Attributes:
        content_type: the MIME type.
        length: the size in bytes (None for a file that cannot tell before it is read).
        digest: CouchDB's ``md5-<base64>`` digest (None until written).
        revpos: the revision number the attachment was last written at (None until written).
        name: the name in its document (None until it is put in one).
    """

    def __init__(
        self,
        data: bytes | bytearray | memoryview | BinaryIO | IO[bytes],
        content_type: str = "application/octet-stream",
    ) -> None:
        if not isinstance(content_type, str) or not content_type:
            msg = f"content_type must be a non-empty str, not {content_type!r}"
            raise TypeError(msg)
        self.content_type = content_type
        self.digest: str | None = None
        self.revpos: int | None = None
        self.name: str | None = None
        self.data: bytes | None = None
        self.source: IO[bytes] | None = None
        self.entry: dict[str, Any] | None = None  # its member in the document's JSON
        self.owner: Any = None  # the document (a cycle the collector frees)
        if isinstance(data, bytes | bytearray | memoryview):
            self.data = bytes(data)
            self.length: int | None = len(self.data)
        elif isinstance(data, io.TextIOBase) or not callable(getattr(data, "read", None)):
            msg = f"Attachment takes bytes or a binary file, not {type(data).__name__}"
            raise TypeError(msg)
        else:
            self.source = data
            self.length = _remaining(data)
            if self.length is not None:
                self.start = data.tell()

    start: int | None = None  # where a seekable file's data begins (for another attempt)

    def remaining(self) -> int | None:
        """How many bytes the file has left to give (None when it cannot tell)."""
        return _remaining(self.source) if self.source is not None else self.length

    @classmethod
    def stored(cls, name: str, stub: dict[str, Any], owner: Any) -> Attachment:
        """The attachment a stub of ``owner``'s JSON describes (nothing downloaded)."""
        att = cls.__new__(cls)
        att.content_type = str(stub.get("content_type") or "application/octet-stream")
        length = stub.get("length")
        att.length = length if isinstance(length, int) else None
        digest = stub.get("digest")
        att.digest = digest if isinstance(digest, str) else None
        revpos = stub.get("revpos")
        att.revpos = revpos if isinstance(revpos, int) else None
        att.name = name
        att.data = None
        att.source = None
        att.entry = stub
        att.owner = owner
        return att

    @property
    def is_new(self) -> bool:
        """Whether this attachment still waits to be written (it holds data, not a stub)."""
        return self.data is not None or self.source is not None

    def descriptor(self) -> dict[str, Any]:
        """The member a new attachment has in its document's JSON until it is written."""
        out: dict[str, Any] = {"content_type": self.content_type}
        if self.length is not None:
            out["length"] = self.length
        return out

    def settle(self, stub: dict[str, Any]) -> None:
        """Written: drop the data, keep the stub's metadata."""
        self.data = None
        self.source = None
        self.entry = stub
        self.digest = stub.get("digest")
        self.revpos = stub.get("revpos")
        self.length = stub.get("length", self.length)

    def read(self) -> bytes:
        """The whole body (fetched on first use for a stored attachment; digest checked)."""
        if self.data is not None:
            return self.data
        with self.open() as stream:
            return stream.read()

    def open(self) -> BinaryIO:
        """A binary stream of the body, fetched in pieces (never held whole in memory).

        Raises:
            AttachmentError: the body is not readable yet (a new file not written), or it
                changed on the server (its digest does not match, or the revision is gone).
            SessionStateError: the document is in no open session to read through.
        """
        if self.data is not None:
            return io.BytesIO(self.data)
        owner = self.owner
        doc_id = _doc_id(owner)
        if self.source is not None or owner is None:
            msg = "it is not written yet: flush the session first, or read the file you gave"
            raise AttachmentError(doc_id, self.name or "", msg)
        state = _state(owner)
        session = state.session if state is not None else None
        if session is None:
            msg = (
                f"cannot read attachment {self.name!r} of document {doc_id!r}: the document "
                "is in no session (add it to an open Session first)"
            )
            raise SessionStateError(msg)
        stream: BinaryIO = session.open_attachment(owner, self.name)
        return stream

    def __repr__(self) -> str:
        where = "new" if self.is_new else f"revpos={self.revpos}"
        return (
            f"<Attachment {self.name!r} {self.content_type} length={self.length} "
            f"digest={self.digest!r} {where}>"
        )


def _state(doc: Any) -> Any:
    if isinstance(doc, dict):
        return getattr(doc, "_cm_tracker", None)
    return doc.__dict__.get("_cm_state")


def _doc_id(doc: Any) -> str | None:
    if doc is None:
        return None
    state = _state(doc)
    if state is not None and state.doc_id is not None:
        return str(state.doc_id)
    found = doc.id
    return found if isinstance(found, str) else None


def members(doc: Any) -> dict[str, Any] | None:
    """The ``_attachments`` member of a document object (None when it has none)."""
    if isinstance(doc, dict):
        value = dict.get(doc, "_attachments")
    else:
        extra = doc.__dict__.get("_cm_extra")
        value = extra.get("_attachments") if extra else None
    return value if isinstance(value, dict) else None


def set_members(doc: Any, value: dict[str, Any] | None) -> None:
    """Replace the ``_attachments`` member (never edited in place: loaded JSON shares it)."""
    if isinstance(doc, dict):
        if value is None:
            dict.pop(doc, "_attachments", None)
        else:
            dict.__setitem__(doc, "_attachments", value)
        return
    fields = doc.__dict__
    extra = dict(fields.get("_cm_extra") or {})
    if value is None:
        extra.pop("_attachments", None)
    else:
        extra["_attachments"] = value
    fields["_cm_extra"] = extra


class Attachments(MutableMapping[str, Attachment]):
    """The attachments of one document, by name; edits are tracked like field edits."""

    def __init__(self, doc: Any) -> None:
        # Strong: ``session.get(...).attachments[name].read()`` must keep the document alive.
        self._doc = doc
        self._seen: dict[str, Any] | None = None
        self._items: dict[str, Attachment] = {}

    @property
    def document(self) -> Any:
        """The document these attachments belong to."""
        return self._doc

    def _sync(self) -> dict[str, Attachment]:
        """Rebuild the objects when the member was replaced (a load, restore or rollback)."""
        doc = self.document
        current = members(doc)
        if current is not self._seen or (current is None and self._items):
            old = self._items
            fresh: dict[str, Attachment] = {}
            for name, entry in (current or {}).items():
                known = old.get(name)
                if known is not None and known.entry is entry:
                    fresh[name] = known
                elif isinstance(entry, dict):
                    fresh[name] = Attachment.stored(name, entry, doc)
            self._items = fresh
            self._seen = current
        return self._items

    def pending(self) -> dict[str, Attachment]:
        """The new attachments that wait to be written, by name."""
        return {name: att for name, att in self._sync().items() if att.is_new}

    def __getitem__(self, name: str) -> Attachment:
        return self._sync()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._sync()))

    def __len__(self) -> int:
        return len(self._sync())

    def __contains__(self, name: object) -> bool:
        return name in self._sync()

    def __setitem__(self, name: str, att: Attachment) -> None:
        doc = self.document
        doc_id = _doc_id(doc)
        check_name(doc_id, name)
        if not isinstance(att, Attachment):
            msg = f"expected a cm.Attachment, not {type(att).__name__}"
            raise TypeError(msg)
        items = self._sync()
        owner = att.owner
        if att.is_new:
            if owner is not None and owner is not doc:
                msg = "this Attachment already belongs to another document; make a new one"
                raise AttachmentError(doc_id, name, msg)
            entry = att.descriptor()
        elif owner is doc and att.name == name and att.entry is not None:
            entry = att.entry  # a stored one put back where it was
        else:
            msg = (
                "a stored attachment cannot be copied or renamed as it is; "
                "use cm.Attachment(att.read(), att.content_type)"
            )
            raise AttachmentError(doc_id, name, msg)
        att.name, att.entry, att.owner = name, entry, doc
        current = members(doc) or {}
        old = current.get(name, MISSING)
        value = {**current, name: entry}
        set_members(doc, value)
        self._items = {**items, name: att}
        self._seen = value
        _record(
            doc,
            Change(
                "add" if old is MISSING else "replace",
                ("_attachments", name),
                dict(entry),
                _plain(old),
            ),
        )

    def __delitem__(self, name: str) -> None:
        doc = self.document
        items = self._sync()
        if name not in items:
            raise KeyError(name)
        current = members(doc) or {}
        old = current.get(name, MISSING)
        value = {k: v for k, v in current.items() if k != name}
        set_members(doc, value or None)
        self._items = {k: v for k, v in items.items() if k != name}
        self._seen = members(doc)
        if old is not MISSING:
            _record(doc, Change("remove", ("_attachments", name), MISSING, _plain(old)))

    def __repr__(self) -> str:
        return f"<Attachments {list(self._sync())!r}>"


def _plain(value: Any) -> Any:
    to_plain = getattr(value, "to_plain", None)
    if callable(to_plain):
        return to_plain()
    return dict(value) if isinstance(value, dict) else value


def _record(doc: Any, change: Change) -> None:
    state = _state(doc)
    if state is not None:
        state.record(change)


def attachments_of(doc: Any) -> Attachments:
    """The :class:`Attachments` of a document object (made on first use, then kept)."""
    if isinstance(doc, dict):
        found = getattr(doc, "_cm_attachments", None)
        if found is None:
            found = Attachments(doc)
            setattr(doc, "_cm_attachments", found)  # noqa: B010 -- a RawDocument slot
        return found
    fields = doc.__dict__
    mapping = fields.get(_KEY)
    if mapping is None:
        mapping = fields[_KEY] = Attachments(doc)
    return mapping  # type: ignore[no-any-return]


def existing(doc: Any) -> Attachments | None:
    """The :class:`Attachments` of a document if it was ever used (no new one made)."""
    if isinstance(doc, dict):
        return getattr(doc, "_cm_attachments", None)
    found = doc.__dict__.get(_KEY)
    return found if isinstance(found, Attachments) else None


def new_digest() -> Any:
    """A fresh md5 hasher (digests of written bytes, as pouchdb-server and CouchDB give them)."""
    return hashlib.md5()  # CouchDB's digest, not a security measure
