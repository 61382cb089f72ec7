"""A 3-broker cluster that stays up for the whole module: placement,
metadata, replication, the controller's admin APIs and Kafka's error codes
for requests sent to the wrong broker (issue 3: "Placement and metadata",
"Bad input")."""

from __future__ import annotations

import time

import pytest
from clusterlib import Cluster, log_bytes, wait_until
from rawclient import RawClient

from pykbroker.protocol import errors
from pykbroker.protocol.records import build_batch


@pytest.fixture(scope="module")
def mc(zk_server, tmp_path_factory):
    c = Cluster(zk_server.connect, tmp_path_factory.mktemp("basics"), 3)
    c.start()
    yield c
    c.close()


def addr(c: Cluster, node: int) -> str:
    return c.brokers[node].bootstrap


def metadata(c: Cluster, node: int, topics: list[str] | None, v: int = 12) -> dict:
    body = {"topics": None if topics is None else [{"name": t, "topic_id": bytes(16)} for t in topics],
            "allow_auto_topic_creation": False}
    with RawClient(addr(c, node)) as rc:
        return rc.call(3, v, body)


def produce_raw(c: Cluster, node: int, topic: str, p: int, n: int = 1, acks: int = -1, v: int = 9) -> dict:
    batch = build_batch([(b"k%d" % i, b"v%d" % i, (), int(time.time() * 1000)) for i in range(n)])
    body = {"transactional_id": None, "acks": acks, "timeout_ms": 10000,
            "topic_data": [{"name": topic, "partition_data": [{"index": p, "records": batch}]}]}
    with RawClient(addr(c, node), timeout=30) as rc:
        return rc.call(0, v, body)["responses"][0]["partition_responses"][0]


def fetch_body(topic: str, p: int, offset: int, *, replica_id: int = -1, epoch: int = -1,
               last_epoch: int = -1) -> dict:
    return {"cluster_id": None, "replica_id": replica_id, "max_wait_ms": 0, "min_bytes": 1,
            "max_bytes": 1 << 20, "isolation_level": 0, "session_id": 0, "session_epoch": -1,
            "topics": [{"topic": topic, "topic_id": bytes(16), "partitions": [
                {"partition": p, "current_leader_epoch": epoch, "fetch_offset": offset,
                 "last_fetched_epoch": last_epoch, "log_start_offset": -1, "partition_max_bytes": 1 << 20}]}],
            "forgotten_topics_data": [], "rack_id": ""}


def fetch_raw(c: Cluster, node: int, body: dict, v: int = 12) -> dict:
    with RawClient(addr(c, node)) as rc:
        return rc.call(1, v, body)["responses"][0]["partitions"][0]


def test_metadata_lists_brokers_leaders_replicas_isr(mc):
    mc.create_topic("placed", 6, 3)
    for node in range(3):
        md = metadata(mc, node, ["placed"])
        assert sorted(b["node_id"] for b in md["brokers"]) == [0, 1, 2]
        assert {b["port"] for b in md["brokers"]} == {b.port for b in mc.brokers}
        assert md["controller_id"] == mc.controller()
        (t,) = md["topics"]
        assert t["error_code"] == 0 and len(t["partitions"]) == 6
        assignment = mc.assignment("placed")
        for p in t["partitions"]:
            st = mc.state("placed", p["partition_index"])
            assert p["error_code"] == 0
            assert p["replica_nodes"] == assignment[p["partition_index"]]
            assert sorted(p["replica_nodes"]) == [0, 1, 2]
            assert p["leader_id"] == st["leader"] and p["leader_epoch"] == st["leader_epoch"]
            assert sorted(p["isr_nodes"]) == [0, 1, 2] and p["offline_replicas"] == []
    # replicas are spread: every broker is the preferred (first) replica of two partitions
    firsts = [r[0] for r in mc.assignment("placed").values()]
    assert sorted(firsts) == [0, 0, 1, 1, 2, 2]


def test_each_broker_syncs_and_registers_once_at_start(mc):
    """kazoo's first CONNECTED event arrives while the broker does its first
    session's work: it is not done a second time beside it."""
    for b in mc.brokers:
        first = b.log.split("[brokerproc] start #")[1]  # the first start's lines
        assert first.count("registered as broker") == 1, first
        assert "registering again" not in first


