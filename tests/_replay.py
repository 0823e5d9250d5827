"""Replay recorded CouchDB 3.5 transcripts against the memory engine's HTTP facade.

The transcripts live in ``tests/transcripts/`` (recorded from Apache CouchDB 3.5.0 and
pouchdb-server 4.2.0; its README lists the known differences). Every step's request is
rebuilt from its template, placeholders such as ``{{2.body.rev}}`` are filled from *our*
earlier answers, and our answer is compared with CouchDB's: the status exactly, the JSON body
structurally, and server-chosen values (revs, seqs, generated ids, bookmarks, sizes,
timestamps) by shape only.

Run ``python -m tests._replay`` for a pass-rate report per area.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, quote

from couchmapper.memory import MemoryServer
from couchmapper.memory.http import MemoryHTTP, Response

__all__ = ["TRANSCRIPTS", "Case", "load_cases", "replay_case"]

TRANSCRIPTS = Path(__file__).resolve().parent / "transcripts"

Case = dict[str, Any]

_PLACEHOLDER = re.compile(r"\{\{([^{}]+)\}\}")
_REV = re.compile(r"^(\d+)-[0-9a-f]{32}$")
_SEQ = re.compile(r"^\d+-\S*$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX40 = re.compile(r"^(_design/)?[0-9a-f]{40}$")
_BOOKMARK = re.compile(r"^[A-Za-z0-9_-]+$")
_DIGITS = re.compile(r"^\d+$")

# Where the server chooses a value (README "Server-chosen values"): the answer's top-level
# members, the rows of _changes (and of a continuous feed), the db infos of _dbs_info, the
# view_index of a design doc's _info and execution_stats. Paths are anchored: a user field
# named like one of these (a doc's "seq", "ref" or "active") is compared as any other value.
_SEQ_KEYS = "update_seq|purge_seq|last_seq|seq"
_SERVER_CHOSEN = re.compile(
    r"^(?:body|part \d+)(?:"
    rf"\.({_SEQ_KEYS}|instance_start_time|uuid|git_sha|ref|bookmark|sizes)"
    rf"|\.results\.\d+\.({_SEQ_KEYS})"  # _changes rows; /queries answers
    rf"|\.\d+\.({_SEQ_KEYS})"  # continuous feed lines
    r"|\.\d+\.info\.(update_seq|purge_seq|instance_start_time|sizes)"  # _dbs_info
    r"|\.view_index\.(signature|sizes|update_seq|purge_seq)"  # _design/x/_info
    r"|\.execution_stats\.(execution_time_ms)"
    r")$"
)


def _server_value_problem(expected: Any, actual: Any) -> bool:
    """True when ``actual`` does not have the shape of the server-chosen ``expected``."""
    if expected is None or actual is None:
        return (expected is None) != (actual is None)
    if isinstance(expected, str):
        if not isinstance(actual, str):
            return True
        if _SEQ.match(expected):
            return not _SEQ.match(actual)
        if expected == "nil":  # the bookmark of an empty answer
            return actual != "nil"
        if _DIGITS.match(expected):
            return not _DIGITS.match(actual)
        return not _BOOKMARK.match(actual)
    if isinstance(expected, dict):  # sizes: the same members, numbers
        return not isinstance(actual, dict) or set(expected) != set(actual)
    return type(expected) is not type(actual)


def load_cases() -> Iterator[tuple[str, Case]]:
    """Every case of every transcript file, with the file's area name."""
    for path in sorted(TRANSCRIPTS.glob("*.json")):
        for case in json.loads(path.read_text("utf-8")):
            yield path.stem, case


def _walk(answer: dict[str, Any], path: list[str]) -> Any:
    value: Any = answer
    for part in path:
        if isinstance(value, list):
            value = value[int(part)]
        elif isinstance(value, dict):
            value = value[part]
        else:
            msg = f"cannot walk {part!r} in {value!r}"
            raise KeyError(msg)
    return value


