"""The replication APIs on a lone broker (no ZooKeeper): every version of
OffsetForLeaderEpoch (23), ElectLeaders (43), AlterPartitionReassignments
(45) and ListPartitionReassignments (46), and the replica id of a Fetch
being ignored there."""

from __future__ import annotations

import time

import pytest
from rawclient import RawClient

from pykbroker.handlers import load_all
from pykbroker.protocol import errors
from pykbroker.protocol.records import build_batch

REGISTRY = load_all()


def versions(key: int) -> list[int]:
    h = REGISTRY[key]
    return list(range(h.min_version, h.max_version + 1))


def _topic_with_records(c: RawClient, topic: str, n: int) -> None:
    c.call(3, 9, {"topics": [{"name": topic}], "allow_auto_topic_creation": True})
    batch = build_batch([(b"k", b"v%d" % i, (), int(time.time() * 1000)) for i in range(n)])
    r = c.call(0, 9, {"transactional_id": None, "acks": -1, "timeout_ms": 5000,
                      "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": batch}]}]})
    assert r["responses"][0]["partition_responses"][0]["error_code"] == 0


@pytest.mark.parametrize("v", versions(23))
def test_offset_for_leader_epoch(shared_broker, unique_topic, v):
    with RawClient(shared_broker.bootstrap) as c:
        _topic_with_records(c, unique_topic, 3)

        def ask(current: int, epoch: int, topic: str = unique_topic, p: int = 0) -> dict:
            body = {"replica_id": -1, "topics": [{"topic": topic, "partitions": [
                {"partition": p, "current_leader_epoch": current, "leader_epoch": epoch}]}]}
            r = c.call(23, v, body)
            assert r["throttle_time_ms"] == 0 and r["topics"][0]["topic"] == topic
            return r["topics"][0]["partitions"][0]

        r = ask(0, 0)
        assert (r["error_code"], r["partition"], r["leader_epoch"], r["end_offset"]) == (0, 0, 0, 3)
        assert ask(-1, 0)["end_offset"] == 3
        assert ask(1, 0)["error_code"] == errors.UNKNOWN_LEADER_EPOCH
        r = ask(-1, 4)
        assert (r["error_code"], r["leader_epoch"], r["end_offset"]) == (0, -1, -1)
        assert ask(-1, 0, p=5)["error_code"] == errors.UNKNOWN_TOPIC_OR_PARTITION
        assert ask(-1, 0, topic=unique_topic + "-none")["error_code"] == errors.UNKNOWN_TOPIC_OR_PARTITION


@pytest.mark.parametrize("v", versions(43))
def test_elect_leaders(shared_broker, unique_topic, v):
    with RawClient(shared_broker.bootstrap) as c:
        _topic_with_records(c, unique_topic, 1)
        body = {"election_type": 0, "topic_partitions": [{"topic": unique_topic, "partitions": [0, 3]}],
                "timeout_ms": 1000}
        r = c.call(43, v, body)
        if v >= 1:
            assert r["error_code"] == 0
        (t,) = r["replica_election_results"]
        got = {x["partition_id"]: (x["error_code"], x["error_message"]) for x in t["partition_result"]}
        assert got == {0: (errors.ELECTION_NOT_NEEDED, None),
                       3: (errors.UNKNOWN_TOPIC_OR_PARTITION, "The partition does not exist.")}
        # null: every partition, and those needing no election are left out
        r = c.call(43, v, dict(body, topic_partitions=None))
        assert r["replica_election_results"] == []
        if v >= 1:
            assert c.call(43, v, dict(body, election_type=1))["replica_election_results"][0][
                "partition_result"][0]["error_code"] in (errors.ELECTION_NOT_NEEDED, errors.UNKNOWN_TOPIC_OR_PARTITION)
            assert c.call(43, v, dict(body, election_type=5))["error_code"] == errors.INVALID_REQUEST


