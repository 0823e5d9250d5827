"""The memory engine against its peers: writes, indexed ``_find``, ``s.all()`` and streaming.

Every row is a ratio against a peer measured in the same run (best of ``ROUNDS``), so the
figures hold on any machine:

Each run takes turns with its peers within every round, so both see the same load, and
times are CPU seconds of this process (``BENCH_ENGINE_CLOCK=wall`` for wall time).

1. **Bulk insert** of 10,000 documents of 10 fields: ``MemoryBackend.bulk_docs`` vs mongomock
   ``insert_many`` and SQLite in-memory (one JSON text column, ``executemany``).
2. **Update all** 10,000 (full writes with their ``_rev``) vs the JSON floor: ``json.dumps`` +
   ``json.loads`` of the same documents.
3. **Indexed ``_find``** (``age == 42`` with a JSON index on ``age``) vs the same query with no
   index, SQLite with an expression index, and mongomock.
4. **``s.all()`` per document** at 1k, 10k and 100k (should be flat), and ``s.all()`` vs
   ``s.view("_all_docs", include_docs=True)`` on the same engine.
5. **Streaming** 5,000 and 20,000 documents through ``find_iter``: the tracemalloc peak
   (should not grow with N).

Run ``python -m tests.benchmarks.bench_engine``, or call :func:`main`. ``BENCH_ENGINE_MAX``
caps the largest scaling size (default 100,000).
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import sqlite3
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import mongomock

import couchmapper as cm
from couchmapper.backends.memory import MemoryBackend, MemoryServer

from ._report import ratio

DOCS = 10_000
ROUNDS = 5
SCALES = (1_000, 10_000, 100_000)
SCALE_ROUNDS = 3
STREAM_SIZES = (5_000, 20_000)


class EnginePerson(cm.Document, type_name="bench-engine-person"):
    """A typed document of ten fields."""

    name: str
    age: int
    city: str
    zip: str
    score: float
    active: bool
    tags: list[str] = cm.field(factory=list)
    level: int = 0
    note: str = ""


def make_docs(count: int = DOCS) -> list[dict[str, Any]]:
    """``count`` documents of 10 fields (``_id`` included) with sortable ids."""
    return [
        {
            "_id": f"p-{i:07d}",
            "type": "bench-engine-person",
            "name": f"Person {i}",
            "age": 18 + i % 60,
            "city": "Oslo" if i % 3 else "Rome",
            "zip": f"{i % 10000:04d}",
            "score": i / 7,
            "active": bool(i % 2),
            "tags": ["a", "b"] if i % 2 else ["c"],
            "level": i % 5,
        }
        for i in range(count)
    ]


def fresh_backend() -> MemoryBackend:
    """A new memory database on its own server."""
    return MemoryServer().create("bench-engine")


def best(rounds: int, *runs: Callable[[], float]) -> list[float]:
    """The smallest of ``rounds`` timings of each run, the runs taking turns in each round.

    Taking turns puts a run and its peer under the same load of a shared machine.
    """
    found = [float("inf")] * len(runs)
    for _ in range(rounds):
        for position, run in enumerate(runs):
            found[position] = min(found[position], run())
    return found


def timed(action: Callable[[], Any]) -> float:
    """Seconds ``action`` takes, with the collector run before and paused during it.

    CPU seconds of this process by default: on a shared machine, wall time also counts
    the other processes' turns. ``BENCH_ENGINE_CLOCK=wall`` measures wall time instead.
    """
    clock = (
        time.perf_counter if os.environ.get("BENCH_ENGINE_CLOCK") == "wall" else time.process_time
    )
    gc.collect()
    gc.disable()
    try:
        started = clock()
        action()
        return clock() - started
    finally:
        gc.enable()


# -- writes --------------------------------------------------------------------------


def engine_insert(docs: list[dict[str, Any]]) -> float:
    """One ``bulk_docs`` of every document into a fresh database."""
    db = fresh_backend()
    return timed(lambda: _check_ok(db.bulk_docs(docs), len(docs)))


def mongomock_insert(docs: list[dict[str, Any]]) -> float:
    """mongomock ``insert_many`` into a fresh collection."""
    collection = mongomock.MongoClient().db.people
    plain = [{k: v for k, v in d.items() if k != "_id"} | {"_id": d["_id"]} for d in docs]
    return timed(lambda: collection.insert_many(plain))


def sqlite_insert(docs: list[dict[str, Any]]) -> float:
    """SQLite in-memory: ``(id, body)`` rows with the JSON text of each document."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE docs (id TEXT PRIMARY KEY, body TEXT NOT NULL)")

    def run() -> None:
        rows = [(d["_id"], json.dumps(d)) for d in docs]
        conn.executemany("INSERT INTO docs VALUES (?, ?)", rows)
        conn.commit()

    return timed(run)


def engine_update(docs: list[dict[str, Any]]) -> float:
    """Write every document again (a changed field, the current ``_rev``)."""
    db = fresh_backend()
    results = db.bulk_docs(docs)
    updated = [
        {**d, "_rev": r["rev"], "level": d["level"] + 1} for d, r in zip(docs, results, strict=True)
    ]
    return timed(lambda: _check_ok(db.bulk_docs(updated), len(docs)))


