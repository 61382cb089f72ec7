"""Thin wrappers over the real clients, used by the client tests.

Every consume helper returns ``{partition: [Rec, ...]}`` in the order the
client delivered them; every produce helper returns the (partition, offset)
the broker acknowledged for each record, in the order of ``recs``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

import attrs

DEADLINE = 60.0


@attrs.frozen
class Rec:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp: int


def expected_records(topic: str, n: int, partitions: int, base_ts: int) -> list[Rec]:
    """Record i goes to partition i % partitions at offset i // partitions."""
    out = []
    for i in range(n):
        key = None if i % 50 == 0 else f"key-{i}".encode()
        value = None if (i % 97 == 0 and key is not None) else (f"value-{i}-" + "x" * (i % 100)).encode()
        headers = () if i % 7 == 0 else (("idx", str(i).encode()), ("bin", b"\x00\xff" + bytes([i % 256])))
        out.append(Rec(i % partitions, i // partitions, key, value, headers, base_ts + i))
    return out


def create_topic(bootstrap: str, topic: str, partitions: int, config: dict | None = None,
                 replication_factor: int = 1) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    fs = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=replication_factor,
                                       config=config or {})], operation_timeout=10)
    fs[topic].result(timeout=30)


# -- producers ----------------------------------------------------------------

def produce_confluent(bootstrap: str, topic: str, recs: list[Rec], *, compression: str = "none",
                      acks: str = "all", extra: dict | None = None) -> list[tuple[int, int]]:
    from confluent_kafka import Producer

    conf = {"bootstrap.servers": bootstrap, "linger.ms": 5, "compression.type": compression,
            "acks": acks}
    conf.update(extra or {})
    p = Producer(conf)
    results: dict[int, tuple[int, int]] = {}
    errors: list = []

    def cb(i: int):  # type: ignore[no-untyped-def]
        def done(err, msg):  # type: ignore[no-untyped-def]
            if err is not None:
                errors.append(err)
            else:
                results[i] = (msg.partition(), msg.offset())
        return done

    for i, r in enumerate(recs):
        while True:
            try:
                p.produce(topic, value=r.value, key=r.key, partition=r.partition,
                          timestamp=r.timestamp, headers=list(r.headers) or None, on_delivery=cb(i))
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    remaining = p.flush(DEADLINE)
    assert remaining == 0 and not errors, (remaining, errors[:3])
    return [results[i] for i in range(len(recs))]


def produce_kafka_python(bootstrap: str, topic: str, recs: list[Rec], *, compression: str | None = None,
                         acks: int | str = 1, extra: dict | None = None) -> list[tuple[int, int]]:
    from kafka import KafkaProducer

    conf = dict(bootstrap_servers=bootstrap, enable_idempotence=False, linger_ms=5, acks=acks,
                compression_type=None if compression in (None, "none") else compression)
    conf.update(extra or {})
    p = KafkaProducer(**conf)
    try:
        futs = [p.send(topic, value=r.value, key=r.key, partition=r.partition,
                       timestamp_ms=r.timestamp, headers=list(r.headers)) for r in recs]
        p.flush(timeout=DEADLINE)
        metas = [f.get(timeout=DEADLINE) for f in futs]
    finally:
        p.close(timeout=5)
    return [(m.partition, m.offset) for m in metas]


def produce_aiokafka(bootstrap: str, topic: str, recs: list[Rec], *, compression: str | None = None,
                     acks: int | str = 1) -> list[tuple[int, int]]:
    from aiokafka import AIOKafkaProducer

    async def run() -> list[tuple[int, int]]:
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=acks,
                             compression_type=None if compression in (None, "none") else compression)
        await p.start()
        try:
            futs = [await p.send(topic, value=r.value, key=r.key, partition=r.partition,
                                 timestamp_ms=r.timestamp, headers=list(r.headers)) for r in recs]
            metas = await asyncio.wait_for(asyncio.gather(*futs), DEADLINE)
        finally:
            await p.stop()
        return [(m.partition, m.offset) for m in metas]

    return asyncio.run(run())


# -- consumers ------------------------------------------------------------------

def _done(got: dict[int, list[Rec]], want: dict[int, int]) -> bool:
    return all(len(got[p]) >= n for p, n in want.items())


