"""A 48 MiB attachment up and down: couchmapper's session vs python-couchdb, same server, same run.

One round, on each side, with a fresh database and the same file of random bytes:

* ``couchmapper``: a document with ``cm.Attachment(open(file, "rb"))`` is flushed (the
  document in ``_bulk_docs``, then the attachment streamed with its own ``PUT``), then read
  back through ``att.open()`` a MiB at a time (digest checked);
* ``python-couchdb``: ``db.save(doc)``, ``db.put_attachment(doc, file, name)`` (it streams
  the file object, chunked), then ``db.get_attachment(doc, name).read()`` in MiB pieces.

The server is ``COUCHDB_URL`` when set, otherwise the pinned pouchdb-server started here.
The best of ``ROUNDS`` rounds counts (least noise on a shared machine). Run
``python -m tests.benchmarks.bench_attachments``, or call :func:`main`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import couchdb

import couchmapper as cm
from couchmapper.backends.couchdb import CouchDBBackend, CouchDBServer

from .bench_backends import http_server

MiB = 1 << 20
SIZE = 48 * MiB
ROUNDS = 2


class BenchFile(cm.Document, type_name="bench-file"):
    """The document the file is attached to."""

    label: str = ""


def make_file(directory: Path, size: int) -> tuple[Path, str]:
    """A file of ``size`` random bytes, and their sha256."""
    path = directory / "bench.bin"
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            piece = os.urandom(min(MiB, left))
            digest.update(piece)
            out.write(piece)
            left -= len(piece)
    return path, digest.hexdigest()


def couchmapper_round(url: str, path: Path, expected: str) -> tuple[float, float]:
    """Seconds to flush the document with the file, and to read the file back."""
    backend = CouchDBBackend.from_url(url, timeout=300)
    try:
        s = cm.Session(backend)
        started = time.perf_counter()
        with path.open("rb") as source:
            doc = BenchFile(id="f", label="bench")
            doc.attachments["f.bin"] = cm.Attachment(source, "application/octet-stream")
            s.add(doc)
            s.flush()
        written = time.perf_counter()
        loaded = cm.Session(backend).get(BenchFile, "f")
        assert loaded is not None
        got = hashlib.sha256()
        with loaded.attachments["f.bin"].open() as stream:
            while piece := stream.read(MiB):
                got.update(piece)
        read = time.perf_counter()
    finally:
        backend.close()
    _check(got.hexdigest(), expected)
    return written - started, read - written


def python_couchdb_round(url: str, path: Path, expected: str) -> tuple[float, float]:
    """The same with python-couchdb's ``put_attachment`` and ``get_attachment``."""
    db = couchdb.Database(url)
    started = time.perf_counter()
    doc = {"_id": "f", "type": "bench-file", "label": "bench"}
    db.save(doc)
    with path.open("rb") as source:
        db.put_attachment(doc, source, "f.bin", "application/octet-stream")
    written = time.perf_counter()
    got = hashlib.sha256()
    stream = db.get_attachment("f", "f.bin")
    assert stream is not None
    while piece := stream.read(MiB):
        got.update(piece)
    read = time.perf_counter()
    _check(got.hexdigest(), expected)
    return written - started, read - written


def _check(got: str, expected: str) -> None:
    if got != expected:
        msg = "the attachment read back differs from the file"
        raise RuntimeError(msg)


def best_of(
    rounds: int,
    one: Callable[[str, Path, str], tuple[float, float]],
    fresh: Callable[[], str],
    path: Path,
    expected: str,
) -> tuple[float, float, float]:
    """The best (upload, download, total) seconds over ``rounds`` fresh databases."""
    timings = [one(fresh(), path, expected) for _ in range(rounds)]
    up, down = min(timings, key=sum)
    return up, down, up + down


def main(rounds: int = ROUNDS, size: int = SIZE) -> dict[str, float]:
    """Run both sides, print the times and the ratios, and return them."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-att-") as workdir,
        http_server() as (
            url,
            what,
        ),
    ):
        path, expected = make_file(Path(workdir), size)
        server = CouchDBServer(url, timeout=300)
        names: list[str] = []

        def fresh() -> str:
            names.append(f"bench-{uuid.uuid4().hex}")
            server.create_database(names[-1])
            return f"{url}/{names[-1]}"

        try:
            ours = best_of(rounds, couchmapper_round, fresh, path, expected)
            theirs = best_of(rounds, python_couchdb_round, fresh, path, expected)
        finally:
            for name in names:
                server.delete_database(name, missing_ok=True)
            server.close()
    print(f"attachments: {size // MiB} MiB up and down, best of {rounds} ({what})")
    print(f"  {'':16} {'upload':>9} {'download':>9} {'total':>9}")
    for label, (up, down, total) in (("couchmapper", ours), ("python-couchdb", theirs)):
        print(f"  {label:16} {up:8.2f}s {down:8.2f}s {total:8.2f}s")
    ratios = [t / o if o else float("inf") for o, t in zip(ours, theirs, strict=True)]
    print(
        f"  python-couchdb time / couchmapper time: upload {ratios[0]:.2f}x, "
        f"download {ratios[1]:.2f}x, total {ratios[2]:.2f}x"
    )
    return {
        "couchmapper_s": ours[2],
        "python_couchdb_s": theirs[2],
        "upload_ratio": ratios[0],
        "download_ratio": ratios[1],
    }


if __name__ == "__main__":
    main()
