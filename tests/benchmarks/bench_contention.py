"""Contention: writers incrementing the same documents under ``conflict="rebase"``.

Each writer runs ``increments`` sessions one after the other; each session loads the shared
documents, bumps a ``merge="sum"`` counter on every one of them and flushes. Writers are
threads sharing one ``CouchDBBackend`` (thread-safe) to ``COUCHDB_URL`` when it is set,
otherwise to the pinned pouchdb-server (``tests/devserver``) the other benchmarks use.

A row gives writers x increments on N documents, the flushes that failed (``FlushError``:
still conflicting when the rebase budget ran out), whether every stored total is exactly the
increments written to it (nothing lost, nothing applied twice), and the wall time. Run
``python -m tests.benchmarks.bench_contention``, or call :func:`main`.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import couchmapper as cm
from couchmapper.backends.couchdb import CouchDBBackend, CouchDBServer

from .bench_backends import http_server

# (writers, increments per writer, documents)
CASES = [(4, 25, 1), (8, 25, 1), (8, 10, 3)]


# The old defaults (5 immediate retries) against today's (backoff with jitter, a time budget).
SETTINGS: dict[str, dict[str, Any]] = {
    "before: max_rebase=5, no backoff": {"max_rebase": 5, "rebase_delay": 0},
    "defaults": {},
}


class Tally(cm.Document, type_name="bench-tally"):
    """A counter whose concurrent increments merge."""

    hits: int = cm.field(default=0, merge="sum")


def run_case(
    db: CouchDBBackend, writers: int, increments: int, docs: int, options: dict[str, Any]
) -> tuple[int, bool, float]:
    """Failures, whether the totals are exact, and seconds for one contention case."""
    ids = [f"tally-{uuid.uuid4().hex}" for _ in range(docs)]
    with cm.Session(db) as s:
        s.add_all(Tally(id=doc_id) for doc_id in ids)
    failures = [0] * writers
    unwritten: dict[str, int] = dict.fromkeys(ids, 0)  # increments not written, per document
    start = threading.Barrier(writers)

    def work(writer: int) -> None:
        start.wait()
        for _ in range(increments):
            s = cm.Session(db, conflict="rebase", **options)
            for doc in s.get_many(Tally, ids):
                doc.hits += 1
            try:
                s.flush()
            except cm.FlushError as exc:
                failures[writer] += 1
                for failure in exc.failures:
                    unwritten[failure.doc_id] += 1  # one thread at a time per key: the GIL

    pool = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
    began = time.perf_counter()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    seconds = time.perf_counter() - began
    failed = sum(failures)
    with cm.Session(db) as s:
        totals = [doc.hits for doc in s.get_many(Tally, ids)]
    exact = all(
        total == writers * increments - unwritten[doc_id]
        for doc_id, total in zip(ids, totals, strict=True)
    )
    return failed, exact, seconds


def main(settings: dict[str, dict[str, Any]] | None = None) -> list[tuple[Any, ...]]:
    """Run every case under each setting; print and return the rows."""
    settings = settings or SETTINGS
    rows: list[tuple[Any, ...]] = []
    with http_server() as (url, what):
        server = CouchDBServer(url, timeout=300)
        name = f"bench-{uuid.uuid4().hex}"
        db = server.create_database(name)
        try:
            for label, options in settings.items():
                for writers, increments, docs in CASES:
                    failed, exact, seconds = run_case(db, writers, increments, docs, options)
                    rows.append((label, writers, increments, docs, failed, exact, seconds))
        finally:
            db.close()
            server.delete_database(name, missing_ok=True)
            server.close()
    print('contention: merge="sum" increments under conflict="rebase", one session per increment')
    head = ("writers x incr", "docs", "failed", "exact", "time")
    print(f"  {'setting':34} {head[0]:>15} {head[1]:>5} {head[2]:>7} {head[3]:>6} {head[4]:>8}")
    for label, writers, increments, docs, failed, exact, seconds in rows:
        case = f"{writers} x {increments}"
        print(f"  {label:34} {case:>15} {docs:>5} {failed:>7} {exact!s:>6} {seconds:7.2f}s")
    print(f"  server: {what}")
    return rows


if __name__ == "__main__":
    main()
