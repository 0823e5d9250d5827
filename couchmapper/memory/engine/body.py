"""One walk over a written body: its JSON check, the stored copy and its term encoding.

The revision hash is the md5 of ``term_to_binary`` of the stored body (see
:func:`~couchmapper.memory.engine.revs.rev_hash`). :func:`checked_body` walks a written
document once and gives the stored copy of its members together with that encoding, so the
write path neither copies a body through JSON nor walks it again for its hash.
:func:`encode_body` encodes an already stored body.
"""

from __future__ import annotations

import math
import struct
import sys
from typing import Any, Final

from couchmapper._couch.erlang import term_to_binary

__all__ = ["SIZE_PER_TERM_BYTE", "Walked", "checked_body", "encode_body"]

_LEN = struct.Struct(">I").pack
_INT = struct.Struct(">i").pack
_FLOAT = struct.Struct(">d").pack
_SMALL = [bytes((97, n)) for n in range(256)]  # SMALL_INTEGER_EXT
_KEY_HEADS: dict[str, bytes] = {}  # {Key, ...} tuple head and key binary, by key
_MAX_KEY_HEADS = 4096
_MAX_DEPTH = 100


def _etf(value: Any) -> bytes:
    """Erlang's external term format of one value (without the version byte)."""
    return term_to_binary(value)[1:]


_ATOMS = {True: _etf(True), False: _etf(False), None: _etf(None)}
_EMPTY_OBJECT = _etf({})
_BINARY = struct.Struct(">BI").pack  # BINARY_EXT head: 109, then the length


def encode_body(value: Any, out: list[bytes], depth: int) -> None:
    """Append the external term format of a stored JSON value, as :func:`term_to_binary`.

    Specialised for what bodies hold (exact JSON types, shallow); anything else, and the
    lists the general encoder writes as STRING_EXT, go to :func:`term_to_binary`.
    """
    kind = type(value)
    if kind is str:
        raw = value.encode("utf-8", "surrogatepass")
        out.append(b"m" + _LEN(len(raw)) + raw)
    elif kind is dict and value and depth < _MAX_DEPTH:
        out.append(b"h\x01l" + _LEN(len(value)))
        for key, item in value.items():
            head = _KEY_HEADS.get(key) if type(key) is str else None
            if head is None:
                raw = key.encode("utf-8", "surrogatepass")
                head = b"h\x02m" + _LEN(len(raw)) + raw
                if type(key) is str and len(_KEY_HEADS) < _MAX_KEY_HEADS:
                    _KEY_HEADS[key] = head
            out.append(head)
            member = type(item)  # the common scalar members in line
            if member is str:
                raw = item.encode("utf-8", "surrogatepass")
                out.append(b"m" + _LEN(len(raw)) + raw)
            elif member is int and 0 <= item < 256:
                out.append(_SMALL[item])
            elif member is float:
                out.append(b"F" + _FLOAT(item))
            elif member is bool or item is None:
                out.append(_ATOMS[item])
            else:
                encode_body(item, out, depth + 1)
        out.append(b"j")
    elif kind is bytes:
        out.append(b"m" + _LEN(len(value)) + value)
    elif kind is list and value and depth < _MAX_DEPTH and type(value[0]) is not int:
        out.append(b"l" + _LEN(len(value)))
        for item in value:
            encode_body(item, out, depth + 1)
        out.append(b"j")
    elif kind is int:
        if 0 <= value < 256:
            out.append(_SMALL[value])
        elif -(2**31) <= value < 2**31:
            out.append(b"b" + _INT(value))
        else:
            out.append(_etf(value))
    elif kind is float:
        out.append(b"F" + _FLOAT(value))
    elif value is None or kind is bool:
        out.append(_ATOMS[value])
    else:
        out.append(_etf(value))


SIZE_PER_TERM_BYTE: Final = 8
"""An upper bound of a body's compact JSON bytes per byte of its term encoding.

Every JSON value takes at most 6 bytes of JSON per byte of its term (a string's control
character is 1 byte against ``\\u0000``; a key's binary, tuple and list heads cover its quotes,
colon and comma; a float is 9 bytes against at most 24 characters); 8 leaves a margin.
"""

_FLOAT_MIN = sys.float_info.min
_HEAD_CACHE: dict[str, bytes] = {}  # member heads of keys known to encode as strict UTF-8


