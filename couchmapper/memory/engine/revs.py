"""Revision trees, revision hashes, attachments and sequences of the memory engine.

Pure data structures with no locking: :mod:`couchmapper.memory.engine.store` owns the lock.
"""

from __future__ import annotations

import base64
import hashlib
import re
import zlib
from collections.abc import Iterator
from typing import Any

from couchmapper._couch.erlang import ErlAtom, ErlTuple, term_to_binary
from couchmapper.memory.engine.body import encode_body
from couchmapper.memory.engine.errors import bad_request

__all__ = [
    "Attachment",
    "DocRecord",
    "RevNode",
    "format_seq",
    "parse_rev",
    "parse_since",
    "rev_hash",
]

_REV_RE = re.compile(r"^([0-9]+)-(.*)$", re.DOTALL)
_SEQ_RE = re.compile(r"^([0-9]+)(-.*)?$", re.DOTALL)

# CouchDB's default `compressible_types`: these are gzipped before they are stored, which is
# why their digest is the md5 of the gzip bytes.
_COMPRESSIBLE = ("text/", "application/javascript", "application/json", "application/xml")


def parse_rev(rev: Any) -> tuple[int, str]:
    """Split ``"N-hash"``; raise 400 "Invalid rev format" like CouchDB for anything else."""
    if isinstance(rev, str):
        found = _REV_RE.match(rev)
        if found is not None:
            return int(found.group(1)), found.group(2)
    raise bad_request("Invalid rev format")


def rev_hash(
    body: dict[str, Any],
    deleted: bool,
    parent: str | None,
    atts: dict[str, Attachment],
    *,
    revive: bool = False,
    term: bytes | None = None,
) -> str:
    """CouchDB's rev hash: md5 of ``term_to_binary([Deleted, OldPos, OldRev, Body, Atts])``.

    The same body, deleted flag, parent rev and attachments give the same rev as CouchDB 3.5
    (``{"v": 1}`` gets ``1-7a7e4b29f3af401e69b6f86e4c26b727`` whatever the id). ``Atts`` is a
    list of ``{Name, Type, Md5}`` in reverse attachment order (couch_db:new_revid folds them).

    A ``revive`` (a doc re-created on its tombstone) is hashed by couch_db_updater after the
    attachments were turned into their disk form, whose fields read back as ``undefined``: each
    attachment is then ``{undefined, undefined, undefined}``.

    ``term`` is the body's encoding when the caller has it already (see
    :func:`~couchmapper.memory.engine.body.checked_body`).
    """
    parent_pos, parent_hash = parse_rev(parent) if parent else (0, "")
    old_rev: Any = _revid_term(parent_hash) if parent else 0
    # term_to_binary([Deleted, OldPos, OldRev, Body, Atts]), the body by the fast encoder.
    parts = [_LIST_OF_5, _ATOMS[deleted]]
    encode_body(parent_pos, parts, 0)
    encode_body(old_rev, parts, 0)
    if term is None:
        encode_body(body, parts, 0)
    else:
        parts.append(term)
    if atts:
        att_terms = [
            ErlTuple((name, a.content_type, base64.b64decode(a.digest.removeprefix("md5-"))))
            for name, a in reversed(atts.items())
        ]
        if revive:
            att_terms = [ErlTuple((_UNDEFINED, _UNDEFINED, _UNDEFINED))] * len(atts)
        parts.append(term_to_binary(att_terms)[1:])
    else:
        parts.append(b"j")
    parts.append(b"j")
    return hashlib.md5(b"".join(parts)).hexdigest()


_ATOMS = {flag: term_to_binary(flag)[1:] for flag in (True, False)}


_LIST_OF_5 = b"\x83l\x00\x00\x00\x05"  # the version byte, then LIST_EXT of 5 elements


# What couch_db_updater's disk-form attachment fields read back as (see rev_hash's revive).
_UNDEFINED = ErlAtom("undefined")


def _revid_term(rev_hash_text: str) -> bytes:
    """CouchDB keeps a 32-hex rev id as its 16 raw bytes, any other rev id as its text."""
    if len(rev_hash_text) == 32:
        try:
            return bytes.fromhex(rev_hash_text)
        except ValueError:
            pass
    return rev_hash_text.encode("utf-8", "surrogatepass")


def format_seq(n: int) -> str:
    """An opaque CouchDB-like sequence string ``"<N>-g1AAAA..."``."""
    tail = base64.urlsafe_b64encode(hashlib.sha1(str(n).encode()).digest()).decode().rstrip("=")
    return f"{n}-g1AAAAB{tail}"


def parse_since(since: Any) -> int | None:
    """Parse a ``since`` value: ``now`` gives None; invalid values give CouchDB's 400."""
    if since == "now":
        return None
    if isinstance(since, int) and not isinstance(since, bool) and since >= 0:
        return since
    if isinstance(since, str):
        found = _SEQ_RE.match(since)
        if found is not None:
            return int(found.group(1))
    raise bad_request("Malformed sequence supplied in 'since' parameter.")


