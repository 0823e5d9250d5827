"""Request decoding for the memory engine's HTTP facade: JSON bodies and query parameters.

Errors are CouchDB's: a body that is not strict UTF-8 JSON is 400 "invalid UTF-8 JSON", a bad
boolean is 400 ``query_parse_error`` 'Invalid boolean parameter: "maybe"', and so on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from couchmapper._couch.erlang import erlang_float
from couchmapper.exceptions import BackendError
from couchmapper.memory.engine.errors import query_parse_error

__all__ = ["QueryParams", "parse_json_body", "parse_json_text"]

_INVALID_JSON = "invalid UTF-8 JSON"


def _bad_json() -> BackendError:
    return BackendError(400, "bad_request", _INVALID_JSON)


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(text)
    return erlang_float(value)


def _reject_constant(text: str) -> Any:
    raise ValueError(text)


def parse_json_text(text: str) -> Any:
    """Strict JSON: no NaN/Infinity, no overflowing floats, no lone surrogates."""
    try:
        value = json.loads(text, parse_float=_parse_float, parse_constant=_reject_constant)
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeEncodeError, RecursionError) as exc:
        raise _bad_json() from exc
    return value


def parse_json_body(body: bytes | None) -> Any:
    """Decode a request body as strict UTF-8 JSON (a BOM is refused, like CouchDB)."""
    if not body or body.startswith(b"\xef\xbb\xbf"):
        raise _bad_json()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _bad_json() from exc
    return parse_json_text(text)


def _erlang_text(value: str) -> str:
    """How CouchDB prints a bad parameter: quoted, but ``[]`` for the empty string."""
    return "[]" if value == "" else json.dumps(value)


class QueryParams:
    """Decoded query parameters; a repeated parameter keeps its last value, as in CouchDB."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self.raw: dict[str, str] = {}
        for key, value in pairs:
            self.raw[key] = value

    def __contains__(self, key: object) -> bool:
        return key in self.raw

    def get(self, key: str, default: str | None = None) -> str | None:
        """The raw string value."""
        return self.raw.get(key, default)

    def flag(self, key: str, *, strict: bool = True) -> bool | None:
        """A boolean; strict endpoints answer 400 for anything but true/false."""
        value = self.raw.get(key)
        if value is None:
            return None
        if value == "true":
            return True
        if value == "false":
            return False
        if strict:
            raise query_parse_error(f"Invalid boolean parameter: {_erlang_text(value)}")
        return None

    def integer(self, key: str, *, positive: bool = True) -> int | None:
        """A non-negative integer parameter (limit, skip, group_level)."""
        value = self.raw.get(key)
        if value is None:
            return None
        try:
            number = int(value)
        except ValueError:
            raise query_parse_error(f"Invalid value for integer: {_erlang_text(value)}") from None
        if positive and number < 0:
            raise query_parse_error(f"Invalid value for positive integer: {json.dumps(value)}")
        return number

    def json(self, key: str) -> Any:
        """A JSON-encoded parameter (key, startkey, keys, open_revs)."""
        value = self.raw.get(key)
        if value is None:
            return None
        return parse_json_text(value)

    def view_options(self, *, keys_allowed: bool = True) -> dict[str, Any]:
        """The options shared by ``_all_docs`` and views, decoded and validated."""
        out: dict[str, Any] = {}
        for name in ("key", "startkey", "start_key", "endkey", "end_key", "keys"):
            if name in self.raw:
                out[name] = self.json(name)
        for name in ("startkey_docid", "start_key_doc_id", "endkey_docid", "end_key_doc_id"):
            if name in self.raw:
                out[
                    name.replace("start_key_doc_id", "startkey_docid").replace(
                        "end_key_doc_id", "endkey_docid"
                    )
                ] = self.raw[name]
        for name in (
            "descending",
            "include_docs",
            "inclusive_end",
            "conflicts",
            "update_seq",
            "attachments",
            "att_encoding_info",
            "reduce",
            "group",
            "sorted",
            "stable",
        ):
            value = self.flag(name)
            if value is not None:
                out[name] = value
        for name in ("limit", "skip", "group_level"):
            value_int = self.integer(name)
            if value_int is not None:
                out[name] = value_int
        for name in ("stale", "update", "partition"):
            if name in self.raw:
                out[name] = self.raw[name]
        return out


def body_view_options(body: dict[str, Any]) -> dict[str, Any]:
    """View options given in a POST body (``keys``, ``limit``, ``include_docs``...)."""
    out: dict[str, Any] = {}
    for name, value in body.items():
        counted = name in ("limit", "skip", "group_level")
        if counted and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise query_parse_error(f"Invalid value for positive integer: {json.dumps(value)}")
        out[name] = value
    return out
