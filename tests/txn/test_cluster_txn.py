"""Transactions on a 3-broker cluster (ZooKeeper mode; skipped without ZooKeeper).

What is proved here:
- the transaction coordinator is the leader of the transactional id's
  __transaction_state partition (FindCoordinator names it), while the data
  partitions are led by the other brokers too: their first transactional
  writes are verified with the coordinator over AddPartitionsToTxn v4
  (verify_only), markers go out as WriteTxnMarkers, and read_committed
  consumers see committed transactions whole and aborted ones never.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "cluster"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "clients"))

from pykbroker.cluster.zkserver import ZkServer, zookeeper_available


@pytest.fixture
def zk(tmp_path):
    if not zookeeper_available():
        pytest.skip("ZooKeeper (Debian package 'zookeeper' + java) is not installed")
    pytest.importorskip("kazoo")
    z = ZkServer(tmp_path / "zookeeper")
    z.start()
    yield z
    z.close()


def test_transactions_across_brokers(zk, tmp_path):
    from clusterlib import Cluster
    from test_transactions import consume_confluent

    from rawclient import RawClient

    c = Cluster(zk.connect, tmp_path / "cluster", 3, {"transaction.state.log.num.partitions": 3,
                                                       "transaction.state.log.replication.factor": 3,
                                                       "offsets.topic.num.partitions": 3})
    try:
        c.start()
        c.create_topic("ct", 3, rf=3)
        c.wait_full_isr("ct", 3)
        c.wait_metadata("ct", 3)
        leaders = {c.leader("ct", p) for p in range(3)}
        assert len(leaders) >= 2, leaders
        from confluent_kafka import Producer

        deadline = time.monotonic() + 60
        while True:  # __transaction_state is created through ZooKeeper on the first lookup
            with RawClient(c.brokers[0].bootstrap) as rc:
                r = rc.call(10, 3, {"key": "cluster-txn", "key_type": 1})
            if r["error_code"] == 0:
                break
            assert time.monotonic() < deadline, r
            time.sleep(0.5)
        # some data partitions are led elsewhere: their verification and markers are remote
        assert any(c.leader("ct", i) != r["node_id"] for i in range(3))
        p = Producer({"bootstrap.servers": c.bootstrap, "transactional.id": "cluster-txn", "linger.ms": 5})
        p.init_transactions(60)
        want = []
        for t in range(4):
            p.begin_transaction()
            for i in range(6):
                v = b"t%d-%d" % (t, i)
                p.produce("ct", v, partition=i % 3)
                if t % 2 == 0:
                    want.append(v)
            p.flush(60)  # (librdkafka drops unsent messages at abort)
            if t % 2 == 0:
                p.commit_transaction(60)
            else:
                p.abort_transaction(60)
        got = consume_confluent(c.bootstrap, "ct", 3, "read_committed")
        assert sorted(got) == sorted(want)
        assert len(consume_confluent(c.bootstrap, "ct", 3, "read_uncommitted")) == 24
    finally:
        c.close()
