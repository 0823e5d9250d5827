"""Attachments in a flush and on read: inline when small, streamed when large, read lazily.

:class:`AttachmentWork` is the attachment half of one :class:`~couchmapper.orm.flush.FlushRun`:

* ``prepare``: in each planned document, new attachments up to the session's
  ``attachment_inline_limit`` become inline base64 data (they travel in the one
  ``_bulk_docs``); larger ones are left out and queued; stored ones stay stubs.
* ``rebase``: a conflict's rebase with attachment edits merged by name: an edit of a name
  the other side did not touch merges with their field edits; the same name on both sides is
  an overlap.
* ``settle``: a written document's inline attachments become stubs (revpos of the new
  revision, md5 of the bytes written) in its loaded state and in the object.
* ``upload``: after the bulk request, each queued attachment is streamed with its own
  ``PUT /db/doc/name?rev=`` (the revision moving on with each); a failure leaves it and the
  ones after it pending, with a per-document failure naming them.

:func:`open_stored` reads a stored attachment at the revision its object is at, in pieces,
checking length and digest at the end.
"""

from __future__ import annotations

import base64
import io
import zlib
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any, BinaryIO

import attrs

from couchmapper._types import JSONDict, Obj
from couchmapper.backends.base import AttachmentBody, StreamingAttachments
from couchmapper.exceptions import AttachmentError, BackendError, FlushFailure, NotFoundError
from couchmapper.model.attachments import (
    Attachment,
    attachments_of,
    existing,
    md5_digest,
    members,
    new_digest,
    set_members,
)
from couchmapper.model.base import state_of
from couchmapper.model.registry import model_info
from couchmapper.orm.merge import RebaseResult, rebase
from couchmapper.tracking import Change, PathKey

if TYPE_CHECKING:
    from couchmapper.orm.flush import FlushRun
    from couchmapper.orm.session import Session
    from couchmapper.orm.stats import Traffic

__all__ = ["AttachmentWork", "open_stored"]

_PIECE = 256 * 1024
# CouchDB's default [attachments] compressible_types: stored gzip, their digest the gzip's.
# These are read with Accept-Encoding: gzip (the digest can be checked); others as they are.
_COMPRESSIBLE = ("text/", "application/javascript", "application/json", "application/xml")


def _rev_pos(rev: str) -> int:
    return int(rev.split("-", 1)[0])


def _stub(content_type: str, revpos: int, digest: str, length: int) -> JSONDict:
    return {
        "content_type": content_type,
        "revpos": revpos,
        "digest": digest,
        "length": length,
        "stub": True,
    }


class _Hashing:
    """A file wrapper that hashes and counts what is read through it."""

    def __init__(self, source: IO[bytes]) -> None:
        self.source = source
        self.hasher = new_digest()
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.source.read(size)
        self.hasher.update(chunk)
        self.count += len(chunk)
        return chunk


@attrs.define
class _Queued:
    """A large attachment waiting for its own request after the bulk one."""

    name: str
    att: Attachment