def consume_confluent(bootstrap: str, topic: str, start: dict[int, int], want: dict[int, int],
                      extra: dict | None = None) -> dict[int, list[Rec]]:
    from confluent_kafka import Consumer, TopicPartition

    conf = {"bootstrap.servers": bootstrap, "group.id": f"assign-{time.time_ns()}",
            "enable.auto.commit": False}
    conf.update(extra or {})
    c = Consumer(conf)
    got: dict[int, list[Rec]] = {p: [] for p in start}
    try:
        c.assign([TopicPartition(topic, p, o) for p, o in start.items()])
        deadline = time.monotonic() + DEADLINE
        while not _done(got, want) and time.monotonic() < deadline:
            for m in c.consume(1000, 0.5):
                if m.error():
                    raise AssertionError(m.error())
                got[m.partition()].append(Rec(m.partition(), m.offset(), m.key(), m.value(),
                                              tuple(m.headers() or ()), m.timestamp()[1]))
    finally:
        c.close()
    return got


def consume_kafka_python(bootstrap: str, topic: str, start: dict[int, int], want: dict[int, int],
                         extra: dict | None = None) -> dict[int, list[Rec]]:
    from kafka import KafkaConsumer, TopicPartition

    conf = dict(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    conf.update(extra or {})
    c = KafkaConsumer(**conf)
    got: dict[int, list[Rec]] = {p: [] for p in start}
    try:
        tps = [TopicPartition(topic, p) for p in start]
        c.assign(tps)
        for tp in tps:
            c.seek(tp, start[tp.partition])
        deadline = time.monotonic() + DEADLINE
        while not _done(got, want) and time.monotonic() < deadline:
            for msgs in c.poll(timeout_ms=500).values():
                for m in msgs:
                    got[m.partition].append(Rec(m.partition, m.offset, m.key, m.value,
                                                tuple((k, v) for k, v in m.headers), m.timestamp))
    finally:
        c.close()
    return got


def consume_aiokafka(bootstrap: str, topic: str, start: dict[int, int], want: dict[int, int],
                     extra: dict | None = None) -> dict[int, list[Rec]]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def run() -> dict[int, list[Rec]]:
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             **(extra or {}))
        await c.start()
        got: dict[int, list[Rec]] = {p: [] for p in start}
        try:
            tps = [TopicPartition(topic, p) for p in start]
            c.assign(tps)
            for tp in tps:
                c.seek(tp, start[tp.partition])
            deadline = time.monotonic() + DEADLINE
            while not _done(got, want) and time.monotonic() < deadline:
                batch = await c.getmany(timeout_ms=500)
                for msgs in batch.values():
                    for m in msgs:
                        got[m.partition].append(Rec(m.partition, m.offset, m.key, m.value,
                                                    tuple((k, v) for k, v in m.headers), m.timestamp))
        finally:
            await c.stop()
        return got

    return asyncio.run(run())


def flatten(got: dict[int, list[Rec]]) -> Iterable[Rec]:
    for p in sorted(got):
        yield from got[p]


def kafka_python_group_metadata(consumer: object) -> None:
    """Have a kafka-python group consumer hold its topics' metadata before its
    first JoinGroup (call it after subscribing, before the first poll).

    kafka-python 3.0.12 loses a rebalance in one race: a consumer that led
    its group's first assignment before its metadata had the topic ("No
    partition metadata for topic") rejoins once the metadata arrives. If a
    poll() times out while that JoinGroup/SyncGroup is in flight, its own
    assignment has already made the metadata snapshots equal, so the next
    poll finds no rejoin needed and never awaits the join again: the
    member's assignment stays empty and its heartbeats stay disabled until
    the broker expires it, and it never rejoins (base.py join_group_async
    checks need_rejoin() before the pending join task; kafka-python 1.4.5's
    fix for this, "also check that join_future is not pending", is missing
    from the 3.0 rewrite). Seen in CI on test_commit_restart_broker_resume_
    exactly and reproduced with a probe: 1 member in 60-300 stuck without
    this call, none in 360 with it (a metadata update after subscribe()
    rebuilds the snapshot the first assignment records).
    """
    consumer.topics()  # type: ignore[attr-defined]  # always a round trip; updates the snapshot
