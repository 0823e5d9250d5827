"""Replay recorded CouchDB 3.5 transcripts against the memory engine's HTTP facade.

The transcripts live in ``shared/couchdb-transcripts/`` beside the repository (see its
README). Every step's request is rebuilt from its template, placeholders such as
``{{2.body.rev}}`` are filled from *our* earlier answers, and our answer is compared with
CouchDB's: the status exactly, the JSON body structurally, and server-chosen values (revs,
seqs, generated ids, bookmarks, sizes, timestamps) by shape only.

Run ``python -m tests._replay`` for a pass-rate report per area.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from couchmapper.backends._memory_http import MemoryHTTP, Response
from couchmapper.backends.memory import MemoryServer

__all__ = ["TRANSCRIPTS", "Case", "load_cases", "replay_case"]

TRANSCRIPTS = Path(__file__).resolve().parent.parent.parent / "shared" / "couchdb-transcripts"

Case = dict[str, Any]

_PLACEHOLDER = re.compile(r"\{\{([^{}]+)\}\}")
_REV = re.compile(r"^(\d+)-[0-9a-f]{32}$")
_SEQ = re.compile(r"^\d+-\S*$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX40 = re.compile(r"^(_design/)?[0-9a-f]{40}$")
# Values the server chooses: only their presence (and JSON type family) is compared.
_ANY_VALUE = frozenset(
    {
        "instance_start_time",
        "uuid",
        "git_sha",
        "ref",
        "signature",
        "sizes",
        "execution_time_ms",
        "elapsed_ms",
        "results_returned",
        "update_seq",
        "purge_seq",
        "last_seq",
        "seq",
        "bookmark",
        "file",
        "external",
        "active",
    }
)


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
        body = json.dumps(resolver.json(request["body"])).encode()
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


def _answer_record(response: Response) -> dict[str, Any]:
    body = response.body
    if isinstance(body, bytes):
        body = base64.b64encode(body).decode()
    return {"status": response.status, "headers": response.headers, "body": body}


def _same_shape(expected: Any, actual: Any, where: str, problems: list[str]) -> None:
    key = where.rsplit(".", 1)[-1]
    if key in _ANY_VALUE:
        if (expected is None) != (actual is None):
            problems.append(f"{where}: expected {expected!r}, got {actual!r}")
        return
    if isinstance(expected, dict) and isinstance(actual, dict):
        if set(expected) != set(actual):
            problems.append(f"{where}: keys {sorted(expected)} != {sorted(actual)}")
        for name in expected.keys() & actual.keys():
            _same_shape(expected[name], actual[name], f"{where}.{name}", problems)
        return
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            problems.append(f"{where}: {len(expected)} items expected, got {len(actual)}")
            return
        for index, (e, a) in enumerate(zip(expected, actual, strict=True)):
            _same_shape(e, a, f"{where}.{index}", problems)
        return
    strings = isinstance(expected, str) and isinstance(actual, str)
    if strings and _same_server_string(expected, actual):
        return
    if type(expected) is type(actual) and expected == actual:
        return
    numbers = all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in (expected, actual)
    )
    if numbers and expected == actual:
        return
    problems.append(f"{where}: expected {expected!r}, got {actual!r}")


def _same_server_string(expected: str, actual: str) -> bool:
    if expected == actual:
        return True
    rev_e, rev_a = _REV.match(expected), _REV.match(actual)
    if rev_e and rev_a:
        return rev_e.group(1) == rev_a.group(1)
    if _HEX32.match(expected) and _HEX32.match(actual):
        return True
    if _HEX40.match(expected) and _HEX40.match(actual):
        return expected.startswith("_design/") == actual.startswith("_design/")
    if expected.startswith("Compilation of the map function") and " failed: " in expected:
        # The JavaScript engine's own message differs; the prefix is CouchDB's.
        return (
            actual.split(" failed: ", maxsplit=1)[0] == expected.split(" failed: ", maxsplit=1)[0]
        )
    return False


def _normalise(expected: Any, actual: Any, path: str) -> tuple[Any, Any]:
    """Order-insensitive parts: _changes rows (shard order) are compared as sets."""
    if "/_changes" in path and isinstance(expected, dict) and isinstance(actual, dict):
        for body in (expected, actual):
            rows = body.get("results")
            if isinstance(rows, list):
                body["results"] = sorted(rows, key=lambda r: json.dumps(r.get("id")))
    return expected, actual


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


def compare_step(step: dict[str, Any], response: Response, path: str) -> list[str]:
    """Differences between CouchDB's recorded answer and ours (empty when they agree)."""
    recorded = step["couchdb"]
    problems: list[str] = []
    if recorded["status"] != response.status:
        problems.append(f"status: expected {recorded['status']}, got {response.status}")
    encoding = recorded.get("body_encoding")
    if encoding == "json" and isinstance(response.body, bytes):
        problems.append(f"body: expected JSON, got bytes {response.body[:80]!r}")
    elif encoding == "json":
        expected, actual = _normalise(
            json.loads(json.dumps(recorded["body"])), json.loads(json.dumps(response.body)), path
        )
        _server_chosen_parts(expected, actual, path)
        _same_shape(expected, actual, "body", problems)
    elif encoding == "base64":
        raw = response.body if isinstance(response.body, bytes) else None
        if raw != base64.b64decode(recorded["body"]):
            problems.append(f"body: expected bytes {recorded['body']!r}, got {response.body!r}")
    elif response.body not in (None, b""):
        problems.append(f"body: expected none, got {response.body!r}")
    return problems


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
    for number, step in enumerate(case["steps"], 1):
        try:
            path, query, body, headers = _build_request(step["request"], resolver)
        except (KeyError, IndexError, ValueError) as exc:
            problems.append(f"[{number}] placeholder: {exc!r}")
            resolver.answers.append({"status": None, "headers": {}, "body": None})
            continue
        try:
            response = http.handle(step["request"]["method"], path, query, body, headers)
        except Exception as exc:  # a crash is a mismatch, reported with the step
            problems.append(f"[{number}] crash: {exc!r}")
            resolver.answers.append({"status": None, "headers": {}, "body": None})
            continue
        resolver.answers.append(_answer_record(response))
        problems += [f"[{number}] {p}" for p in compare_step(step, response, path)]
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
