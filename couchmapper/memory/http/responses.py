"""The answers of the HTTP facade: ``Response``, JSON answers, CouchDB's headers."""

from __future__ import annotations

import hashlib
import json
from typing import Any, NamedTuple

__all__ = [
    "Response",
    "error_response",
    "is_json_type",
    "json_response",
    "location",
    "not_allowed",
    "not_implemented",
    "opaque_etag",
    "url_encode",
]


class Response(NamedTuple):
    """An answer: status, headers (lower-case names) and a JSON value or raw bytes."""

    status: int
    headers: dict[str, str]
    body: Any


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer."""
    return Response(status, {"content-type": "application/json", **(headers or {})}, body)


def url_encode(text: str) -> str:
    """A path segment as CouchDB spells it in ``Location`` (``couch_util:url_encode``).

    Letters, digits and ``_ . - :`` stay; every other UTF-8 byte is ``%XX`` (so ``c:x&y``
    gives ``c:x%26y``, ``_design/foo`` gives ``_design%2Ffoo``; 02/doc-id-reserved-chars).
    """
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if char.isascii() and (char.isalnum() or char in "_.-:"):
            out.append(char)
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def location(*segments: str) -> str:
    """An absolute ``Location`` on the recorded server's origin."""
    return "http://127.0.0.1:5984/" + "/".join(url_encode(s) for s in segments)


def opaque_etag(body: Any) -> str:
    """CouchDB's ETag for ``_local`` docs, ``_changes``, ``_all_dbs`` and ``_uuids``.

    An opaque token (25 characters of base 36 over an md5 of the answer), not a rev.
    """
    number = int.from_bytes(hashlib.md5(json.dumps(body).encode(), usedforsecurity=False).digest())
    digits = ""
    while len(digits) < 25:
        number, rest = divmod(number, 36)
        digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[rest] + digits
    return f'"{digits}"'


def not_allowed(allowed: str) -> Response:
    """CouchDB's 405 with its ``Allow`` header."""
    return error_response(405, "method_not_allowed", f"Only {allowed} allowed", {"allow": allowed})


def not_implemented(reason: str) -> Response:
    """A 501 ``not_implemented`` for what the engine does not do."""
    return error_response(501, "not_implemented", reason)


def error_response(
    status: int, error: str, reason: str, headers: dict[str, str] | None = None
) -> Response:
    """CouchDB's JSON error body ``{"error", "reason"}``."""
    return json_response(status, {"error": error, "reason": reason}, headers)


def is_json_type(headers: dict[str, str]) -> bool:
    """Whether the request's Content-Type is JSON (the default when none is given)."""
    content_type = headers.get("content-type", "application/json")
    return content_type.split(";")[0].strip().lower() == "application/json"
