"""Issue 13: partition reassignment (AlterPartitionReassignments 45,
ListPartitionReassignments 46) and replication throttles in a ZooKeeper
cluster of real broker processes.

- kafka-python's admin client: the shapes and values of
  alter/list_partition_reassignments; bad input (unknown broker,
  duplicates, an empty list, a partition that does not exist, cancelling
  nothing) gets Kafka's errors and moves nothing.
- A throttled move survives a controller change half-way (the state is in
  the topic znode); Metadata shows the full replica set meanwhile; once the
  throttle is lifted it completes: the removed replica's directory is gone,
  every record is there, in order.
- Cancelling half-way puts the original replica set back at once, drops the
  half-copied replica and loses nothing.
- A replica moved away while its broker was down is deleted when it starts.
- Kafka's legacy way in: a plan written to ``/admin/reassign_partitions``
  (with kazoo) starts its valid moves; invalid entries get the API's errors
  and leave the znode; a partition the API then reassigns (here: cancels)
  leaves it too; once the last move completes the znode is deleted, every
  broker's Metadata shows the new replicas and every record is there at its
  offset.
- The leader epoch goes up when a move starts (Kafka's phase A1), not only
  when it completes: ZooKeeper's state, every broker's Metadata and the
  leader's OffsetForLeaderEpoch answers show it.
- A znode created while the controller cannot see it (stopped, then
  killed) is read by the next controller at failover.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from clusterlib import Cluster, wait_until
from rawclient import RawClient

from pykbroker.protocol import errors
from pykbroker.protocol.records import build_batch

RECORD = b"x" * 1000


def fill(cl: Cluster, topic: str, p: int, batches: int, per_batch: int = 100) -> int:
    """acks=all produce of ``batches`` batches of ``per_batch`` 1 kB records; the count."""
    n = 0
    with RawClient(cl.brokers[cl.leader(topic, p)].bootstrap, timeout=30) as rc:
        for _ in range(batches):
            recs = [(b"k%d" % p, RECORD + b"%d" % (n + i), (), int(time.time() * 1000)) for i in range(per_batch)]
            body = {"transactional_id": None, "acks": -1, "timeout_ms": 20000,
                    "topic_data": [{"name": topic, "partition_data": [{"index": p, "records": build_batch(recs)}]}]}
            r = rc.call(0, 9, body)["responses"][0]["partition_responses"][0]
            assert r["error_code"] == 0, r
            n += per_batch
    return n


def consume_values(bootstrap: str, topic: str, p: int, count: int, timeout: float = 60) -> list[bytes]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{time.time()}", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, p, 0)])
        out: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            for m in c.consume(500, 1.0):
                if m.error() is None:
                    out.append(m.value())
        return out
    finally:
        c.close()


def consume_offsets(bootstrap: str, topic: str, p: int, count: int, timeout: float = 60) -> list[tuple[int, bytes]]:
    """(offset, value) of the first ``count`` records of a partition (confluent-kafka)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{time.time()}", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, p, 0)])
        out: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            for m in c.consume(500, 1.0):
                if m.error() is None:
                    out.append((m.offset(), m.value()))
        return out
    finally:
        c.close()


def set_configs(cl: Cluster, rtype: str, name: str, configs: dict[str, str | None]) -> None:
    """IncrementalAlterConfigs through confluent-kafka (None: delete)."""
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET if v is not None
                           else AlterConfigOpType.DELETE) for k, v in configs.items()]
    res = ConfigResource(ResourceType[rtype], name, incremental_configs=entries)
    admin = AdminClient({"bootstrap.servers": cl.running_bootstrap()})
    for f in admin.incremental_alter_configs([res], request_timeout=30).values():
        f.result(timeout=60)


def kp_admin(cl: Cluster):
    from kafka import KafkaAdminClient

    return KafkaAdminClient(bootstrap_servers=cl.running_bootstrap(), request_timeout_ms=30000)


def metadata_replicas(cl: Cluster, i: int, topic: str) -> dict[int, list[int]]:
    with RawClient(cl.brokers[i].bootstrap) as rc:
        md = rc.call(3, 9, {"topics": [{"name": topic}], "allow_auto_topic_creation": False})
    return {p["partition_index"]: p["replica_nodes"] for p in md["topics"][0]["partitions"]}


def metadata_epochs(cl: Cluster, i: int, topic: str) -> dict[int, tuple[int, int]]:
    """partition -> (leader, leader epoch) in broker ``i``'s Metadata."""
    with RawClient(cl.brokers[i].bootstrap) as rc:
        md = rc.call(3, 9, {"topics": [{"name": topic}], "allow_auto_topic_creation": False})
    return {p["partition_index"]: (p["leader_id"], p["leader_epoch"]) for p in md["topics"][0]["partitions"]}


