"""What one flush sends, document by document: each body checked and encoded, then the requests.

Sans-IO helpers of :class:`~couchmapper.orm.flush.FlushRun`: a document that cannot be sent
(read-only, not JSON, invalid) becomes a :class:`~couchmapper.exceptions.FlushFailure` naming
its id and paths, so it fails alone while the others are written; :func:`chunks` splits the
bodies into requests by count and encoded size.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from couchmapper._couch.checks import check_json
from couchmapper._types import JSONDict, Obj
from couchmapper.exceptions import (
    BackendError,
    EncodingError,
    FieldError,
    FlushFailure,
    ValidationError,
)
from couchmapper.model.base import RawDocument, dump, state_of
from couchmapper.model.codecs import Invalid, check_json_value
from couchmapper.model.validation import document_errors

__all__ = ["chunks", "encodable", "read_only_failure"]


def read_only_failure(doc_id: str, obj: Obj) -> FlushFailure | None:
    """The failure of a document loaded read-only (newer than its class), else None."""
    state = state_of(obj)
    if state is None or state.read_only is None:
        return None
    return FlushFailure(doc_id, "forbidden", state.read_only)


def encodable(doc_id: str, obj: Obj) -> JSONDict | FlushFailure:
    """The JSON of ``obj``, or the failure naming why it cannot be sent (id and paths)."""
    try:
        body = dump(obj)
        try:
            check_json(body)  # the backends' own check, one document at a time
        except (BackendError, TypeError) as exc:
            raise _json_error(doc_id, obj, body, exc) from None
        invalid = document_errors(obj)  # the class's validators, before anything is sent
        if invalid:
            raise ValidationError(doc_id, invalid, type(obj).__name__)
    except ValidationError as exc:
        details = "; ".join(f"{e.path}: expected {e.expected}: {e.message}" for e in exc.errors)
        return FlushFailure(doc_id, "bad_request", f"not sent: {details}", exc)
    return body


def _json_error(doc_id: str, obj: Obj, body: JSONDict, exc: Exception) -> ValidationError:
    """A :class:`ValidationError` naming each value of ``body`` that JSON cannot carry."""
    cls_name = "" if isinstance(obj, RawDocument) else type(obj).__name__
    try:
        check_json_value(body)
    except Invalid as invalid:
        return invalid.to_validation_error(doc_id, cls_name)
    if isinstance(exc, EncodingError):  # e.g. a lone surrogate: the check names the place
        return ValidationError(doc_id, [FieldError(exc.path, "UTF-8 JSON", exc.problem)], cls_name)
    reason = exc.reason if isinstance(exc, BackendError) else str(exc)
    return ValidationError(doc_id, [FieldError("", "JSON", reason)], cls_name)


def chunks(
    docs: list[JSONDict], batch_size: int | None, max_docs: int, max_bytes: int
) -> Iterator[list[JSONDict]]:
    """``docs`` split into requests: ``batch_size`` each, else by count and encoded size.

    Without ``batch_size`` a request holds at most ``max_docs`` documents and ``max_bytes``
    of JSON (a larger document goes alone); ordinary flushes are one request.
    """
    if batch_size:
        for start in range(0, len(docs), batch_size):
            yield docs[start : start + batch_size]
        return
    if len(docs) <= 1:  # nothing to split, nothing to measure
        if docs:
            yield docs
        return
    limit = max(1, max_docs)
    position = 0
    while position < len(docs):
        # The next ``limit`` documents as a whole: one encoding measures them (its length
        # is their sizes below plus one); if they fit, the greedy split below takes exactly
        # them, so one encoding per request replaces one per document.
        part = docs[position : position + limit]
        try:
            whole = len(json.dumps(part, separators=(",", ":")))
        except (TypeError, ValueError):
            whole = max_bytes + 1  # not JSON: measured one by one below
        if whole > max_bytes:
            part = _by_size(docs, position, limit, max_bytes)
        position += len(part)
        yield part


def _by_size(docs: list[JSONDict], start: int, limit: int, max_bytes: int) -> list[JSONDict]:
    """The request from ``docs[start]`` on: up to ``limit`` documents and ``max_bytes``."""
    chunk: list[JSONDict] = []
    used = 0
    for doc in docs[start : start + limit]:
        try:
            # The compact encoding's length in characters: close enough to the bytes sent.
            size = len(json.dumps(doc, separators=(",", ":"))) + 1
        except (TypeError, ValueError):
            size = 0  # not JSON: the backend refuses it, naming the document
        if chunk and used + size > max_bytes:
            break
        chunk.append(doc)
        used += size
    return chunk
