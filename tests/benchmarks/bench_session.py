"""Session benchmarks: flush cost does not grow with clean documents; end-to-end vs raw dicts.

1. **Flush planning.** A session holding 100,000 clean loaded documents and 10 dirty ones vs a
   session holding 10 loaded and 10 dirty: the time of ``flush()`` with a backend whose
   ``_bulk_docs`` answers at once (so only the session's own work is timed). Target ratio
   <= 1.2: a flush visits pending documents only, never the identity map.
2. **End to end.** Load 10,000 documents via ``_all_docs``, change a field on each, flush,
   through the dev server (``COUCHDB_URL`` -- Apache CouchDB 3.5 for the issue's figures --
   or the pinned pouchdb-server): couchmapper typed documents in a Session vs python-couchdb
   dicts and ``db.update`` (target <= 1.05x), beside the floor: the same two requests over
   ``http.client`` with the ``_bulk_docs`` body encoded before the timer starts. The garbage
   collector's time in each run (``gc.callbacks``) is printed beside the wall times.

Run ``python -m tests.benchmarks.bench_session``, or call :func:`main`.
"""

from __future__ import annotations

import base64
import gc
import http.client
import json
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import couchdb

import couchmapper as cm
from couchmapper.backends.couchdb import CouchDBBackend, CouchDBServer

from ._report import ratio
from .bench_backends import http_server

CLEAN = 100_000
DIRTY = 10
E2E_DOCS = 10_000
ROUNDS = 5  # best of 5, the variants interleaved: the dev server's timing varies a lot
E2E_TARGET = 1.05


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


