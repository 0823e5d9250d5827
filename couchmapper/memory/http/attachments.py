"""Attachment endpoints (``/{db}/{doc}/{name}``) of the memory engine's HTTP facade."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from couchmapper.memory.engine.revs import Attachment, parse_rev
from couchmapper.memory.http.responses import Response, json_response, location, not_allowed

if TYPE_CHECKING:
    from couchmapper.memory.http.routes import DbRoutes

__all__ = ["route"]

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def route(routes: DbRoutes, method: str, doc_id: str, name: str) -> Response:
    """Dispatch one attachment request."""
    db = routes.db
    if method in ("GET", "HEAD"):
        rev = routes.params.get("rev")
        att = db.get_attachment(doc_id, name, rev)
        return _serve(routes, att)
    if method == "PUT":
        rev = routes.rev_from_request(None)
        content_type = routes.headers.get("content-type", "application/octet-stream")
        result = db.put_attachment(doc_id, name, routes.body or b"", content_type, rev)
        # A Location naming the attachment, no ETag (08/att-put-get [1]).
        return json_response(201, result, {"location": location(db.name, doc_id, name)})
    if method == "DELETE":
        rev = routes.rev_from_request(None)
        if rev is not None:
            parse_rev(rev)
        result = db.delete_attachment(doc_id, name, rev)
        return json_response(200, result)
    return not_allowed("DELETE,GET,HEAD,PUT")


def _serve(routes: DbRoutes, att: Attachment) -> Response:
    etag = f'"{att.digest[4:]}"'
    if routes.headers.get("if-none-match") == etag:
        return Response(304, {"etag": etag}, None)
    headers = {"content-type": att.content_type, "etag": etag}
    wanted = _RANGE_RE.match(routes.headers.get("range") or "")
    bounds = _bounds(wanted, len(att.data)) if wanted is not None else None
    if wanted is not None and bounds is None:
        body = {
            "error": "requested_range_not_satisfiable",
            "reason": "Requested range not satisfiable",
        }
        return json_response(416, body)  # CouchDB sends no Content-Range here (08/att-range)
    if att.gzipped:
        # Stored gzip-encoded: CouchDB refuses ranges on these (but still checks them).
        headers["accept-ranges"] = "none"
        if "gzip" in routes.headers.get("accept-encoding", ""):
            headers["content-encoding"] = "gzip"
            return Response(200, headers, att.gzip_bytes())
        return Response(200, headers, att.data)
    headers["accept-ranges"] = "bytes"
    if bounds is None:
        return Response(200, headers, att.data)
    first, last = bounds
    headers["content-range"] = f"bytes {first}-{last}/{len(att.data)}"
    return Response(206, headers, att.data[first : last + 1])


def _bounds(found: re.Match[str], size: int) -> tuple[int, int] | None:
    """The first and last byte of a ``bytes=`` range, or None when it is unsatisfiable."""
    first_text, last_text = found.groups()
    if first_text == "":
        first, last = max(size - int(last_text or 0), 0), size - 1
    else:
        first = int(first_text)
        last = min(int(last_text), size - 1) if last_text else size - 1
    if first >= size or first > last:
        return None
    return first, last