class _Careful(Exception):
    """A value the walk leaves to the general path (a subclass, a non-finite float, ...)."""


Walked = tuple[dict[str, Any], bytes, list[tuple[str, Any]]]
"""What :func:`checked_body` gives: the stored body, its term, the special members."""


def checked_body(doc: dict[str, Any]) -> Walked | None:
    """Copy the members of ``doc`` as stored, with the term encoding of that copy.

    Only exact JSON types (``dict``, ``list``, ``str``, ``int``, ``float``, ``bool``,
    ``None``) with string keys that have a UTF-8 form, finite floats and shallow nesting
    are walked here; a subnormal float is stored as ``0.0``, as CouchDB reads it. The
    special members (``_id``, ``_rev``, ...) are checked the same way but not copied.

    Returns:
        The stored body, ``term_to_binary`` of it without the version byte, and the special
        members (key and value, in order); None when anything is left to the general path.
    """
    try:
        return _walk_top(doc)
    except (_Careful, UnicodeEncodeError, RecursionError):
        return None


def _walk_top(doc: dict[str, Any]) -> Walked:
    body: dict[str, Any] = {}
    parts = [b""]
    specials: list[tuple[str, Any]] = []
    heads = _HEAD_CACHE
    for key, value in doc.items():
        head = heads.get(key) if type(key) is str else None
        if head is None:
            if type(key) is not str:
                raise _Careful
            if key[:1] == "_":
                specials.append((key, value))
                _walk(value, [], 0)  # checked only: special members are not stored as given
                continue
            raw = key.encode()
            head = b"h\x02m" + _LEN(len(raw)) + raw
            if len(heads) < _MAX_KEY_HEADS:
                heads[key] = head
        kind = type(value)
        if kind is str:
            raw = value.encode()
            parts += (head, _BINARY(109, len(raw)), raw)
            body[key] = value
        elif kind is int and 0 <= value < 256:
            parts += (head, _SMALL[value])
            body[key] = value
        elif kind is bool or value is None:
            parts += (head, _ATOMS[value])
            body[key] = value
        else:
            parts.append(head)
            body[key] = _walk(value, parts, 1)
    if body:
        parts[0] = b"h\x01l" + _LEN(len(body))
        parts.append(b"j")
    else:
        parts[0] = _EMPTY_OBJECT
    return body, b"".join(parts), specials


def _walk(value: Any, out: list[bytes], depth: int) -> Any:
    """The stored copy of ``value``, its term encoding appended to ``out``."""
    kind = type(value)
    if kind is str:
        raw = value.encode()
        out += (_BINARY(109, len(raw)), raw)
        return value
    if kind is int:
        encode_body(value, out, depth)
        return value
    if kind is float:
        if not math.isfinite(value):
            raise _Careful
        if value != 0.0 and -_FLOAT_MIN < value < _FLOAT_MIN:
            value = 0.0  # erlang_float: CouchDB reads a subnormal as 0.0
        out.append(b"F" + _FLOAT(value))
        return value
    if kind is bool or value is None:
        out.append(_ATOMS[value])
        return value
    if depth > _MAX_DEPTH:
        raise _Careful
    if kind is list:
        return _walk_list(value, out, depth)
    if kind is dict:
        return _walk_dict(value, out, depth)
    raise _Careful


def _walk_list(value: list[Any], out: list[bytes], depth: int) -> list[Any]:
    if not value or type(value[0]) is int:
        # term_to_binary may write these as STRING_EXT: the general encoder decides.
        copy = [_walk(item, [], depth + 1) for item in value]
        out.append(_etf(copy))
        return copy
    out.append(b"l" + _LEN(len(value)))
    copy = []
    for item in value:
        if type(item) is str:
            raw = item.encode()
            out += (_BINARY(109, len(raw)), raw)
            copy.append(item)
        else:
            copy.append(_walk(item, out, depth + 1))
    out.append(b"j")
    return copy


def _walk_dict(value: dict[Any, Any], out: list[bytes], depth: int) -> dict[str, Any]:
    if not value:
        out.append(_EMPTY_OBJECT)
        return {}
    out.append(b"h\x01l" + _LEN(len(value)))
    copy = {}
    for key, item in value.items():
        if type(key) is not str:
            raise _Careful
        raw = key.encode()
        out.append(b"h\x02m" + _LEN(len(raw)) + raw)
        copy[key] = _walk(item, out, depth + 1)
    out.append(b"j")
    return copy
