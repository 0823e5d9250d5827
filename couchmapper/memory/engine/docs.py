"""Parsing of written documents for the memory engine: ids, special members, attachments.

Errors are CouchDB's whole-request 400s (``illegal_docid``, ``doc_validation``, ...).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import uuid
from typing import Any, Final

from couchmapper._couch.checks import check_json, has_utf8
from couchmapper._couch.erlang import erlang_float
from couchmapper._couch.json import json_copy
from couchmapper.exceptions import BackendError
from couchmapper.memory.engine.body import SIZE_PER_TERM_BYTE, checked_body
from couchmapper.memory.engine.errors import bad_request
from couchmapper.memory.engine.revs import parse_rev

__all__ = [
    "MAX_DOCUMENT_SIZE",
    "ParsedDoc",
    "Prepared",
    "copy_into",
    "parse_doc",
    "prepare_body",
    "stored_body",
    "validate_docid",
]

Prepared = tuple[dict[str, Any] | None, int, bytes | None, list[tuple[str, Any]] | None]
"""What :func:`prepare_body` gives: the stored copy of a body (or None), its JSON size (or an
upper bound of it below :data:`MAX_DOCUMENT_SIZE`), the term encoding of the copy (or None)
and the special members (or None: look through every member)."""

# Special members CouchDB accepts in a written body and then drops.
_IGNORED_SPECIALS = ("_conflicts", "_deleted_conflicts", "_revs_info", "_local_seq")


def validate_docid(doc_id: Any, partitioned: bool = False) -> str:
    """Check an id like CouchDB's ``couch_doc:validate_docid``; return it."""
    if not isinstance(doc_id, str):
        raise bad_request("Document id must be a string", "illegal_docid")
    if doc_id == "":
        raise bad_request("Document id must not be empty", "illegal_docid")
    if doc_id in ("_design/", "_local/"):
        raise bad_request(f"Illegal document id `{doc_id}`", "illegal_docid")
    if doc_id.startswith(("_design/", "_local/")):
        return doc_id
    if doc_id.startswith("_"):
        raise bad_request("Only reserved document ids may start with underscore.", "illegal_docid")
    if partitioned:
        partition, sep, rest = doc_id.partition(":")
        if not sep:
            raise bad_request("Doc id must be of form partition:id", "illegal_docid")
        if partition == "":
            raise bad_request("Partition must not be empty", "illegal_partition")
        if rest == "":
            raise bad_request("Document id must not be empty", "illegal_docid")
        if partition.startswith("_"):
            raise bad_request("Partition must not start with an underscore", "illegal_partition")
    return doc_id


class ParsedDoc:
    """A written document split into CouchDB's parts (id, rev, body, deleted, attachments)."""

    __slots__ = ("atts", "body", "deleted", "doc_id", "rev", "revisions", "term")

    def __init__(self) -> None:
        self.doc_id = ""
        self.rev: str | None = None
        self.revisions: list[str] | None = None
        self.body: dict[str, Any] = {}
        self.deleted = False
        self.atts: dict[str, Any] | None = None
        # term_to_binary of the body (without the version byte) when the parse made it.
        self.term: bytes | None = None


def _decode_attachments(raw: Any) -> dict[str, Any] | None:
    """Validate inline attachments: names, base64 data; stubs are resolved at write time."""
    if not isinstance(raw, dict):
        raise bad_request("Bad special document member: _attachments", "doc_validation")
    out: dict[str, Any] = {}
    for name, att in raw.items():
        if name.startswith("_"):
            raise bad_request(f"Attachment name '{name}' starts with prohibited character '_'")
        if not isinstance(att, dict):
            continue
        if att.get("stub") is True:
            out[name] = None
            continue
        data = att.get("data")
        if data is None and att.get("follows") is True:
            # "follows" outside a multipart/related request: CouchDB crashes on it.
            raise BackendError(500, "unknown_error", "function_clause")
        if not isinstance(data, str):
            raise bad_request(f"Invalid attachment data for {name}")
        try:
            raw_bytes = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise bad_request(f"Invalid attachment data for {name}") from exc
        content_type = att.get("content_type")
        if not isinstance(content_type, str):
            content_type = "application/octet-stream"
        out[name] = (raw_bytes, content_type)
    return out


