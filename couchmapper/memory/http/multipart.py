"""Multipart answers of the memory engine's HTTP facade, as CouchDB 3.5 writes them.

``GET /db/doc?attachments=true`` with ``Accept: multipart/related`` sends the document JSON
(attachments marked ``follows``) and then every attachment's stored bytes; ``open_revs`` with
``Accept: multipart/mixed`` sends one part per revision (02/doc-get-open-revs [5],
08/att-attachments-true [3]). Boundaries are random, like CouchDB's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any

from couchmapper.memory.engine.revs import Attachment

__all__ = ["accepts", "mixed", "related"]

AttsOf = Callable[[str], Mapping[str, Attachment]]


def accepts(accept: str | None, wanted: str) -> bool:
    """Whether an ``Accept`` header takes ``wanted`` (explicitly or through a wildcard)."""
    major = wanted.split("/", 1)[0]
    for item in (accept or "").split(","):
        kind, *params = (part.strip() for part in item.split(";"))
        if any(p.replace(" ", "") in ("q=0", "q=0.0") for p in params):
            continue
        if kind.lower() in (wanted, f"{major}/*", "*/*"):
            return True
    return False


def _boundary() -> str:
    return os.urandom(16).hex()


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def related(doc: dict[str, Any], atts: Mapping[str, Attachment]) -> tuple[str, bytes]:
    """The content type and body for one doc: plain JSON when no attachment follows."""
    doc = dict(doc)
    following: list[tuple[str, Attachment]] = []
    members = doc.get("_attachments")
    if isinstance(members, dict):
        members = dict(members)
        for name, member in members.items():
            att = atts.get(name)
            if att is None or "data" not in member:
                continue  # a stub (atts_since): no part
            follows: dict[str, Any] = {
                "content_type": att.content_type,
                "revpos": att.revpos,
                "digest": att.digest,
                "length": len(att.data),
                "follows": True,
            }
            if att.gzipped:
                follows["encoding"] = "gzip"
                follows["encoded_length"] = att.encoded_length
            members[name] = follows
            following.append((name, att))
        doc["_attachments"] = members
    if not following:
        return "application/json", _dumps(doc)
    boundary = _boundary().encode()
    out = [b"--", boundary, b"\r\nContent-Type: application/json\r\n\r\n", _dumps(doc)]
    for name, att in following:
        data = att.gzip_bytes() if att.gzipped else att.data
        head = (
            f'Content-Disposition: attachment; filename="{name}"\r\n'
            f"Content-Type: {att.content_type}\r\nContent-Length: {len(data)}\r\n"
        )
        if att.gzipped:
            head += "Content-Encoding: gzip\r\n"
        out += [b"\r\n--", boundary, b"\r\n", head.encode("utf-8"), b"\r\n", data]
    out += [b"\r\n--", boundary, b"--"]
    return f'multipart/related; boundary="{boundary.decode()}"', b"".join(out)


def mixed(results: list[dict[str, Any]], atts_of: AttsOf) -> tuple[str, bytes]:
    """``open_revs`` as multipart/mixed: each revision (or ``{"missing": rev}``) a part."""
    boundary = _boundary().encode()
    out = [b"--", boundary]
    for entry in results:
        if "ok" in entry:
            doc = entry["ok"]
            content_type, body = related(doc, atts_of(doc["_rev"]))
            out += [b"\r\nContent-Type: ", content_type.encode(), b"\r\n\r\n", body]
        else:
            out += [b'\r\nContent-Type: application/json; error="true"\r\n\r\n', _dumps(entry)]
        out += [b"\r\n--", boundary]
    out.append(b"--")
    return f'multipart/mixed; boundary="{boundary.decode()}"', b"".join(out)
