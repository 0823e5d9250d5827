"""Fixtures of the cluster suite: a local 3-node Apache CouchDB cluster whose nodes tests kill.

Run with ``make test-cluster COUCHDB_CLUSTER=/path/to/cluster`` (the script's interface is in
``_cluster.py``). Every test here is marked ``cluster``, so ``make test`` leaves them out.

    cluster     (session)   a running :class:`~_cluster.Cluster` (q=2, n=3), stopped at the end
    cluster_db  (function)  "cm-cluster-<uuid hex>", created before and deleted after the test;
                            nodes the test killed are restarted first
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from couchmapper.backends.couchdb import CouchDBServer

from ._cluster import Cluster, ClusterError, script_from_env


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this directory ``cluster``."""
    for item in items:
        if item.path.parent.name == "cluster":
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The local cluster: started once for the session, stopped at the end even on failure."""
    try:
        script = script_from_env()
    except ClusterError as exc:
        pytest.fail(str(exc), pytrace=False)
    workdir = tmp_path_factory.mktemp("couchdb-cluster")
    try:
        running = Cluster.start(script, workdir)
    except ClusterError as exc:
        Cluster(script, workdir, 0, []).stop()  # whatever did start
        pytest.fail(str(exc), pytrace=False)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def cluster_db(cluster: Cluster) -> Iterator[str]:
    """A fresh database on the cluster, deleted afterwards (after restarting killed nodes)."""
    try:
        cluster.restore()  # a failed earlier test may have left a node down
    except ClusterError as exc:
        pytest.fail(str(exc), pytrace=False)
    name = f"cm-cluster-{uuid.uuid4().hex}"
    server = CouchDBServer(cluster.url(1), timeout=60)
    try:
        server.create_database(name).close()
        yield name
        cluster.restore()
        server.delete_database(name, missing_ok=True)
    finally:
        server.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the figures the cluster tests measured."""
    from .cluster_models import FIGURES

    if FIGURES:
        terminalreporter.section("cluster figures")
        for line in FIGURES:
            terminalreporter.line(line)
