"""Routes under ``/{db}/`` for the memory engine's HTTP facade."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote, unquote, unquote_plus

from couchmapper.backends import _memory_feeds
from couchmapper.backends import _memory_listing as listing
from couchmapper.backends import _memory_multipart as multipart
from couchmapper.backends._memory_params import QueryParams, body_view_options, parse_json_body
from couchmapper.backends._memory_revs import Attachment, bad_request, parse_rev
from couchmapper.backends._memory_store import Database
from couchmapper.exceptions import BackendError, ConflictError, DocumentNotFound, NotFoundError

if TYPE_CHECKING:
    from couchmapper.backends.memory import MemoryServer

__all__ = ["DbRoutes", "Response"]

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


class Response(NamedTuple):
    """An answer: status, headers (lower-case names) and a JSON value or raw bytes."""

    status: int
    headers: dict[str, str]
    body: Any


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer."""
    return Response(status, {"content-type": "application/json", **(headers or {})}, body)


_META_MEMBERS = ("_revs_info", "_conflicts", "_deleted_conflicts", "_local_seq")


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
    import hashlib
    import json

    number = int.from_bytes(hashlib.md5(json.dumps(body).encode(), usedforsecurity=False).digest())
    digits = ""
    while len(digits) < 25:
        number, rest = divmod(number, 36)
        digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[rest] + digits
    return f'"{digits}"'


def not_allowed(allowed: str) -> Response:
    """CouchDB's 405 with its ``Allow`` header."""
    body = {"error": "method_not_allowed", "reason": f"Only {allowed} allowed"}
    return json_response(405, body, {"allow": allowed})


def _is_json_type(headers: dict[str, str]) -> bool:
    content_type = headers.get("content-type", "application/json")
    return content_type.split(";")[0].strip().lower() == "application/json"


class DbRoutes:
    """One request under a database."""

    def __init__(
        self,
        server: MemoryServer,
        db: Database,
        params: QueryParams,
        body: bytes | None,
        headers: dict[str, str],
    ) -> None:
        self.server = server
        self.db = db
        self.params = params
        self.body = body
        self.headers = headers

    # -- helpers --------------------------------------------------------------------------

    def json_body(self, *, check_type: bool = False) -> Any:
        """The request body as JSON (415 for a non-JSON content type when checked)."""
        if check_type and not _is_json_type(self.headers):
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
        return self.server.uuids()[0]

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
            handler = _SPECIAL.get(head)
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
            from couchmapper.backends import _memory_views

            return _memory_views.http_view(self, method, doc_id, rest[1:])
        if rest and rest[0] == "_info":
            from couchmapper.backends import _memory_views

            return json_response(200, _memory_views.design_info(self.db, doc_id))
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
            from couchmapper.backends import _memory_attachments

            name = "/".join(unquote(s) for s in rest)
            return _memory_attachments.route(self, method, doc_id, name)
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

    def _rev_from_request(self, payload: dict[str, Any] | None) -> str | None:
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
        rev = self._rev_from_request(payload)
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
        rev = self._rev_from_request(None)
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
                name: {"content_type": att.content_type, "data": _b64(att.data)}
                for name, att in winner.atts.items()
            }
        if target_rev is not None:
            body["_rev"] = target_rev
        result = self.db.put(body, unquote(target))
        headers = {"etag": f'"{result["rev"]}"', "location": location(self.db.name, result["id"])}
        return json_response(201, result, headers)


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


# -- database-level special endpoints -------------------------------------------------


def _all_docs(
    routes: DbRoutes, method: str, rest: list[str], partition: str | None = None
) -> Response:
    scope = {} if partition is None else {"partition": partition}
    if rest == ["queries"]:
        if method != "POST":
            return not_allowed("POST")
        payload = routes.object_body(check_type=True)
        queries = payload.get("queries")
        if not isinstance(queries, list):
            raise bad_request("`queries` member must be a array.")
        results = [listing.all_docs(routes.db, **body_view_options(q), **scope) for q in queries]
        return json_response(200, {"results": results})
    if method not in ("GET", "HEAD", "POST"):
        return not_allowed("GET,HEAD,POST")
    options = routes.params.view_options()
    if method == "POST":
        payload = routes.object_body(check_type=True)
        extra = body_view_options(payload)
        if "keys" in extra and not isinstance(extra["keys"], list):
            raise bad_request("`keys` body member must be an array.")
        options.update(extra)
    options.update(scope)
    return json_response(200, listing.all_docs(routes.db, **options))


def _design_docs(routes: DbRoutes, method: str, rest: list[str]) -> Response:
    if method not in ("GET", "HEAD", "POST"):
        return not_allowed("GET,HEAD,POST")
    options = routes.params.view_options()
    if method == "POST":
        options.update(body_view_options(routes.object_body()))
    return json_response(200, listing.all_docs(routes.db, _design_only=True, **options))


