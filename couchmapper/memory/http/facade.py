"""An HTTP-shaped facade over the memory engine: ``handle(method, path, query, body, headers)``.

It answers like CouchDB 3.5 would over HTTP (status, a few headers, JSON or bytes), which
lets the engine be checked against recorded CouchDB transcripts and serve as a stand-in
server for HTTP-level code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, unquote_plus

from couchmapper.exceptions import BackendError
from couchmapper.memory.engine import compaction
from couchmapper.memory.engine.catalog import Catalog, default_catalog
from couchmapper.memory.http.params import QueryParams, parse_json_body
from couchmapper.memory.http.responses import (
    Response,
    error_response,
    json_response,
    location,
    not_allowed,
    not_implemented,
    opaque_etag,
)
from couchmapper.memory.http.routes import DbRoutes

if TYPE_CHECKING:
    from couchmapper.memory.backend import MemoryServer

__all__ = ["MemoryHTTP", "Response"]

_VERSION = "3.5.0"
# Server endpoints the engine does not have: a clear 501, never a 404 that reads as a
# missing database (what CouchDB answers for an endpoint it lacks).
_NOT_IMPLEMENTED = {
    "_replicate": "replication is not implemented by the memory engine",
    "_config": "configuration is not implemented by the memory engine",
    "_scheduler": "the replication scheduler is not implemented by the memory engine",
    "_reshard": "resharding is not implemented by the memory engine",
    "_cluster_setup": "cluster setup is not implemented by the memory engine",
    "_node": "node endpoints (_stats, _system...) are not implemented by the memory engine",
    "_stats": "statistics are not implemented by the memory engine",
    "_db_updates": "the _db_updates feed is not implemented by the memory engine",
    "_utils": "Fauxton is not served by the memory engine",
    "_search_analyze": "full-text search is not implemented by the memory engine",
    "_nouveau_analyze": "full-text search is not implemented by the memory engine",
    "_prometheus": "metrics are not implemented by the memory engine",
}


class _HasCatalog(Protocol):
    """A server adapter over an engine catalog (such as :class:`MemoryServer`)."""

    @property
    def catalog(self) -> Catalog: ...


class MemoryHTTP:
    """Route HTTP requests to the engine behind a :class:`MemoryServer`.

    Without a server it answers for the process-wide engine, the one ``memory://`` URLs and
    ``cm.connect()`` use.
    """

    def __init__(
        self, server: MemoryServer | _HasCatalog | None = None, *, streaming: bool = False
    ) -> None:
        self.server = server
        self.catalog = server.catalog if server is not None else default_catalog()
        # With streaming, continuous feeds answer an iterator of chunks (a live server).
        self.streaming = streaming

    def handle(
        self,
        method: str,
        path: str,
        query: str | Mapping[str, str] = "",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Answer one request; ``path`` is the raw (percent-encoded) path."""
        lowered = {k.lower(): v for k, v in (headers or {}).items()}
        if isinstance(query, str):
            params = QueryParams(parse_qsl(query, keep_blank_values=True))
        else:
            params = QueryParams(query.items())
        try:
            response = self._route(method.upper(), path, params, body, lowered)
        except BackendError as exc:
            response = error_response(exc.status or 500, exc.error, exc.reason)
            numbered = ("unknown_error", "error_saving_ddoc", "invalid_ejson")
            if exc.error in numbered or exc.reason.startswith("No rows can match"):
                # CouchDB numbers these errors for its log; any number is its shape.
                response.body["ref"] = 1641458982
        if method.upper() == "HEAD":
            response = Response(response.status, response.headers, None)
        return response

    def _route(
        self,
        method: str,
        path: str,
        params: QueryParams,
        body: bytes | None,
        headers: dict[str, str],
    ) -> Response:
        raw_segments = path.lstrip("/").split("/")
        if raw_segments and raw_segments[-1] == "" and len(raw_segments) > 1:
            raw_segments.pop()
        if raw_segments == [""]:
            return self._root(method)
        first = unquote_plus(raw_segments[0])
        if first.startswith("_") and first not in ("_users", "_replicator", "_global_changes"):
            found = self._server_endpoint(method, first, raw_segments[1:], params, body)
            if found is not None:
                return found
            if len(raw_segments) == 1:
                # Not a server endpoint: CouchDB treats it as a database name, which
                # PUT refuses as illegal and GET finds missing (01/db-name-leading-underscore).
                return self._database(method, first, params, body, headers)
            return error_response(404, "not_found", "Database does not exist.")
        if len(raw_segments) == 1:
            return self._database(method, first, params, body, headers)
        database = self.catalog.open(first)
        routes = DbRoutes(self.catalog, database, params, body, headers, streaming=self.streaming)
        return routes.route(method, raw_segments[1:])

    def _root(self, method: str) -> Response:
        if method not in ("GET", "HEAD"):
            return not_allowed("GET,HEAD")
        return json_response(
            200,
            {
                "couchdb": "Welcome",
                "version": _VERSION,
                "git_sha": "memory",
                "uuid": self.catalog.uuids()[0],
                "features": [
                    "quickjs",
                    "access-ready",
                    "partitioned",
                    "pluggable-storage-engines",
                    "reshard",
                    "scheduler",
                ],
                "vendor": {"name": "The Apache Software Foundation"},
            },
        )

    def _server_endpoint(
        self, method: str, name: str, rest: list[str], params: QueryParams, body: bytes | None
    ) -> Response | None:
        if name == "_node" and "_config" in rest:
            return not_implemented(_NOT_IMPLEMENTED["_config"])
        if name in _NOT_IMPLEMENTED:
            return not_implemented(_NOT_IMPLEMENTED[name])
        if name == "_membership" and not rest:
            nodes = ["couchmapper@127.0.0.1"]
            return json_response(200, {"all_nodes": nodes, "cluster_nodes": nodes})
        if name == "_active_tasks" and not rest:
            return json_response(200, [])
        if name == "_up" and not rest:
            return json_response(200, {"status": "ok", "seeds": {}})
        if name == "_uuids" and not rest:
            count = params.integer("count") or 1
            answer = {"uuids": self.catalog.uuids(count)}
            return json_response(200, answer, {"etag": opaque_etag(answer)})
        if name == "_all_dbs" and not rest:
            options: dict[str, Any] = {}
            for key in ("startkey", "start_key", "endkey", "end_key"):
                if key in params:
                    options[key] = params.json(key)
            for key in ("limit", "skip"):
                value = params.integer(key)
                if value is not None:
                    options[key] = value
            if params.flag("descending"):
                options["descending"] = True
            names = self.catalog.all_dbs(**options)
            return json_response(200, names, {"etag": opaque_etag(names)})
        if name == "_dbs_info" and not rest:
            if method != "POST":
                return json_response(200, [])
            payload = parse_json_body(body)
            keys = payload.get("keys") if isinstance(payload, dict) else None
            if not isinstance(keys, list):
                raise BackendError(400, "bad_request", "`keys` member must exist.")
            return json_response(200, self.catalog.dbs_info(keys))
        return None

    def _database(
        self,
        method: str,
        name: str,
        params: QueryParams,
        body: bytes | None,
        headers: dict[str, str],
    ) -> Response:
        if method == "PUT":
            partitioned = params.get("partitioned")
            if partitioned not in (None, "true", "false"):
                raise BackendError(400, "bad_request", "Invalid `partitioned` parameter")
            q_text = params.get("q", "2") or ""
            if not q_text.isdigit() or int(q_text) < 1:
                raise BackendError(
                    400, "bad_request", "The `q` value should be a positive integer."
                )
            n_text = params.get("n", "1") or "1"
            self.catalog.create(
                name,
                partitioned=partitioned == "true",
                q=int(q_text),
                n=int(n_text) if n_text.isdigit() else 1,
            )
            return json_response(201, {"ok": True}, {"location": location(name)})
        if method == "DELETE":
            if "rev" in params:
                raise BackendError(
                    400,
                    "bad_request",
                    "You tried to DELETE a database with a ?=rev parameter. "
                    "Did you mean to DELETE a document instead?",
                )
            self.catalog.delete(name)
            return json_response(200, {"ok": True})
        database = self.catalog.open(name)
        if method in ("GET", "HEAD"):
            info = database.info()
            if compaction.running(database):
                info["compact_running"] = True
            return json_response(200, info)
        if method == "POST":
            return DbRoutes(self.catalog, database, params, body, headers).post_doc()
        return not_allowed("DELETE,GET,HEAD,POST")
