"""Shared fixtures: real broker processes and unique topic names.

Fixtures
--------
broker          function scope: a fresh broker (own tmp log dir, free port).
broker_factory  function scope: ``broker_factory(overrides=None, *, log_dir=None,
                name=None, **kwargs) -> BrokerProcess``; every broker it made is
                stopped at test teardown.
shared_broker   session scope: one broker for tests that only need *a* broker
                (use ``unique_topic`` so tests don't see each other's data).
unique_topic    a topic name unique to this test (and run).
shared_cluster  session scope: ZooKeeper + 3 brokers (tests/cluster/clusterlib.py)
                as scripts/cluster starts them: replication factor 3,
                min.insync.replicas=2; started on first use, skipped without
                ZooKeeper.
topology        parametrized "single" / "cluster": ``topology.bootstrap`` is
                the shared broker's or the shared cluster's (all three
                brokers); for client tests whose behaviour must not depend on
                the topology (issue 20).

A failed test's report gets the tail of the logs of the brokers it used.
Every broker process is killed at session end, whatever happened.
"""

from __future__ import annotations

import re
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from brokerproc import BrokerError, BrokerProcess, kill_all

_USED = pytest.StashKey[list]()


def _note_used(request: pytest.FixtureRequest, b: BrokerProcess) -> None:
    node = request.node
    node.stash.setdefault(_USED, []).append(b)


@pytest.fixture
def broker_factory(request, tmp_path_factory):
    made: list[BrokerProcess] = []

    def start(overrides=None, *, log_dir=None, name=None, **kwargs) -> BrokerProcess:
        n = len(made)
        name = name or f"broker{n}"
        if log_dir is None:
            log_dir = tmp_path_factory.mktemp(f"{name}-data", numbered=True)
        b = BrokerProcess(name=name, **kwargs)
        made.append(b)
        _note_used(request, b)
        b.start(overrides, log_dir=log_dir)
        return b

    yield start
    errors = []
    for b in made:
        try:
            b.stop()
        except Exception as e:  # keep stopping the others
            errors.append(e)
    if errors:
        raise errors[0]


@pytest.fixture
def broker(broker_factory) -> BrokerProcess:
    return broker_factory(name="broker")


_shared: list[BrokerProcess] = []
_shared_cluster: list[Any] = []  # the shared cluster's brokers' logs go with a failure report


@pytest.fixture(scope="session")
def shared_broker(tmp_path_factory):
    b = BrokerProcess(name="shared_broker")
    _shared.append(b)
    # every API advertised (client telemetry too: librdkafka clients of the shared
    # broker then ask for subscriptions, and get none)
    b.start({"pykbroker.client.telemetry.enable": True}, log_dir=tmp_path_factory.mktemp("shared-broker-data"))
    yield b
    b.stop()


# The shared cluster: as scripts/cluster (RF 3, min.insync.replicas=2), group
# settings of the client tests (short sessions, no initial rebalance delay).
SHARED_CLUSTER_OVERRIDES = {
    "min.insync.replicas": 2,
    "offsets.topic.num.partitions": 6,
    "transaction.state.log.replication.factor": 3,
    "transaction.state.log.min.isr": 2,
    "transaction.state.log.num.partitions": 6,
    "group.initial.rebalance.delay.ms": 0,
    "group.min.session.timeout.ms": 1000,
    "group.consumer.heartbeat.interval.ms": 300,
    "group.consumer.session.timeout.ms": 3000,
}


@pytest.fixture(scope="session")
def shared_cluster(tmp_path_factory):
    from pykbroker.cluster.zkserver import ZkServer, zookeeper_available

    if not zookeeper_available():
        pytest.skip("ZooKeeper (Debian package 'zookeeper' + java) is not installed")
    sys.path.insert(0, str(Path(__file__).resolve().parent / "cluster"))
    from clusterlib import Cluster

    zk = ZkServer(tmp_path_factory.mktemp("shared-zookeeper"))
    zk.start()
    c = Cluster(zk.connect, tmp_path_factory.mktemp("shared-cluster"), 3, SHARED_CLUSTER_OVERRIDES)
    _shared_cluster.append(c)
    try:
        c.start()
        yield c
    finally:
        c.close()
        zk.close()


class Topology:
    def __init__(self, name: str, bootstrap: str, replication_factor: int) -> None:
        self.name = name
        self.bootstrap = bootstrap
        self.replication_factor = replication_factor


@pytest.fixture(params=["single", "cluster"])
def topology(request) -> Topology:
    if request.param == "single":
        return Topology("single", request.getfixturevalue("shared_broker").bootstrap, 1)
    return Topology("cluster", request.getfixturevalue("shared_cluster").bootstrap, 3)


@pytest.fixture
def unique_topic(request) -> str:
    base = re.sub(r"[^a-zA-Z0-9._-]+", "-", request.node.name).strip("-.")[:80] or "t"
    return f"{base}-{uuid.uuid4().hex[:10]}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    # a BrokerError (failed start) already carries the log in its message
    if rep.failed and not (call.excinfo and call.excinfo.errisinstance(BrokerError)):
        used = list(item.stash.get(_USED, []))
        # the fixtures a test named, and those requested through getfixturevalue
        # (topology / group_topology pick the shared broker or the shared cluster so)
        names = set(getattr(item, "fixturenames", ()))
        names |= set(getattr(getattr(item, "_request", None), "_fixture_defs", None) or ())
        if _shared and "shared_broker" in names:
            used += _shared
        if _shared_cluster and "shared_cluster" in names:
            used += _shared_cluster[0].brokers
        for b in used:
            rep.sections.append((f"broker log: {b.describe()} (last 200 lines)", b.log_tail(200)))
    return rep


@pytest.hookimpl(trylast=True)  # after session-scoped fixtures were torn down
def pytest_sessionfinish(session, exitstatus):
    leftover = kill_all()
    if leftover:
        names = ", ".join(b.describe() for b in leftover)
        sys.stderr.write(f"\nconftest: killed broker processes left running: {names}\n")
