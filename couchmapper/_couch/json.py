"""JSON values as CouchDB treats them: deep copies, equality, paths. Pure, no I/O.

Two copies and two equalities, because there are two questions:

* :func:`json_copy` copies a value; ``as_stored=True`` also reads its floats as CouchDB does
  (a JSON round trip through :func:`~couchmapper._couch.erlang.erlang_float`, so a
  subnormal becomes ``0.0``), which is what a written document looks like once stored.
* :func:`same_json` is strict JSON equality (``1``, ``1.0`` and ``True`` are three values);
  :func:`same_once_stored` is the looser question "do these read back the same from
  CouchDB", where ``1`` and ``1.0`` are one number.
"""

from __future__ import annotations

import json
from typing import Any

from couchmapper._couch.erlang import erlang_float

__all__ = ["MISSING_AT_PATH", "get_path", "json_copy", "same_json", "same_once_stored", "set_path"]


class _Missing:
    """The type of :data:`MISSING_AT_PATH`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING_AT_PATH"

    def __bool__(self) -> bool:
        return False


MISSING_AT_PATH: Any = _Missing()
"""What :func:`get_path` returns where a path leads nowhere (and :func:`set_path` deletes)."""


def json_copy(value: Any, *, as_stored: bool = False) -> Any:
    """A deep copy of a JSON value: dicts and lists copied (as plain ones), scalars shared.

    Args:
        value: a JSON value (dict and list subclasses, such as tracked containers, included).
        as_stored: read the floats back as CouchDB stores them (a subnormal becomes ``0.0``).
            This is a JSON round trip, so the value must be JSON-serialisable.

    Returns:
        The copy. Very deep values (past Python's recursion limit) are copied through JSON,
        which is shallow in Python stack frames.
    """
    if as_stored:
        return json.loads(json.dumps(value), parse_float=_read_float)
    try:
        return _copy(value)
    except RecursionError:
        return json.loads(json.dumps(value))


def _copy(value: Any) -> Any:
    # Exact types first: the engine copies every document it reads, and `type(v) is dict`
    # is much cheaper than isinstance; subclasses (tracked containers) come after.
    kind = type(value)
    if kind is dict:
        return {key: _copy(item) for key, item in value.items()}
    if kind is list:
        return [_copy(item) for item in value]
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def _read_float(text: str) -> float:
    return erlang_float(float(text))


def same_json(a: Any, b: Any) -> bool:
    """Strict JSON equality: the same types all the way down (``1``, ``1.0``, ``True`` differ)."""
    # 1 == 1.0 == True in Python; in JSON they are three different values.
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def same_once_stored(a: Any, b: Any) -> bool:
    """JSON equality as CouchDB reads values back: ``1`` and ``1.0`` are one number."""
    if type(a) is not type(b):
        # 1 and 1.0 are the same JSON number once stored
        return (
            isinstance(a, int | float)
            and isinstance(b, int | float)
            and a == b
            and not (isinstance(a, bool) or isinstance(b, bool))
        )
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_once_stored(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_once_stored(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def get_path(doc: Any, path: tuple[str | int, ...], missing: Any = MISSING_AT_PATH) -> Any:
    """The value at ``path`` (object keys and list indexes), or ``missing`` where there is none.

    ``missing`` lets a caller use its own marker (such as ``couchmapper.MISSING``).
    """
    for key in path:
        try:
            doc = doc[key]
        except (KeyError, IndexError, TypeError):
            return missing
    return doc


def set_path(
    doc: Any, path: tuple[str | int, ...], value: Any, missing: Any = MISSING_AT_PATH
) -> None:
    """Set the value at ``path`` (its parents must exist); the ``missing`` marker deletes it."""
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if value is missing:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
