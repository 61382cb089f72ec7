"""Issue 12: ``unclean.leader.election.enable`` (topic and broker config,
default false), as Kafka's controller does it.

A replica falls out of the ISR (killed), the others acknowledge more
acks=all records and die too, the straggler comes back alone: no in-sync
replica is alive. With unclean election on, the straggler becomes leader
at once (the records it never got are lost: the price Kafka documents);
with it off the partition stays offline until unclean election is switched
on (a dynamic topic config change makes the controller elect again) or an
in-sync replica returns. The returning replicas follow the unclean leader
and truncate to its log: all three byte-identical afterwards.
"""

from __future__ import annotations

import time

from clusterlib import SESSION_MS, log_bytes, wait_until
from rawclient import RawClient

from pykbroker.protocol import errors
from pykbroker.protocol.records import build_batch

ON, OFF = "unclean-on", "unclean-off"


def produce(bootstrap: str, topic: str, n: int, acks: int = -1) -> dict:
    batch = build_batch([(b"k", b"v%d" % i, (), int(time.time() * 1000)) for i in range(n)])
    body = {"transactional_id": None, "acks": acks, "timeout_ms": 10000,
            "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": batch}]}]}
    with RawClient(bootstrap, timeout=30) as rc:
        return rc.call(0, 9, body)["responses"][0]["partition_responses"][0]


def list_offset(bootstrap: str, topic: str) -> dict:
    with RawClient(bootstrap) as rc:
        r = rc.call(2, 5, {"replica_id": -1, "isolation_level": 0, "topics": [
            {"name": topic, "partitions": [{"partition_index": 0, "current_leader_epoch": -1, "timestamp": -1}]}]})
    return r["topics"][0]["partitions"][0]


def metadata_partition(bootstrap: str, topic: str) -> dict:
    with RawClient(bootstrap) as rc:
        md = rc.call(3, 9, {"topics": [{"name": topic}], "allow_auto_topic_creation": False})
    return md["topics"][0]["partitions"][0]


def set_topic_config(bootstrap: str, topic: str, key: str, value: str) -> int:
    body = {"resources": [{"resource_type": 2, "resource_name": topic,
                           "configs": [{"name": key, "config_operation": 0, "value": value}]}],
            "validate_only": False}
    with RawClient(bootstrap, timeout=30) as rc:
        code: int = rc.call(44, 1, body)["responses"][0]["error_code"]
    return code


def test_unclean_leader_election(cluster):
    c = cluster
    c.create_topic(ON, 1, 3, {"min.insync.replicas": "2", "unclean.leader.election.enable": "true"})
    c.create_topic(OFF, 1, 3, {"min.insync.replicas": "2"})
    for t in (ON, OFF):
        r = produce(c.brokers[c.leader(t, 0)].bootstrap, t, 5)
        assert r["error_code"] == 0 and r["base_offset"] == 0
    straggler = 2
    others = [0, 1]
    c.kill(straggler)
    for t in (ON, OFF):
        wait_until(lambda t=t: straggler not in c.state(t, 0)["isr"], 30, f"{t}: broker {straggler} out of the ISR")
    # acknowledged by the two in-sync replicas only
    for t in (ON, OFF):
        r = produce(c.brokers[c.leader(t, 0)].bootstrap, t, 7)
        assert r["error_code"] == 0 and r["base_offset"] == 5, r
    for b in others:
        c.kill(b)
    c.restart(straggler)
    boot = c.brokers[straggler].bootstrap

    # unclean election on: the straggler leads, the 7 records it never got are gone
    wait_until(lambda: c.state(ON, 0)["leader"] == straggler, 10 + SESSION_MS / 1000 * 4,
               f"{ON}: unclean election of broker {straggler}")
    st = c.state(ON, 0)
    assert st["isr"] == [straggler]
    wait_until(lambda: list_offset(boot, ON)["error_code"] == 0, 10, f"{ON}: served by broker {straggler}")
    assert list_offset(boot, ON)["offset"] == 5
    assert produce(boot, ON, 1)["error_code"] == errors.NOT_ENOUGH_REPLICAS  # min.insync.replicas still holds
    r = produce(boot, ON, 1, acks=1)
    assert r["error_code"] == 0 and r["base_offset"] == 5

    # unclean election off: offline, nobody elected
    time.sleep(SESSION_MS / 1000 * 2)
    st = c.state(OFF, 0)
    assert st["leader"] == -1 and straggler not in st["isr"], st
    assert metadata_partition(boot, OFF)["error_code"] == errors.LEADER_NOT_AVAILABLE
    assert produce(boot, OFF, 1, acks=1)["error_code"] in (errors.NOT_LEADER_OR_FOLLOWER,
                                                           errors.LEADER_NOT_AVAILABLE)
    # switched on for the topic: the controller elects the straggler
    assert set_topic_config(boot, OFF, "unclean.leader.election.enable", "true") == 0
    wait_until(lambda: c.state(OFF, 0)["leader"] == straggler, 15, f"{OFF}: unclean election after the change")
    wait_until(lambda: list_offset(boot, OFF)["error_code"] == 0, 10, f"{OFF}: served by broker {straggler}")
    assert list_offset(boot, OFF)["offset"] == 5

    # the old in-sync replicas come back as followers and truncate to the new leader's log
    for b in others:
        c.restart(b)
    for t in (ON, OFF):
        c.wait_full_isr(t, 1, timeout=60)
        assert c.state(t, 0)["leader"] == straggler
    assert produce(boot, ON, 2)["error_code"] == 0
    hw = list_offset(boot, ON)["offset"]
    assert hw == 8
    wait_until(lambda: len({log_bytes(c.log_dir(b, ON, 0), hw) for b in range(3)}) == 1, 30,
               "identical replicas after the unclean election")
    assert list_offset(boot, OFF)["offset"] == 5
    wait_until(lambda: len({log_bytes(c.log_dir(b, OFF, 0), 5) for b in range(3)}) == 1, 30,
               "identical replicas of the switched topic")