def _local_docs(routes: DbRoutes, method: str, rest: list[str]) -> Response:
    if method not in ("GET", "HEAD", "POST"):
        return not_allowed("GET,HEAD,POST")
    options = routes.params.view_options()
    if method == "POST":
        options.update(body_view_options(routes.object_body()))
    return json_response(200, listing.local_docs(routes.db, **options))


def _bulk_docs(routes: DbRoutes, method: str, rest: list[str]) -> Response:
    if method != "POST":
        return not_allowed("POST")
    payload = routes.object_body(check_type=True)
    if "docs" not in payload:
        raise bad_request("POST body must include `docs` parameter.")
    docs = payload["docs"]
    if not isinstance(docs, list):
        raise bad_request("`docs` parameter must be an array.")
    if payload.get("all_or_nothing") is True:
        failures = []
        for doc in docs:
            doc_id = doc.get("_id") if isinstance(doc, dict) else None
            failures.append(
                {
                    "id": doc_id,
                    "rev": "0-",
                    "error": "not_implemented",
                    "reason": "all_or_nothing is not supported",
                }
            )
        return json_response(417, failures)
    new_edits = payload.get("new_edits", True) is not False
    prepared = [
        {"_id": routes.new_id(), **d} if isinstance(d, dict) and "_id" not in d else d for d in docs
    ]
    results = routes.db.bulk_docs(prepared, new_edits=new_edits)
    return json_response(201, results)


def _bulk_get(routes: DbRoutes, method: str, rest: list[str]) -> Response:
    if method != "POST":
        return not_allowed("POST")
    payload = routes.object_body()
    docs = payload.get("docs")
    if "docs" not in payload:
        raise bad_request("Missing JSON list of 'docs'.")
    if not isinstance(docs, list):
        raise BackendError(500, "unknown_error", "function_clause")
    options = {
        f: True for f in ("revs", "attachments", "latest") if routes.params.flag(f, strict=False)
    }
    results = []
    for entry in docs:
        results.append(_bulk_get_entry(routes.db, entry, options))
    return json_response(200, {"results": results})


def _bulk_get_entry(db: Database, entry: Any, options: dict[str, Any]) -> dict[str, Any]:
    def failure(doc_id: Any, rev: Any, error: str, reason: str) -> dict[str, Any]:
        return {
            "id": doc_id,
            "docs": [{"error": {"id": doc_id, "rev": rev, "error": error, "reason": reason}}],
        }

    if not isinstance(entry, dict) or not entry:
        return failure(None, None, "bad_request", "document must be a JSON object")
    doc_id = entry.get("id")
    rev = entry.get("rev")
    if doc_id is None:
        return failure(None, None, "bad_request", "document id missed")
    try:
        if rev is not None:
            parse_rev(rev)
    except BackendError as exc:
        return failure(doc_id, rev, exc.error, exc.reason)
    record = db.docs.get(doc_id)
    if record is None:
        return failure(doc_id, rev if rev is not None else "undefined", "not_found", "missing")
    if rev is None:
        leaves = record.leaves()
        return {"id": doc_id, "docs": [{"ok": db._decorate(record, n, options)} for n in leaves]}
    node = record.revs.get(rev)
    if node is not None and options.get("latest"):
        node = next(
            (leaf for leaf in record.leaves() if rev in {n.rev for n in record.ancestry(leaf.rev)}),
            node,
        )
    if node is None or node.body is None:
        return failure(doc_id, rev, "not_found", "missing")
    return {"id": doc_id, "docs": [{"ok": db._decorate(record, node, options)}]}


def _changes(routes: DbRoutes, method: str, rest: list[str]) -> Response:
    if method not in ("GET", "HEAD", "POST"):
        return not_allowed("GET,POST,HEAD")
    params = routes.params
    options: dict[str, Any] = {}
    feed = params.get("feed", "normal")
    if feed not in _memory_feeds.FEEDS:
        raise bad_request("Supported `feed` types: normal, continuous, live, longpoll, eventsource")
    if "since" in params:
        options["since"] = params.get("since")
    if "limit" in params:
        try:
            options["limit"] = int(params.get("limit") or "")
        except ValueError:
            raise BackendError(500, "unknown_error", "badarg") from None
    for flag in ("include_docs", "descending", "conflicts", "attachments"):
        if params.flag(flag, strict=False):
            options[flag] = True
    for key in ("style", "filter", "view", "feed", "timeout"):
        if key in params:
            options[key] = params.get(key)
    if "doc_ids" in params:
        options["doc_ids"] = params.json("doc_ids")
    if method == "POST":
        payload = routes.json_body()
        if isinstance(payload, dict):
            for key in ("doc_ids", "selector"):
                if key in payload:
                    options[key] = payload[key]
    name = options.get("filter")
    if isinstance(name, str) and not name.startswith("_") and "/" not in name:
        raise bad_request("`filter` must be of the form `designname/filtername`")
    if name == "_selector" and not isinstance(options.get("selector"), dict):
        raise bad_request("Selector error: expected a JSON object")
    options["query"] = dict(params.raw)
    if feed in ("continuous", "live", "eventsource"):
        stream = _memory_feeds.continuous(routes.db, options)
        kind = "text/event-stream" if feed == "eventsource" else "application/json"
        return Response(200, {"content-type": kind}, stream)
    if feed == "longpoll":
        return json_response(200, _memory_feeds.longpoll(routes.db, options))
    answer = listing.changes(routes.db, **options)
    return json_response(200, answer, {"etag": opaque_etag(answer)})


