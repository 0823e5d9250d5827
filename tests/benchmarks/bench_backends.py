"""The memory backend vs a server over HTTP: 10,000 documents through ``_bulk_docs`` and back.

One round is ``bulk_docs`` of 10,000 small documents into a fresh database, then
``all_docs(include_docs=True)``, through the :class:`Backend` protocol on both sides:

* ``memory``: a ``MemoryBackend`` on its own ``MemoryServer``;
* ``http``: a ``CouchDBBackend`` talking to ``COUCHDB_URL`` when it is set, otherwise to the
  pinned pouchdb-server (``tests/devserver``), started here the way the test fixtures do.

Each side runs ``ROUNDS`` rounds on fresh databases; the best round counts (least noise on a
shared machine). Run ``python -m tests.benchmarks.bench_backends``, or call :func:`main`.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from couchmapper.backends.base import Backend
from couchmapper.backends.couchdb import CouchDBServer
from couchmapper.backends.memory import MemoryServer

from ._report import ratio as report_ratio

DOCS = 10_000
ROUNDS = 3


def make_docs(count: int = DOCS) -> list[dict[str, Any]]:
    """``count`` small, realistic documents with sortable ids."""
    return [
        {
            "_id": f"person-{i:06d}",
            "type": "person",
            "name": f"Person {i}",
            "age": 18 + i % 60,
            "tags": ["a", "b"] if i % 2 else ["c"],
            "address": {"city": "Oslo" if i % 3 else "Rome", "zip": f"{i % 10000:04d}"},
        }
        for i in range(count)
    ]


def one_round(db: Backend, docs: list[dict[str, Any]]) -> tuple[float, float]:
    """Seconds for the bulk write and for the full read back (checked, so nothing is skipped)."""
    started = time.perf_counter()
    results = db.bulk_docs(docs)
    written = time.perf_counter()
    rows = db.all_docs(include_docs=True)["rows"]
    read = time.perf_counter()
    if len(results) != len(docs) or not all(r.get("ok") for r in results):
        msg = "bulk_docs did not write every document"
        raise RuntimeError(msg)
    if len(rows) != len(docs) or rows[0]["doc"]["name"] != docs[0]["name"]:
        msg = "all_docs did not return every document"
        raise RuntimeError(msg)
    return written - started, read - written


def best_of(rounds: int, fresh: Callable[[], Backend], docs: list[dict[str, Any]]) -> list[float]:
    """The best (write, read, total) seconds over ``rounds`` rounds on fresh databases."""
    timings = [one_round(fresh(), docs) for _ in range(rounds)]
    best = min(timings, key=sum)
    return [best[0], best[1], sum(best)]


@contextmanager
def http_server() -> Iterator[tuple[str, str]]:
    """The server URL and its description: COUCHDB_URL, or a pouchdb-server started here."""
    external = os.environ.get("COUCHDB_URL", "").strip()
    if external:
        yield external.rstrip("/"), "COUCHDB_URL"
        return
    tests_dir = str(Path(__file__).resolve().parent.parent)
    if tests_dir not in sys.path:
        sys.path.insert(0, tests_dir)
    import _server  # the fixtures' helper: tests/_server.py

    with tempfile.TemporaryDirectory(prefix="bench-pouchdb-") as workdir:
        running = _server.start_pouchdb(Path(workdir))
        try:
            yield running.url, "pouchdb-server 4.2.0 (in memory)"
        finally:
            running.stop()


def main(rounds: int = ROUNDS, count: int = DOCS) -> dict[str, float]:
    """Run the benchmark, print the times and the ratio, and return them."""
    docs = make_docs(count)
    memory_server = MemoryServer()
    memory = best_of(rounds, lambda: memory_server.create(f"bench-{uuid.uuid4().hex}"), docs)
    with http_server() as (url, what):
        server = CouchDBServer(url, timeout=300)
        names: list[str] = []

        def fresh() -> Backend:
            names.append(f"bench-{uuid.uuid4().hex}")
            return server.create_database(names[-1])

        try:
            http = best_of(rounds, fresh, docs)
        finally:
            for name in names:
                server.delete_database(name, missing_ok=True)
            server.close()
    ratio = http[2] / memory[2]
    print(f"backends: {count:,} docs, _bulk_docs + _all_docs?include_docs=true, best of {rounds}")
    print(f"  {'':10} {'bulk_docs':>10} {'all_docs':>10} {'total':>10}")
    for label, (write, read, total) in (("memory", memory), ("http", http)):
        print(f"  {label:10} {write:9.3f}s {read:9.3f}s {total:9.3f}s")
    print(f"  http server: {what}")
    print(f"  memory is {ratio:.1f}x as fast as the server over HTTP")
    report_ratio("backends", f"_bulk_docs + _all_docs, {count:,} docs", memory[2], what, http[2])
    return {"memory_s": memory[2], "http_s": http[2], "ratio": ratio}


if __name__ == "__main__":
    main()
