"""Routes under ``/{db}/`` of the memory engine's HTTP facade: documents and design docs.

The database-level endpoints (``_all_docs``, ``_changes``, ``_find``, ...) are in
:mod:`.endpoints`, attachments in :mod:`.attachments`.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote, unquote_plus

from couchmapper.exceptions import BackendError
from couchmapper.memory.engine.catalog import Catalog
from couchmapper.memory.engine.errors import bad_request
from couchmapper.memory.engine.revs import Attachment, parse_rev
from couchmapper.memory.engine.store import Database
from couchmapper.memory.engine.views import design_info
from couchmapper.memory.http import attachments, endpoints, multipart
from couchmapper.memory.http.params import QueryParams, parse_json_body
from couchmapper.memory.http.responses import (
    Response,
    is_json_type,
    json_response,
    location,
    not_allowed,
    not_implemented,
    opaque_etag,
)

__all__ = ["DbRoutes"]

_DOC_METHODS = "DELETE,GET,HEAD,POST,PUT,COPY"
_DOC_FLAGS = (
    "revs",
    "revs_info",
    "conflicts",
    "deleted_conflicts",
    "attachments",
    "att_encoding_info",
    "local_seq",
    "meta",
    "latest",
)


# Design functions the engine does not run: a clear 501 rather than an attachment's 404.
_DESIGN_FUNCTIONS = {
    "_show": "show",
    "_list": "list",
    "_update": "update",
    "_rewrite": "rewrite",
    "_search": "search",
    "_search_info": "search",
    "_nouveau": "nouveau search",
    "_nouveau_info": "nouveau search",
}

_META_MEMBERS = ("_revs_info", "_conflicts", "_deleted_conflicts", "_local_seq")


class DbRoutes:
    """One request under a database."""

    def __init__(
        self,
        catalog: Catalog,
        db: Database,
        params: QueryParams,
        body: bytes | None,
        headers: dict[str, str],
        *,
        streaming: bool = False,
    ) -> None:
        self.catalog = catalog
        # A live server takes feeds as iterators of chunks; the facade's callers take bytes.
        self.streaming = streaming
        self.db = db
        self.params = params
        self.body = body
        self.headers = headers

    # -- helpers --------------------------------------------------------------------------

    def json_body(self, *, check_type: bool = False) -> Any:
        """The request body as JSON (415 for a non-JSON content type when checked)."""
        if check_type and not is_json_type(self.headers):
            raise BackendError(415, "bad_content_type", "Content-Type must be application/json")
        return parse_json_body(self.body)

    def object_body(self, *, check_type: bool = False) -> dict[str, Any]:
        """A JSON object body (400 "Request body must be a JSON object" otherwise)."""
        value = self.json_body(check_type=check_type)
        if not isinstance(value, dict):
            raise bad_request("Request body must be a JSON object")
        return value

    def new_id(self) -> str:
        """A server-generated document id."""
        return self.catalog.uuids()[0]

    # -- routing --------------------------------------------------------------------------

    def route(self, method: str, segments: list[str]) -> Response:
        """Dispatch on the path segments after the database name."""
        head = unquote_plus(segments[0])
        if head == "_design" and len(segments) >= 2:
            return self.design(method, unquote_plus(segments[1]), segments[2:], segments[1])
        if head == "_local" and len(segments) > 2:
            raise bad_request("_local documents do not accept attachments.")
        if head == "_local" and len(segments) >= 2:
            doc_id = "_local/" + unquote_plus("/".join(segments[1:]))
            return self.document(method, doc_id, [])
        if head == "_local":
            return json_response(
                400, {"error": "bad_request", "reason": "Invalid _local document id."}
            )
        if head.startswith("_") and not head.startswith(("_design/", "_local/")):
            handler = endpoints.SPECIAL.get(head)
            if handler is not None:
                return handler(self, method, segments[1:])
            if method == "POST":
                raise bad_request("Referer header required.")
            if method == "GET" and head in ("_design",):
                return json_response(404, {"error": "not_found", "reason": "missing"})
            if method == "GET":
                return json_response(404, {"error": "not_found", "reason": "missing"})
        if head.startswith("_design/") and method == "GET" and len(segments) == 1:
            location = f"/{quote(self.db.name, safe='')}/_design/{quote(head[8:], safe='')}"
            return Response(301, {"location": location}, None)
        return self.document(method, head, segments[1:])

    def design(self, method: str, name: str, rest: list[str], raw: str) -> Response:
        """``_design/{name}[/...]``: the design doc, its views, its info or attachments."""
        doc_id = f"_design/{name}"
        if rest and rest[0] == "_view":
            return endpoints.view(self, method, doc_id, rest[1:])
        if rest and rest[0] == "_info":
            return json_response(200, design_info(self.db, doc_id))
        if rest and rest[0] in _DESIGN_FUNCTIONS:
            kind = _DESIGN_FUNCTIONS[rest[0]]
            return not_implemented(f"{kind} functions are not implemented by the memory engine")
        return self.document(method, doc_id, rest)

    def post_doc(self) -> Response:
        """``POST /db``: create (or update) a doc, generating the id when missing."""
        payload = self.json_body(check_type=True)
        if not isinstance(payload, dict):
            raise bad_request("Document must be a JSON object")
        if "_id" not in payload:
            payload = {"_id": self.new_id(), **payload}
        if self.params.get("batch") == "ok":
            self.db.put(payload, None)
            return json_response(202, {"ok": True, "id": payload["_id"]})
        result = self.db.put(payload, None)
        # POST /db answers with a Location but no ETag (db-post-to-database-root [2]).
        status = 200 if payload.get("_deleted") is True else 201
        return json_response(status, result, {"location": location(self.db.name, result["id"])})

    def _written(self, result: dict[str, Any], payload: dict[str, Any]) -> Response:
        status = 200 if payload.get("_deleted") is True else 201
        tag = f'"{result["rev"]}"'
        if result["id"].startswith("_local/"):
            tag = opaque_etag(result)
        headers = {"etag": tag, "location": location(self.db.name, result["id"])}
        return json_response(status, result, headers)

    # -- documents ------------------------------------------------------------------------

    def document(self, method: str, doc_id: str, rest: list[str]) -> Response:
        """A document (or, with more segments, one of its attachments)."""
        if rest:
            name = "/".join(unquote(s) for s in rest)
            return attachments.route(self, method, doc_id, name)
        if method in ("GET", "HEAD"):
            return self.get_doc(doc_id)
        if method == "PUT":
            return self.put_doc(doc_id)
        if method == "DELETE":
            return self.delete_doc(doc_id)
        if method == "COPY":
            return self.copy_doc(doc_id)
        if method == "POST":
            raise bad_request("Referer header required.")
        return not_allowed(_DOC_METHODS)

    def get_doc(self, doc_id: str) -> Response:
        """``GET /db/doc`` with CouchDB's query options."""
        options: dict[str, Any] = {}
        for flag in _DOC_FLAGS:
            if self.params.flag(flag, strict=False):
                options[flag] = True
        if "rev" in self.params:
            parse_rev(self.params.get("rev"))
            if not options.get("latest") or "open_revs" in self.params:
                # With latest=true chttpd_db opens the winner, whatever rev names.
                options["rev"] = self.params.get("rev")
        if "atts_since" in self.params:
            options["atts_since"] = self.params.json("atts_since")
        if "open_revs" in self.params:
            raw = self.params.get("open_revs")
            options["open_revs"] = "all" if raw == "all" else self.params.json("open_revs")
        accept = self.headers.get("accept")
        if options.get("open_revs") not in (None, []) and multipart.accepts(
            accept, "multipart/mixed"
        ):
            options["attachments"] = True  # CouchDB sends every attachment, following
            revs = self.db.get(doc_id, **options)
            content_type, body = multipart.mixed(revs, lambda rev: self._atts(doc_id, rev))
            return Response(200, {"content-type": content_type}, body)
        result = self.db.get(doc_id, **options)
        if isinstance(result, list):
            return json_response(200, result)
        etag = f'"{result["_rev"]}"'
        if doc_id.startswith("_local/"):
            etag = opaque_etag(result)
        if self.headers.get("if-none-match") == etag:
            return Response(304, {"etag": etag}, None)
        # chttpd_db:send_doc sends an ETag only for a doc without "meta" members
        # (02/doc-get-conflicts [3-4, 6], doc-get-options [2], doc-get-revs-info [4]).
        tag = {} if any(k in result for k in _META_MEMBERS) else {"etag": etag}
        inline = options.get("attachments") or options.get("atts_since")
        if inline and result.get("_attachments") and multipart.accepts(accept, "multipart/related"):
            atts = self._atts(doc_id, result["_rev"])
            content_type, body = multipart.related(result, atts)
            return Response(200, {"content-type": content_type, **tag}, body)
        return json_response(200, result, tag)

    def _atts(self, doc_id: str, rev: str) -> Mapping[str, Attachment]:
        """The stored attachments of one revision (for multipart answers)."""
        with self.db.lock:
            record = self.db.docs.get(doc_id)
            node = record.revs.get(rev) if record is not None else None
            return dict(node.atts) if node is not None else {}

    def rev_from_request(self, payload: dict[str, Any] | None) -> str | None:
        query_rev = self.params.get("rev")
        if_match = self.headers.get("if-match")
        body_rev = payload.get("_rev") if payload is not None else None
        if query_rev is not None and body_rev is not None and query_rev != body_rev:
            raise bad_request(
                "Document rev from request body and query string have different values"
            )
        if query_rev is not None and if_match is not None and query_rev != if_match.strip('"'):
            raise bad_request("Document rev and etag have different values")
        found = query_rev or body_rev
        if found is None and if_match is not None:
            found = if_match.strip('"')
        return found

    def put_doc(self, doc_id: str) -> Response:
        """``PUT /db/doc``."""
        payload = self.json_body()
        if not isinstance(payload, dict):
            raise bad_request("Document must be a JSON object")
        rev = self.rev_from_request(payload)
        payload = {k: v for k, v in payload.items() if k != "_id"}
        if rev is not None:
            payload["_rev"] = rev
        new_edits = self.params.flag("new_edits", strict=False) is not False
        if self.params.get("batch") == "ok":
            self.db.put(payload, doc_id, new_edits=new_edits)
            return json_response(202, {"ok": True, "id": doc_id})
        result = self.db.put(payload, doc_id, new_edits=new_edits)
        return self._written(result, payload)

    def delete_doc(self, doc_id: str) -> Response:
        """``DELETE /db/doc?rev=`` (or ``If-Match``)."""
        rev = self.rev_from_request(None)
        if rev is not None:
            if not doc_id.startswith("_local/"):
                # CouchDB opens the doc first: a missing or deleted doc is 404 whatever the rev.
                with self.db.lock:
                    self.db.open_winner(doc_id)
            parse_rev(rev)
        result = self.db.delete(doc_id, rev)
        tag = opaque_etag(result) if doc_id.startswith("_local/") else f'"{result["rev"]}"'
        return json_response(200, result, {"etag": tag})

    def copy_doc(self, doc_id: str) -> Response:
        """``COPY /db/doc`` with a ``Destination`` header (``dst`` or ``dst?rev=``)."""
        destination = self.headers.get("destination")
        if not destination:
            raise bad_request("Destination header is mandatory for COPY.")
        target, _, query = destination.partition("?")
        target_rev = None
        if query.startswith("rev="):
            target_rev = query[4:]
        record, winner = self.db.open_winner(doc_id)
        source = self.db.doc_json(record, winner)
        body = {k: v for k, v in source.items() if k not in ("_id", "_rev", "_attachments")}
        if "_attachments" in source:
            body["_attachments"] = {
                name: {
                    "content_type": att.content_type,
                    "data": base64.b64encode(att.data).decode(),
                }
                for name, att in winner.atts.items()
            }
        if target_rev is not None:
            body["_rev"] = target_rev
        result = self.db.put(body, unquote(target))
        headers = {"etag": f'"{result["rev"]}"', "location": location(self.db.name, result["id"])}
        return json_response(201, result, headers)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