class _Resolver:
    """Fills ``{{...}}`` placeholders from this case's earlier answers."""

    def __init__(self, db: str, rand: str) -> None:
        self.db = db
        self.rand = rand
        self.answers: list[dict[str, Any]] = []

    def value(self, expr: str) -> Any:
        name, _, flt = expr.partition("|")
        if name == "db":
            value: Any = self.db
        elif name == "rand":
            value = self.rand
        else:
            step, *path = name.split(".")
            value = _walk(self.answers[int(step) - 1], path)
        if flt == "url":
            return quote(str(value), safe="")
        if flt == "json":
            return json.dumps(value)
        return value

    def text(self, template: str) -> str:
        def one(found: re.Match[str]) -> str:
            value = self.value(found.group(1))
            return value if isinstance(value, str) else json.dumps(value)

        return _PLACEHOLDER.sub(one, template)

    def json(self, template: Any) -> Any:
        if "{{" not in json.dumps(template):
            return template
        if isinstance(template, str):
            whole = _PLACEHOLDER.fullmatch(template)
            return self.value(whole.group(1)) if whole else self.text(template)
        if isinstance(template, list):
            return [self.json(v) for v in template]
        if isinstance(template, dict):
            return {k: self.json(v) for k, v in template.items()}
        return template


def _build_request(
    request: dict[str, Any], resolver: _Resolver
) -> tuple[str, str, bytes | None, dict[str, str]]:
    path_template: str = request.get("path", "")
    path = resolver.text(path_template)
    if not path.startswith("/"):
        path = f"/{resolver.db}/{path}" if path else f"/{resolver.db}"
    query_parts: list[str] = []
    for key, value in (request.get("query") or {}).items():
        text = resolver.text(value) if isinstance(value, str) else json.dumps(resolver.json(value))
        query_parts.append(f"{quote(key, safe='')}={quote(text, safe='')}")
    if request.get("qs"):
        query_parts.append(resolver.text(request["qs"]))
    headers = {"Accept": "application/json"}
    body: bytes | None = None
    if "body" in request:
        body = json.dumps(resolver.json(_omitted_body(request))).encode()
        headers["Content-Type"] = "application/json"
    elif "raw" in request:
        body = resolver.text(request["raw"]).encode("utf-8", "surrogatepass")
        headers["Content-Type"] = "application/json"
    elif "raw_base64" in request:
        body = base64.b64decode(request["raw_base64"])
        headers["Content-Type"] = "application/json"
    if request.get("content_type"):
        headers["Content-Type"] = request["content_type"]
    for key, value in (request.get("headers") or {}).items():
        headers[key] = resolver.text(value)
    return path, "&".join(query_parts), body, headers


_OMITTED_NOTE = re.compile(r'^body recorded as \{"(\w+)": "(.)" \* (\d+)\}$')


def _omitted_body(request: dict[str, Any]) -> Any:
    """The body, rebuilt when the recorder left a large one out and described it in its note.

    10/err-large-json-body [1]: ``"<omitted: 2097164 bytes of JSON, see note>"`` with the note
    ``body recorded as {"blob": "x" * 2097152}``.
    """
    body = request["body"]
    if isinstance(body, str) and body.startswith("<omitted:"):
        found = _OMITTED_NOTE.match(request.get("note", ""))
        if found is not None:
            return {found.group(1): found.group(2) * int(found.group(3))}
    return body


def _answer_record(response: Response) -> dict[str, Any]:
    body = response.body
    if isinstance(body, bytes):
        body = base64.b64encode(body).decode()
    return {"status": response.status, "headers": response.headers, "body": body}


class _Ids(NamedTuple):
    """Server-generated ids: where this answer holds new ones, and those seen before.

    ``known`` maps CouchDB's generated id to ours, so a later answer that echoes it (a listing,
    a GET) must show our id for it: an id is compared by shape only where it is born.
    """

    fresh: frozenset[str]
    known: dict[str, str]


