"""Send one request to Apache CouchDB and to the memory engine, and list how the answers differ.

The comparison is tests/_replay.py's (``compare_step``): the status exactly, the JSON body
structurally, server-chosen values (seqs, bookmarks, sizes, uuids, index ids) by shape. It
compares revs by generation only (a transcript's revs were made by other requests); here both
sides got the same requests and the engine computes CouchDB's rev hashes, so on top of it every
rev must be *equal* (:func:`_rev_problems`). What the engine deliberately answers differently
is in :data:`DEVIATIONS`, the one table of tolerated differences.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple
from urllib.parse import quote, unquote, urlsplit

from _replay import Sent, _cluster_parts, compare_step

from differential._engine import MemoryHTTP, Response, new_memory_http

__all__ = ["DEVIATIONS", "Answer", "Differ", "doc_path"]

_REV = re.compile(r"^\d+-[0-9a-f]{32}$")
_HASH = re.compile(r"^[0-9a-f]{32}$")


class Answer(NamedTuple):
    """What one side answered: status, headers (lower-case names), JSON value or bytes."""

    status: int
    headers: dict[str, str]
    body: Any


def doc_path(db: str, doc_id: str, *rest: str) -> str:
    """``/db/doc[/rest...]`` with every segment percent-encoded."""
    return "/" + "/".join(quote(part, safe="") for part in (db, doc_id, *rest))


class _Deviation(NamedTuple):
    """A difference the engine keeps on purpose: why, and how the fuzzer copes with it.

    ``applies``/``normalise`` rewrite both answers before they are compared; an entry without
    them is *avoided*: the state machine never sends the request (it names the entry there).
    """

    reason: str
    applies: Callable[[Sent, Answer], bool] | None = None
    normalise: Callable[[Any, Any], None] | None = None


def _local_seq_asked(sent: Sent, _couch: Answer) -> bool:
    return sent.method == "GET" and sent.query.get("local_seq") == "true"


def _blank_local_seq(expected: Any, actual: Any) -> None:
    """``_local_seq``: compared as "an integer on both sides" only."""
    if not (isinstance(expected, dict) and isinstance(actual, dict)):
        return
    if isinstance(expected.get("_local_seq"), int) and isinstance(actual.get("_local_seq"), int):
        expected["_local_seq"] = actual["_local_seq"] = 0


# The differences the engine keeps, each with the reason. Nothing else is tolerated.
DEVIATIONS: dict[str, _Deviation] = {
    "local-seq-is-per-shard": _Deviation(
        "GET ?local_seq=true: CouchDB's _local_seq is the update seq of the doc's last change "
        "in its shard (q=2: each shard counts its own updates); the engine, one shard, gives "
        "the database-wide number of that change. Compared as an integer on both sides.",
        _local_seq_asked,
        _blank_local_seq,
    ),
    "rev-on-missing-doc": _Deviation(
        "An update carrying a _rev for a doc id that never existed: CouchDB 3.5 (q=2) answers "
        "409 conflict when the doc's shard is still empty, but stores the doc (201, rev "
        "N+1 grown from the unknown rev) once that shard holds any document; which ids share "
        "a shard is the cluster's hash placement. The engine always answers 409, as CouchDB "
        "does on an empty shard and as its documentation says. Avoided: the fuzzer sends "
        "made-up revs only for ids that exist (live or deleted)."
    ),
    "in-null-with-index": _Deviation(
        "A _find whose selector puts null or an array in an $in list over a field a JSON "
        "index covers: CouchDB 3.5 crashes building the index range (500 unknown_error, "
        "reason function_clause); without the index it answers. The engine answers the "
        "query. Avoided: the fuzzer's $in lists hold no null and no array (both are still "
        "compared with $eq, $gt etc.)."
    ),
    "stub-on-revive": _Deviation(
        "A PUT without a rev that re-creates a deleted doc and carries an attachment stub: "
        "CouchDB 3.5 crashes (500 unknown_error, reason function_clause); the engine answers "
        "412 missing_stub, as CouchDB does for a stub on a doc that never existed. Avoided: the "
        "fuzzer sends a stub without a rev only for ids that never existed."
    ),
    "same-id-twice-in-bulk": _Deviation(
        "One _bulk_docs naming the same id twice (a delete by rev, then a create without a "
        "rev): CouchDB 3.5 answered the create once with 409 conflict (the fuzzer's run) and, "
        "replayed by hand on a fresh database, with 201 reviving the doc (rev 3-d064...), the "
        "engine's answer every time; which one depends on how the shard's updater groups "
        "the entries, so no fixed answer can match. Avoided: each id at most once a request."
    ),
    "one-parent-per-rev": _Deviation(
        "new_edits=false histories that give one rev id two different parents (2-x under 1-a "
        "in one request, under 1-b in another): CouchDB keeps them as separate trees; the "
        "engine keys a revision by its id, with one parent, and ends up with a bodiless "
        "leaf. Real revs cannot do this (a rev hash covers its parent). Avoided: made-up "
        "rev hashes are derived from their parent rev."
    ),
    "partial-feed-last-seq-as-since": _Deviation(
        "The last_seq of a descending or limited _changes feed used later as `since`: on q=2 "
        "CouchDB's seq is a per-shard vector, and which shard's changes a partial feed "
        "covered is shard order, so the changes after it (and `pending`) differ from the "
        "engine's single counter. Avoided: only complete ascending feeds' last_seq are reused."
    ),
}


class _Couch:
    """A keep-alive HTTP/1.1 client for the CouchDB under test (loopback only)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 5984
        self._headers = {"Accept": "application/json"}
        if parts.username is not None:
            user, password = unquote(parts.username), unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        self._conn = http.client.HTTPConnection(self._host, self._port, timeout=60)

    def request(self, method: str, target: str, body: bytes | None) -> Answer:
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            try:
                self._conn.request(method, target, body=body, headers=headers)
                response = self._conn.getresponse()
                raw = response.read()
                break
            except (http.client.HTTPException, ConnectionError):
                # A keep-alive connection the server closed: one fresh try.
                self._conn.close()
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=60)
                if attempt == 2:
                    raise
        answer_headers = {name.lower(): value for name, value in response.getheaders()}
        value: Any = raw
        if answer_headers.get("content-type", "").startswith("application/json") and raw:
            value = json.loads(raw)
        return Answer(response.status, answer_headers, value)

    def close(self) -> None:
        self._conn.close()