class Attachment:
    """One stored attachment: the raw bytes plus CouchDB's metadata."""

    __slots__ = ("content_type", "data", "digest", "encoded_length", "gzipped", "revpos")

    def __init__(self, data: bytes, content_type: str, revpos: int) -> None:
        self.data = data
        self.content_type = content_type
        self.revpos = revpos
        self.gzipped = content_type.startswith(_COMPRESSIBLE)
        stored = data
        if self.gzipped:
            # zlib's own gzip framing at the default level is byte-identical to Erlang's
            # zlib:gzip, so the digests equal CouchDB's.
            packer = zlib.compressobj(-1, zlib.DEFLATED, 31)
            stored = packer.compress(data) + packer.flush()
        self.encoded_length = len(stored)
        self.digest = "md5-" + base64.b64encode(hashlib.md5(stored).digest()).decode()

    def with_revpos(self, revpos: int) -> Attachment:
        """A copy at another revpos (the bytes are immutable and shared)."""
        copy = Attachment.__new__(Attachment)
        for slot in Attachment.__slots__:
            setattr(copy, slot, getattr(self, slot))
        copy.revpos = revpos
        return copy

    def gzip_bytes(self) -> bytes:
        """The stored (gzip) form of a compressible attachment."""
        packer = zlib.compressobj(-1, zlib.DEFLATED, 31)
        return packer.compress(self.data) + packer.flush()

    def to_json(self, *, data: bool = False, encoding_info: bool = False) -> dict[str, Any]:
        """The ``_attachments`` member: a stub, or the inline base64 data."""
        out: dict[str, Any] = {
            "content_type": self.content_type,
            "revpos": self.revpos,
            "digest": self.digest,
        }
        if data:
            out["data"] = base64.b64encode(self.data).decode()
        else:
            out["length"] = len(self.data)
            out["stub"] = True
        if encoding_info and self.gzipped:
            out["encoding"] = "gzip"
            out["encoded_length"] = self.encoded_length
        return out


class RevNode:
    """One revision of a document; ``body`` is None for an ancestor known only by its rev."""

    __slots__ = ("atts", "body", "deleted", "hash", "parent", "pos", "seq")

    def __init__(
        self,
        pos: int,
        hash_: str,
        parent: str | None,
        *,
        body: dict[str, Any] | None,
        deleted: bool,
        atts: dict[str, Attachment],
        seq: int,
    ) -> None:
        self.pos = pos
        self.hash = hash_
        self.parent = parent
        self.body = body
        self.deleted = deleted
        self.atts = atts
        self.seq = seq

    @property
    def rev(self) -> str:
        """The ``N-hash`` string."""
        return f"{self.pos}-{self.hash}"

    def sort_key(self) -> tuple[bool, int, str]:
        """CouchDB's winner order: live before deleted, then longest, then highest hash."""
        return (not self.deleted, self.pos, self.hash)


class DocRecord:
    """Every known revision of one document, with its winner and leaves."""

    __slots__ = ("doc_id", "revs", "seq")

    def __init__(self, doc_id: str) -> None:
        self.doc_id = doc_id
        self.revs: dict[str, RevNode] = {}
        self.seq = 0

    def leaves(self) -> list[RevNode]:
        """The leaf revisions, winner first."""
        if len(self.revs) == 1:  # the common case: one revision, its own leaf
            return list(self.revs.values())
        parents = {node.parent for node in self.revs.values()}
        found = [node for rev, node in self.revs.items() if rev not in parents]
        return sorted(found, key=RevNode.sort_key, reverse=True)

    def winner(self) -> RevNode:
        """The winning leaf (every record has at least one)."""
        return self.leaves()[0]

    def ancestry(self, rev: str) -> Iterator[RevNode]:
        """The node for ``rev`` and its known ancestors, newest first."""
        node = self.revs.get(rev)
        while node is not None:
            yield node
            node = self.revs.get(node.parent) if node.parent else None

    def revisions(self, rev: str) -> dict[str, Any]:
        """The ``_revisions`` member: start and hashes, newest first (stops at a gap)."""
        nodes = list(self.ancestry(rev))
        ids: list[str] = []
        expected = nodes[0].pos
        for node in nodes:
            if node.pos != expected:
                break
            ids.append(node.hash)
            expected -= 1
        return {"start": nodes[0].pos, "ids": ids}

    def revs_info(self, rev: str) -> list[dict[str, str]]:
        """The ``_revs_info`` member."""
        out = []
        for node in self.ancestry(rev):
            if node.body is None:
                status = "missing"
            elif node.deleted:
                status = "deleted"
            else:
                status = "available"
            out.append({"rev": node.rev, "status": status})
        return out
