"""Database-level endpoints of the HTTP facade (``/{db}/_all_docs``, ``/{db}/_changes``, ...).

Each handler decodes the request, calls the engine and encodes its answer; ``SPECIAL`` maps
a path segment to its handler.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from couchmapper.exceptions import BackendError, NotFoundError
from couchmapper.memory.engine import compaction, feeds, find, listing, replication
from couchmapper.memory.engine.errors import bad_request
from couchmapper.memory.engine.options import check_partition
from couchmapper.memory.engine.views import query_view
from couchmapper.memory.http.params import body_view_options
from couchmapper.memory.http.responses import (
    Response,
    is_json_type,
    json_response,
    not_allowed,
    opaque_etag,
)

if TYPE_CHECKING:
    from couchmapper.memory.http.routes import DbRoutes

__all__ = ["SPECIAL", "mango", "view"]

Handler = Callable[["DbRoutes", str, list[str]], Response]


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
        results.append(listing.bulk_get_entry(routes.db, entry, options))
    return json_response(200, {"results": results})


def _changes(routes: DbRoutes, method: str, rest: list[str]) -> Response:
    if method not in ("GET", "HEAD", "POST"):
        return not_allowed("GET,POST,HEAD")
    params = routes.params
    options: dict[str, Any] = {}
    feed = params.get("feed", "normal")
    if feed not in feeds.FEEDS:
        raise bad_request("Supported `feed` types: normal, continuous, live, longpoll, eventsource")
    if "since" in params:
        options["since"] = params.get("since")
        feeds.check_since(options["since"])
    if "limit" in params:
        try:
            options["limit"] = int(params.get("limit") or "")
        except ValueError:
            raise BackendError(500, "unknown_error", "badarg") from None
    for flag in ("include_docs", "descending", "conflicts", "attachments"):
        if params.flag(flag, strict=False):
            options[flag] = True
    for key in ("style", "filter", "view", "feed", "timeout", "heartbeat"):
        if key in params:
            options[key] = params.get(key)
    feeds.heartbeat(options)  # checked for every feed, as CouchDB does
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
        kind = "text/event-stream" if feed == "eventsource" else "application/json"
        if routes.streaming:
            return Response(200, {"content-type": kind}, feeds.stream(routes.db, options))
        return Response(200, {"content-type": kind}, feeds.continuous(routes.db, options))
    if feed == "longpoll":
        return json_response(200, feeds.longpoll(routes.db, options))
    answer = listing.changes(routes.db, **options)
    return json_response(200, answer, {"etag": opaque_etag(answer)})


def _revs_diff(routes: DbRoutes, method: str, rest: list[str]) -> Response:
    if method != "POST":
        return not_allowed("POST")
    return json_response(200, replication.revs_diff(routes.db, routes.object_body()))


def _missing_revs(routes: DbRoutes, method: str, rest: list[str]) -> Response:
    if method != "POST":
        return not_allowed("POST")
    diff = replication.revs_diff(routes.db, routes.object_body())
    return json_response(200, {"missing_revs": {k: v["missing"] for k, v in diff.items()}})


def _purge(routes: DbRoutes, method: str, rest: list[str]) -> Response:
    if method != "POST":
        return not_allowed("POST")
    return json_response(201, replication.purge(routes.db, routes.object_body()))


def _compact(routes: DbRoutes, method: str, rest: list[str]) -> Response:
    if method != "POST":
        return not_allowed("POST")
    if not is_json_type(routes.headers):
        raise BackendError(415, "bad_content_type", "Content-Type must be application/json")
    if rest:
        # /db/_compact/{ddoc} compacts a design doc's view indexes: nothing to drop here.
        return json_response(202, {"ok": True})
    compaction.start(routes.db)
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


def _mango(kind: str) -> Handler:
    def handler(routes: DbRoutes, method: str, rest: list[str]) -> Response:
        return mango(routes, kind, method, rest)

    return handler


def _partition(routes: DbRoutes, method: str, rest: list[str]) -> Response:
    """``/db/_partition/{p}[/_all_docs|_find|_explain|_design/{d}/_view/{v}]``."""
    if not routes.db.partitioned:
        raise bad_request("database is not partitioned")
    if not rest:
        raise NotFoundError("not_found", "missing")
    partition = check_partition(routes.db, unquote(rest[0]))
    tail = rest[1:]
    if not tail or tail == [""]:
        if method not in ("GET", "HEAD"):
            return not_allowed("GET,HEAD")
        return json_response(200, listing.partition_info(routes.db, partition))
    head = unquote(tail[0])
    if head == "_all_docs":
        return _all_docs(routes, method, tail[1:], partition)
    if head in ("_find", "_explain"):
        return mango(routes, head[1:], method, tail[1:], partition)
    if head == "_design" and len(tail) >= 4 and tail[2] == "_view":
        ddoc_id = f"_design/{unquote(tail[1])}"
        return view(routes, method, ddoc_id, tail[3:], partition)
    raise NotFoundError("not_found", "missing")


SPECIAL: dict[str, Handler] = {
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


def mango(
    routes: DbRoutes, kind: str, method: str, rest: list[str], partition: str | None = None
) -> Response:
    """``_find``, ``_explain`` and ``_index`` endpoints."""
    db = routes.db
    if kind in ("find", "explain"):
        if method != "POST":
            return not_allowed("POST")
        body = routes.json_body(check_type=True)
        run = find.find if kind == "find" else find.explain
        return json_response(200, run(db, body, partition=partition))
    if rest:
        if method != "DELETE" or len(rest) < 3:
            return not_allowed("DELETE")
        parts = [unquote(p) for p in rest]
        if parts[0] == "_design":
            parts = [f"_design/{parts[1]}", *parts[2:]]
        if len(parts) != 3 or parts[1] != "json":
            raise NotFoundError("not_found", "missing")
        return json_response(200, find.delete_index(db, parts[0], parts[2]))
    if method == "GET":
        return json_response(200, find.list_indexes(db))
    if method == "POST":
        return json_response(200, find.create_index(db, routes.json_body(check_type=True)))
    return not_allowed("GET,POST")


def view(
    routes: DbRoutes, method: str, ddoc_id: str, rest: list[str], partition: str | None = None
) -> Response:
    """``/_design/{d}/_view/{v}`` (GET, or POST with ``keys``/``queries``)."""
    if len(rest) != 1 and not (len(rest) == 2 and rest[1] == "queries"):
        return not_allowed("GET,POST,HEAD")
    if method not in ("GET", "HEAD", "POST"):
        return not_allowed("GET,POST,HEAD")
    name = unquote(rest[0])
    opts = routes.params.view_options()
    scope = {} if partition is None else {"partition": partition}
    opts.update(scope)
    if len(rest) == 2:
        body = routes.object_body()
        results = [
            query_view(routes.db, ddoc_id, name, **{**body_view_options(q), **scope})
            for q in body.get("queries", [])
        ]
        return json_response(200, {"results": results})
    if method == "POST":
        opts.update(body_view_options(routes.object_body()))
    return json_response(200, query_view(routes.db, ddoc_id, name, **opts))