def _same_shape(
    expected: Any, actual: Any, where: str, problems: list[str], generated: _Ids
) -> None:
    if _SERVER_CHOSEN.match(where):
        if _server_value_problem(expected, actual):
            problems.append(f"{where}: expected a value like {expected!r}, got {actual!r}")
        return
    if isinstance(expected, dict) and isinstance(actual, dict):
        if set(expected) != set(actual):
            problems.append(f"{where}: keys {sorted(expected)} != {sorted(actual)}")
        for name in expected.keys() & actual.keys():
            _same_shape(expected[name], actual[name], f"{where}.{name}", problems, generated)
        return
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            problems.append(f"{where}: {len(expected)} items expected, got {len(actual)}")
            return
        for index, (e, a) in enumerate(zip(expected, actual, strict=True)):
            _same_shape(e, a, f"{where}.{index}", problems, generated)
        return
    strings = isinstance(expected, str) and isinstance(actual, str)
    if strings and expected in generated.known:
        if actual == generated.known[expected]:
            return
    elif strings and where in generated.fresh and _HEX32.match(expected) and _HEX32.match(actual):
        generated.known[expected] = actual
        return
    elif strings and _same_server_string(expected, actual):
        return
    # JSON-strict: 1, 1.0 and true are three different answers (README "Numbers").
    if type(expected) is type(actual) and expected == actual:
        return
    problems.append(f"{where}: expected {expected!r}, got {actual!r}")


def _same_server_string(expected: str, actual: str) -> bool:
    if expected == actual:
        return True
    rev_e, rev_a = _REV.match(expected), _REV.match(actual)
    if rev_e and rev_a:
        return rev_e.group(1) == rev_a.group(1)
    if _HEX40.match(expected) and _HEX40.match(actual):
        return expected.startswith("_design/") == actual.startswith("_design/")
    if expected.startswith("Compilation of the map function") and " failed: " in expected:
        # The JavaScript engine's own message differs; the prefix is CouchDB's.
        return (
            actual.split(" failed: ", maxsplit=1)[0] == expected.split(" failed: ", maxsplit=1)[0]
        )
    return False


class Sent(NamedTuple):
    """What a step sent: the comparator needs it for the README's request-dependent rules."""

    method: str
    path: str
    query: dict[str, str]
    body: Any


def _normalise(expected: Any, actual: Any, path: str) -> tuple[Any, Any]:
    """Order-insensitive parts: _changes rows (shard order) are compared as sets."""
    if "/_changes" in path and isinstance(expected, dict) and isinstance(actual, dict):
        for body in (expected, actual):
            rows = body.get("results")
            if isinstance(rows, list):
                body["results"] = sorted(rows, key=lambda r: json.dumps(r.get("id")))
    return expected, actual


def _view_keys(sent: Sent) -> list[Any]:
    """The ``keys`` of a view request (one list per query for ``/queries``)."""
    if isinstance(sent.body, dict) and isinstance(sent.body.get("queries"), list):
        return [q.get("keys") if isinstance(q, dict) else None for q in sent.body["queries"]]
    keys = sent.body.get("keys") if isinstance(sent.body, dict) else None
    if keys is None and "keys" in sent.query:
        try:
            keys = json.loads(sent.query["keys"])
        except ValueError:
            keys = None
    return [keys]


