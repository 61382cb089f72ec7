"""Consumer groups on a 3-broker ZooKeeper cluster: the coordinator is the
leader of the group's partition of __consumer_offsets (replicated, RF 3);
the other brokers answer NOT_COORDINATOR; when the coordinator is killed,
the new leader of that partition loads the group's committed offsets from
its replica and a new consumer resumes exactly there."""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "cluster"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "clients"))

from pykbroker.protocol import errors
from rawclient import RawClient


@pytest.fixture(scope="module")
def zk_server(tmp_path_factory):
    from pykbroker.cluster.zkserver import ZkServer, zookeeper_available

    if not zookeeper_available():
        pytest.skip("ZooKeeper (Debian package 'zookeeper' + java) is not installed")
    pytest.importorskip("kazoo")
    zk = ZkServer(tmp_path_factory.mktemp("zookeeper"))
    zk.start()
    yield zk
    zk.close()


@pytest.fixture
def cluster(zk_server, tmp_path):
    from clusterlib import Cluster

    c = Cluster(zk_server.connect, tmp_path / "cluster", 3, {"group.min.session.timeout.ms": 1000})
    c.start()
    yield c
    c.close()


def create_replicated_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=3)],
                        operation_timeout=30)[topic].result(60)


def test_groups_on_a_cluster_and_coordinator_failover(cluster):
    from test_groups import Fleet, Ledger, make_records, produce_recs, split, wait_for

    topic, group = f"cg-{uuid.uuid4().hex[:6]}", f"g-{uuid.uuid4().hex[:6]}"
    create_replicated_topic(cluster.bootstrap, topic, 6)
    recs = make_records(topic, 1200)
    produce_recs(cluster.bootstrap, topic, recs)
    fleet = Fleet("confluent-kafka", cluster.bootstrap, topic)
    try:
        ms = [fleet.member(group) for _ in range(3)]
        wait_for(split(ms, [2, 2, 2]), ms, 60, "2/2/2 on the cluster")
        # one coordinator, named by every broker; the others refuse the group
        nodes = set()
        for b in cluster.brokers:
            with RawClient(b.bootstrap) as rc:
                r = rc.call(10, 3, {"key": group, "key_type": 0})
                assert r["error_code"] == 0
                nodes.add(r["node_id"])
        (coord,) = nodes
        for b in cluster.brokers:
            with RawClient(b.bootstrap) as rc:
                d = rc.call(15, 5, {"groups": [group]})["groups"][0]
                if int(b.name[-1]) == coord:
                    assert (d["error_code"], d["group_state"]) == (0, "Stable")
                else:
                    assert d["error_code"] == errors.NOT_COORDINATOR
        # commit offset 100 everywhere, stop, kill the coordinator
        for m in ms:
            m.paused.set()
            m.m.commit_on_revoke = False
        for m in ms:
            m.commit({p: 100 for p in m.assignment()})
        fleet.close_all()
        cluster.brokers[coord].kill()
        fleet2 = Fleet("confluent-kafka", cluster.running_bootstrap(), topic)
        try:
            ledger = Ledger()
            m = fleet2.member(group, ledger=ledger)
            want = [r for r in recs if r.offset >= 100]
            wait_for(lambda: ledger.has_all(want) and len(m.assignment()) == 6, [m], 90,
                     "resume at the committed offsets after the coordinator died")
            time.sleep(0.3)
            ledger.check_exactly_once(want)
        finally:
            fleet2.close_all()
    finally:
        fleet.close_all()