def json_floor(docs: list[dict[str, Any]]) -> float:
    """``json.loads(json.dumps(doc))`` of every document: the cost of one JSON copy."""
    return timed(lambda: [json.loads(json.dumps(d)) for d in docs])


def _check_ok(results: list[dict[str, Any]], count: int) -> None:
    if len(results) != count or not all(r.get("ok") for r in results):
        msg = "bulk_docs did not write every document"
        raise RuntimeError(msg)


# -- indexed _find -------------------------------------------------------------------

QUERY_REPEAT = 20  # queries per timing: one indexed query is well under a millisecond


def find_times(docs: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds per ``age == 42`` query: engine indexed and unindexed, SQLite, mongomock."""
    expected = sum(1 for d in docs if d["age"] == 42)
    plain = fresh_backend()
    plain.bulk_docs(docs)
    indexed = fresh_backend()
    indexed.bulk_docs(docs)
    indexed.create_index({"index": {"fields": ["age"]}, "name": "by-age"})
    query = {"selector": {"age": 42}, "limit": 1000}

    def engine(db: MemoryBackend) -> Callable[[], float]:
        def run() -> float:
            def queries() -> None:
                for _ in range(QUERY_REPEAT):
                    _check_count(len(db.find(query)["docs"]), expected)

            return timed(queries) / QUERY_REPEAT

        return run

    indexed.find(query)  # the first query builds the index, as on CouchDB
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE docs (id TEXT PRIMARY KEY, body TEXT NOT NULL)")
    conn.executemany("INSERT INTO docs VALUES (?, ?)", [(d["_id"], json.dumps(d)) for d in docs])
    conn.execute("CREATE INDEX by_age ON docs (json_extract(body, '$.age'))")
    conn.commit()

    def sqlite_run() -> float:
        def queries() -> None:
            for _ in range(QUERY_REPEAT):
                sql = "SELECT body FROM docs WHERE json_extract(body, '$.age') = ?"
                rows = [json.loads(b) for (b,) in conn.execute(sql, (42,))]
                _check_count(len(rows), expected)

        return timed(queries) / QUERY_REPEAT

    collection = mongomock.MongoClient().db.people
    collection.insert_many([dict(d) for d in docs])
    collection.create_index("age")

    def mongo_run() -> float:
        def queries() -> None:
            for _ in range(QUERY_REPEAT):
                _check_count(len(list(collection.find({"age": 42}))), expected)

        return timed(queries) / QUERY_REPEAT

    times = best(ROUNDS, engine(indexed), engine(plain), sqlite_run, mongo_run)
    return dict(zip(("indexed", "unindexed", "sqlite", "mongomock"), times, strict=True))


def _check_count(found: int, expected: int) -> None:
    if found != expected:
        msg = f"the query found {found} documents, not {expected}"
        raise RuntimeError(msg)


# -- s.all() -------------------------------------------------------------------------


def loaded_backend(count: int) -> MemoryBackend:
    """A memory database holding ``count`` person documents."""
    db = fresh_backend()
    docs = make_docs(count)
    for start in range(0, count, 10_000):
        _check_ok(db.bulk_docs(docs[start : start + 10_000]), len(docs[start : start + 10_000]))
    return db


def all_time(db: MemoryBackend, count: int) -> float:
    """Seconds for ``list(s.all(EnginePerson))`` in a fresh session."""

    def run() -> None:
        with cm.Session(db) as s:
            _check_count(sum(1 for _ in s.all(EnginePerson)), count)

    return timed(run)


def all_docs_time(db: MemoryBackend, count: int) -> float:
    """Seconds for ``s.view("_all_docs", include_docs=True)`` loading the same documents."""

    def run() -> None:
        with cm.Session(db) as s:
            rows = s.view("_all_docs", include_docs=True)
            _check_count(sum(1 for row in rows if row.doc is not None), count)

    return timed(run)


def scaling(sizes: tuple[int, ...]) -> dict[int, float]:
    """Seconds per document of ``s.all()`` at each size, best of ``SCALE_ROUNDS``.

    The sizes take turns within each round, so a change in the machine's load touches all.
    """
    backends = {size: loaded_backend(size) for size in sizes}
    best_time = dict.fromkeys(sizes, float("inf"))
    for _ in range(SCALE_ROUNDS):
        for size, db in backends.items():
            best_time[size] = min(best_time[size], all_time(db, size))
    for db in backends.values():
        db.drop()
    return {size: seconds / size for size, seconds in best_time.items()}


# -- streaming -----------------------------------------------------------------------


def stream_peak(count: int, *, warm: bool = True) -> int:
    """The tracemalloc peak (bytes) of streaming ``count`` documents through ``find_iter``.

    ``warm``: one query first, so the engine's id order (database state like the documents,
    built by the first query as CouchDB builds an index on read) is not counted.
    """
    db = loaded_backend(count)
    if warm:
        db.find({"selector": {}, "limit": 1})
    gc.collect()
    tracemalloc.start()
    try:
        with cm.Session(db) as s:
            seen = sum(1 for _ in s.find_iter(EnginePerson, batch=1000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    _check_count(seen, count)
    db.drop()
    return peak


# -- report --------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:9.3f} ms"


def main() -> None:
    """Run every row and print its figures with the ratio against its peer."""
    docs = make_docs()
    insert, mongo, lite = best(
        ROUNDS,
        lambda: engine_insert(docs),
        lambda: mongomock_insert(docs),
        lambda: sqlite_insert(docs),
    )
    print(f"bulk insert {DOCS:,} documents (best of {ROUNDS})")
    print(f"  memory engine bulk_docs:   {_ms(insert)}")
    print(f"  mongomock insert_many:     {_ms(mongo)}")
    print(f"  SQLite in-memory JSON:     {_ms(lite)}")
    print(f"  ratio {insert / mongo:.2f}x mongomock (target <= 1.0), {insert / lite:.2f}x SQLite")
    print("  (target <= 3)")

    update, floor = best(ROUNDS, lambda: engine_update(docs), lambda: json_floor(docs))
    print(f"update all {DOCS:,} documents (best of {ROUNDS})")
    print(f"  memory engine bulk_docs:   {_ms(update)}")
    print(f"  json dumps+loads floor:    {_ms(floor)}")
    print(f"  ratio {update / floor:.2f}x the JSON floor (target <= 3)")

    found = find_times(docs)
    print(f"_find age == 42 over {DOCS:,} documents (per query, best of {ROUNDS})")
    print(f"  memory engine, indexed:    {_ms(found['indexed'])}")
    print(f"  memory engine, no index:   {_ms(found['unindexed'])}")
    print(f"  SQLite with an index:      {_ms(found['sqlite'])}")
    print(f"  mongomock:                 {_ms(found['mongomock'])}")
    print(
        f"  ratio {found['indexed'] / found['unindexed']:.3f}x the scan (target <= 0.05), "
        f"{found['indexed'] / found['sqlite']:.2f}x SQLite (target <= 2), "
        f"{found['indexed'] / found['mongomock']:.3f}x mongomock"
    )

    limit = int(os.environ.get("BENCH_ENGINE_MAX", SCALES[-1]))
    per_doc = scaling(tuple(n for n in SCALES if n <= limit))
    print(f"s.all() per document (best of {SCALE_ROUNDS}, the sizes interleaved)")
    sizes = sorted(per_doc)
    for size in sizes:
        print(f"  {size:>7,} documents:   {per_doc[size] * 1e6:9.2f} us")
    for small, large in itertools.pairwise(sizes):
        growth = per_doc[large] / per_doc[small]
        print(f"  growth {small:,} -> {large:,}: x{growth:.2f} (target <= 1.2)")

    db = loaded_backend(DOCS)
    every, listed = best(ROUNDS, lambda: all_time(db, DOCS), lambda: all_docs_time(db, DOCS))
    print(f"s.all() vs _all_docs + load, {DOCS:,} documents (best of {ROUNDS})")
    print(f"  s.all():                   {_ms(every)}")
    print(f"  _all_docs include_docs:    {_ms(listed)}")
    print(f"  ratio {every / listed:.2f} (target <= 1.3)")

    peaks = {n: stream_peak(n) for n in STREAM_SIZES}
    cold = {n: stream_peak(n, warm=False) for n in STREAM_SIZES}
    print("streaming through find_iter (batch 1000): tracemalloc peak")
    for n, peak in peaks.items():
        print(f"  {n:>7,} documents:   {peak / 2**20:9.2f} MiB", end="")
        print(f"   (first query on the database: {cold[n] / 2**20:.2f} MiB, with its id order)")
    first, last = STREAM_SIZES[0], STREAM_SIZES[-1]
    print(f"  ratio {peaks[last] / peaks[first]:.2f} for {last // first}x N (target: flat, ~1)")
    times = {"insert": insert, "mongo": mongo, "lite": lite, "update": update, "floor": floor}
    _plot({**times, **found, "every": every, "listed": listed})


def _plot(t: dict[str, float]) -> None:
    """The rows above, for the plots ``make bench`` writes (tests/benchmarks/_report.py)."""
    ratio("engine", "bulk insert 10k", t["insert"], "mongomock insert_many", t["mongo"], goal=1.0)
    ratio("engine", "bulk insert 10k", t["insert"], "SQLite in-memory JSON", t["lite"], goal=3.0)
    ratio("engine", "update all 10k", t["update"], "json dumps+loads floor", t["floor"], goal=3.0)
    ratio("engine", "indexed _find", t["indexed"], "the unindexed scan", t["unindexed"], goal=0.05)
    ratio("engine", "indexed _find", t["indexed"], "SQLite with an index", t["sqlite"], goal=2.0)
    ratio("engine", "indexed _find", t["indexed"], "mongomock find", t["mongomock"])
    ratio("engine", "s.all()", t["every"], "_all_docs + load", t["listed"], goal=1.3)


if __name__ == "__main__":
    main()
