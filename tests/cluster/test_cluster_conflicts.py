"""Real stored conflicts on the cluster: two databases edited through different nodes, then
replicated into each other (``_replicate``), resolved by one session with the merge rules."""

from __future__ import annotations

import uuid
from typing import Any

import couchmapper as cm
from couchmapper import signals

from ._cluster import Cluster
from .cluster_models import backend_for, docs_on, figure, wait_for


class Stock(cm.Document, type_name="cluster-stock"):
    """Resolved on load: quantities add up, labels unite, other fields merge when disjoint."""

    quantity: int = cm.field(default=0, merge="sum")
    labels: set[str] = cm.field(factory=set, merge="union")
    name: str = ""
    place: str = ""

    class Meta:
        resolve = "merge"


def replicate(cluster: Cluster, node: int, source: str, target: str) -> None:
    """One-shot ``_replicate`` of ``source`` into ``target``, asked of ``node``."""
    body = {"source": cluster.url(1, source), "target": cluster.url(3, target)}
    answer = cluster.request(node, "POST", "/_replicate", body, timeout=120)
    assert answer.status == 200 and answer.body.get("ok") is True, answer.body


def edit(cluster: Cluster, node: int, db: str, **changes: Any) -> None:
    """Load the stock through ``node`` and apply ``changes`` (a callable per field)."""
    backend = backend_for(cluster, node, db)
    try:
        with cm.Session(backend) as s:
            stock = s.get(Stock, "s")
            assert stock is not None and cm.conflicts(stock) == []
            for name, change in changes.items():
                setattr(stock, name, change(getattr(stock, name)))
    finally:
        backend.close()


def test_replicated_edits_resolve_on_load(cluster: Cluster, cluster_db: str) -> None:
    """Edits made in two databases through different nodes merge exactly after replication."""
    other = f"cm-cluster-{uuid.uuid4().hex}"
    assert cluster.request(2, "PUT", f"/{other}").status in (201, 202)
    try:
        seed = backend_for(cluster, 1, cluster_db)
        with cm.Session(seed) as s:
            s.add(Stock(id="s", quantity=10, labels={"new"}, name="bolt", place="shelf"))
        seed.close()
        replicate(cluster, 2, cluster_db, other)
        edit(cluster, 1, cluster_db, quantity=lambda q: q + 3, labels=lambda ls: ls | {"a"})
        edit(cluster, 3, other, quantity=lambda q: q - 4, labels=lambda ls: ls | {"b"})
        edit(cluster, 3, other, name=lambda _: "hex bolt")
        edit(cluster, 1, cluster_db, place=lambda _: "bin 7")
        replicate(cluster, 2, other, cluster_db)
        found: list[list[str]] = []

        def seen(sender: Any, *, revisions: list[str], **kwargs: Any) -> None:
            found.append(revisions)

        signals.conflict_found.connect(seen, sender=Stock)
        backend = backend_for(cluster, 2, cluster_db)
        try:
            with cm.Session(backend) as s:
                stock = s.get(Stock, "s")
                assert stock is not None
            requests = s.stats().requests
        finally:
            signals.conflict_found.disconnect(seen, sender=Stock)
            backend.close()
        assert len(found) == 1 and len(found[0]) == 1
        # get, open_revs=all, the ancestor's body, then the one _bulk_docs.
        assert requests == 4

        def resolved_everywhere() -> bool:
            docs = [docs_on(cluster, n, cluster_db).get("s") for n in cluster.nodes]
            return all(d is not None and "_conflicts" not in d for d in docs)

        settle = wait_for("every node shows the resolved stock", resolved_everywhere)
        for node in cluster.nodes:
            doc = docs_on(cluster, node, cluster_db)["s"]
            assert doc["quantity"] == 9, (node, doc)
            assert sorted(doc["labels"]) == ["a", "b", "new"]
            assert (doc["name"], doc["place"]) == ("hex bolt", "bin 7")
        figure(
            f"replication conflict (two databases, edits through nodes 1 and 3): resolved by one "
            f"session in {requests} requests; every node showed it {settle:.2f} s later"
        )
    finally:
        cluster.request(2, "DELETE", f"/{other}")