def test_replicated_bytes_are_identical(mc):
    from clientlib import produce_confluent, expected_records

    mc.create_topic("copies", 3, 3)
    recs = expected_records("copies", 600, 3, int(time.time() * 1000))
    produce_confluent(mc.bootstrap, "copies", recs, acks="all", compression="lz4")
    for p in range(3):
        leader = mc.leader("copies", p)
        with RawClient(addr(mc, leader)) as rc:
            r = rc.call(2, 5, {"replica_id": -1, "isolation_level": 0, "topics": [
                {"name": "copies", "partitions": [{"partition_index": p, "current_leader_epoch": -1,
                                                   "timestamp": -1}]}]})
        hw = r["topics"][0]["partitions"][0]["offset"]
        assert hw == 200
        ref = log_bytes(mc.log_dir(leader, "copies", p), hw)
        assert len(ref) > 0
        for b in range(3):
            assert log_bytes(mc.log_dir(b, "copies", p), hw) == ref
            assert (mc.log_dir(b, "copies", p) / "leader-epoch-checkpoint").exists()


def test_requests_to_the_wrong_broker(mc):
    mc.create_topic("wrong", 1, 3)
    st = mc.state("wrong", 0)
    leader, epoch = st["leader"], st["leader_epoch"]
    follower = next(b for b in range(3) if b != leader)
    assert produce_raw(mc, leader, "wrong", 0, 3)["error_code"] == 0
    # produce to a follower
    assert produce_raw(mc, follower, "wrong", 0)["error_code"] == errors.NOT_LEADER_OR_FOLLOWER
    assert produce_raw(mc, follower, "wrong", 0, acks=1)["error_code"] == errors.NOT_LEADER_OR_FOLLOWER
    # a consumer fetch from a follower
    assert fetch_raw(mc, follower, fetch_body("wrong", 0, 0))["error_code"] == errors.NOT_LEADER_OR_FOLLOWER
    # epochs: stale -> FENCED_LEADER_EPOCH, from the future -> UNKNOWN_LEADER_EPOCH (before the leader check)
    assert fetch_raw(mc, leader, fetch_body("wrong", 0, 0, epoch=epoch - 1 if epoch else -1))["error_code"] in \
        ((errors.FENCED_LEADER_EPOCH,) if epoch else (errors.NONE,))
    assert fetch_raw(mc, follower, fetch_body("wrong", 0, 0, epoch=epoch + 1))["error_code"] == \
        errors.UNKNOWN_LEADER_EPOCH
    assert fetch_raw(mc, leader, fetch_body("wrong", 0, 0, epoch=epoch))["error_code"] == 0
    # ListOffsets: leader only, except for the debugging replica id -2
    lo = {"isolation_level": 0, "topics": [{"name": "wrong", "partitions": [
        {"partition_index": 0, "current_leader_epoch": -1, "timestamp": -1}]}]}
    with RawClient(addr(mc, follower)) as rc:
        assert rc.call(2, 5, dict(lo, replica_id=-1))["topics"][0]["partitions"][0]["error_code"] == \
            errors.NOT_LEADER_OR_FOLLOWER
        assert rc.call(2, 5, dict(lo, replica_id=-2))["topics"][0]["partitions"][0]["error_code"] == 0


