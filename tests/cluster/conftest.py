"""Fixtures for the cluster tests: one ZooKeeper per module, fresh clusters per test.

zk_server        module scope: a standalone ZooKeeper (Debian's package) on a free
                 loopback port with a tmp dataDir; the module is skipped without it.
cluster_factory  ``cluster_factory(n=3, overrides=None, per_broker=None)`` starts a
                 cluster (own chroot, own log dirs) and stops it at teardown.
cluster          a started 3-broker cluster.

A failed test's report gets the tail of every broker's log.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from clusterlib import Cluster

from pykbroker.cluster.zkserver import ZkServer, zookeeper_available

_CLUSTERS = pytest.StashKey[list]()


@pytest.fixture(scope="module")
def zk_server(tmp_path_factory):
    if not zookeeper_available():
        pytest.skip("ZooKeeper (Debian package 'zookeeper' + java) is not installed")
    try:
        import kazoo  # noqa: F401
    except ImportError:
        pytest.skip("kazoo is not installed")
    zk = ZkServer(tmp_path_factory.mktemp("zookeeper"))
    zk.start()
    yield zk
    zk.close()


@pytest.fixture
def cluster_factory(request, zk_server, tmp_path):
    made: list[Cluster] = []

    def make(n: int = 3, overrides: dict | None = None, per_broker: dict | None = None,
             start: bool = True) -> Cluster:
        c = Cluster(zk_server.connect, tmp_path / f"cluster{len(made)}", n, overrides, per_broker)
        made.append(c)
        request.node.stash.setdefault(_CLUSTERS, []).append(c)
        if start:
            c.start()
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def cluster(cluster_factory) -> Cluster:
    return cluster_factory()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    if rep.failed:
        for c in item.stash.get(_CLUSTERS, []):
            for b in c.brokers:
                rep.sections.append((f"broker log: {b.describe() if b.port else b.name} (last 150 lines)",
                                     b.log_tail(150)))
    return rep
