"""Cluster-wide configs live in ZooKeeper (issue 12 item 4, issue 20's
IncrementalAlterConfigs symptom): topic overrides in /config/topics/<t>,
dynamic broker configs in /config/brokers/<default> and /config/brokers/<id>,
each change announced under /config/changes/config_change_<seq> in Kafka's
formats. A change sent to any broker takes effect on every broker (the
partition leaders enforce it), within a bounded time. Also the routing of
the other admin requests (issue 20 build 2 and 3): per-resource answers
where a broker cannot serve a resource, topic changes visible in every
broker's Metadata when CreateTopics/CreatePartitions/DeleteTopics answer."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from clusterlib import Cluster, wait_until
from rawclient import RawClient

from pykbroker.protocol import errors
from pykbroker.protocol.records import build_batch

TOPIC, BROKER = 2, 4
SET, DELETE = 0, 1
SOURCE_TOPIC, SOURCE_DYNAMIC_BROKER, SOURCE_DYNAMIC_DEFAULT = 1, 2, 3
PROPAGATION_BOUND_S = 5.0  # every broker applies a change within this (it takes milliseconds)


@pytest.fixture(scope="module")
def mc(zk_server, tmp_path_factory):
    c = Cluster(zk_server.connect, tmp_path_factory.mktemp("configs"), 3, {"min.insync.replicas": 2})
    c.start()
    yield c
    c.close()


def call(c: Cluster, node: int, key: int, version: int, body: dict[str, Any]) -> dict[str, Any]:
    with RawClient(c.brokers[node].bootstrap, timeout=30) as rc:
        return rc.call(key, version, body)


def incremental(c: Cluster, node: int, rtype: int, name: str, ops: list[tuple[str, int, str | None]]) -> dict:
    body = {"resources": [{"resource_type": rtype, "resource_name": name,
                           "configs": [{"name": k, "config_operation": op, "value": v} for k, op, v in ops]}],
            "validate_only": False}
    return call(c, node, 44, 1, body)["responses"][0]


def describe(c: Cluster, node: int, rtype: int, name: str, key: str) -> tuple[str | None, int] | None:
    body = {"resources": [{"resource_type": rtype, "resource_name": name, "configuration_keys": [key]}],
            "include_synonyms": False, "include_documentation": False}
    res = call(c, node, 32, 4, body)["results"][0]
    assert res["error_code"] == 0, res
    for e in res["configs"]:
        if e["name"] == key:
            return e["value"], e["config_source"]
    return None


def zk_json(c: Cluster, path: str) -> Any:
    data, _ = c.zk.get(path)
    return json.loads(data)


def change_notifications(c: Cluster) -> list[str]:
    out = []
    for child in sorted(c.zk.get_children("/config/changes")):
        assert child.startswith("config_change_") and len(child) == len("config_change_") + 10, child
        out.append(zk_json(c, f"/config/changes/{child}")["entity_path"])
    return out


def wait_everywhere(c: Cluster, rtype: int, name: str, key: str, want: tuple[str | None, int]) -> float:
    """Seconds until DescribeConfigs on every broker answers ``want``."""
    t0 = time.monotonic()
    wait_until(lambda: all(describe(c, b, rtype, name if rtype == TOPIC or name == "" else str(b), key) == want
                           for b in range(c.n)), 30, f"{key}={want} on every broker")
    return time.monotonic() - t0


def keyless_produce(c: Cluster, node: int, topic: str, p: int) -> int:
    batch = build_batch([(None, b"no key", (), int(time.time() * 1000))])
    body = {"transactional_id": None, "acks": -1, "timeout_ms": 10000,
            "topic_data": [{"name": topic, "partition_data": [{"index": p, "records": batch}]}]}
    return call(c, node, 0, 9, body)["responses"][0]["partition_responses"][0]["error_code"]


def test_topic_config_through_any_broker_applies_on_every_broker(mc):
    mc.create_topic("cfg", 3, 3)
    for node in range(3):  # the controller and both other brokers accept it
        value = str(100_000 + node)
        r = incremental(mc, node, TOPIC, "cfg", [("retention.ms", SET, value)])
        assert r["error_code"] == 0, r
        assert zk_json(mc, "/config/topics/cfg") == {"version": 1, "config": {"retention.ms": value}}
        took = wait_everywhere(mc, TOPIC, "cfg", "retention.ms", (value, SOURCE_TOPIC))
        assert took < PROPAGATION_BOUND_S, took
    assert change_notifications(mc).count("topics/cfg") == 3


def test_compaction_rule_enforced_by_every_leader(mc):
    """Issue 20: a topic config change made through one broker (confluent-kafka's
    admin client) must be enforced by the partitions' leaders on the others."""
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    mc.create_topic("cfg-compact", 3, 3)
    leaders = {mc.leader("cfg-compact", p) for p in range(3)}
    assert len(leaders) == 3  # spread: the change must reach brokers that did not receive it
    for p in range(3):
        assert keyless_produce(mc, mc.leader("cfg-compact", p), "cfg-compact", p) == 0
    admin = AdminClient({"bootstrap.servers": mc.brokers[0].bootstrap})
    res = ConfigResource(ResourceType.TOPIC, "cfg-compact", incremental_configs=[
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SET)])
    for f in admin.incremental_alter_configs([res], request_timeout=30).values():
        f.result(timeout=60)
    wait_everywhere(mc, TOPIC, "cfg-compact", "cleanup.policy", ("compact", SOURCE_TOPIC))
    for p in range(3):
        assert keyless_produce(mc, mc.leader("cfg-compact", p), "cfg-compact", p) == errors.INVALID_RECORD
    desc = admin.describe_configs([ConfigResource(ResourceType.TOPIC, "cfg-compact")])
    cfg = next(iter(desc.values())).result(timeout=60)
    assert cfg["cleanup.policy"].value == "compact"


