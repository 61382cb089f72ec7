"""Issue 20: client programs that work on one broker, pointed at a 3-broker
ZooKeeper cluster (replication factor 3, min.insync.replicas=2) as
``scripts/cluster`` starts it. One regression test per symptom, each with a
real client over real sockets; partitions are spread so that leaders and
coordinators sit on different brokers."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from clusterlib import Cluster, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clientlib import Rec, produce_confluent

OVERRIDES = {
    "min.insync.replicas": 2,
    "offsets.topic.num.partitions": 6,
    "transaction.state.log.replication.factor": 3,
    "transaction.state.log.min.isr": 2,
    "transaction.state.log.num.partitions": 6,
    "group.initial.rebalance.delay.ms": 0,
    "num.partitions": 1,
}


@pytest.fixture(scope="module")
def mc(zk_server, tmp_path_factory):
    c = Cluster(zk_server.connect, tmp_path_factory.mktemp("clients"), 3, OVERRIDES)
    c.start()
    yield c
    c.close()


def fill(c: Cluster, topic: str, partitions: int, per_partition: int) -> None:
    c.create_topic(topic, partitions, 3)
    recs = [Rec(i % partitions, -1, f"k{i}".encode(), f"v{i}".encode(), (), int(time.time() * 1000))
            for i in range(partitions * per_partition)]
    produce_confluent(c.bootstrap, topic, recs)


def leaders(c: Cluster, topic: str, partitions: int) -> set[int]:
    return {c.leader(topic, p) for p in range(partitions)}


def test_kafka_python_delete_records_across_leaders(mc):
    """280 records deleted (70 in each of 4 partitions led by different
    brokers): every partition's log start offset moves, on every replica."""
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    topic = "dr-spread"
    fill(mc, topic, 4, 100)
    assert len(leaders(mc, topic, 4)) == 3
    admin = KafkaAdminClient(bootstrap_servers=mc.bootstrap, request_timeout_ms=30000)
    try:
        out = admin.delete_records({TopicPartition(topic, p): 70 for p in range(4)}, timeout_ms=30000)
        assert {tp.partition: r["low_watermark"] for tp, r in out.items()} == {p: 70 for p in range(4)}
    finally:
        admin.close()
    consumer = KafkaConsumer(bootstrap_servers=mc.bootstrap, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in range(4)]
        assert consumer.beginning_offsets(tps) == {tp: 70 for tp in tps}
        assert consumer.end_offsets(tps) == {tp: 100 for tp in tps}
        consumer.assign(tps)
        consumer.seek_to_beginning()
        got: dict[int, list[int]] = {p: [] for p in range(4)}
        deadline = time.monotonic() + 60
        while sum(map(len, got.values())) < 120 and time.monotonic() < deadline:
            for tp, msgs in consumer.poll(500).items():
                got[tp.partition] += [m.offset for m in msgs]
        assert got == {p: list(range(70, 100)) for p in range(4)}
    finally:
        consumer.close()


def test_aiokafka_seek_to_end_and_pattern_subscription(mc):
    from aiokafka import AIOKafkaConsumer, TopicPartition

    topic = "seek-end"
    fill(mc, topic, 3, 20)

    async def seek_end() -> dict[int, int]:
        c = AIOKafkaConsumer(bootstrap_servers=mc.bootstrap, enable_auto_commit=False)
        await c.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(3)]
            c.assign(tps)
            await c.seek_to_end(*tps)
            return {tp.partition: await c.position(tp) for tp in tps}
        finally:
            await c.stop()

    assert asyncio.run(seek_end()) == {0: 20, 1: 20, 2: 20}

    async def pattern() -> set[str]:
        c = AIOKafkaConsumer(bootstrap_servers=mc.bootstrap, group_id="pattern-group",
                             auto_offset_reset="earliest", metadata_max_age_ms=1000)
        await c.start()
        seen: set[str] = set()
        try:
            c.subscribe(pattern=r"^pat-.*")
            await asyncio.sleep(0.5)
            for name in ("pat-a", "pat-b"):
                await asyncio.to_thread(fill, mc, name, 2, 5)
            deadline = time.monotonic() + 60
            while seen != {"pat-a", "pat-b"} and time.monotonic() < deadline:
                batch = await c.getmany(timeout_ms=500)
                seen |= {tp.topic for tp, msgs in batch.items() if msgs}
        finally:
            await c.stop()
        return seen

    assert asyncio.run(pattern()) == {"pat-a", "pat-b"}