def _cluster_parts(expected: Any, actual: Any, sent: Sent) -> None:
    """Blank out, in both bodies, what the README calls cluster-dependent (CouchDB ran q=2).

    * ``_changes`` with ``limit`` that cut the feed (``pending`` > 0): which docs fill the
      limit follows the shards (README row 05 changes-limit [6]: "Cluster-dependent. Safe: one
      row per doc at its latest change, in update order"). Only the row count is compared.
    * ``_changes`` with ``seq_interval``: CouchDB leaves some ``seq`` null (README row 05
      changes-seq-interval-and-heartbeat [4]: "Safe: ignore seq_interval and give every row
      its seq"). Where CouchDB gave null, ours is not compared.
    * A view query with a repeated key in ``keys``: the row order is neither request nor
      collation order (README 07 view-keys [3], cluster-dependent; "Safe: rows in request
      order"): rows are compared as a multiset. ``offset`` is compared as recorded.
    """
    if not (isinstance(expected, dict) and isinstance(actual, dict)):
        return
    if sent.path.rstrip("/").endswith("/_changes"):
        rows_e, rows_a = expected.get("results"), actual.get("results")
        if not (isinstance(rows_e, list) and isinstance(rows_a, list)):
            return
        pending = expected.get("pending")
        if "limit" in sent.query and isinstance(pending, int) and pending > 0:
            expected["results"] = [{"row": "shard order"}] * len(rows_e)
            actual["results"] = [{"row": "shard order"}] * len(rows_a)
        if "seq_interval" in sent.query:
            for row_e, row_a in zip(rows_e, rows_a, strict=False):
                if isinstance(row_e, dict) and isinstance(row_a, dict) and row_e.get("seq") is None:
                    row_a["seq"] = None
        return
    if "/_view/" not in sent.path:
        return
    results = [(expected, actual)]
    if "results" in expected and "results" in actual:
        results = list(zip(expected["results"], actual["results"], strict=False))
    for keys, (body_e, body_a) in zip(_view_keys(sent), results, strict=False):
        if not isinstance(keys, list) or not isinstance(body_e, dict):
            continue
        for body in (body_e, body_a):
            repeated = len({json.dumps(k, sort_keys=True) for k in keys}) < len(keys)
            if repeated and isinstance(body.get("rows"), list):
                body["rows"] = sorted(body["rows"], key=lambda r: json.dumps(r, sort_keys=True))


def _server_chosen_parts(expected: Any, actual: Any, path: str) -> None:
    """Blank out what the README calls crash text or cluster-dependent, in both bodies.

    * A 500 whose ``error`` is an Erlang crash dump (``{{invalid_ejson, ...``): only the
      members are compared (09/part-view-reduce [5]).
    * ``total_rows``/``offset`` of ``_partition/<p>/_all_docs`` count the shard holding the
      partition (README row 09 part-bulk-docs [3], part-all-docs [5], part-errors [7]):
      compared by type only.
    """
    if not (isinstance(expected, dict) and isinstance(actual, dict)):
        return
    error = expected.get("error")
    if isinstance(error, str) and error.startswith("{{"):
        for body in (expected, actual):
            for key in ("error", "reason"):
                if key in body:
                    body[key] = "<crash text>"
    if "/_partition/" in path and path.rstrip("/").endswith("/_all_docs"):
        for body in (expected, actual):
            for key in ("total_rows", "offset"):
                if isinstance(body.get(key), int):
                    body[key] = 0


def _generated_ids(expected: Any, sent: Sent, where: str) -> frozenset[str]:
    """The places of ``expected`` that hold ids the server generated (32 hex, any value).

    ``POST /db`` without ``_id``, ``_bulk_docs`` entries without ``_id`` and ``/_uuids``.
    Everywhere else a 32-hex string is a user's (or an echo of one) and must be equal.
    """
    path = sent.path.rstrip("/")
    if where != "body":
        return frozenset()
    if path == "/_uuids" and isinstance(expected, dict):
        return frozenset(f"body.uuids.{i}" for i in range(len(expected.get("uuids") or [])))
    if sent.method != "POST":
        return frozenset()
    if path.count("/") == 1 and isinstance(sent.body, dict) and "_id" not in sent.body:
        return frozenset({"body.id"})
    if path.endswith("/_bulk_docs") and isinstance(sent.body, dict):
        docs = sent.body.get("docs")
        if isinstance(docs, list):
            return frozenset(
                f"body.{i}.id"
                for i, doc in enumerate(docs)
                if isinstance(doc, dict) and "_id" not in doc
            )
    return frozenset()


