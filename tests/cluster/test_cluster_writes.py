"""Flushes on a 3-node cluster (q=2, n=3) while nodes are down or die mid-flush.

One node down: every write still reaches the quorum (w=2): 201. Two down: CouchDB stores each
document on the one live copy and answers 202 with ``"accepted": true`` per document, which
the session surfaces as ``WriteResult.accepted``. A coordinator killed during a batched flush
loses the answer, not the data: after a restart the retried flush writes every document once.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import pytest

import couchmapper as cm
from couchmapper import signals
from couchmapper.orm.merge import WriteResult

from ._cluster import Cluster
from .cluster_models import (
    Item,
    Tally,
    backend_for,
    docs_on,
    figure,
    generation,
    proxied,
    wait_for,
)


def seed_tallies(cluster: Cluster, db: str, count: int) -> None:
    """``count`` tallies at 0 (t0, t1, ...), written while every node is up."""
    backend = backend_for(cluster, 1, db)
    s = cm.Session(backend)
    s.add_all([Tally(id=f"t{i}") for i in range(count)])
    assert all(r.ok and not r.accepted for r in s.flush())
    backend.close()


def edit_batch(s: cm.Session, tallies: int, items: int, tag: str) -> None:
    """Add ``items`` new items and add 3 to the first ``tallies`` tallies."""
    s.add_all([Item(n=k, batch=tag, id=f"{tag}-{k:04d}") for k in range(items)])
    for t in s.get_many(Tally, [f"t{i}" for i in range(tallies)]):
        assert t is not None
        t.hits += 3


def check_everywhere(cluster: Cluster, db: str, tag: str, tallies: int, items: int) -> float:
    """Through every node: each item once at generation 1, tallies at 3 (gen 2), no conflicts.

    A write answered 201 is on two copies; the third may lag (a node just restarted), and
    ``_all_docs`` reads one copy per shard: so this waits (bounded) for replication to
    settle, then asserts with the details. Returns the seconds it waited.
    """

    def settled() -> bool:
        """Whether the assertions hold now."""
        try:
            check_nodes(cluster, db, tag, tallies, items)
        except AssertionError:
            return False
        return True

    with contextlib.suppress(AssertionError):
        return wait_for("replication settles", settled, timeout=60)
    check_nodes(cluster, db, tag, tallies, items)  # raises, saying what differs
    return 60.0


def check_nodes(cluster: Cluster, db: str, tag: str, tallies: int, items: int) -> None:
    """The assertions of :func:`check_everywhere`, once."""
    tally_ids = {f"t{i}" for i in range(tallies)}
    expected = {f"{tag}-{k:04d}" for k in range(items)} | tally_ids
    for node in cluster.nodes:
        stored = docs_on(cluster, node, db)
        assert set(stored) == expected, f"node {node}"
        for doc_id, doc in stored.items():
            assert "_conflicts" not in doc, f"{doc_id} on node {node}: {doc['_conflicts']}"
            if doc_id in tally_ids:
                assert (doc.get("hits"), generation(doc["_rev"])) == (3, 2), (node, doc)
            else:
                assert generation(doc["_rev"]) == 1, (node, doc)


def test_one_node_down_writes_everything(cluster: Cluster, cluster_db: str) -> None:
    """One node of three down: the flush is one 201 _bulk_docs; nothing is only accepted."""
    seed_tallies(cluster, cluster_db, 3)
    cluster.kill(3)
    with proxied(cluster, 1, cluster_db) as (proxy, backend):
        s = cm.Session(backend)
        edit_batch(s, 3, 20, "one-down")
        proxy.clear()
        written = s.flush()
        posts = proxy.requests_to("_bulk_docs", "POST")
    assert [p.status for p in posts] == [201]
    assert len(written) == 23 and all(r.ok and not r.accepted for r in written)
    assert s.stats().accepted == 0
    cluster.restart(3)
    waited = wait_for(
        "node 3 serves the writes made while it was down",
        lambda: len(docs_on(cluster, 3, cluster_db)) == 23,
    )
    figure(
        f"one node down: 23 documents answered 201; node 3 served them {waited:.1f} s after /_up"
    )
    check_everywhere(cluster, cluster_db, "one-down", 3, 20)


def test_two_nodes_down_writes_are_accepted(cluster: Cluster, cluster_db: str) -> None:
    """Two of three down: 202 with accepted per document; written, counted, signalled, kept."""
    seed_tallies(cluster, cluster_db, 3)
    cluster.kill(2)
    cluster.kill(3)
    results: list[WriteResult] = []
    with proxied(cluster, 1, cluster_db) as (proxy, backend):
        s = cm.Session(backend)

        @s.on(signals.after_flush)
        def keep(sender: cm.Session, results: list[WriteResult], **extra: Any) -> None:
            """Keep what after_flush receivers are told."""
            kept.extend(results)

        kept = results
        edit_batch(s, 3, 20, "two-down")
        proxy.clear()
        written = s.flush()
        posts = proxy.requests_to("_bulk_docs", "POST")
        others = [r for r in proxy.requests if r not in posts]
    # One request, answered 202, every row accepted; no retry and no conflict check followed.
    assert [p.status for p in posts] == [202]
    assert others == []
    assert len(posts[0].body["docs"]) == 23
    assert len(written) == 23 and all(r.ok and r.accepted for r in written)
    assert {r.doc_id: r.accepted for r in results} == {r.doc_id: True for r in written}
    stats = s.stats()
    assert (stats.accepted, stats.new, stats.dirty, stats.deleted) == (23, 0, 0, 0)
    revs = {r.doc_id: r.rev for r in written}
    assert [generation(revs[f"t{i}"] or "") for i in range(3)] == [2, 2, 2]
    # The one live copy serves them; once the others are back they get them too.
    assert len(docs_on(cluster, 1, cluster_db)) == 23
    cluster.restart(2)
    cluster.restart(3)
    waited = wait_for(
        "every node serves the accepted writes",
        lambda: all(len(docs_on(cluster, n, cluster_db, r=1)) == 23 for n in cluster.nodes),
    )
    figure(
        "two nodes down: one _bulk_docs answered 202, 23/23 rows accepted, "
        f"all nodes served them {waited:.1f} s after both were back"
    )
    check_everywhere(cluster, cluster_db, "two-down", 3, 20)


def test_coordinator_killed_between_batches(cluster: Cluster, cluster_db: str) -> None:
    """Coordinator killed after the first batch: the rest stays pending; the retry completes."""
    seed_tallies(cluster, cluster_db, 5)
    backend = backend_for(cluster, 1, cluster_db)
    s = cm.Session(backend, batch_size=25)
    edit_batch(s, 5, 100, "between")  # 100 creates first, then the 5 updates: 5 batches
    progress: list[tuple[int, int]] = []

    def kill_after_first(sent: int, total: int) -> None:
        """Kill the coordinator once the first batch is answered."""
        progress.append((sent, total))
        if len(progress) == 1:
            cluster.kill(1)

    with pytest.raises(cm.BackendUnavailable):
        s.flush(progress=kill_after_first)
    assert progress == [(25, 105)]
    stats = s.stats()
    assert (stats.new, stats.dirty) == (75, 5)
    cluster.restart(1)
    written = s.flush()
    assert len(written) == 80 and all(r.ok for r in written)
    assert s.stats().new == s.stats().dirty == 0
    check_everywhere(cluster, cluster_db, "between", 5, 100)
    backend.close()


def test_coordinator_killed_during_a_batch(cluster: Cluster, cluster_db: str) -> None:
    """Coordinator killed while a batch is in flight: after restart the retry writes each once."""
    seed_tallies(cluster, cluster_db, 10)
    with proxied(cluster, 1, cluster_db) as (proxy, backend):
        s = cm.Session(backend, batch_size=500)
        # 1490 creates, then the 10 tally updates: the second batch is 500 creates, which
        # the coordinator takes about 0.1 s to store on this machine.
        edit_batch(s, 10, 1490, "during")
        proxy.clear()
        stop = threading.Event()

        def kill_on_second_batch() -> None:
            """Kill node 1 shortly after the proxy relays the second _bulk_docs."""
            deadline = time.monotonic() + 60
            while not stop.is_set() and time.monotonic() < deadline:
                if len(proxy.requests_to("_bulk_docs", "POST")) >= 2:
                    time.sleep(0.05)  # let it store part of the batch (timing varies: any
                    cluster.kill(1)  # part, from none to all, must converge the same)
                    return
                time.sleep(0.001)

        killer = threading.Thread(target=kill_on_second_batch)
        killer.start()
        try:
            with pytest.raises(cm.BackendUnavailable):
                s.flush()
        finally:
            stop.set()
            killer.join()
        # Usually the second batch is cut; on a slow moment the kill lands in the third.
        posts = proxy.requests_to("_bulk_docs", "POST")
        answered = len(posts) - 1
        assert answered in (1, 2)
        assert [p.status for p in posts] == [201] * answered + [None]  # no answer to the last
        stats = s.stats()
        assert stats.new + stats.dirty == 1500 - 500 * answered  # unanswered batches pending
        landed = len(docs_on(cluster, 2, cluster_db)) - 10 - 500 * answered  # on live copies
        cluster.restart(1)
        written = s.flush()
    figure(
        f"coordinator killed during batch {answered + 1} of 3: {landed} of its 500 documents "
        "were stored before the retry"
    )
    assert len(written) == 1500 - 500 * answered and all(r.ok for r in written)
    check_everywhere(cluster, cluster_db, "during", 10, 1490)