def test_aiokafka_static_member_rejoins_without_rebalance(mc):
    """KIP-345: a static member that restarts within the session timeout gets
    its partitions back; the other member is not rebalanced."""
    from aiokafka import AIOKafkaConsumer

    topic, group = "static-t", "static-group"
    mc.create_topic(topic, 4, 3)

    async def run() -> tuple[set[int], set[int], set[int], int]:
        def consumer(instance: str) -> Any:
            return AIOKafkaConsumer(topic, bootstrap_servers=mc.bootstrap, group_id=group,
                                    group_instance_id=instance, session_timeout_ms=20000,
                                    heartbeat_interval_ms=500, auto_offset_reset="earliest")

        a, b = consumer("a"), consumer("b")
        await a.start()
        await b.start()

        async def settle(*cs: Any) -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                for c in cs:
                    await c.getmany(timeout_ms=100)
                got = [c.assignment() for c in cs]
                if all(got) and sum(len(x) for x in got) == 4:
                    return
            raise AssertionError("group did not settle")

        await settle(a, b)
        a_before = {tp.partition for tp in a.assignment()}
        b_before = {tp.partition for tp in b.assignment()}
        gen_before = a._coordinator.generation
        await b.stop()  # a static member leaves no LeaveGroup
        b2 = consumer("b")
        await b2.start()
        await settle(a, b2)
        b_after = {tp.partition for tp in b2.assignment()}
        await a.getmany(timeout_ms=200)
        gen_after = a._coordinator.generation
        await a.stop()
        await b2.stop()
        return a_before, b_before, b_after, gen_after - gen_before

    a_before, b_before, b_after, generations = asyncio.run(run())
    assert b_after == b_before and a_before | b_before == {0, 1, 2, 3}
    assert generations == 0


def test_librdkafka_max_poll_interval_exceeded_hands_partitions_over(mc):
    """A consumer that does not poll for max.poll.interval.ms leaves the group
    (librdkafka sends LeaveGroup to the coordinator); the other member gets
    every partition, as on one broker."""
    from confluent_kafka import Consumer, KafkaError

    topic, group = "poll-interval", "poll-interval-group"
    fill(mc, topic, 4, 5)
    conf = {"bootstrap.servers": mc.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000, "heartbeat.interval.ms": 500}
    slow = Consumer({**conf, "max.poll.interval.ms": 7000})
    fast = Consumer({**conf, "max.poll.interval.ms": 300000})
    try:
        slow.subscribe([topic])
        fast.subscribe([topic])

        def both_assigned() -> bool:
            slow.poll(0.1)
            fast.poll(0.1)
            return bool(slow.assignment()) and bool(fast.assignment()) and \
                len(slow.assignment()) + len(fast.assignment()) == 4

        wait_until(both_assigned, 60, "two members sharing four partitions")
        t0 = time.monotonic()
        def fast_owns_all() -> bool:
            fast.poll(0.2)
            return len(fast.assignment()) == 4

        wait_until(fast_owns_all, 40, "the polling member owns every partition")
        took = time.monotonic() - t0
        assert len(fast.assignment()) == 4
        assert 5 < took < 30, took  # after max.poll.interval.ms, not a session timeout later
        msg = slow.poll(1.0)
        assert msg is not None and msg.error() is not None and \
            msg.error().code() == KafkaError._MAX_POLL_EXCEEDED
    finally:
        slow.close()
        fast.close()


