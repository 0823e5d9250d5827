"""Session benchmarks: flush cost does not grow with clean documents; end-to-end vs raw dicts.

1. **Flush planning.** A session holding 100,000 clean loaded documents and 10 dirty ones vs a
   session holding 10 loaded and 10 dirty: the time of ``flush()`` with a backend whose
   ``_bulk_docs`` answers at once (so only the session's own work is timed). Target ratio
   <= 1.2: a flush visits pending documents only, never the identity map.
2. **End to end.** Load 10,000 documents via ``_all_docs``, change a field on each, flush,
   through the dev server (``COUCHDB_URL`` or the pinned pouchdb-server): couchmapper typed
   documents in a Session vs python-couchdb dicts and ``db.update``. Target <= 1.25x.

Run ``python -m tests.benchmarks.bench_session``, or call :func:`main`.
"""

from __future__ import annotations

import gc
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import couchdb

import couchmapper as cm
from couchmapper.backends.couchdb import CouchDBBackend, CouchDBServer

from ._report import ratio
from .bench_backends import http_server

CLEAN = 100_000
DIRTY = 10
E2E_DOCS = 10_000
ROUNDS = 5  # best of 5, the two variants interleaved: the dev server's timing varies a lot


class BenchItem(cm.Document, type_name="bench-session-item"):
    """A small typed document."""

    name: str
    count: int = 0
    tags: list[str] = cm.field(factory=list)


def raw_items(count: int, prefix: str = "item") -> list[dict[str, Any]]:
    """Stored JSON of ``count`` items."""
    return [
        {
            "_id": f"{prefix}-{i:06d}",
            "_rev": "1-0",
            "type": "bench-session-item",
            "name": f"item {i}",
            "count": i,
            "tags": ["a", "b"],
        }
        for i in range(count)
    ]


def _instant_bulk_docs(docs: Sequence[dict[str, Any]], **options: Any) -> list[dict[str, Any]]:
    return [{"ok": True, "id": d["_id"], "rev": "2-0"} for d in docs]


def flush_time(loaded: int, repeats: int = 200) -> float:
    """Median seconds of one flush of DIRTY changed documents among ``loaded`` clean ones."""
    backend = cm.connect()
    backend.bulk_docs = _instant_bulk_docs  # type: ignore[method-assign]
    session = cm.Session(backend)
    objects = session.load_rows(raw_items(loaded), BenchItem)  # kept alive: all stay mapped
    assert session.stats().identity_map == loaded
    gc.collect()
    times = []
    for n in range(repeats):
        for obj in objects[:DIRTY]:
            obj.count = n + 1_000_000
        start = time.perf_counter()
        session.flush()
        times.append(time.perf_counter() - start)
    assert session.stats().dirty == 0
    return statistics.median(times)


def best_of(rounds: int, run: Callable[[], float]) -> float:
    """The fastest of ``rounds`` runs."""
    return min(run() for _ in range(rounds))


def end_to_end(url: str) -> tuple[float, float]:
    """Seconds for load/change/flush of E2E_DOCS documents: couchmapper, raw python-couchdb."""
    server = CouchDBServer(url, timeout=300)
    names: list[str] = []

    def fresh() -> str:
        names.append(f"bench-session-{uuid.uuid4().hex}")
        backend = server.create_database(names[-1])
        docs = [{k: v for k, v in d.items() if k != "_rev"} for d in raw_items(E2E_DOCS)]
        backend.bulk_docs(docs)
        backend.close()
        return names[-1]

    def with_session() -> float:
        name = fresh()
        backend = CouchDBBackend.from_url(f"{url}/{name}", timeout=300)
        start = time.perf_counter()
        session = cm.Session(backend)
        rows = backend.all_docs(include_docs=True)["rows"]
        items = session.load_rows([row["doc"] for row in rows], BenchItem)
        for item in items:
            item.count += 1
        session.flush()
        elapsed = time.perf_counter() - start
        stored = backend.get("item-000007")["count"]
        assert stored == 8, (stored, items[7], session.stats())
        backend.close()
        return elapsed

    def with_dicts() -> float:
        name = fresh()
        db = couchdb.Server(url)[name]
        start = time.perf_counter()
        docs = [row.doc for row in db.view("_all_docs", include_docs=True)]
        for doc in docs:
            doc["count"] += 1
        db.update(docs)
        elapsed = time.perf_counter() - start
        assert db["item-000007"]["count"] == 8
        return elapsed

    try:
        with_session()  # warm-up: connection, code paths
        with_dicts()
        session_times, dict_times = [], []
        for _ in range(ROUNDS):  # interleaved, so a slow phase of the server hits both
            session_times.append(with_session())
            dict_times.append(with_dicts())
        session_time, dict_time = min(session_times), min(dict_times)
    finally:
        for name in names:
            server.delete_database(name, missing_ok=True)
        server.close()
    return session_time, dict_time


def main() -> None:
    """Run both benchmarks and print the figures with their ratios and targets."""
    small = flush_time(DIRTY)
    large = flush_time(CLEAN)
    print(f"flush of {DIRTY} dirty documents (median of 200)")
    print(f"  among {DIRTY:>7,} loaded: {small * 1e3:8.3f} ms")
    print(f"  among {CLEAN:>7,} loaded: {large * 1e3:8.3f} ms")
    print(f"  ratio {large / small:.2f} (target <= 1.2)")
    with http_server() as (url, what):
        session_time, dict_time = end_to_end(url)
    print(f"load {E2E_DOCS:,} via _all_docs, change a field on each, flush ({what})")
    print(f"  couchmapper Session:        {session_time * 1e3:8.1f} ms")
    print(f"  python-couchdb + db.update: {dict_time * 1e3:8.1f} ms")
    print(f"  ratio {session_time / dict_time:.2f} (target <= 1.25)")
    ratio(
        "session",
        f"flush {DIRTY} among {CLEAN:,} loaded",
        large,
        f"among {DIRTY} loaded",
        small,
        goal=1.2,
    )
    ratio(
        "session",
        f"load, change, flush {E2E_DOCS:,} ({what})",
        session_time,
        "python-couchdb dicts",
        dict_time,
        goal=1.25,
    )


if __name__ == "__main__":
    main()