def stored_body(doc: dict[str, Any]) -> tuple[dict[str, Any] | None, int]:
    """Check ``doc`` is JSON (as :func:`check_json`) and copy its body as CouchDB stores it.

    The members go through one compact ``json.dumps`` (their size, as CouchDB measures a
    body) and one ``json.loads`` (the copy). The encoder refuses a NaN, an infinity, a set
    or a value nested too deep; a lone surrogate has no UTF-8 form; a key that is not a
    string, a tuple or a float the round trip changes (a subnormal is stored as ``0.0``)
    makes the copy differ from the members. Each of these leaves the document to
    :func:`check_json`, which raises its own error, and to the member-by-member copy.

    Returns:
        The copied body (None where the member-by-member copy must run) and its size in
        bytes of compact JSON.
    """
    members: dict[str, Any] = {}
    try:
        for key, value in doc.items():
            if type(key) is not str:
                raise _Careful
            if key[:1] == "_":
                _stored(value, 0)  # checked only: special members are not stored as given
            else:
                members[key] = value
        text = json.dumps(members, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
        body = json.loads(text)
        if "e-3" in text or body != members:
            raise _Careful
    except (_Careful, ValueError, TypeError, RecursionError, UnicodeEncodeError):
        check_json(doc)
        return None, 0
    return body, size


def prepare_body(doc: dict[str, Any]) -> Prepared:
    """Check ``doc`` is JSON and copy its body as stored, walking it once where possible.

    :func:`~couchmapper.memory.engine.body.checked_body` gives the copy with its term
    encoding (for the rev hash); its size is bounded by that of the term, and a body whose
    bound is not below :data:`MAX_DOCUMENT_SIZE` is measured by :func:`stored_body`, as is
    anything the walk leaves (subclasses, NaN, lone surrogates, deep values).
    """
    walked = checked_body(doc)
    if walked is not None:
        body, term, specials = walked
        bound = len(term) * SIZE_PER_TERM_BYTE
        if bound <= MAX_DOCUMENT_SIZE:
            return body, bound, term, specials
    copied, size = stored_body(doc)
    return copied, size, None, None


_MAX_FAST_DEPTH = 100


class _Careful(Exception):
    """A value :func:`_stored` leaves to the careful path."""


def _stored(value: Any, depth: int) -> Any:
    kind = type(value)
    if kind is str:
        if value.isascii() or has_utf8(value):
            return value
        raise _Careful
    if kind is int or kind is bool or value is None:
        return value
    if kind is float:
        if math.isfinite(value):
            return erlang_float(value)
        raise _Careful
    if depth > _MAX_FAST_DEPTH:
        raise _Careful
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str or not (key.isascii() or has_utf8(key)):
                raise _Careful
            out[key] = _stored(item, depth + 1)
        return out
    if kind is list:
        return [_stored(item, depth + 1) for item in value]
    raise _Careful


def copy_into(out: dict[str, Any], body: dict[str, Any], depth: int = 0) -> dict[str, Any]:
    """Copy a stored body's members into ``out``: containers copied, scalars shared.

    As :func:`~couchmapper._couch.json.json_copy`, with the scalars of stored bodies handled
    in line (a read copies every document it returns); deep values go to ``json_copy``.
    """
    for key, value in body.items():
        kind = type(value)
        if kind is str or kind is int or kind is float or kind is bool or value is None:
            out[key] = value
        else:
            out[key] = _copy_container(value, depth)
    return out


def _copy_list(items: list[Any], depth: int) -> list[Any]:
    out = []
    for value in items:
        kind = type(value)
        if kind is str or kind is int or kind is float or kind is bool or value is None:
            out.append(value)
        else:
            out.append(_copy_container(value, depth))
    return out


def _copy_container(value: Any, depth: int) -> Any:
    kind = type(value)
    if depth >= _MAX_FAST_DEPTH:
        return json_copy(value)
    if kind is dict:
        return copy_into({}, value, depth + 1)
    if kind is list:
        return _copy_list(value, depth + 1)
    return json_copy(value)


def parse_doc(
    doc: Any,
    doc_id: Any = None,
    *,
    partitioned: bool = False,
    prepared: Prepared | None = None,
) -> ParsedDoc:
    """Split and validate one written document; errors are CouchDB's whole-request 400s.

    A body over :data:`MAX_DOCUMENT_SIZE` is 413 ``document_too_large``, as in CouchDB 3.5.
    ``prepared`` is :func:`prepare_body` of the same document, already run by the caller.
    """
    if not isinstance(doc, dict):
        raise bad_request("Document must be a JSON object")
    body, body_size, term, specials = prepared if prepared is not None else prepare_body(doc)
    parsed = ParsedDoc()
    parsed.term = term
    given_id = doc_id if doc_id is not None else doc.get("_id", _NO_ID)
    if given_id is _NO_ID:
        given_id = uuid.uuid4().hex
    parsed.doc_id = validate_docid(given_id, partitioned and not _is_special(given_id))
    size = 2  # the braces of the body
    if body is not None:
        parsed.body, size = body, body_size
    for key, value in doc.items() if specials is None else specials:
        if not key.startswith("_"):
            if body is None:
                parsed.body[key], member_size = _copy_member(value)
                size += _json_size(key) + 1 + member_size + (size > 2)
        elif key == "_rev":
            parse_rev(value)
            parsed.rev = value
        elif key == "_deleted":
            if not isinstance(value, bool):
                raise bad_request("Bad special document member: _deleted", "doc_validation")
            parsed.deleted = value
        elif key == "_attachments":
            parsed.atts = _decode_attachments(value)
        elif key == "_revisions":
            parsed.revisions = _parse_revisions(value)
        elif key not in _IGNORED_SPECIALS and key != "_id":
            raise bad_request(f"Bad special document member: {key}", "doc_validation")
    if size > MAX_DOCUMENT_SIZE:
        # couch_doc:from_json_obj_validate names the "_id" of the body ("" without one).
        named = doc.get("_id")
        raise BackendError(413, "document_too_large", named if isinstance(named, str) else "")
    return parsed


MAX_DOCUMENT_SIZE: Final = 8_000_000
"""CouchDB's default ``[couchdb] max_document_size``: bytes of a body's JSON (without ``_id``,
``_rev`` and the other special members), checked on every write."""


def _copy_member(value: Any) -> tuple[Any, int]:
    """A copy of a body member as stored (``json_copy(value, as_stored=True)``) and its size.

    The size is that of the member's compact JSON in UTF-8, as CouchDB measures a body.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return json.loads(text, parse_float=_read_float), _utf8_size(text)


def _read_float(text: str) -> float:
    return erlang_float(float(text))


def _json_size(key: str) -> int:
    return _utf8_size(json.dumps(key, ensure_ascii=False))


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


_NO_ID: Any = object()


def _is_special(doc_id: Any) -> bool:
    return isinstance(doc_id, str) and doc_id.startswith(("_design/", "_local/"))


def _parse_revisions(value: Any) -> list[str] | None:
    if not isinstance(value, dict):
        return None
    start, ids = value.get("start"), value.get("ids")
    if not isinstance(start, int) or not isinstance(ids, list):
        raise bad_request("Invalid rev format")
    return [f"{start - i}-{h}" for i, h in enumerate(ids)]