def test_replica_fetch_errors(mc):
    """A follower's Fetch (replica id set): Kafka's codes for an unknown
    broker id, stale and future leader epochs, a non-leader; an errored
    partition carries an empty record set, never a null one (as Kafka)."""
    mc.create_topic("rfetch", 1, 3)
    st = mc.state("rfetch", 0)
    leader, epoch = st["leader"], st["leader_epoch"]
    follower = next(b for b in range(3) if b != leader)
    assert produce_raw(mc, leader, "rfetch", 0, 5)["error_code"] == 0
    # a real replica id: served from the log end offset
    r = fetch_raw(mc, leader, fetch_body("rfetch", 0, 0, replica_id=follower, epoch=epoch))
    assert r["error_code"] == 0 and len(r["records"]) > 0
    # an unknown broker id: UNKNOWN_LEADER_EPOCH with an epoch, NOT_LEADER_OR_FOLLOWER without
    r = fetch_raw(mc, leader, fetch_body("rfetch", 0, 0, replica_id=99, epoch=epoch))
    assert r["error_code"] == errors.UNKNOWN_LEADER_EPOCH and r["records"] == b""
    assert fetch_raw(mc, leader, fetch_body("rfetch", 0, 0, replica_id=99))["error_code"] == \
        errors.NOT_LEADER_OR_FOLLOWER
    # the leader itself is not its own follower
    assert fetch_raw(mc, leader, fetch_body("rfetch", 0, 0, replica_id=leader, epoch=epoch))["error_code"] == \
        errors.UNKNOWN_LEADER_EPOCH
    # stale / future leader epochs
    assert fetch_raw(mc, leader, fetch_body("rfetch", 0, 0, replica_id=follower, epoch=epoch + 1))[
        "error_code"] == errors.UNKNOWN_LEADER_EPOCH
    if epoch > 0:
        assert fetch_raw(mc, leader, fetch_body("rfetch", 0, 0, replica_id=follower, epoch=epoch - 1))[
            "error_code"] == errors.FENCED_LEADER_EPOCH
    # a replica fetch to a follower
    r = fetch_raw(mc, follower, fetch_body("rfetch", 0, 0, replica_id=follower, epoch=epoch))
    assert r["error_code"] == errors.NOT_LEADER_OR_FOLLOWER and r["records"] == b""
    # an unknown topic, Fetch v12 and v13 (topic ids)
    for v in (12, 13):
        r = fetch_raw(mc, leader, fetch_body("no-such-topic", 0, 0, replica_id=follower), v=v)
        assert r["error_code"] in (errors.UNKNOWN_TOPIC_OR_PARTITION, errors.UNKNOWN_TOPIC_ID)
        assert r["records"] == b""
    # a last fetched epoch the leader never had: a diverging epoch, no records
    r = fetch_raw(mc, leader, fetch_body("rfetch", 0, 5, replica_id=follower, epoch=epoch, last_epoch=epoch + 7))
    assert r["error_code"] in (errors.NONE, errors.OFFSET_OUT_OF_RANGE)
    if r["error_code"] == 0:
        assert r["diverging_epoch"]["epoch"] <= epoch and not r["records"]


def test_offset_for_leader_epoch(mc):
    mc.create_topic("ofle", 1, 3)
    st = mc.state("ofle", 0)
    leader, epoch = st["leader"], st["leader_epoch"]
    follower = next(b for b in range(3) if b != leader)
    assert produce_raw(mc, leader, "ofle", 0, 4)["error_code"] == 0

    def ask(node: int, current: int, want: int, v: int = 4) -> dict:
        body = {"replica_id": -1, "topics": [{"topic": "ofle", "partitions": [
            {"partition": 0, "current_leader_epoch": current, "leader_epoch": want}]}]}
        with RawClient(addr(mc, node)) as rc:
            return rc.call(23, v, body)["topics"][0]["partitions"][0]

    for v in (2, 3, 4):
        r = ask(leader, epoch, epoch, v)
        assert (r["error_code"], r["leader_epoch"], r["end_offset"]) == (0, epoch, 4)
        assert ask(follower, epoch, epoch, v)["error_code"] == errors.NOT_LEADER_OR_FOLLOWER
        assert ask(leader, epoch + 1, epoch, v)["error_code"] == errors.UNKNOWN_LEADER_EPOCH
        r = ask(leader, -1, epoch + 5, v)  # an epoch newer than any: undefined
        assert (r["error_code"], r["leader_epoch"], r["end_offset"]) == (0, -1, -1)