class AttachmentWork:
    """What one flush does with attachments (see the module docstring)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.inline_limit: int = session.attachment_inline_limit
        self.max_size: int | None = session.max_attachment_size
        self.queued: dict[str, list[_Queued]] = {}
        self.inline: dict[str, dict[str, str]] = {}  # doc id -> name -> md5 digest

    # -- planning ---------------------------------------------------------------------

    def prepare(
        self,
        plan: dict[str, JSONDict],
        held: Callable[[str], Obj | None],
        failures: list[FlushFailure],
    ) -> None:
        """Put the bodies of new attachments into (or beside) the planned documents."""
        for doc_id, body in list(plan.items()):
            obj = held(doc_id)
            mapping = existing(obj) if obj is not None and not body.get("_deleted") else None
            if mapping is None:
                continue
            pending = mapping.pending()
            if not pending:
                continue
            try:
                plan[doc_id] = self.encode(doc_id, body, pending)
            except AttachmentError as exc:
                del plan[doc_id]
                failures.append(FlushFailure(doc_id, "bad_attachment", exc.problem, exc))

    def encode(self, doc_id: str, body: JSONDict, pending: dict[str, Attachment]) -> JSONDict:
        """``body`` with new attachments inline (small) or left out and queued (large)."""
        found = body.get("_attachments")
        if not isinstance(found, dict):
            return body
        out: JSONDict = {}
        queued: list[_Queued] = []
        digests: dict[str, str] = {}
        for name, entry in found.items():
            att = pending.get(name)
            if att is None or not att.is_new:
                out[name] = entry
                continue
            self._check(doc_id, name, att)
            data = self._small_bytes(att)
            if data is None:
                queued.append(_Queued(name, att))
                continue
            hasher = new_digest()
            hasher.update(data)
            digests[name] = md5_digest(hasher)
            out[name] = {"content_type": att.content_type, "data": base64.b64encode(data).decode()}
        if queued:
            self.queued[doc_id] = queued
        if digests:
            self.inline[doc_id] = digests
        encoded = {k: v for k, v in body.items() if k != "_attachments"}
        if out:
            encoded["_attachments"] = out
        return encoded

    def _check(self, doc_id: str, name: str, att: Attachment) -> None:
        if name.startswith("_"):
            msg = "CouchDB refuses attachment names that start with '_'"
            raise AttachmentError(doc_id, name, msg)
        if self.max_size is not None and att.length is not None and att.length > self.max_size:
            msg = f"{att.length} bytes is more than max_attachment_size ({self.max_size}); not sent"
            raise AttachmentError(doc_id, name, msg)

    def _small_bytes(self, att: Attachment) -> bytes | None:
        """The bytes of an attachment that goes inline, or None for one that is streamed."""
        if att.length is None or att.length > self.inline_limit:
            return None
        if att.data is None:
            assert att.source is not None
            # Read once and kept: a retry after a failed flush sends the same bytes.
            att.data = att.source.read(att.length)
            att.source = None
            att.length = len(att.data)
        return att.data

    # -- conflicts --------------------------------------------------------------------

    def rebase(
        self,
        doc_id: str,
        *,
        base: JSONDict,
        sent: JSONDict,
        changes: Sequence[Change],
        theirs: JSONDict,
        rule_for: Callable[[tuple[PathKey, ...]], Any],
    ) -> RebaseResult:
        """:func:`~couchmapper.orm.merge.rebase`, with attachment edits merged by name."""
        edits = [c for c in changes if c.path[:1] == ("_attachments",)]
        fields = [c for c in changes if c.path[:1] != ("_attachments",)]
        outcome = rebase(base, sent, fields, theirs, rule_for)
        if not edits or outcome.document is None:
            return outcome
        result = outcome.document
        base_atts = base.get("_attachments") or {}
        their_atts = dict(theirs.get("_attachments") or {})
        overlaps: list[str] = []
        obj = self.session.pending.held(doc_id)
        info = model_info(type(obj)) if obj is not None else None
        ours = info is not None and info.attachment_merge == "ours"
        for change in edits:
            if len(change.path) < 2:  # the whole member set through the dict API
                if not ours and _versions(base_atts) != _versions(their_atts):
                    overlaps.append("_attachments")
                else:
                    their_atts = dict(change.value) if isinstance(change.value, dict) else {}
                continue
            name = str(change.path[1])
            if not ours and _written_at(base_atts.get(name)) != _written_at(their_atts.get(name)):
                overlaps.append(f"_attachments.{name}")
            elif change.op == "remove":
                their_atts.pop(name, None)
            else:
                their_atts[name] = _current_entry(sent, name, change)
        if overlaps:
            return RebaseResult(None, tuple(dict.fromkeys(overlaps)))
        if their_atts:
            result["_attachments"] = their_atts
        else:
            result.pop("_attachments", None)
        mapping = existing(obj) if obj is not None else None
        if mapping is not None:
            result = self.encode(doc_id, result, mapping.pending())
        return RebaseResult(result)

    # -- after the bulk request ---------------------------------------------------------

    def settle(self, obj: Obj, stored: JSONDict, rev: str) -> None:
        """A document was written: its inline attachments become stubs (object too).

        The queued (large) ones leave the object until their own request writes them: the
        upload puts back either the stub or, when it fails, the pending attachment.
        """
        doc_id = str(stored.get("_id"))
        digests = self.inline.pop(doc_id, {})
        if not digests and doc_id not in self.queued:
            return
        mapping = existing(obj)
        pending = mapping.pending() if mapping is not None else {}
        found = stored.get("_attachments")
        settled: JSONDict = {}
        for name, entry in (found if isinstance(found, dict) else {}).items():
            if name in digests and isinstance(entry, dict) and "data" in entry:
                length = len(base64.b64decode(entry["data"]))
                stub = _stub(entry["content_type"], _rev_pos(rev), digests[name], length)
                settled[name] = stub
                att = pending.get(name)
                if att is not None:
                    att.settle(stub)
            else:
                settled[name] = entry
        if isinstance(found, dict):
            stored["_attachments"] = settled
        set_members(obj, settled or None)

    def upload(self, run: FlushRun) -> None:
        """Stream each queued attachment of the documents just written, in order."""
        written = {r.doc_id: i for i, r in enumerate(run.written) if r.rev is not None}
        for doc_id, queue in self.queued.items():
            index = written.get(doc_id)
            obj = run.pending.held(doc_id) if index is None else None
            if index is None:
                # Not written: the object still holds them (and their changes) as pending.
                if obj is not None:
                    self._requeue(obj, queue)
                continue
            result = run.written[index]
            done = self._upload_document(run, doc_id, queue)
            state = state_of(run.pending.held(doc_id))
            if state is not None and state.rev is not None and done:
                run.written[index] = attrs.evolve(result, rev=state.rev)
        self.queued = {}

    def keep_pending(self, run: FlushRun) -> None:
        """A bulk request failed: queued attachments of documents written stay pending."""
        for doc_id, queue in self.queued.items():
            obj = run.pending.held(doc_id)
            if obj is not None and any(r.doc_id == doc_id for r in run.written):
                self._requeue(obj, queue)
        self.queued = {}

    def _upload_document(self, run: FlushRun, doc_id: str, queue: list[_Queued]) -> bool:
        obj = run.pending.held(doc_id)
        state = state_of(obj)
        if obj is None or state is None:
            return False
        backend = run.session.backend
        for position, item in enumerate(queue):
            att = item.att
            try:
                rev = state.rev
                stub = _send_one(run.traffic, backend, doc_id, item, rev=rev)
            except (BackendError, OSError, AttachmentError) as exc:
                left = [q.name for q in queue[position:]]
                self._requeue(obj, queue[position:])
                reason = getattr(exc, "reason", None) or str(exc)
                problem = (
                    f"attachment {item.name!r} was not written ({reason}); the document is at "
                    f"revision {state.rev}; still pending: {', '.join(map(repr, left))} "
                    "(flush again to send them)"
                )
                error = getattr(exc, "error", None) or "attachment_failed"
                run.failures.append(FlushFailure(doc_id, str(error), problem, exc))
                return position > 0
            new_rev = stub.pop("rev")
            state.rev = new_rev
            loaded = dict(state.loaded or {})
            loaded["_rev"] = new_rev
            loaded["_attachments"] = {**(loaded.get("_attachments") or {}), item.name: stub}
            state.loaded = loaded
            set_members(obj, {**(members(obj) or {}), item.name: stub})
            att.settle(stub)
        return True

    def _requeue(self, obj: Obj, queue: list[_Queued]) -> None:
        """Put attachments back into their document as pending changes."""
        mapping = attachments_of(obj)
        for item in queue:
            _rewind(item.att)
            if mapping.get(item.name) is not item.att:
                mapping[item.name] = item.att


def _written_at(entry: Any) -> Any:
    """What tells one stored version of an attachment from another (present, revpos)."""
    if not isinstance(entry, dict):
        return None
    return entry.get("revpos", entry.get("digest", id(entry)))


def _versions(found: Any) -> dict[str, Any]:
    return {name: _written_at(entry) for name, entry in dict(found or {}).items()}


def _current_entry(sent: JSONDict, name: str, change: Change) -> Any:
    found = (sent.get("_attachments") or {}).get(name)
    return found if found is not None else change.value


def _rewind(att: Attachment) -> None:
    """Seek a file back to where the attachment started, for another attempt."""
    source, start = att.source, att.start
    if source is not None and start is not None:
        try:
            source.seek(start)
        except (OSError, ValueError):
            return


def _send_one(
    traffic: Traffic, backend: Any, doc_id: str, item: _Queued, *, rev: str | None
) -> JSONDict:
    """One standalone attachment PUT, streamed; the stub it leaves (and ``"rev"``)."""
    name, att = item.name, item.att
    source: IO[bytes] = io.BytesIO(att.data) if att.data is not None else att.source  # type: ignore[assignment]
    length = att.length if att.data is not None else att.remaining()
    reader = _Hashing(source)
    if isinstance(backend, StreamingAttachments):
        answer = traffic.call(
            backend.upload_attachment,
            doc_id,
            name,
            reader,
            att.content_type,
            rev=rev,
            length=length,
        )
    else:
        data = reader.read()
        answer = traffic.call(backend.put_attachment, doc_id, name, data, att.content_type, rev=rev)
    if length is not None and reader.count != length:
        msg = f"the file gave {reader.count} bytes where {length} were announced"
        raise AttachmentError(doc_id, name, msg)
    new_rev = str(answer["rev"])
    stub = _stub(att.content_type, _rev_pos(new_rev), md5_digest(reader.hasher), reader.count)
    stub["rev"] = new_rev
    return stub


# --------------------------------------------------------------------------- reading


class _Verified(io.RawIOBase):
    """An attachment body read in pieces; at the end its length and digest are checked."""

    def __init__(self, body: AttachmentBody, att: Attachment, doc_id: str, rev: str | None) -> None:
        self.body = body
        self.doc_id, self.rev = doc_id, rev
        self.name, self.digest, self.length = att.name or "", att.digest, att.length
        self.wire = new_digest()
        self.plain = new_digest()
        self.count = 0
        self.unzip = zlib.decompressobj(31) if body.encoding == "gzip" else None
        self.buffer = b""
        self.offset = 0
        self.done = False

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        view = memoryview(target).cast("B")
        while self.offset >= len(self.buffer) and not self.done:
            self._fill()
        size = min(len(view), len(self.buffer) - self.offset)
        view[:size] = self.buffer[self.offset : self.offset + size]
        self.offset += size
        return size

    def _fill(self) -> None:
        unzip = self.unzip
        if unzip is not None and unzip.unconsumed_tail:
            # At most a piece of output per call: a very compressible body stays bounded.
            self._take(unzip.decompress(unzip.unconsumed_tail, _PIECE))
            return
        chunk = self.body.read(_PIECE)
        if not chunk:
            self._take(unzip.flush() if unzip is not None else b"")
            self.done = True
            self._check()
            return
        self.wire.update(chunk)
        self._take(unzip.decompress(chunk, _PIECE) if unzip is not None else chunk)

    def _take(self, data: bytes) -> None:
        self.plain.update(data)
        self.count += len(data)
        self.buffer, self.offset = data, 0

    def _check(self) -> None:
        got = {md5_digest(self.wire), md5_digest(self.plain)}
        if self.length is not None and self.count != self.length:
            problem = f"read {self.count} bytes where its stub says {self.length}"
        elif self.digest is not None and self.digest not in got:
            problem = f"digest {md5_digest(self.plain)} does not match its stub's {self.digest}"
        else:
            return
        msg = f"{problem} at revision {self.rev}: it changed on the server; refresh() the document"
        raise AttachmentError(self.doc_id, self.name, msg)

    def close(self) -> None:
        if not self.closed:
            self.body.close()
        super().close()


def open_stored(session: Session, traffic: Traffic, obj: Obj, name: str) -> BinaryIO:
    """A stream of stored attachment ``name`` of ``obj``, at the revision the object is at.

    Raises:
        AttachmentError: the revision is no longer on the server (the attachment or its
            document changed there), or the body does not match its stub.
    """
    state = state_of(obj)
    assert state is not None and state.doc_id is not None
    doc_id, rev = state.doc_id, state.rev
    att = attachments_of(obj)[name]
    backend = session.backend
    try:
        if isinstance(backend, StreamingAttachments):
            gzip = att.content_type.startswith(_COMPRESSIBLE)
            body: AttachmentBody = traffic.call(
                backend.open_attachment, doc_id, name, rev=rev, accept_gzip=gzip
            )
        else:
            data, content_type = traffic.call(backend.get_attachment, doc_id, name, rev=rev)
            body = _Plain(data, content_type)
    except NotFoundError as exc:
        msg = (
            f"not found at revision {rev}, which this object was loaded at ({exc.reason}): "
            "it changed on the server (or the revision was compacted away); refresh() the "
            "document to read the current one"
        )
        raise AttachmentError(doc_id, name, msg) from None
    raw = _Verified(body, att, doc_id, rev)
    return io.BufferedReader(raw, buffer_size=_PIECE)


class _Plain(io.BytesIO):
    def __init__(self, data: bytes, content_type: str) -> None:
        super().__init__(data)
        self.content_type = content_type
        self.encoding: str | None = None