def offset_for_epoch(cl: Cluster, i: int, topic: str, p: int, current: int, epoch: int) -> tuple[int, int, int]:
    """OffsetForLeaderEpoch v3 as a consumer asks it: (error, leader epoch, end offset)."""
    with RawClient(cl.brokers[i].bootstrap) as rc:
        r = rc.call(23, 3, {"replica_id": -1, "topics": [{"topic": topic, "partitions": [
            {"partition": p, "current_leader_epoch": current, "leader_epoch": epoch}]}]})
    r = r["topics"][0]["partitions"][0]
    return r["error_code"], r["leader_epoch"], r["end_offset"]


def moved(cl: Cluster, topic: str, p: int, target: list[int], ordered: bool = True) -> bool:
    z = cl.topic_znode(topic)
    now = z["partitions"][str(p)]
    same = now == target if ordered else sorted(now) == sorted(target)
    return same and str(p) not in z.get("adding_replicas", {}) and str(p) not in z.get("removing_replicas", {})


def pick(cl: Cluster, topic: str) -> tuple[int, list[int], int]:
    """A partition, its replicas and the broker that holds none of it, the
    controller not being that broker (so the new replica is not restarted
    with the controller)."""
    ctl = cl.controller()
    for p, reps in sorted(cl.assignment(topic).items()):
        (other,) = set(range(3)) - set(reps)
        if other != ctl:
            return p, reps, other
    raise AssertionError("no partition fits")


def test_admin_shapes_bad_input_and_controller_change_mid_move(cluster_factory):
    from kafka import TopicPartition
    from kafka.errors import (InvalidReplicationAssignmentError, NoReassignmentInProgressError,
                              UnknownTopicOrPartitionError)

    cl = cluster_factory(overrides={"auto.leader.rebalance.enable": False})
    cl.create_topic("mv", 3, 2)
    p, (a, b), c = pick(cl, "mv")
    count = fill(cl, "mv", p, 30)  # ~3 MB
    before = cl.assignment("mv")
    admin = kp_admin(cl)
    tp = TopicPartition("mv", p)
    try:
        # bad input: Kafka's errors, nothing moves
        assert admin.alter_partition_reassignments({tp: [a, 9]}) == {tp: InvalidReplicationAssignmentError}
        assert admin.alter_partition_reassignments({tp: [c, c]}) == {tp: InvalidReplicationAssignmentError}
        assert admin.alter_partition_reassignments({TopicPartition("mv", 7): [a, b]}) == \
            {TopicPartition("mv", 7): UnknownTopicOrPartitionError}
        assert admin.alter_partition_reassignments({TopicPartition("nope", 0): [a, b]}) == \
            {TopicPartition("nope", 0): UnknownTopicOrPartitionError}
        assert admin.alter_partition_reassignments({tp: None}) == {tp: NoReassignmentInProgressError}
        with RawClient(cl.brokers[cl.controller()].bootstrap) as rc:
            r = rc.call(45, 0, {"timeout_ms": 10000, "topics": [
                {"name": "mv", "partitions": [{"partition_index": p, "replicas": []},
                                              {"partition_index": p + 10, "replicas": [a, b]}]}]})
            assert r["error_code"] == 0
            got = [(x["partition_index"], x["error_code"], x["error_message"]) for x in r["responses"][0]["partitions"]]
            assert got == [(p, errors.INVALID_REPLICA_ASSIGNMENT, "Empty replica list specified in partition "
                                                                   "reassignment."),
                           (p + 10, errors.UNKNOWN_TOPIC_OR_PARTITION, "The partition does not exist.")]
            r = rc.call(45, 1, {"timeout_ms": 10000, "allow_replication_factor_change": False, "topics": [
                {"name": "mv", "partitions": [{"partition_index": p, "replicas": [a, b, c]}]}]})
            assert r["allow_replication_factor_change"] is False
            assert r["responses"][0]["partitions"][0]["error_code"] == errors.INVALID_REPLICATION_FACTOR
            assert r["responses"][0]["partitions"][0]["error_message"] == \
                "The replication factor is changed from 2 to 3"
            not_ctl = next(i for i in range(3) if i != cl.controller())
        with RawClient(cl.brokers[not_ctl].bootstrap) as rc:
            assert rc.call(45, 0, {"timeout_ms": 1000, "topics": []})["error_code"] == errors.NOT_CONTROLLER
            assert rc.call(46, 0, {"timeout_ms": 1000, "topics": None})["error_code"] == errors.NOT_CONTROLLER
        assert cl.assignment("mv") == before
        assert admin.list_partition_reassignments() == {}
        assert not cl.log_dir(c, "mv", p).exists()

        # a throttled move: c catches up slowly (300 kB/s)
        set_configs(cl, "TOPIC", "mv", {"follower.replication.throttled.replicas": f"{p}:{c}"})
        set_configs(cl, "BROKER", str(c), {"follower.replication.throttled.rate": "300000"})
        assert admin.alter_partition_reassignments({tp: [c, a]}) == {tp: None}
        moving = {tp: {"replicas": [c, a, b], "adding_replicas": [c], "removing_replicas": [b]}}
        assert admin.list_partition_reassignments() == moving
        assert admin.list_partition_reassignments([tp, TopicPartition("mv", 7)]) == moving
        assert admin.list_partition_reassignments({"mv": [x for x in range(3) if x != p]}) == {}
        z = cl.topic_znode("mv")
        assert (z["adding_replicas"], z["removing_replicas"]) == ({str(p): [c]}, {str(p): [b]})
        for i in range(3):
            wait_until(lambda i=i: metadata_replicas(cl, i, "mv")[p] == [c, a, b], 30,
                       f"broker {i}'s metadata showing the full replica set")
        wait_until(lambda: cl.log_dir(c, "mv", p).exists(), 30, "the new replica's directory")
        time.sleep(1.0)
        assert c not in cl.state("mv", p)["isr"]  # still copying (throttled)

        # the controller goes away half-way; its successor has the move from ZooKeeper
        old_ctl = cl.controller()
        cl.restart(old_ctl)
        wait_until(lambda: cl.controller() != old_ctl or old_ctl in cl.live_ids(), 60, "a controller")
        admin.close()
        admin = kp_admin(cl)
        wait_until(lambda: admin.list_partition_reassignments() == moving, 60, "the move listed by the new controller")

        # lift the throttle: the move completes
        set_configs(cl, "BROKER", str(c), {"follower.replication.throttled.rate": None})
        wait_until(lambda: moved(cl, "mv", p, [c, a]), 90, "the move to complete")
        assert admin.list_partition_reassignments() == {}
        st = cl.state("mv", p)
        assert sorted(st["isr"]) == sorted([c, a]) and st["leader"] in (c, a)
        wait_until(lambda: not cl.log_dir(b, "mv", p).exists(), 30, "the removed replica's directory to go")
        assert cl.log_dir(c, "mv", p).exists() and cl.log_dir(a, "mv", p).exists()
        for i in range(3):
            wait_until(lambda i=i: metadata_replicas(cl, i, "mv")[p] == [c, a], 30, "metadata after the move")
        values = consume_values(cl.running_bootstrap(), "mv", p, count)
        assert values == [RECORD + b"%d" % i for i in range(count)]
        # other partitions untouched
        after = cl.assignment("mv")
        assert {q: r for q, r in after.items() if q != p} == {q: r for q, r in before.items() if q != p}
    finally:
        admin.close()