def _compare_json(
    expected: Any,
    actual: Any,
    sent: Sent,
    where: str,
    problems: list[str],
    *,
    known: dict[str, str] | None = None,
) -> None:
    expected, actual = _normalise(
        json.loads(json.dumps(expected)), json.loads(json.dumps(actual)), sent.path
    )
    _server_chosen_parts(expected, actual, sent.path)
    _cluster_parts(expected, actual, sent)
    ids = _Ids(_generated_ids(expected, sent, where), known if known is not None else {})
    _same_shape(expected, actual, where, problems, ids)


def _compare_lines(expected: bytes, actual: bytes, sent: Sent, problems: list[str]) -> None:
    """A continuous feed: one JSON value a line (rows in shard order, compared as a set)."""
    lines_e = expected.decode("utf-8").split("\n")
    lines_a = actual.decode("utf-8", "replace").split("\n")
    blank_e = [i for i, line in enumerate(lines_e) if not line]
    blank_a = [i for i, line in enumerate(lines_a) if not line]
    if len(lines_e) != len(lines_a) or blank_e != blank_a:
        problems.append(f"body: lines {lines_e!r} != {lines_a!r}")
        return
    try:
        values_a = [json.loads(line) for line in lines_a if line]
    except ValueError:
        problems.append(f"body: not JSON lines: {actual[:200]!r}")
        return
    values_e = [json.loads(line) for line in lines_e if line]
    if "/_changes" in sent.path:
        values_e = sorted(values_e[:-1], key=lambda r: json.dumps(r.get("id"))) + values_e[-1:]
        values_a = sorted(values_a[:-1], key=lambda r: json.dumps(r.get("id"))) + values_a[-1:]
    _compare_json(values_e, values_a, sent, "body", problems)


def _parts(content_type: str, body: bytes) -> list[tuple[dict[str, str], bytes]] | None:
    """The parts of a multipart body (None when it is not one)."""
    found = re.search(r'boundary="?([^";]+)"?', content_type)
    if found is None:
        return None
    chunks = body.split(b"--" + found.group(1).encode())
    if len(chunks) < 2 or chunks[0] != b"" or not chunks[-1].startswith(b"--"):
        return None
    parts = []
    for chunk in chunks[1:-1]:
        head, _, content = chunk.removeprefix(b"\r\n").removesuffix(b"\r\n").partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("utf-8").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        parts.append((headers, content))
    return parts


def _without_boundary(content_type: str) -> str:
    return re.sub(r'boundary="?[^";]+"?', "boundary=<b>", content_type)


def _part_headers(head: dict[str, str]) -> dict[str, str]:
    out = {name: _without_boundary(value) for name, value in head.items()}
    if out.get("content-encoding") == "gzip":
        out["content-length"] = "<gzip bytes>"
    return out


def _compare_multipart(
    expected: tuple[str, bytes], actual: tuple[str, bytes], sent: Sent, problems: list[str]
) -> None:
    """Multipart answers: boundaries and gzip bytes are the server's (README table)."""
    if _without_boundary(expected[0]) != _without_boundary(actual[0]):
        problems.append(f"content-type: expected {expected[0]!r}, got {actual[0]!r}")
        return
    parts_e, parts_a = _parts(*expected), _parts(*actual)
    if parts_e is None or parts_a is None or len(parts_e) != len(parts_a):
        problems.append(f"body: multipart {expected[1][:300]!r} != {actual[1][:300]!r}")
        return
    pairs = enumerate(zip(parts_e, parts_a, strict=True))
    for number, ((head_e, part_e), (head_a, part_a)) in pairs:
        if _part_headers(head_e) != _part_headers(head_a):
            problems.append(f"part {number} headers: {head_e} != {head_a}")
            continue
        inner_e, inner_a = head_e.get("content-type", ""), head_a.get("content-type", "")
        if inner_e.startswith("multipart/"):
            _compare_multipart((inner_e, part_e), (inner_a, part_a), sent, problems)
        elif inner_e.startswith("application/json"):
            _compare_json(json.loads(part_e), json.loads(part_a), sent, f"part {number}", problems)
        elif head_e.get("content-encoding") == "gzip":
            if gzip.decompress(part_e) != gzip.decompress(part_a):
                problems.append(f"part {number}: gzip content differs")
        elif part_e != part_a:
            problems.append(f"part {number}: expected {part_e[:80]!r}, got {part_a[:80]!r}")


