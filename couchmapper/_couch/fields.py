"""Mango field paths: parse ``"a.b"``/``"a\\.b"``/``"results.0"`` and look values up.

A lookup has three outcomes, as in CouchDB's ``mango_doc:get_field``: the value,
:data:`MISSING` (no such field) or :data:`BAD_PATH` (the path runs through a scalar or past
the end of an array, where even ``$exists: false`` does not match).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from couchmapper.exceptions import QueryError

__all__ = ["BAD_PATH", "MISSING", "get_field", "lookup", "parse_field"]


class _Sentinel:
    """A named marker object (``MISSING`` and ``BAD_PATH``)."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name

    def __bool__(self) -> bool:
        return False


MISSING: Final[Any] = _Sentinel("MISSING")
"""What :func:`get_field` returns when a field does not exist."""

# A path that runs through a scalar or past the end of an array: unlike a missing field,
# `$exists: false` does not match it (mango_doc:get_field returns bad_path).
BAD_PATH: Final[Any] = _Sentinel("BAD_PATH")

_ARRAY_INDEX = re.compile(r"[+-]?[0-9]+")


def parse_field(name: str) -> tuple[str, ...]:
    """Split a Mango field name into its path on the dots that are not escaped.

    A backslash escapes a dot (``"a\\.b.c"`` is ``("a.b", "c")``); every backslash is then
    dropped, as CouchDB does.

    Args:
        name: the field name as written in a selector, index or sort.

    Returns:
        The path segments.

    Raises:
        QueryError: a segment is empty (``"a..b"``, ``".a"``, ``"a."``, ``""``): CouchDB's 400
            ``invalid_field_name`` "Invalid field name: <name>" (asked of CouchDB 3.5.0).
    """
    if "\\" not in name:
        parts: list[str] = name.split(".")
    else:
        parts = [part.replace("\\", "") if part else "" for part in re.split(r"(?<!\\)\.", name)]
    if "" in parts:
        raise QueryError("invalid_field_name", f"Invalid field name: {name}", status=400)
    return tuple(parts)


def lookup(value: Any, path: tuple[str, ...]) -> Any:
    """Walk ``path`` like mango_doc:get_field: MISSING, BAD_PATH or the value."""
    for name in path:
        if isinstance(value, Mapping):
            if name not in value:
                return MISSING
            value = value[name]
        elif isinstance(value, list | tuple) and _ARRAY_INDEX.fullmatch(name):
            position = int(name)
            if not 0 <= position < len(value):
                return BAD_PATH
            value = value[position]
        else:
            return BAD_PATH
    return value


def get_field(doc: Any, path: tuple[str, ...]) -> Any:
    """Return the value at ``path`` inside ``doc``, or ``MISSING``.

    Objects are walked by key; a segment that is an integer (``"0"``, ``"+1"``) indexes into an
    array, as CouchDB does (``"results.0.subject"``). A path that runs through a scalar or past
    the end of an array also gives ``MISSING``.

    Args:
        doc: a JSON document or value.
        path: segments from :func:`parse_field`.

    Returns:
        The value, or ``MISSING``.
    """
    value = lookup(doc, path)
    return MISSING if value is BAD_PATH else value
