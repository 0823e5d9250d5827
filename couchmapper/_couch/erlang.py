"""Erlang, as CouchDB shows through: number text, term rendering, the external term format.

CouchDB is written in Erlang, and some of its answers are Erlang artefacts: a float read from
JSON is a double whose subnormals are flushed to zero, error reasons print terms with ``~w``/``~p``,
and revision and index names are hashes of ``term_to_binary``. Pure functions, no I/O.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

__all__ = [
    "ErlAtom",
    "ErlTuple",
    "erlang_float",
    "erlang_term",
    "format_float",
    "term_to_binary",
]


def erlang_float(value: float) -> float:
    """CouchDB reads a subnormal float (``5e-324``) as ``0.0``; ``-0.0`` stays as it is.

    Checked against the recorded rev of 02/doc-float-values, which hashes the stored body.
    """
    if value != 0.0 and -sys.float_info.min < value < sys.float_info.min:
        return 0.0
    return value


def format_float(value: float) -> str:
    """Format a float like Erlang's ``~w`` (shortest round-trip digits, io_lib_format rules)."""
    if value == 0:
        return "-0.0" if str(value).startswith("-") else "0.0"
    sign = "-" if value < 0 else ""
    digits_tuple = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(map(str, digits_tuple.digits))
    place = int(digits_tuple.exponent)
    length = len(digits)
    exponent = place + length - 1
    exp_text = str(exponent)
    exp_cost = len(exp_text) + 2

    def scientific() -> str:
        rest = digits[1:] or "0"
        return f"{digits[0]}.{rest}e{exp_text}"

    if place < 0:
        if exponent >= 0:
            text = f"{digits[: length + place]}.{digits[length + place :]}"
        elif 2 - place - length <= exp_cost:
            text = "0." + "0" * (-place - length) + digits
        else:
            text = scientific()
    else:
        dot = 1 if length == 1 else 0
        if exp_cost + dot >= place + 2 and abs(value) < float(1 << 53):
            text = digits + "0" * place + ".0"
        else:
            text = scientific()
    return sign + text


def erlang_term(value: Any, *, pretty: bool = False) -> str:
    """Render a JSON value as the Erlang term CouchDB prints in error reasons.

    ``pretty=False`` is ``~w`` (strings as byte lists, ``<<65,66>>``); ``pretty=True`` is a
    single-line ``~p`` (printable strings as ``<<"AB">>``).
    """
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
        printable = all(32 <= b <= 126 or 160 <= b <= 255 for b in data)
        if pretty and data and printable:
            text = data.decode("latin-1").replace("\\", "\\\\").replace('"', '\\"')
            return f'<<"{text}">>'
        return "<<" + ",".join(str(b) for b in data) + ">>"
    if isinstance(value, list | tuple):
        return "[" + ",".join(erlang_term(item, pretty=pretty) for item in value) + "]"
    if isinstance(value, Mapping):
        pairs = (
            "{" + erlang_term(k, pretty=pretty) + "," + erlang_term(v, pretty=pretty) + "}"
            for k, v in value.items()
        )
        return "{[" + ",".join(pairs) + "]}"
    return repr(value)


class _Tuple(tuple[Any, ...]):
    """An Erlang tuple in :func:`_etf` (plain Python tuples are not used for JSON values)."""


class ErlAtom(str):
    """An Erlang atom in :func:`term_to_binary` (a plain ``str`` is a binary)."""


ErlTuple = _Tuple


def term_to_binary(value: Any) -> bytes:
    """Erlang's ``term_to_binary`` of EJSON with :class:`ErlAtom`/:class:`ErlTuple` parts."""
    return b"\x83" + _etf(value)


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
