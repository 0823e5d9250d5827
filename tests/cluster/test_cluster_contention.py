"""Writers on different nodes of a cluster incrementing the same documents (rebase + sum).

Each thread has its own session on its own node. A 409 from any coordinator makes the session
fetch the current version and re-apply its delta (``merge="sum"``). What a cluster adds: two
writers that loaded the same revision and made the same edit produce the *same* revision id
(CouchDB's revisions hash the content), and when each reached a different copy first, one of
them is told 201 and the other 202 ``accepted`` for that one revision: one increment is gone
and nothing on the server shows it. ``WriteResult.accepted`` is the only trace, so this test
asserts what does hold (no stored conflicts, identical totals on every node, one revision
per increment kept, exact totals whenever no write was only accepted) and records how many
increments such collisions cost; docs/backends.md ("Clusters") explains it.
"""

from __future__ import annotations

import threading
import time

import couchmapper as cm
from couchmapper.orm.merge import WriteResult

from ._cluster import Cluster
from .cluster_models import Tally, backend_for, docs_on, figure, generation, wait_for

ROUNDS = 15  # sessions per writer
TALLIES = 3
REQUESTS: list[int] = []  # requests per session (a get_many, then _bulk_docs and rebases)


def writer(
    cluster: Cluster, node: int, db: str, results: list[WriteResult], errors: list[str]
) -> None:
    """``ROUNDS`` sessions on ``node``, each adding 1 to every tally and flushing."""
    backend = backend_for(cluster, node, db)
    try:
        for _round in range(ROUNDS):
            s = cm.Session(backend, conflict="rebase")  # default backoff and time budget
            for tally in s.get_many(Tally, [f"t{i}" for i in range(TALLIES)]):
                assert tally is not None
                tally.hits += 1
            try:
                results.extend(s.flush())
            except cm.CouchMapperError as exc:
                errors.append(f"node {node}: {exc}")
            REQUESTS.append(s.stats().requests)
            s.close()
    finally:
        backend.close()


def run_writers(cluster: Cluster, db: str) -> tuple[list[WriteResult], float]:
    """One writer thread per node, all at once; every result, and the seconds they took."""
    results: dict[int, list[WriteResult]] = {n: [] for n in cluster.nodes}
    errors: list[str] = []
    threads = [
        threading.Thread(target=writer, args=(cluster, n, db, results[n], errors))
        for n in cluster.nodes
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    elapsed = time.monotonic() - started
    assert not any(t.is_alive() for t in threads), "a writer did not finish in 240 s"
    assert errors == []
    return [r for rs in results.values() for r in rs], elapsed


def check_tallies(
    cluster: Cluster, db: str, written: list[WriteResult], increments: int
) -> tuple[int, int]:
    """Assert what holds on every node; the increments lost, and how many silently."""
    lost: dict[str, int] = {}
    for node in cluster.nodes:
        for doc_id, doc in docs_on(cluster, node, db).items():
            assert "_conflicts" not in doc, f"{doc_id} on node {node}: {doc['_conflicts']}"
            # Every revision after the first carries exactly one increment: none doubled.
            assert generation(doc["_rev"]) == doc["hits"] + 1, (node, doc)
            lost[doc_id] = increments - doc["hits"]
    silent = 0
    for doc_id, count in lost.items():
        # The mechanism: every increment kept is one revision some writer was answered with,
        # and every increment lost is a write answered with a revision another writer was
        # answered with too (same parent, same content: the same revision id).
        mine = [r for r in written if r.doc_id == doc_id]
        by_rev = {r.rev: [x for x in mine if x.rev == r.rev] for r in mine}
        assert len(by_rev) == increments - count, doc_id
        shared = [group for group in by_rev.values() if len(group) > 1]
        assert sum(len(group) - 1 for group in shared) == count, doc_id
        silent += sum(1 for group in shared if not any(r.accepted for r in group))
    return sum(lost.values()), silent


def test_writers_on_every_node_converge(cluster: Cluster, cluster_db: str) -> None:
    """Concurrent rebase+sum writers on 3 nodes: no stored conflicts, one total everywhere."""
    seed = cm.Session(backend_for(cluster, 1, cluster_db))
    seed.add_all([Tally(id=f"t{i}") for i in range(TALLIES)])
    seed.flush()
    wait_for(
        "every node serves the seeded tallies",
        lambda: all(len(docs_on(cluster, n, cluster_db)) == TALLIES for n in cluster.nodes),
    )
    written, elapsed = run_writers(cluster, cluster_db)
    assert len(written) == len(cluster.nodes) * ROUNDS * TALLIES

    def same_everywhere() -> bool:
        """Whether every node shows the same revision, total and conflicts of each tally."""
        seen = [
            {d: (doc["_rev"], doc["hits"], "_conflicts" in doc) for d, doc in docs.items()}
            for docs in (docs_on(cluster, n, cluster_db) for n in cluster.nodes)
        ]
        return all(view == seen[0] for view in seen)

    settle = wait_for("every node shows the same tallies", same_everywhere, timeout=60)
    increments = len(cluster.nodes) * ROUNDS
    lost, silent = check_tallies(cluster, cluster_db, written, increments)
    accepted = sum(1 for r in written if r.accepted)
    figure(
        f"contention: 3 writers x {ROUNDS} sessions x {TALLIES} tallies in {elapsed:.1f} s "
        f"(default rebase settings, requests per session: mean "
        f"{sum(REQUESTS) / len(REQUESTS):.1f}, max {max(REQUESTS)}); "
        f"writes answered accepted: {accepted}; "
        f"increments lost to identical concurrent revisions: {lost} of "
        f"{increments * TALLIES} ({silent} of those collisions answered 201 to every "
        f"writer); nodes agreed {settle:.1f} s after the last write"
    )
