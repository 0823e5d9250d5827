"""A 50,000-document flush: one ``_bulk_docs`` request against the default split.

The same 50,000 new documents are flushed by a session into a fresh database twice: with
``batch_size=50_000`` (one request, what every flush did before the default split) and with
the defaults (requests of at most 5,000 documents / 16 MiB). The server is ``COUCHDB_URL``
when it is set, otherwise the pinned pouchdb-server. Run
``python -m tests.benchmarks.bench_chunks``, or call :func:`main`.
"""

from __future__ import annotations

import time
import uuid

import couchmapper as cm
from couchmapper.backends.couchdb import CouchDBServer

from .bench_backends import http_server

DOCS = 50_000


class Row(cm.Document, type_name="bench-row"):
    """A small document."""

    name: str
    n: int = 0


def flush_seconds(server: CouchDBServer, count: int, batch_size: int | None) -> tuple[float, int]:
    """Seconds to flush ``count`` new documents into a fresh database, and the requests made."""
    name = f"bench-{uuid.uuid4().hex}"
    db = server.create_database(name)
    try:
        s = cm.Session(db, batch_size=batch_size)
        s.add_all(Row(name=f"row {n}", n=n, id=f"row-{n:06d}") for n in range(count))
        requests: list[int] = []
        began = time.perf_counter()
        s.flush(progress=lambda done, total: requests.append(done))
        return time.perf_counter() - began, len(requests)
    finally:
        db.close()
        server.delete_database(name, missing_ok=True)


def main(count: int = DOCS) -> dict[str, float]:
    """Run both flushes, print and return their times."""
    with http_server() as (url, what):
        server = CouchDBServer(url, timeout=600)
        try:
            one, one_requests = flush_seconds(server, count, batch_size=count)
            split, split_requests = flush_seconds(server, count, batch_size=None)
        finally:
            server.close()
    print(f"chunks: a flush of {count:,} new documents")
    print(f"  one request (batch_size={count})   {one:7.2f}s  {one_requests} request(s)")
    print(f"  defaults (<= 5,000 docs / 16 MiB)   {split:7.2f}s  {split_requests} request(s)")
    print(f"  server: {what}")
    return {"one_s": one, "split_s": split}


if __name__ == "__main__":
    main()