def _revs_diff(routes: DbRoutes, method: str, rest: list[str]) -> Response:
    if method != "POST":
        return not_allowed("POST")
    return json_response(200, routes.db.revs_diff(routes.object_body()))


def _missing_revs(routes: DbRoutes, method: str, rest: list[str]) -> Response:
    if method != "POST":
        return not_allowed("POST")
    diff = routes.db.revs_diff(routes.object_body())
    return json_response(200, {"missing_revs": {k: v["missing"] for k, v in diff.items()}})


def _purge(routes: DbRoutes, method: str, rest: list[str]) -> Response:
    if method != "POST":
        return not_allowed("POST")
    return json_response(201, routes.db.purge(routes.object_body()))


def _compact(routes: DbRoutes, method: str, rest: list[str]) -> Response:
    if method != "POST":
        return not_allowed("POST")
    if not _is_json_type(routes.headers):
        raise BackendError(415, "bad_content_type", "Content-Type must be application/json")
    return json_response(202, {"ok": True})


def _security(routes: DbRoutes, method: str, rest: list[str]) -> Response:
    if method == "GET":
        return json_response(200, routes.db.security)
    if method == "PUT":
        payload = routes.json_body()
        if not isinstance(payload, dict):
            raise BackendError(500, "error", "no_majority")
        routes.db.security = payload
        return json_response(200, {"ok": True})
    return not_allowed("GET,PUT")


def _revs_limit(routes: DbRoutes, method: str, rest: list[str]) -> Response:
    if method == "GET":
        return json_response(200, routes.db.revs_limit)
    if method == "PUT":
        value = routes.json_body()
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise BackendError(500, "unknown_error", "function_clause")
        routes.db.revs_limit = value
        return json_response(200, {"ok": True})
    return not_allowed("GET,PUT")


def _temp_view(routes: DbRoutes, method: str, rest: list[str]) -> Response:
    return json_response(
        410, {"error": "gone", "reason": "Temporary views are not supported in CouchDB"}
    )


def _mango(kind: str) -> Callable[[DbRoutes, str, list[str]], Response]:
    def handler(routes: DbRoutes, method: str, rest: list[str]) -> Response:
        from couchmapper.backends import _memory_find

        return _memory_find.http(routes, kind, method, rest)

    return handler


def _partition(routes: DbRoutes, method: str, rest: list[str]) -> Response:
    """``/db/_partition/{p}[/_all_docs|_find|_explain|_design/{d}/_view/{v}]``."""
    if not routes.db.partitioned:
        raise bad_request("database is not partitioned")
    if not rest:
        raise NotFoundError("not_found", "missing")
    partition = listing.check_partition(routes.db, unquote(rest[0]))
    tail = rest[1:]
    if not tail or tail == [""]:
        if method not in ("GET", "HEAD"):
            return not_allowed("GET,HEAD")
        return json_response(200, listing.partition_info(routes.db, partition))
    head = unquote(tail[0])
    if head == "_all_docs":
        return _all_docs(routes, method, tail[1:], partition)
    if head in ("_find", "_explain"):
        from couchmapper.backends import _memory_find

        return _memory_find.http(routes, head[1:], method, tail[1:], partition)
    if head == "_design" and len(tail) >= 4 and tail[2] == "_view":
        from couchmapper.backends import _memory_views

        ddoc_id = f"_design/{unquote(tail[1])}"
        return _memory_views.http_view(routes, method, ddoc_id, tail[3:], partition)
    raise NotFoundError("not_found", "missing")


_SPECIAL: dict[str, Callable[[DbRoutes, str, list[str]], Response]] = {
    "_all_docs": _all_docs,
    "_design_docs": _design_docs,
    "_local_docs": _local_docs,
    "_bulk_docs": _bulk_docs,
    "_bulk_get": _bulk_get,
    "_changes": _changes,
    "_revs_diff": _revs_diff,
    "_missing_revs": _missing_revs,
    "_purge": _purge,
    "_compact": _compact,
    "_view_cleanup": lambda routes, method, rest: (
        json_response(202, {"ok": True}) if method == "POST" else not_allowed("POST")
    ),
    "_ensure_full_commit": lambda routes, method, rest: json_response(
        201, {"ok": True, "instance_start_time": "0"}
    ),
    "_security": _security,
    "_revs_limit": _revs_limit,
    "_temp_view": _temp_view,
    "_find": _mango("find"),
    "_explain": _mango("explain"),
    "_index": _mango("index"),
    "_partition": _partition,
}

_ = (ConflictError, DocumentNotFound)