def test_librdkafka_transaction_commit_latency(mc):
    """A transaction over partitions led by all three brokers commits as fast
    as on one broker: the markers are written in parallel."""
    from confluent_kafka import Producer

    topic = "txn-spread"
    mc.create_topic(topic, 6, 3)
    assert len(leaders(mc, topic, 6)) == 3
    p = Producer({"bootstrap.servers": mc.bootstrap, "transactional.id": "latency-txn", "linger.ms": 1})
    p.init_transactions(60)
    times = []
    for i in range(5):
        p.begin_transaction()
        for part in range(6):
            p.produce(topic, value=f"v{i}-{part}".encode(), partition=part)
        p.flush(30)
        t0 = time.monotonic()
        p.commit_transaction(60)
        times.append(time.monotonic() - t0)
    times.sort()
    assert times[len(times) // 2] < 1.0, times  # the median; one broker: a few ms


def _coordinator(c: Cluster, key: str, key_type: int = 0) -> int:
    from rawclient import RawClient

    with RawClient(c.running_bootstrap().split(",")[0]) as rc:
        r = rc.call(10, 4, {"key_type": key_type, "coordinator_keys": [key]})
    (co,) = r["coordinators"]
    assert co["error_code"] == 0, co
    return int(co["node_id"])


def test_static_members_keep_their_generation_when_the_coordinator_moves(mc):
    """Build 4 of issue 20: the group coordinator moves with the leadership of
    its __consumer_offsets partition (its broker restarts); the group is
    loaded there from the log, so static members keep their member ids,
    generation and partitions: no rebalance, as on one broker."""
    from aiokafka import AIOKafkaConsumer

    topic, group = "coord-move", "coord-move-group"
    mc.create_topic(topic, 4, 3)

    async def run() -> None:
        def consumer(instance: str) -> Any:
            return AIOKafkaConsumer(topic, bootstrap_servers=mc.bootstrap, group_id=group,
                                    group_instance_id=instance, session_timeout_ms=30000,
                                    heartbeat_interval_ms=500, auto_offset_reset="earliest")

        a, b = consumer("a"), consumer("b")
        await a.start()
        await b.start()
        try:
            deadline = time.monotonic() + 60
            while not (a.assignment() and b.assignment() and len(a.assignment()) + len(b.assignment()) == 4):
                assert time.monotonic() < deadline, "group did not settle"
                await a.getmany(timeout_ms=100)
                await b.getmany(timeout_ms=100)
            before = (a._coordinator.generation, a.assignment(), b.assignment())
            old = await asyncio.to_thread(_coordinator, mc, group)
            await asyncio.to_thread(mc.restart, old)  # controlled shutdown: the leadership moves first
            assert await asyncio.to_thread(_coordinator, mc, group) != old
            t0 = time.monotonic()
            while time.monotonic() - t0 < 8:  # heartbeats and fetches go on with the new coordinator
                await a.getmany(timeout_ms=100)
                await b.getmany(timeout_ms=100)
            after = (a._coordinator.generation, a.assignment(), b.assignment())
            assert after == before
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(run())
    mc.wait_full_isr("__consumer_offsets", 6)


def test_consumer_protocol_members_keep_their_epochs_when_the_coordinator_moves(mc):
    """Issue 15 item 5 on a cluster: a KIP-848 group (librdkafka,
    group.protocol=consumer) is loaded by the new coordinator from its
    replica of __consumer_offsets, so members keep ids, epochs and
    partitions; no revoke or lost-partition callback."""
    from confluent_kafka import Consumer

    from rawclient import RawClient

    topic, group = "coord-move-848", "coord-move-848-group"
    mc.create_topic(topic, 4, 3)
    calls: list[tuple[str, str, list[int]]] = []

    def consumer(name: str) -> Any:
        c = Consumer({"bootstrap.servers": mc.bootstrap, "group.id": group, "group.protocol": "consumer",
                      "auto.offset.reset": "earliest"})
        c.subscribe([topic], on_assign=lambda _c, ps: calls.append((name, "assign", [p.partition for p in ps])),
                    on_revoke=lambda _c, ps: calls.append((name, "revoke", [p.partition for p in ps])),
                    on_lost=lambda _c, ps: calls.append((name, "lost", [p.partition for p in ps])))
        return c

    def poll(cs: list[Any], seconds: float) -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            for c in cs:
                c.poll(0.05)

    def describe() -> dict:
        node = _coordinator(mc, group)
        with RawClient(mc.brokers[node].bootstrap) as rc:
            d = rc.call(69, 0, {"group_ids": [group]})["groups"][0]
        assert d["error_code"] == 0, d
        return {m["member_id"]: (m["member_epoch"], sorted(m["assignment"]["topic_partitions"][0]["partitions"]))
                for m in d["members"]} | {"": d["group_epoch"]}

    a, b = consumer("a"), consumer("b")
    try:
        deadline = time.monotonic() + 60
        while not (len(a.assignment()) == 2 and len(b.assignment()) == 2):
            assert time.monotonic() < deadline, "group did not settle"
            poll([a, b], 0.2)
        poll([a, b], 1.5)
        before, seen = describe(), list(calls)
        old = _coordinator(mc, group)
        t0 = time.monotonic()
        mc.restart(old)  # controlled shutdown: the leadership of the group's partition moves first
        assert _coordinator(mc, group) != old
        poll([a, b], max(0.0, 8 - (time.monotonic() - t0)))  # heartbeats go on with the new coordinator
        assert describe() == before
        assert calls == seen
    finally:
        a.close()
        b.close()
    mc.wait_full_isr("__consumer_offsets", 6)


def test_transactions_go_on_when_the_transaction_coordinator_moves(mc):
    """The transaction coordinator moves with __transaction_state's leadership:
    the producer finds the new one and commits at single-broker speed; a
    read_committed consumer sees every committed record once."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    topic, txn_id = "txn-move", "moving-txn"
    mc.create_topic(topic, 3, 3)
    p = Producer({"bootstrap.servers": mc.bootstrap, "transactional.id": txn_id, "linger.ms": 1})
    p.init_transactions(60)

    def one(i: int) -> float:
        p.begin_transaction()
        for part in range(3):
            p.produce(topic, value=f"v{i}-{part}".encode(), partition=part)
        p.flush(30)
        t0 = time.monotonic()
        p.commit_transaction(60)
        return time.monotonic() - t0

    one(0)
    old = _coordinator(mc, txn_id, 1)
    mc.restart(old)
    assert _coordinator(mc, txn_id, 1) != old
    one(1)  # finds the new coordinator
    times = sorted(one(i) for i in range(2, 7))
    assert times[len(times) // 2] < 1.0, times
    c = Consumer({"bootstrap.servers": mc.bootstrap, "group.id": "txn-move-reader",
                  "isolation.level": "read_committed", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, part, 0) for part in range(3)])
        got: list[str] = []
        deadline = time.monotonic() + 60
        while len(got) < 21 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m.value().decode())
        assert sorted(got) == sorted(f"v{i}-{part}" for i in range(7) for part in range(3))
    finally:
        c.close()
    mc.wait_full_isr("__transaction_state", 6)
