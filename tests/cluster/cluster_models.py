"""Models and helpers of the cluster suite (type names prefixed ``cluster-``).

``FIGURES`` collects what the tests measured (catch-up times, 202 counts, contention); the
suite's conftest prints them in the terminal summary.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

from _proxy import RecordingProxy

import couchmapper as cm
from couchmapper.backends.couchdb import CouchDBBackend

from ._cluster import Cluster

FIGURES: list[str] = []


class Tally(cm.Document, type_name="cluster-tally"):
    """A counter that concurrent sessions increment: ``hits`` merges by sum."""

    hits: int = cm.field(default=0, merge="sum")
    label: str = ""

    class Meta:
        conflict = "rebase"


class ResolvingTally(cm.Document, type_name="cluster-resolving-tally"):
    """A counter whose sessions resolve the stored conflicts they load (``Meta.resolve``)."""

    hits: int = cm.field(default=0, merge="sum")
    label: str = ""

    class Meta:
        conflict = "rebase"
        resolve = "merge"


class Item(cm.Document, type_name="cluster-item"):
    """A plain document, many of which a test writes."""

    n: int
    batch: str = ""

    class Meta:
        indexes = [cm.Index("n")]


def figure(text: str) -> None:
    """Record a measured figure for the terminal summary."""
    FIGURES.append(text)


def backend_for(cluster: Cluster, node: int, db: str, **options: Any) -> CouchDBBackend:
    """A ``CouchDBBackend`` for ``db`` coordinated by ``node``."""
    return CouchDBBackend.from_url(cluster.url(node, db), timeout=60, **options)


@contextmanager
def proxied(
    cluster: Cluster, node: int, db: str
) -> Iterator[tuple[RecordingProxy, CouchDBBackend]]:
    """A recording proxy in front of ``node`` and a backend for ``db`` through it.

    The credentials ride in the backend's URL: python-couchdb sends them itself.
    """
    with RecordingProxy(("127.0.0.1", cluster.ports[node - 1])) as proxy:
        backend = CouchDBBackend.from_url(
            f"http://admin:admin@127.0.0.1:{proxy.port}/{quote(db, safe='')}", timeout=60
        )
        proxy.clear()
        try:
            yield proxy, backend
        finally:
            backend.close()


def docs_on(cluster: Cluster, node: int, db: str, **params: Any) -> dict[str, dict[str, Any]]:
    """Every document of ``db`` read through ``node`` (``_all_docs``, with ``_conflicts``)."""
    answer = cluster.get(node, f"/{db}/_all_docs", include_docs=True, conflicts=True, **params)
    return {row["id"]: row["doc"] for row in answer["rows"] if not row["id"].startswith("_")}


def generation(rev: str) -> int:
    """The generation of a revision ``N-hash``."""
    return int(rev.split("-", 1)[0])


def wait_for(
    what: str, check: Callable[[], bool], *, timeout: float = 60.0, interval: float = 0.1
) -> float:
    """Poll ``check`` until it holds; the seconds it took. AssertionError after ``timeout``."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            msg = f"{what}: still not true after {timeout:.0f} s"
            raise AssertionError(msg)
        time.sleep(interval)
    return time.monotonic() - start