def test_lone_broker_ignores_replica_id(shared_broker, unique_topic):
    with RawClient(shared_broker.bootstrap) as c:
        _topic_with_records(c, unique_topic, 2)
        body = {"cluster_id": None, "replica_id": 7, "max_wait_ms": 0, "min_bytes": 1, "max_bytes": 1 << 20,
                "isolation_level": 0, "session_id": 0, "session_epoch": -1,
                "topics": [{"topic": unique_topic, "topic_id": bytes(16), "partitions": [
                    {"partition": 0, "current_leader_epoch": -1, "fetch_offset": 0, "last_fetched_epoch": -1,
                     "log_start_offset": -1, "partition_max_bytes": 1 << 20}]}],
                "forgotten_topics_data": [], "rack_id": ""}
        p = c.call(1, 12, body)["responses"][0]["partitions"][0]
        assert p["error_code"] == 0 and p["high_watermark"] == 2 and len(p["records"]) > 0


@pytest.mark.parametrize("v", versions(45))
def test_alter_partition_reassignments_lone_broker(shared_broker, unique_topic, v):
    """A one-broker cluster, as Kafka's controller answers it."""
    with RawClient(shared_broker.bootstrap) as c:
        _topic_with_records(c, unique_topic, 1)
        me = c.call(3, 9, {"topics": None, "allow_auto_topic_creation": False})["brokers"][0]["node_id"]

        def alter(parts: list[tuple[str, int, list[int] | None]], **kw) -> dict:
            topics: dict[str, list] = {}
            for t, p, reps in parts:
                topics.setdefault(t, []).append({"partition_index": p, "replicas": reps})
            body = {"timeout_ms": 5000, "topics": [{"name": t, "partitions": ps} for t, ps in topics.items()]}
            body.update(kw)
            return c.call(45, v, body)

        r = alter([(unique_topic, 0, [me]), (unique_topic, 0 + 1, [me]), (unique_topic + "-none", 0, [me])])
        assert (r["error_code"], r["error_message"], r["throttle_time_ms"]) == (0, None, 0)
        got = {(t["name"], p["partition_index"]): (p["error_code"], p["error_message"])
               for t in r["responses"] for p in t["partitions"]}
        assert got == {(unique_topic, 0): (0, None),
                       (unique_topic, 1): (errors.UNKNOWN_TOPIC_OR_PARTITION, "The partition does not exist."),
                       (unique_topic + "-none", 0): (errors.UNKNOWN_TOPIC_OR_PARTITION,
                                                     "The partition does not exist.")}
        for reps, code, msg in [
            ([], errors.INVALID_REPLICA_ASSIGNMENT, "Empty replica list specified in partition reassignment."),
            ([me, me], errors.INVALID_REPLICA_ASSIGNMENT,
             f"Duplicate replica ids in partition reassignment replica list: {[me, me]}"),
            ([-1], errors.INVALID_REPLICA_ASSIGNMENT, "Invalid broker id in replica list: [-1]"),
            ([me + 100], errors.INVALID_REPLICA_ASSIGNMENT,
             f"Replica assignment has brokers that are not alive. Replica list: [{me + 100}], "
             f"live broker list: [{me}]"),
            (None, errors.NO_REASSIGNMENT_IN_PROGRESS, None),
        ]:
            p = alter([(unique_topic, 0, reps)])["responses"][0]["partitions"][0]
            assert (p["error_code"], p["error_message"]) == (code, msg), reps
        if v >= 1:
            r = alter([(unique_topic, 0, [me])], allow_replication_factor_change=False)
            assert r["allow_replication_factor_change"] is False
            assert r["responses"][0]["partitions"][0]["error_code"] == 0
        # nothing moved: still one replica, here
        md = c.call(3, 9, {"topics": [{"name": unique_topic}], "allow_auto_topic_creation": False})
        assert md["topics"][0]["partitions"][0]["replica_nodes"] == [me]


@pytest.mark.parametrize("v", versions(46))
def test_list_partition_reassignments_lone_broker(shared_broker, unique_topic, v):
    with RawClient(shared_broker.bootstrap) as c:
        _topic_with_records(c, unique_topic, 1)
        for topics in (None, [{"name": unique_topic, "partition_indexes": [0, 5]}]):
            r = c.call(46, v, {"timeout_ms": 1000, "topics": topics})
            assert (r["error_code"], r["error_message"], r["topics"]) == (0, None, [])