def test_dynamic_broker_configs_live_in_zookeeper(mc):
    # the cluster-wide default, sent to one broker, is applied by all
    r = incremental(mc, 0, BROKER, "", [("log.retention.ms", SET, "7200000")])
    assert r["error_code"] == 0, r
    assert zk_json(mc, "/config/brokers/<default>") == {"version": 1, "config": {"log.retention.ms": "7200000"}}
    wait_everywhere(mc, BROKER, "", "log.retention.ms", ("7200000", SOURCE_DYNAMIC_DEFAULT))
    assert "brokers/<default>" in change_notifications(mc)
    # a topic without an override follows it on every broker
    mc.create_topic("cfg-default", 1, 3)
    wait_until(lambda: all(describe(mc, b, TOPIC, "cfg-default", "retention.ms")[0] == "7200000"
                           for b in range(3)), 30, "topic default from the dynamic broker default")
    # a per-broker config is answered by that broker and stored in /config/brokers/<id>
    r = incremental(mc, 1, BROKER, "1", [("log.retention.ms", SET, "3600000")])
    assert r["error_code"] == 0, r
    assert zk_json(mc, "/config/brokers/1") == {"version": 1, "config": {"log.retention.ms": "3600000"}}
    assert describe(mc, 1, BROKER, "1", "log.retention.ms") == ("3600000", SOURCE_DYNAMIC_BROKER)
    assert describe(mc, 2, BROKER, "2", "log.retention.ms") == ("7200000", SOURCE_DYNAMIC_DEFAULT)
    r = incremental(mc, 0, BROKER, "1", [("log.retention.ms", SET, "1")])
    assert r["error_code"] == errors.INVALID_REQUEST  # another broker's resource: Kafka's message
    # a restarted broker reads them back
    mc.restart(2)
    assert describe(mc, 2, BROKER, "2", "log.retention.ms") == ("7200000", SOURCE_DYNAMIC_DEFAULT)
    # deleting empties the znodes and every broker falls back to the static value
    assert incremental(mc, 1, BROKER, "1", [("log.retention.ms", DELETE, None)])["error_code"] == 0
    assert incremental(mc, 2, BROKER, "", [("log.retention.ms", DELETE, None)])["error_code"] == 0
    assert zk_json(mc, "/config/brokers/<default>")["config"] == {}
    wait_until(lambda: all(describe(mc, b, BROKER, str(b), "log.retention.ms")[1] not in
                           (SOURCE_DYNAMIC_BROKER, SOURCE_DYNAMIC_DEFAULT) for b in range(3)), 30,
               "static log.retention.ms everywhere")


def _metadata_everywhere(c: Cluster, topic: str) -> list[tuple[int, int]]:
    """(topic error code, partitions with a leader) per broker."""
    out = []
    for b in range(c.n):
        t = call(c, b, 3, 12, {"topics": [{"name": topic, "topic_id": bytes(16)}],
                               "allow_auto_topic_creation": False})["topics"][0]
        out.append((t["error_code"], sum(1 for p in t["partitions"] if p["leader_id"] >= 0)))
    return out


def test_topic_changes_are_in_every_brokers_metadata_when_answered(mc):
    """Issue 20: after DeleteTopics (aiokafka) another broker still listed the
    topic. CreateTopics, CreatePartitions and DeleteTopics are answered once
    every live broker's Metadata shows the change."""
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic

    async def run() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=mc.bootstrap, request_timeout_ms=30000)
        await admin.start()
        try:
            for i in range(3):
                name = f"propagated-{i}"
                t0 = time.monotonic()
                await admin.create_topics([NewTopic(name, 2, 3)])
                assert _metadata_everywhere(mc, name) == [(0, 2)] * 3
                await admin.create_partitions({name: NewPartitions(4)})
                assert _metadata_everywhere(mc, name) == [(0, 4)] * 3
                await admin.delete_topics([name])
                assert _metadata_everywhere(mc, name) == [(errors.UNKNOWN_TOPIC_OR_PARTITION, 0)] * 3
                assert time.monotonic() - t0 < 3 * PROPAGATION_BOUND_S
        finally:
            await admin.close()

    asyncio.run(run())


