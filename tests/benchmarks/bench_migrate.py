"""Migration throughput: ``couchmapper.migrate`` against a hand-written python-couchdb loop.

Both sides upgrade the same 10,000 version-1 ``Person`` documents to version 3 (split
``name``, rename ``mail``) on a server over HTTP (``COUCHDB_URL`` when set, otherwise the
pinned pouchdb-server), each in a fresh database, ``BATCH`` documents per request:

* ``couchmapper``: ``migrate(db, [Person], batch=BATCH)``: per batch, ``_all_docs`` with the
  documents, a session that loads (upgrades, validates, tracks) them and one ``_bulk_docs``
  flush, plus the ``_local`` checkpoint write;
* ``python-couchdb``: the loop one would write by hand: ``_all_docs`` pages through
  ``couchdb.Database.view``, the same upgrade functions on the dicts, ``Database.update``.

The best of ``ROUNDS`` rounds counts. Run ``python -m tests.benchmarks.bench_migrate``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import couchdb

import couchmapper as cm
from couchmapper.backends.couchdb import CouchDBBackend, CouchDBServer
from couchmapper.migrate import migrate

from .bench_backends import http_server

DOCS = 10_000
BATCH = 1000
ROUNDS = 2


def split_name(doc: dict[str, Any]) -> None:
    """1 -> 2: ``name`` becomes ``first`` and ``last``."""
    doc["first"], _, doc["last"] = doc.pop("name", "").partition(" ")


def rename_mail(doc: dict[str, Any]) -> None:
    """2 -> 3: ``mail`` becomes ``email``."""
    doc["email"] = doc.pop("mail", "")


class BenchPerson(cm.Document, type_name="bench-migrate-person"):
    """The version-3 class; its steps are the functions the hand-written loop calls."""

    first: str = ""
    last: str = ""
    email: str = ""
    age: int = 0

    class Meta:
        version = 3

    step_1 = cm.upgrade(1)(split_name)
    step_2 = cm.upgrade(2)(rename_mail)


def version_1_docs(count: int = DOCS) -> list[dict[str, Any]]:
    """``count`` version-1 documents."""
    return [
        {
            "_id": f"person-{n:06d}",
            "type": "bench-migrate-person",
            "name": f"First{n} Last{n}",
            "mail": f"p{n}@example.org",
            "age": 18 + n % 60,
        }
        for n in range(count)
    ]


def by_hand(database: couchdb.Database, batch: int) -> int:
    """Upgrade every old document with python-couchdb alone; returns how many were written."""
    written = 0
    last: str | None = None
    while True:
        options: dict[str, Any] = {"include_docs": True, "limit": batch + 1}
        if last is not None:
            options["startkey"] = last
        rows = [row for row in database.view("_all_docs", **options) if row.id != last][:batch]
        if not rows:
            return written
        changed = []
        for row in rows:
            doc = dict(row.doc)
            if doc.get("type") != "bench-migrate-person" or doc.get("schema_version", 1) >= 3:
                continue
            split_name(doc)
            rename_mail(doc)
            doc["schema_version"] = 3
            changed.append(doc)
        results = database.update(changed)
        written += sum(1 for ok, _, _ in results if ok)
        last = rows[-1].id


def one_round(url: str, docs: list[dict[str, Any]]) -> tuple[float, float]:
    """Seconds for couchmapper and for the hand-written loop, each on a fresh database."""
    server = CouchDBServer(url, timeout=300)
    names = [f"bench-migrate-{uuid.uuid4().hex}" for _ in range(2)]
    try:
        for name in names:
            seeded = server.create_database(name)
            for start in range(0, len(docs), 5000):
                seeded.bulk_docs(docs[start : start + 5000])
        backend = CouchDBBackend.from_url(f"{url}/{names[0]}", timeout=300)
        started = time.perf_counter()
        report = migrate(backend, [BenchPerson], batch=BATCH)
        mapper = time.perf_counter() - started
        backend.close()
        database = couchdb.Server(url)[names[1]]
        started = time.perf_counter()
        written = by_hand(database, BATCH)
        hand = time.perf_counter() - started
        if report.upgraded != len(docs) or written != len(docs):
            msg = f"not every document was upgraded: {report.upgraded}, {written}"
            raise RuntimeError(msg)
    finally:
        for name in names:
            server.delete_database(name, missing_ok=True)
        server.close()
    return mapper, hand


def main(rounds: int = ROUNDS, count: int = DOCS) -> dict[str, float]:
    """Run the benchmark, print documents per second for both sides, and return them."""
    docs = version_1_docs(count)
    with http_server() as (url, what):
        timings = [one_round(url, docs) for _ in range(rounds)]
    mapper = min(t[0] for t in timings)
    hand = min(t[1] for t in timings)
    print(f"migrate: {count:,} documents v1 -> v3, batch {BATCH}, best of {rounds}")
    print(f"  {'':16} {'seconds':>9} {'docs/s':>9}")
    print(f"  {'couchmapper':16} {mapper:8.2f}s {count / mapper:9,.0f}")
    print(f"  {'python-couchdb':16} {hand:8.2f}s {count / hand:9,.0f}")
    print(f"  server: {what}")
    print(f"  couchmapper takes {mapper / hand:.2f}x the time of the hand-written loop")
    return {"couchmapper_docs_s": count / mapper, "python_couchdb_docs_s": count / hand}


if __name__ == "__main__":
    main()