def test_admin_apis_need_the_controller(mc):
    ctrl = mc.controller()
    other = next(b for b in range(3) if b != ctrl)
    ct = {"topics": [{"name": "via-other", "num_partitions": 1, "replication_factor": 1,
                      "assignments": [], "configs": []}], "timeout_ms": 10000, "validate_only": False}
    with RawClient(addr(mc, other)) as rc:
        assert rc.call(19, 5, ct)["topics"][0]["error_code"] == errors.NOT_CONTROLLER
        r = rc.call(43, 1, {"election_type": 0, "topic_partitions": [{"topic": "placed", "partitions": [0]}],
                            "timeout_ms": 1000})
        assert r["replica_election_results"][0]["partition_result"][0]["error_code"] == errors.NOT_CONTROLLER
        r = rc.call(20, 4, {"topic_names": ["placed"], "timeout_ms": 1000})
        assert r["responses"][0]["error_code"] == errors.NOT_CONTROLLER
        r = rc.call(37, 1, {"topics": [{"name": "placed", "count": 8, "assignments": None}], "timeout_ms": 1000,
                            "validate_only": False})
        assert r["results"][0]["error_code"] == errors.NOT_CONTROLLER
    with RawClient(addr(mc, ctrl)) as rc:
        bad_rf = dict(ct, topics=[dict(ct["topics"][0], name="rf4", replication_factor=4)])
        r = rc.call(19, 5, bad_rf)["topics"][0]
        assert r["error_code"] == errors.INVALID_REPLICATION_FACTOR
        manual = dict(ct, topics=[{"name": "manual", "num_partitions": -1, "replication_factor": -1,
                                   "assignments": [{"partition_index": 0, "broker_ids": [2, 0]},
                                                   {"partition_index": 1, "broker_ids": [1, 2]}],
                                   "configs": []}])
        r = rc.call(19, 5, manual)["topics"][0]
        assert r["error_code"] == 0 and r["num_partitions"] == 2 and r["replication_factor"] == 2
        bad = dict(ct, topics=[dict(manual["topics"][0], name="manual-bad",
                                    assignments=[{"partition_index": 0, "broker_ids": [0, 7]}])])
        assert rc.call(19, 5, bad)["topics"][0]["error_code"] == errors.INVALID_REPLICA_ASSIGNMENT
    assert mc.assignment("manual") == {0: [2, 0], 1: [1, 2]}
    wait_until(lambda: mc.state("manual", 0)["leader"] == 2 and mc.state("manual", 1)["leader"] == 1, 30,
               "manual topic leaders")


def test_create_partitions_and_delete_topic(mc):
    from confluent_kafka.admin import AdminClient, NewPartitions

    mc.create_topic("grow", 2, 2)
    admin = AdminClient({"bootstrap.servers": mc.bootstrap})
    admin.create_partitions([NewPartitions("grow", 5)], operation_timeout=30)["grow"].result(60)
    a = mc.assignment("grow")
    assert sorted(a) == [0, 1, 2, 3, 4] and all(len(r) == 2 and len(set(r)) == 2 for r in a.values())
    wait_until(lambda: all(mc.state("grow", p)["leader"] >= 0 for p in range(5)), 30, "leaders of new partitions")
    md = metadata(mc, 0, ["grow"])
    assert len(md["topics"][0]["partitions"]) == 5
    hosted = {b: [p for p in range(5) if mc.log_dir(b, "grow", p).exists()] for b in range(3)}
    for p, replicas in a.items():
        for b in range(3):
            assert (p in hosted[b]) == (b in replicas), (p, b, replicas)
    admin.delete_topics(["grow"], operation_timeout=30)["grow"].result(60)
    wait_until(lambda: not any(mc.log_dir(b, "grow", p).exists() for b in range(3) for p in range(5)), 30,
               "replica logs deleted on every broker")
    for node in range(3):
        md = metadata(mc, node, ["grow"])
        assert md["topics"][0]["error_code"] == errors.UNKNOWN_TOPIC_OR_PARTITION
    mc.create_topic("grow", 1, 3)  # the name can be used again


def test_auto_create_through_zookeeper(mc):
    name = "auto-created"
    with RawClient(addr(mc, 1)) as rc:
        r = rc.call(3, 9, {"topics": [{"name": name}], "allow_auto_topic_creation": True})
        assert r["topics"][0]["error_code"] in (errors.LEADER_NOT_AVAILABLE, errors.NONE)
    wait_until(lambda: all(mc.state(name, p)["leader"] >= 0 for p in range(3)), 30, "auto-created topic leaders")
    assert all(len(r) == 3 for r in mc.assignment(name).values())
