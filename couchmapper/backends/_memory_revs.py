"""Revision trees, revision hashes, attachments and sequences of the memory engine.

Pure data structures with no locking: :mod:`couchmapper.backends._memory_store` owns the lock.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
import zlib
from collections.abc import Iterator
from typing import Any

from couchmapper.exceptions import BackendError

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


def bad_request(reason: str, error: str = "bad_request") -> BackendError:
    """A 400 error with CouchDB's names."""
    return BackendError(400, error, reason)


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
) -> str:
    """CouchDB's rev hash: md5 of ``term_to_binary([Deleted, OldPos, OldRev, Body, Atts])``.

    The same body, deleted flag, parent rev and attachments give the same rev as CouchDB 3.5
    (``{"v": 1}`` gets ``1-7a7e4b29f3af401e69b6f86e4c26b727`` whatever the id). ``Atts`` is a
    list of ``{Name, Type, Md5}`` in reverse attachment order (couch_db:new_revid folds them).

    A ``revive`` (a doc re-created on its tombstone) is hashed by couch_db_updater after the
    attachments were turned into their disk form, whose fields read back as ``undefined``: each
    attachment is then ``{undefined, undefined, undefined}``.
    """
    parent_pos, parent_hash = parse_rev(parent) if parent else (0, "")
    old_rev: Any = _revid_term(parent_hash) if parent else 0
    att_terms = [
        _Tuple((name, a.content_type, base64.b64decode(a.digest.removeprefix("md5-"))))
        for name, a in reversed(atts.items())
    ]
    if revive:
        att_terms = [_Tuple((_UNDEFINED, _UNDEFINED, _UNDEFINED))] * len(atts)
    term = [deleted, parent_pos, old_rev, body, att_terms]
    return hashlib.md5(b"\x83" + _etf(term)).hexdigest()


class _Tuple(tuple[Any, ...]):
    """An Erlang tuple in :func:`_etf` (plain Python tuples are not used for JSON values)."""


class ErlAtom(str):
    """An Erlang atom in :func:`term_to_binary` (a plain ``str`` is a binary)."""


ErlTuple = _Tuple
_UNDEFINED = ErlAtom("undefined")


def term_to_binary(value: Any) -> bytes:
    """Erlang's ``term_to_binary`` of EJSON with :class:`ErlAtom`/:class:`ErlTuple` parts."""
    return b"\x83" + _etf(value)


def _revid_term(rev_hash_text: str) -> bytes:
    """CouchDB keeps a 32-hex rev id as its 16 raw bytes, any other rev id as its text."""
    if len(rev_hash_text) == 32:
        try:
            return bytes.fromhex(rev_hash_text)
        except ValueError:
            pass
    return rev_hash_text.encode("utf-8", "surrogatepass")


def _atom(name: str) -> bytes:
    raw = name.encode()
    return bytes((100, 0, len(raw))) + raw  # ATOM_EXT, as term_to_binary writes it in OTP 25


_TRUE, _FALSE, _NULL = _atom("true"), _atom("false"), _atom("null")
_MAX_FAST_DEPTH = 200


class _TooDeep(Exception):
    """The recursive encoder gives up; the iterative one takes over."""


def _etf_fast(value: Any, out: list[bytes], depth: int) -> None:
    """The recursive (fast) encoder for the usual, shallow documents."""
    kind = type(value)
    if kind is str:
        raw = value.encode("utf-8", "surrogatepass")
        out.append(b"m" + len(raw).to_bytes(4, "big") + raw)
    elif kind is dict:
        if depth > _MAX_FAST_DEPTH:
            raise _TooDeep
        if not value:
            out.append(b"h\x01j")
            return
        out.append(b"h\x01l" + len(value).to_bytes(4, "big"))
        for key, item in value.items():
            raw = key.encode("utf-8", "surrogatepass")
            out.append(b"h\x02m" + len(raw).to_bytes(4, "big") + raw)
            _etf_fast(item, out, depth + 1)
        out.append(b"j")
    elif kind is list:
        if depth > _MAX_FAST_DEPTH:
            raise _TooDeep
        if not value or all(type(v) is int and 0 <= v < 256 for v in value):
            out.append(_etf_one(value)[0])
            return
        out.append(b"l" + len(value).to_bytes(4, "big"))
        for item in value:
            _etf_fast(item, out, depth + 1)
        out.append(b"j")
    elif value is True:
        out.append(_TRUE)
    elif value is False:
        out.append(_FALSE)
    elif value is None:
        out.append(_NULL)
    elif kind is int and 0 <= value < 256:
        out.append(bytes((97, value)))
    else:
        head, children = _etf_one(value)
        out.append(head)
        for child in children:
            if isinstance(child, _Raw):
                out.append(child)
            else:
                _etf_fast(child, out, depth + 1)


def _etf(value: Any) -> bytes:
    """Erlang's external term format (``term_to_binary(V, [{minor_version, 1}])``) of EJSON.

    Recursive for ordinary documents; iterative (an explicit stack) past a nesting depth of
    200, so deeply nested documents do not hit Python's recursion limit.
    """
    parts: list[bytes] = []
    try:
        _etf_fast(value, parts, 0)
    except _TooDeep:
        return _etf_slow(value)
    return b"".join(parts)


def _etf_slow(value: Any) -> bytes:
    """The iterative encoder."""
    out = bytearray()
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Raw):
            out += item
            continue
        head, children = _etf_one(item)
        out += head
        stack.extend(reversed(children))
    return bytes(out)


class _Raw(bytes):
    """Already encoded bytes on the :func:`_etf` stack."""


def _etf_one(value: Any) -> tuple[bytes, list[Any]]:
    """The encoding of ``value`` up to its children, and the children (with raw tails)."""
    if value is True or value is False or value is None:
        return _atom("null" if value is None else "true" if value else "false"), []
    if isinstance(value, ErlAtom):
        return _atom(str(value)), []
    if isinstance(value, int):
        if 0 <= value < 256:
            return bytes((97, value)), []
        if -(2**31) <= value < 2**31:
            return b"b" + value.to_bytes(4, "big", signed=True), []
        magnitude = abs(value)
        digits = magnitude.to_bytes((magnitude.bit_length() + 7) // 8, "little")
        size = len(digits)
        head = bytes((110, size)) if size < 256 else b"o" + size.to_bytes(4, "big")
        return head + bytes((value < 0,)) + digits, []
    if isinstance(value, float):
        return b"F" + struct.pack(">d", value), []
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogatepass")
    if isinstance(value, bytes):
        return b"m" + len(value).to_bytes(4, "big") + value, []
    if isinstance(value, _Tuple):
        return bytes((104, len(value))), list(value)
    if isinstance(value, dict):
        pairs = [_Tuple((k, v)) for k, v in value.items()]
        return bytes((104, 1)), [pairs]
    if isinstance(value, list | tuple):
        if not value:
            return b"j", []
        if len(value) < 65536 and all(type(v) is int and 0 <= v < 256 for v in value):
            return b"k" + len(value).to_bytes(2, "big") + bytes(value), []  # STRING_EXT
        return b"l" + len(value).to_bytes(4, "big"), [*value, _Raw(b"j")]
    msg = f"not a JSON value: {value!r}"
    raise TypeError(msg)


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
