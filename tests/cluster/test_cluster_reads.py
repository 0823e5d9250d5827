"""Reads and Mango queries through a node that was down while documents were written.

A restarted node answers ``/_up`` before internal replication has copied to it what it
missed. Reads that consult a quorum (a document ``GET`` with the default ``r=2``, or
``r=3``) see the newest revision at once: two of the three copies have it. Reads answered
from one copy per shard range (``_all_docs``, Mango ``_find``, and a ``GET`` with ``r=1``)
may use the restarted node's own stale copy until it has caught up: this test measures
that window and asserts that it closes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import couchmapper as cm

from ._cluster import Cluster
from .cluster_models import Item, Tally, backend_for, docs_on, figure, wait_for

MISSED = 5000  # documents written while node 3 is down
SEEDED = 10


def one_copy_reads(cluster: Cluster, db: str, s: cm.Session) -> dict[str, Callable[[], Any]]:
    """The reads through node 3 that may be answered from one copy per shard range."""

    def mango_r2() -> Any:
        """Matches of a ``_find`` that reads each found document from two copies."""
        query = {"selector": {"n": {"$gte": 1000}}, "fields": ["_id"], "limit": 2 * MISSED}
        found = cluster.request(3, "POST", f"/{db}/_find", {**query, "r": 2})
        return len(found.body.get("docs", [])) if found.status == 200 else found.status

    return {
        "GET r=1": lambda: cluster.request(3, "GET", f"/{db}/t0", r=1).body.get("hits"),
        "_all_docs total_rows": lambda: cluster.get(3, f"/{db}/_all_docs", limit=0)["total_rows"],
        "Mango count (session)": lambda: s.count(Item, Item.n >= 1000),
        "Mango _find r=2": mango_r2,
    }


def write_while_node_3_is_down(cluster: Cluster, db: str) -> int:
    """Seed with every node up, then write ``MISSED`` items and set t0 to 7 with node 3 down.

    Returns how many rows ``_all_docs`` then has (the index's design document included).
    """
    backend = backend_for(cluster, 1, db)
    cm.sync_design(backend, Item)  # the Mango index on n
    s = cm.Session(backend, batch_size=1000)
    s.add_all([Item(n=k, id=f"seed-{k}") for k in range(SEEDED)])
    s.add(Tally(id="t0"))
    s.flush()
    wait_for(
        "every node serves the seed",
        lambda: all(len(docs_on(cluster, n, db)) == SEEDED + 1 for n in cluster.nodes),
    )
    cluster.kill(3)
    s.add_all([Item(n=1000 + k, id=f"missed-{k:05d}") for k in range(MISSED)])
    tally = s.get(Tally, "t0")
    assert tally is not None
    tally.hits = 7
    s.flush()
    backend.close()
    return SEEDED + 1 + 1 + MISSED


def measure_catch_up(
    reads: dict[str, Callable[[], Any]], wanted: dict[str, Any], since: float
) -> tuple[dict[str, Any], dict[str, float]]:
    """Poll every read until it answers ``wanted``: first answers, and seconds from ``since``.

    Groups of reads are polled in their own threads, so a slow Mango query does not delay
    the fast reads. Bounded: AssertionError after 120 s.
    """
    first: dict[str, Any] = {}
    current_at: dict[str, float] = {}
    failures: list[BaseException] = []

    def poll(names: list[str]) -> None:
        """Read ``names`` in turn until each is current."""

        def caught_up() -> bool:
            """One round of the reads not current yet."""
            for name in names:
                if name not in current_at:
                    value = reads[name]()
                    first.setdefault(name, value)
                    if value == wanted[name]:
                        current_at[name] = time.monotonic() - since
            return all(name in current_at for name in names)

        try:
            wait_for(f"node 3 answers {names} with the writes it missed", caught_up, timeout=120)
        except BaseException as exc:  # re-raised by the caller's thread
            failures.append(exc)

    groups = [["GET r=1", "_all_docs total_rows"], ["Mango _find r=2"], ["Mango count (session)"]]
    threads = [threading.Thread(target=poll, args=(group,)) for group in groups]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=150)
    assert not any(t.is_alive() for t in threads)
    if failures:
        raise failures[0]
    return first, current_at


def test_rejoined_node_catches_up(cluster: Cluster, cluster_db: str) -> None:
    """Quorum reads through a rejoined node are current at once; one-copy reads catch up."""
    everything = write_while_node_3_is_down(cluster, cluster_db)
    cluster.restart(3)
    back = time.monotonic()
    # Quorum reads: current at once.
    reader = cm.Session(backend_for(cluster, 3, cluster_db))
    assert cluster.get(3, f"/{cluster_db}/t0")["hits"] == 7
    assert cluster.get(3, f"/{cluster_db}/t0", r=3)["hits"] == 7
    got = reader.get(Tally, "t0")
    assert got is not None and got.hits == 7
    # One-copy reads: each is current in the end (its first answer may not be).
    wanted = {
        "GET r=1": 7,
        "_all_docs total_rows": everything,
        "Mango count (session)": MISSED,
        "Mango _find r=2": MISSED,
    }
    reads = one_copy_reads(cluster, cluster_db, reader)
    first, current_at = measure_catch_up(reads, wanted, back)
    assert set(current_at) == set(wanted)
    stale = {name: first[name] for name in reads if first[name] != wanted[name]}
    figure(
        f"rejoined node ({MISSED} documents written while it was down): quorum GETs (r=2, "
        f"r=3, Session.get) current at once; first answers that were stale: {stale or 'none'}; "
        "current after (s from /_up): "
        + ", ".join(f"{name} {seconds:.2f}" for name, seconds in current_at.items())
    )
    reader.close()