class GCClock:
    """CPU time spent in the garbage collector (``gc.callbacks``) while it is installed.

    CPU time of this thread, not wall time: on a shared machine a collection may be
    descheduled halfway, which wall time would count.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = 0
        self._began = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.thread_time()
        else:
            self.seconds += time.thread_time() - self._began
            self.collections += 1

    def __enter__(self) -> GCClock:
        gc.collect()  # start each run from the same clean heap
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


Run = tuple[float, float, float]  # (wall, Python CPU, GC) seconds


def _floor_request(url: str, name: str) -> Callable[[], float]:
    """The floor: GET ``_all_docs`` and POST a pre-encoded ``_bulk_docs`` over http.client."""
    parts = urlsplit(url)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if parts.username:
        token = f"{parts.username}:{parts.password or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(token).decode()
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=300)
    conn.request("GET", f"/{name}/_all_docs?include_docs=true", headers=headers)
    rows = json.loads(conn.getresponse().read())["rows"]
    changed = [dict(row["doc"], count=row["doc"]["count"] + 1) for row in rows]
    body = json.dumps({"docs": changed}).encode()

    def run() -> float:
        start = time.perf_counter()
        conn.request("GET", f"/{name}/_all_docs?include_docs=true", headers=headers)
        loaded = conn.getresponse().read()
        conn.request("POST", f"/{name}/_bulk_docs", body=body, headers=headers)
        answer = conn.getresponse().read()
        elapsed = time.perf_counter() - start
        assert len(loaded) > E2E_DOCS and answer.count(b'"ok":true') == E2E_DOCS
        conn.close()
        return elapsed

    return run


def end_to_end(url: str) -> dict[str, Run]:
    """Best (wall, GC) seconds of load/change/flush of E2E_DOCS documents, per variant."""
    server = CouchDBServer(url, timeout=300)
    names: list[str] = []

    def fresh() -> str:
        names.append(f"bench-session-{uuid.uuid4().hex}")
        backend = server.create_database(names[-1])
        docs = [{k: v for k, v in d.items() if k != "_rev"} for d in raw_items(E2E_DOCS)]
        backend.bulk_docs(docs)
        backend.close()
        return names[-1]

    def with_session() -> Run:
        name = fresh()
        backend = CouchDBBackend.from_url(f"{url}/{name}", timeout=300)
        clock = GCClock().__enter__()
        start, cpu = time.perf_counter(), time.process_time()
        session = cm.Session(backend)
        # As the python-couchdb variant below: only the documents outlive the answer.
        docs = [row["doc"] for row in backend.all_docs(include_docs=True)["rows"]]
        items = session.load_rows(docs, BenchItem)
        for item in items:
            item.count += 1
        session.flush()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        clock.__exit__()
        stored = backend.get("item-000007")["count"]
        assert stored == 8, (stored, items[7], session.stats())
        backend.close()
        return elapsed, cpu, clock.seconds

    def with_dicts() -> Run:
        name = fresh()
        db = couchdb.Server(url)[name]
        clock = GCClock().__enter__()
        start, cpu = time.perf_counter(), time.process_time()
        docs = [row.doc for row in db.view("_all_docs", include_docs=True)]
        for doc in docs:
            doc["count"] += 1
        db.update(docs)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        clock.__exit__()
        assert db["item-000007"]["count"] == 8
        return elapsed, cpu, clock.seconds

    def floor() -> Run:
        run = _floor_request(url, fresh())
        with GCClock() as clock:
            cpu = time.process_time()
            elapsed = run()
            cpu = time.process_time() - cpu
        return elapsed, cpu, clock.seconds

    variants = {"session": with_session, "dicts": with_dicts, "floor": floor}
    try:
        for variant in variants.values():  # warm-up: connections, code paths
            variant()
        runs: dict[str, list[Run]] = {key: [] for key in variants}
        for _ in range(ROUNDS):  # interleaved, so a slow phase of the server hits all
            for key, variant in variants.items():
                runs[key].append(variant())
    finally:
        for name in names:
            server.delete_database(name, missing_ok=True)
        server.close()
    # The best of each column apart: CPU and GC time vary apart from the server's wall time.
    return {
        key: (min(r[0] for r in got), min(r[1] for r in got), min(r[2] for r in got))
        for key, got in runs.items()
    }


def main() -> None:
    """Run both benchmarks and print the figures with their ratios and targets."""
    small = flush_time(DIRTY)
    large = flush_time(CLEAN)
    print(f"flush of {DIRTY} dirty documents (median of 200)")
    print(f"  among {DIRTY:>7,} loaded: {small * 1e3:8.3f} ms")
    print(f"  among {CLEAN:>7,} loaded: {large * 1e3:8.3f} ms")
    print(f"  ratio {large / small:.2f} (target <= 1.2)")
    with http_server() as (url, what):
        runs = end_to_end(url)
    print(f"load {E2E_DOCS:,} via _all_docs, change a field on each, flush ({what}), best of 5")
    print(f"  {'':34} {'wall':>9} {'our CPU':>9} {'GC':>9}")
    labels = {
        "session": "couchmapper Session",
        "dicts": "python-couchdb + db.update",
        "floor": "http.client, pre-encoded body",
    }
    for key, label in labels.items():
        wall, cpu, gc_time = runs[key]
        print(f"  {label:34} {wall * 1e3:6.0f} ms {cpu * 1e3:6.0f} ms {gc_time * 1e3:6.1f} ms")
    wall_ratio = runs["session"][0] / runs["dicts"][0]
    print(
        f"  ours/raw dicts = {wall_ratio:.2f}x  (target <= {E2E_TARGET}x: "
        f"{'met' if wall_ratio <= E2E_TARGET else 'NOT met'})"
    )
    print(f"  ours/floor     = {runs['session'][0] / runs['floor'][0]:.2f}x")
    print(f"  CPU ours/raw   = {runs['session'][1] / runs['dicts'][1]:.2f}x (the Python side only)")
    print(f"  GC ours/raw    = {runs['session'][2] * 1e3:.1f} ms / {runs['dicts'][2] * 1e3:.1f} ms")
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
        runs["session"][0],
        "python-couchdb dicts",
        runs["dicts"][0],
        goal=E2E_TARGET,
    )
    ratio(
        "session",
        f"load, change, flush {E2E_DOCS:,} ({what})",
        runs["session"][0],
        "http.client, pre-encoded body",
        runs["floor"][0],
    )


if __name__ == "__main__":
    main()