def test_cancel_halfway_restores_the_replica_set(cluster_factory):
    from kafka import TopicPartition

    cl = cluster_factory()
    cl.create_topic("cx", 3, 2)
    p, (a, b), c = pick(cl, "cx")
    count = fill(cl, "cx", p, 30)
    admin = kp_admin(cl)
    tp = TopicPartition("cx", p)
    try:
        set_configs(cl, "TOPIC", "cx", {"leader.replication.throttled.replicas": "*"})
        for i in range(3):
            set_configs(cl, "BROKER", str(i), {"leader.replication.throttled.rate": "300000"})
        assert admin.alter_partition_reassignments({tp: [b, c]}) == {tp: None}
        d = cl.log_dir(c, "cx", p)
        wait_until(lambda: d.exists() and sum(f.stat().st_size for f in d.glob("*.log")) > 100_000, 30,
                   "the new replica to copy some data")
        assert c not in cl.state("cx", p)["isr"]
        assert admin.list_partition_reassignments() == {
            tp: {"replicas": [b, c, a], "adding_replicas": [c], "removing_replicas": [a]}}
        # the command-line tool sees it too (the installed entry point, a process of its own)
        out = subprocess.run([sys.executable, "-m", "pykbroker", "reassign", "--bootstrap-server",
                              cl.running_bootstrap(), "--list"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout == f"cx-{p}: replicas {[b, c, a]}, adding {[c]}, removing {[a]}\n"
        assert admin.alter_partition_reassignments({tp: None}) == {tp: None}
        # the origin as Kafka keeps it, RS - adding: [b, a] (the order of the full set)
        wait_until(lambda: moved(cl, "cx", p, [a, b], ordered=False), 30, "the original replica set back")
        assert admin.list_partition_reassignments() == {}
        wait_until(lambda: not d.exists(), 30, "the half-copied replica's directory to go")
        st = cl.state("cx", p)
        assert sorted(st["isr"]) == sorted([a, b]) and st["leader"] in (a, b)
        assert cl.log_dir(a, "cx", p).exists() and cl.log_dir(b, "cx", p).exists()
        more = fill(cl, "cx", p, 1)
        values = consume_values(cl.running_bootstrap(), "cx", p, count + more)
        assert len(values) == count + more
        assert values[:count] == [RECORD + b"%d" % i for i in range(count)]
    finally:
        admin.close()


def test_replica_removed_while_its_broker_was_down_is_deleted_at_start(cluster_factory):
    from kafka import TopicPartition

    cl = cluster_factory()
    cl.create_topic("gone", 3, 2)
    p, (a, b), c = pick(cl, "gone")
    count = fill(cl, "gone", p, 3)
    assert cl.log_dir(b, "gone", p).exists()
    cl.brokers[b].stop(timeout=60)
    wait_until(lambda: b not in cl.state("gone", p)["isr"], 30, f"broker {b} out of the ISR")
    admin = kp_admin(cl)
    try:
        tp = TopicPartition("gone", p)
        assert admin.alter_partition_reassignments({tp: [a, c]}) == {tp: None}
        wait_until(lambda: moved(cl, "gone", p, [a, c]), 60, "the move to complete without broker b")
    finally:
        admin.close()
    assert cl.log_dir(b, "gone", p).exists()  # it was down: nobody told it yet
    cl.brokers[b].restart()
    cl.wait_registered([b])
    wait_until(lambda: not cl.log_dir(b, "gone", p).exists(), 30, "the stale replica deleted at start")
    assert consume_values(cl.running_bootstrap(), "gone", p, count) == [RECORD + b"%d" % i for i in range(count)]


ZNODE = "/admin/reassign_partitions"


def znode_plan(cl: Cluster) -> dict[tuple[str, int], list[int]] | None:
    """What /admin/reassign_partitions asks for (None: no znode)."""
    if cl.zk.exists(ZNODE) is None:
        return None
    data, _ = cl.zk.get(ZNODE)
    return {(e["topic"], e["partition"]): e["replicas"] for e in json.loads(data)["partitions"]}


def test_legacy_znode_reassignment_and_epoch_bump_at_start(cluster_factory):
    from kafka import TopicPartition

    cl = cluster_factory(overrides={"auto.leader.rebalance.enable": False})
    cl.create_topic("zk", 3, 2)
    p, (a, b), c = pick(cl, "zk")
    assignment = cl.assignment("zk")
    q = next(x for x in sorted(assignment) if x != p)
    r = next(x for x in sorted(assignment) if x not in (p, q))
    (qa, qb), (d,) = assignment[q], set(range(3)) - set(assignment[q])
    count = fill(cl, "zk", p, 30)  # ~3 MB each: the throttled copies take seconds
    fill(cl, "zk", q, 30)
    # both moves copy slowly until the throttle is lifted
    set_configs(cl, "TOPIC", "zk", {"follower.replication.throttled.replicas": "*"})
    for x in {c, d}:
        set_configs(cl, "BROKER", str(x), {"follower.replication.throttled.rate": "300000"})
    before = cl.state("zk", p)
    epoch0, leader0 = before["leader_epoch"], before["leader"]
    for i in range(3):
        wait_until(lambda i=i: metadata_epochs(cl, i, "zk")[p] == (leader0, epoch0), 30, "metadata before the move")
    assert offset_for_epoch(cl, leader0, "zk", p, epoch0, epoch0) == (errors.NONE, epoch0, count)

    plan = {"version": 1, "partitions": [
        {"topic": "zk", "partition": p, "replicas": [c, a], "log_dirs": ["any", "any"]},
        {"topic": "zk", "partition": q, "replicas": [d, qa]},
        {"topic": "zk", "partition": r, "replicas": [assignment[r][0], 9]},  # broker 9 is not alive
        {"topic": "nope", "partition": 0, "replicas": [0, 1]},  # no such topic
    ]}
    cl.zk.create(ZNODE, json.dumps(plan).encode())
    # the controller starts the valid moves and removes the failed entries
    wait_until(lambda: znode_plan(cl) == {("zk", p): [c, a], ("zk", q): [d, qa]}, 30,
               "the failed entries removed from the znode")
    admin = kp_admin(cl)
    tp, tq = TopicPartition("zk", p), TopicPartition("zk", q)
    try:
        wait_until(lambda: set(admin.list_partition_reassignments()) == {tp, tq}, 30, "both moves listed")
        assert admin.list_partition_reassignments([tp]) == {
            tp: {"replicas": [c, a, b], "adding_replicas": [c], "removing_replicas": [b]}}
        assert cl.assignment("zk")[r] == assignment[r]  # the invalid entry moved nothing

        # the move started: leader epoch + 1, same leader and ISR, everywhere
        st = cl.state("zk", p)
        assert (st["leader"], st["leader_epoch"], sorted(st["isr"])) == (leader0, epoch0 + 1, sorted(before["isr"]))
        assert c not in st["isr"]  # still copying: the bump came with the start, not the end
        for i in range(3):
            wait_until(lambda i=i: metadata_epochs(cl, i, "zk")[p] == (leader0, epoch0 + 1), 30,
                       f"broker {i}'s metadata showing the new leader epoch")
            wait_until(lambda i=i: metadata_replicas(cl, i, "zk")[p] == [c, a, b], 30, "the full replica set")
        # the leader fences the old epoch; the new one starts at the log end offset
        assert offset_for_epoch(cl, leader0, "zk", p, epoch0, epoch0)[0] == errors.FENCED_LEADER_EPOCH
        assert offset_for_epoch(cl, leader0, "zk", p, epoch0 + 1, epoch0 + 1) == (errors.NONE, epoch0 + 1, count)
        assert offset_for_epoch(cl, leader0, "zk", p, epoch0 + 1, epoch0) == (errors.NONE, epoch0, count)

        # the API reassigns q (a cancel): the latest request wins, q leaves the znode
        assert admin.alter_partition_reassignments({tq: None}) == {tq: None}
        assert znode_plan(cl) == {("zk", p): [c, a]}
        wait_until(lambda: moved(cl, "zk", q, [qa, qb], ordered=False), 30, "q back on its replicas")
        assert cl.zk.exists(ZNODE) is not None  # p is still moving

        # lift the throttle: p's move completes and the znode goes
        set_configs(cl, "BROKER", str(c), {"follower.replication.throttled.rate": None})
        wait_until(lambda: moved(cl, "zk", p, [c, a]), 90, "the move to complete")
        wait_until(lambda: cl.zk.exists(ZNODE) is None, 30, "the znode deleted")
        assert admin.list_partition_reassignments() == {}
        st = cl.state("zk", p)
        assert sorted(st["isr"]) == sorted([c, a]) and st["leader"] in (c, a)
        assert st["leader_epoch"] == epoch0 + 2  # and once more when it completed
        for i in range(3):
            wait_until(lambda i=i: metadata_replicas(cl, i, "zk")[p] == [c, a], 30, "metadata after the move")
        wait_until(lambda: not cl.log_dir(b, "zk", p).exists(), 30, "the removed replica's directory to go")
        assert consume_offsets(cl.running_bootstrap(), "zk", p, count) == \
            [(i, RECORD + b"%d" % i) for i in range(count)]
    finally:
        admin.close()


def test_znode_written_while_the_controller_is_away_is_read_at_failover(cluster_factory):
    """Kafka's initializePartitionReassignments: a new controller starts the
    moves of an /admin/reassign_partitions it finds (no watch told it: the
    znode was created while the old controller was stopped)."""
    import os
    import signal

    cl = cluster_factory()
    cl.create_topic("fo", 3, 2)
    p, reps, c = pick(cl, "fo")
    count = fill(cl, "fo", p, 5)
    ctl = cl.controller()
    keep = next(r for r in reps if r != ctl)
    target = [c, keep]
    os.kill(cl.brokers[ctl].pid, signal.SIGSTOP)  # it cannot see the znode's creation
    try:
        cl.zk.create(ZNODE, json.dumps({"version": 1, "partitions": [
            {"topic": "fo", "partition": p, "replicas": target}]}).encode())
    finally:
        cl.kill(ctl)
    wait_until(lambda: cl.controller() != ctl, 60, "a new controller")
    wait_until(lambda: moved(cl, "fo", p, target), 60, "the move started by the new controller to complete")
    wait_until(lambda: cl.zk.exists(ZNODE) is None, 30, "the znode deleted")
    for i in range(3):
        if i != ctl:
            wait_until(lambda i=i: metadata_replicas(cl, i, "fo")[p] == target, 30, "metadata after the move")
    assert consume_offsets(cl.running_bootstrap(), "fo", p, count) == [(i, RECORD + b"%d" % i) for i in range(count)]
    cl.brokers[ctl].restart()
    cl.wait_registered([ctl])
