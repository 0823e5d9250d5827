"""Checks at the edge of both backends: arguments and JSON values, before anything is sent.

The memory engine and the couchdb backend run the same checks, so bad input gets the same
error from both.
"""

from __future__ import annotations

import math
from typing import Any

from couchmapper.exceptions import BackendError, EncodingError

__all__ = [
    "check_attachment",
    "check_doc_id",
    "check_docs",
    "check_document",
    "check_json",
    "has_utf8",
]

# CouchDB's answer to a body holding a number JSON cannot spell (1e400, NaN, Infinity):
# 02/doc-float-overflow.
_BAD_JSON_REASON = "invalid UTF-8 JSON"


def check_json(value: Any, what: str = "document") -> None:
    """Refuse, before anything is stored or sent, a value that is not JSON.

    NaN and infinities get CouchDB's own answer to the text Python would send for them
    (400 ``bad_request`` "invalid UTF-8 JSON", 02/doc-float-overflow). So does a string (or
    key) holding a lone surrogate, which has no UTF-8 form (CouchDB 3.5 answers a body with
    ``"\\ud800"`` that way): an :class:`EncodingError` naming the document and field. Other
    non-JSON values
    (object keys that are not strings, sets, bytes, arbitrary objects) are a programming error:
    :class:`TypeError` naming the value. Both backends call this at their edge.
    """
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            # ASCII first: the common case costs no encoding.
            if not item.isascii() and not has_utf8(item):
                raise _unencodable(value)
            continue
        if item is None or isinstance(item, bool | int):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                raise BackendError(400, "bad_request", _BAD_JSON_REASON)
            continue
        if isinstance(item, dict):
            for key, member in item.items():
                if not isinstance(key, str):
                    msg = f"{what} is not JSON: object key {key!r} is not a string"
                    raise TypeError(msg)
                if not key.isascii() and not has_utf8(key):
                    raise _unencodable(value)
                stack.append(member)
            continue
        if isinstance(item, list | tuple):
            stack.extend(item)
            continue
        msg = f"{what} is not JSON: {type(item).__name__} value {item!r:.60}"
        raise TypeError(msg)


def has_utf8(text: str) -> bool:
    """``text`` has a UTF-8 form (no lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unencodable(value: Any) -> EncodingError:
    """The error for the first lone surrogate in ``value``, naming the document and field.

    Found again with paths only now: the check itself keeps no paths, as it runs on every
    write.
    """
    doc_id = value.get("_id") if isinstance(value, dict) else None
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str) and not has_utf8(item):
            return EncodingError(_text_id(doc_id), path, _surrogate_problem(item, "value"))
        if isinstance(item, dict):
            for key, member in reversed(list(item.items())):
                inner = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and not has_utf8(key):
                    # Escaped: the message itself must be printable.
                    shown = inner.encode("utf-8", "backslashreplace").decode("utf-8")
                    return EncodingError(_text_id(doc_id), shown, _surrogate_problem(key, "key"))
                stack.append((inner, member))
        elif isinstance(item, list | tuple):
            stack.extend((f"{path}[{i}]", member) for i, member in reversed(list(enumerate(item))))
    return EncodingError(_text_id(doc_id), "", "a string with a lone surrogate")


def _text_id(doc_id: Any) -> str | None:
    return doc_id if isinstance(doc_id, str) and has_utf8(doc_id) else None


def _surrogate_problem(text: str, what: str) -> str:
    bad = next(char for char in text if 0xD800 <= ord(char) <= 0xDFFF)
    return (
        f"the {what} {text!r:.60} holds a lone surrogate ({bad!r}), which has no UTF-8 form "
        "(decode external text with errors='replace', or fix it where it comes from)"
    )


def check_document(doc: Any, what: str = "document") -> None:
    """A written document must be a dict of JSON values (TypeError otherwise)."""
    if not isinstance(doc, dict):
        msg = f"a {what} must be a dict, not {type(doc).__name__}"
        raise TypeError(msg)
    check_json(doc, what)


def check_docs(docs: Any) -> list[Any]:
    """``bulk_docs`` takes an iterable (not a str or a dict) of dicts; return them as a list."""
    msg = f"bulk_docs() takes a list of documents (dicts), not {type(docs).__name__}"
    if isinstance(docs, str | bytes | dict):
        raise TypeError(msg)
    try:
        listed = list(docs)
    except TypeError:
        raise TypeError(msg) from None
    for doc in listed:
        check_document(doc)
    return listed


def check_attachment(doc_id: Any, name: Any, data: Any, content_type: Any) -> None:
    """``put_attachment`` takes str ids, name and content type, and bytes data."""
    check_doc_id(doc_id)
    if not isinstance(name, str):
        msg = f"an attachment name must be a str, not {type(name).__name__}"
        raise TypeError(msg)
    if not isinstance(data, bytes | bytearray | memoryview):
        msg = f"attachment data must be bytes, not {type(data).__name__} (encode text first)"
        raise TypeError(msg)
    if not isinstance(content_type, str):
        msg = f"a content type must be a str, not {type(content_type).__name__}"
        raise TypeError(msg)


def check_doc_id(doc_id: Any) -> None:
    """A document id given to a backend method must be a str (TypeError otherwise)."""
    if not isinstance(doc_id, str):
        msg = f"a document id must be a str, not {type(doc_id).__name__} ({doc_id!r:.60})"
        raise TypeError(msg)