# Headers the README discusses ("Server-chosen values" ETag and Location rows, the 405 Allow
# rows, 08/att-range): compared on every answer, present exactly when CouchDB sent them.
_HEADERS = ("etag", "location", "allow", "accept-ranges", "content-range")
_ORIGIN = re.compile(r"^https?://[^/]+")
_QUOTED_REV = re.compile(r'^"(\d+)-[0-9a-f]{32}"$')
_OPAQUE_ETAG = re.compile(r'^"[0-9A-Z]{20,30}"$')


def _compare_headers(
    recorded: dict[str, str], ours: dict[str, str], sent: Sent, problems: list[str]
) -> None:
    mine = {name.lower(): value for name, value in ours.items()}
    for name in _HEADERS:
        expected, actual = recorded.get(name), mine.get(name)
        if expected is None or actual is None:
            if expected != actual:
                problems.append(f"header {name}: expected {expected!r}, got {actual!r}")
            continue
        if name == "etag":
            rev_e, rev_a = _QUOTED_REV.match(expected), _QUOTED_REV.match(actual)
            if rev_e:  # "<rev>": same generation (the hash is compared in the body)
                same = bool(rev_a) and rev_a.group(1) == rev_e.group(1)  # type: ignore[union-attr]
            elif _OPAQUE_ETAG.match(expected):  # _all_dbs, _changes, _local, _uuids tokens
                same = bool(re.fullmatch(r'"[^"]+"', actual))
            else:  # an attachment's digest
                same = expected == actual
        elif name == "location":
            expected, actual = _ORIGIN.sub("", expected), _ORIGIN.sub("", actual)
            generated = sent.method == "POST" and not (
                isinstance(sent.body, dict) and "_id" in sent.body
            )
            if generated:  # POST /db without an _id: the id is the server's (32 hex)
                expected = re.sub(r"/[0-9a-f]{32}$", "/<uuid>", expected)
                actual = re.sub(r"/[0-9a-f]{32}$", "/<uuid>", actual)
            same = expected == actual
        else:
            same = expected == actual
        if not same:
            problems.append(f"header {name}: expected {expected!r}, got {actual!r}")


def compare_step(
    step: dict[str, Any], response: Response, sent: Sent, known: dict[str, str] | None = None
) -> list[str]:
    """Differences between CouchDB's recorded answer and ours (empty when they agree).

    ``known`` maps the server-generated ids of earlier steps (CouchDB's to ours).
    """
    recorded = step["couchdb"]
    problems: list[str] = []
    if recorded["status"] != response.status:
        problems.append(f"status: expected {recorded['status']}, got {response.status}")
    _compare_headers(recorded.get("headers", {}), response.headers, sent, problems)
    encoding = recorded.get("body_encoding")
    ctype_e = recorded.get("headers", {}).get("content-type", "")
    ctype_a = response.headers.get("content-type", "")
    body = response.body
    if encoding == "json" and isinstance(body, bytes) and ctype_a.startswith("application/json"):
        # The recorder decoded every application/json answer, attachments included.
        try:
            body = json.loads(body)
        except ValueError:
            problems.append(f"body: expected JSON, got bytes {body[:80]!r}")
            return problems
    if encoding == "json" and isinstance(body, bytes):
        problems.append(f"body: expected JSON, got bytes {body[:80]!r}")
    elif encoding == "json":
        _compare_json(recorded["body"], body, sent, "body", problems, known=known)
    elif encoding == "base64":
        raw = body if isinstance(body, bytes) else None
        wanted = base64.b64decode(recorded["body"])
        if raw is not None and ctype_e.startswith("multipart/"):
            _compare_multipart((ctype_e, wanted), (ctype_a, raw), sent, problems)
        elif raw is not None and ctype_e.startswith("application/json"):
            _compare_lines(wanted, raw, sent, problems)
        elif raw != wanted:
            problems.append(f"body: expected bytes {recorded['body']!r}, got {body!r}")
    elif body not in (None, b""):
        problems.append(f"body: expected none, got {body!r}")
    return problems