def test_admin_requests_answered_per_resource_where_they_belong(mc):
    """Build 2 of issue 20: broker resources are described by that broker
    (the admin client routes them there; another broker answers
    INVALID_REQUEST for that resource only), DescribeCluster is the same from
    every broker, DeleteRecords and ListOffsets answer NOT_LEADER_OR_FOLLOWER
    per partition on a broker that does not lead it."""
    from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

    admin = AdminClient({"bootstrap.servers": mc.bootstrap})
    for b in range(3):  # librdkafka sends each to broker b (one BROKER resource per call)
        (f,) = admin.describe_configs([ConfigResource(ResourceType.BROKER, str(b))]).values()
        assert f.result(timeout=60)["node.id"].value == str(b)
    cl = admin.describe_cluster(request_timeout=30).result(timeout=60)
    assert sorted(n.id for n in cl.nodes) == [0, 1, 2] and cl.controller.id == mc.controller()
    for node in range(3):
        body = {"resources": [{"resource_type": BROKER, "resource_name": str(b), "configuration_keys": None}
                              for b in range(3)], "include_synonyms": False, "include_documentation": False}
        codes = [r["error_code"] for r in call(mc, node, 32, 4, body)["results"]]
        assert codes == [0 if b == node else errors.INVALID_REQUEST for b in range(3)]
        dc = call(mc, node, 60, 1, {"include_cluster_authorized_operations": False, "endpoint_type": 1})
        assert sorted(b["broker_id"] for b in dc["brokers"]) == [0, 1, 2]
        assert dc["controller_id"] == mc.controller()
    mc.create_topic("routed", 3, 3)
    lead = {p: mc.leader("routed", p) for p in range(3)}
    for node in range(3):
        dr = call(mc, node, 21, 2, {"topics": [{"name": "routed", "partitions": [
            {"partition_index": p, "offset": 0} for p in range(3)]}], "timeout_ms": 5000})
        got = [p["error_code"] for p in dr["topics"][0]["partitions"]]
        assert got == [0 if lead[p] == node else errors.NOT_LEADER_OR_FOLLOWER for p in range(3)]
        lo = call(mc, node, 2, 7, {"replica_id": -1, "isolation_level": 0, "topics": [{
            "name": "routed",
            "partitions": [{"partition_index": p, "current_leader_epoch": -1, "timestamp": -1} for p in range(3)]}]})
        got = [p["error_code"] for p in lo["topics"][0]["partitions"]]
        assert got == [0 if lead[p] == node else errors.NOT_LEADER_OR_FOLLOWER for p in range(3)]


def test_a_failed_watched_read_is_retried_without_a_reconnection(cluster_factory):
    """A broker whose read of a watched znode fails has lost that watch with
    the read; here ZooKeeper refuses the read of a topic written straight
    into ZooKeeper (as Kafka's old ``--zookeeper`` tools create topics) with
    an ACL that lets only its writer read it, the broker's watch on the topic
    list having fired. The broker must not wait for a reconnection that
    never comes: it reads everything again, with back-off, until the read
    succeeds; the topic then gets its partition state and a leader, and is
    served."""
    import base64
    import uuid

    from kazoo.client import KazooClient
    from kazoo.security import OPEN_ACL_UNSAFE, make_digest_acl

    c = cluster_factory(n=1)
    c.create_topic("acl-first", 1, 1)
    znode = c.topic_znode("acl-first")
    znode["topic_id"] = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    path = "/brokers/topics/acl-hidden"
    admin = KazooClient(hosts=c.connect, timeout=10, auth_data=[("digest", "admin:secret")])
    admin.start(20)
    try:
        admin.create(path, json.dumps(znode).encode(), acl=[make_digest_acl("admin", "secret", all=True)])
        time.sleep(1.5)  # the topic list's watch fires; reading the new topic is refused (at each retry too)
        with RawClient(c.bootstrap, timeout=30) as rc:
            md = rc.call(3, 9, {"topics": [{"name": "acl-hidden"}], "allow_auto_topic_creation": False})
        assert md["topics"][0]["error_code"] == errors.UNKNOWN_TOPIC_OR_PARTITION
        admin.set_acls(path, OPEN_ACL_UNSAFE)  # no watch fires for an ACL change
        c.wait_metadata("acl-hidden", 1, timeout=30)
        assert c.leader("acl-hidden", 0) == 0
        assert keyless_produce(c, 0, "acl-hidden", 0) == 0
    finally:
        admin.stop()
        admin.close()