def _step(answer: Answer) -> dict[str, Any]:
    """``answer`` as a recorded transcript step, the form ``compare_step`` expects."""
    if isinstance(answer.body, bytes):
        encoded = base64.b64encode(answer.body).decode()
        record = {"body_encoding": "base64", "body": encoded}
    else:
        record = {"body_encoding": "json", "body": answer.body}
    return {"couchdb": {"status": answer.status, "headers": answer.headers, **record}}


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


def _revs(value: Any) -> Counter[str]:
    """Every rev (``N-hash``) and bare rev hash (``_revisions.ids``) in a JSON value."""
    return Counter(s for s in _strings(value) if _REV.match(s) or _HASH.match(s))


def _rev_problems(expected: Any, actual: Any) -> list[str]:
    if isinstance(expected, bytes) or isinstance(actual, bytes):
        return []
    mine, theirs = _revs(actual), _revs(expected)
    if mine == theirs:
        return []
    only_e, only_a = sorted((theirs - mine).elements()), sorted((mine - theirs).elements())
    return [f"revs: only CouchDB has {only_e}, only the engine has {only_a}"]


class Differ:
    """One throwaway database on each side, and the comparison of every answer."""

    def __init__(self, couchdb_url: str, db: str) -> None:
        self.db = db
        self.couch = _Couch(couchdb_url)
        self.memory: MemoryHTTP = new_memory_http()

    def call(
        self,
        method: str,
        path: str,
        query: dict[str, str] | None = None,
        body: Any = None,
        *,
        engine_query: dict[str, str] | None = None,
        unordered: str | None = None,
    ) -> tuple[Answer, Answer, list[str]]:
        """Send the request to both sides; their answers and the differences (empty: alike).

        ``engine_query`` replaces ``query`` for the engine where a parameter is a server-chosen
        value (a ``since`` seq); ``unordered`` names a member of the answer that is a set.
        """
        query = query or {}
        qs = _query_string(query)
        raw = None if body is None else json.dumps(body).encode()
        couch = self.couch.request(method, f"{path}?{qs}" if qs else path, raw)
        headers = {"Accept": "application/json"}
        if raw is not None:
            headers["Content-Type"] = "application/json"
        engine_qs = qs if engine_query is None else _query_string(engine_query)
        response: Response = self.memory.handle(method, path, engine_qs, raw, headers)
        mine = Answer(response.status, dict(response.headers), response.body)
        if isinstance(mine.body, bytes) and mine.headers.get("content-type", "").startswith(
            "application/json"
        ):
            mine = mine._replace(body=json.loads(mine.body))
        sent = Sent(method, path, dict(query), body)
        expected, actual = _normalised(sent, couch, mine)
        if unordered is not None:
            for answer in (expected, actual):
                _sort_member(answer.body, unordered)
        problems = compare_step(
            _step(expected), Response(actual.status, actual.headers, actual.body), sent
        )
        problems += _rev_problems(*_cluster_blanked(sent, expected.body, actual.body))
        return couch, mine, problems

    def close(self) -> None:
        self.couch.close()


def _cluster_blanked(sent: Sent, expected: Any, actual: Any) -> tuple[Any, Any]:
    """Copies with what the transcript README calls cluster-dependent blanked out.

    ``compare_step`` applies the same rule to what it compares (e.g. which docs fill a
    ``_changes`` limit on q=2 shards); the rev check must skip the same parts.
    """
    if isinstance(expected, bytes) or isinstance(actual, bytes):
        return expected, actual
    expected, actual = json.loads(json.dumps(expected)), json.loads(json.dumps(actual))
    _cluster_parts(expected, actual, sent)
    return expected, actual


def _query_string(query: dict[str, str]) -> str:
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query.items())


def _sort_member(body: Any, name: str) -> None:
    """Sort ``body[name]`` in place (a list the server may give in any order)."""
    if isinstance(body, dict) and isinstance(body.get(name), list):
        body[name].sort(key=lambda item: json.dumps(item, sort_keys=True))


def _normalised(sent: Sent, couch: Answer, mine: Answer) -> tuple[Answer, Answer]:
    """Both answers with every applicable :data:`DEVIATIONS` entry applied (copies)."""
    body_c, body_m = couch.body, mine.body
    if not isinstance(body_c, bytes) and not isinstance(body_m, bytes):
        body_c, body_m = json.loads(json.dumps(body_c)), json.loads(json.dumps(body_m))
        for deviation in DEVIATIONS.values():
            if deviation.applies is None or deviation.normalise is None:
                continue
            if deviation.applies(sent, couch):
                deviation.normalise(body_c, body_m)
    return couch._replace(body=body_c), mine._replace(body=body_m)