def _sent(method: str, path: str, query: str, body: bytes | None) -> Sent:
    parsed: Any = None
    if body:
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
    return Sent(method.upper(), path, dict(parse_qsl(query, keep_blank_values=True)), parsed)


def _batch_doc(sent: Sent, db: str) -> str | None:
    """The doc path a ``batch=ok`` write names (PUT /db/doc or POST /db with an _id)."""
    if sent.query.get("batch") != "ok":
        return None
    if sent.method == "PUT":
        return sent.path
    if sent.method == "POST" and isinstance(sent.body, dict) and "_id" in sent.body:
        return f"/{db}/{quote(str(sent.body['_id']), safe='')}"
    return None


def replay_case(case: Case) -> list[str]:
    """Replay one case on a fresh engine; return every mismatch (``[N] ...`` per step)."""
    db = case["databases"]["couchdb"]["db"]
    rand = db.rsplit("-", 1)[-1]
    server = MemoryServer(uuid_prefix="56921618a7f053093dd07d9c5f")
    http = MemoryHTTP(server)
    if case["db"] == "fresh":
        server.create(db)
    elif case["db"] == "partitioned":
        server.create(db, partitioned=True)
    resolver = _Resolver(db, rand)
    problems: list[str] = []
    batched: set[str] = set()
    known: dict[str, str] = {}
    for number, step in enumerate(case["steps"], 1):
        try:
            path, query, body, headers = _build_request(step["request"], resolver)
        except (KeyError, IndexError, ValueError) as exc:
            problems.append(f"[{number}] placeholder: {exc!r}")
            resolver.answers.append({"status": None, "headers": {}, "body": None})
            continue
        sent = _sent(step["request"]["method"], path, query, body)
        try:
            response = http.handle(step["request"]["method"], path, query, body, headers)
        except Exception as exc:  # a crash is a mismatch, reported with the step
            problems.append(f"[{number}] crash: {exc!r}")
            resolver.answers.append({"status": None, "headers": {}, "body": None})
            continue
        resolver.answers.append(_answer_record(response))
        written = _batch_doc(sent, db)
        if written is not None:
            batched.add(written)
        if (
            sent.method == "GET"
            and sent.path in batched
            and step["couchdb"]["status"] == 404
            and response.status == 200
        ):
            # README row 02 doc-batch-ok: CouchDB stores a batch=ok write a little later (the
            # recorded GET right after it saw 404); "storing it at once is safe".
            continue
        problems += [f"[{number}] {p}" for p in compare_step(step, response, sent, known)]
    return problems


def report() -> dict[str, tuple[int, int]]:
    """Passing and total cases per area file."""
    totals: dict[str, tuple[int, int]] = {}
    for area, case in load_cases():
        ok = not replay_case(case)
        passed, total = totals.get(area, (0, 0))
        totals[area] = (passed + ok, total + 1)
    return totals


if __name__ == "__main__":  # pragma: no cover - a developer report
    verbose = "-v" in sys.argv
    for area, case in load_cases():
        if verbose:
            found = replay_case(case)
            if found:
                print(f"FAIL {area} {case['name']}")
                for line in found[:6]:
                    print("   ", line[:300])
    for area, (passed, total) in report().items():
        print(f"{area}: {passed}/{total}")
