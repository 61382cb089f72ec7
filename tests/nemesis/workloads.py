"""Workloads that run while the nemesis acts.

Each producer writes keyed records: key ``<prefix>-<k>``, value the next
sequence number of that key (as ASCII), so the checker can tell loss,
duplication and reordering per key. Every acknowledgement is recorded with
its partition, offset and the time it arrived; every failure too.

- :func:`confluent_producer`: librdkafka (confluent-kafka), idempotent,
  acks=all, Kafka's/librdkafka's defaults otherwise (5 in flight).
- :func:`kafka_python_producer`: kafka-python, idempotent, acks=all.

- :func:`group_consumer`: a librdkafka consumer in a group reading the
  producers' topic, committing what it processed synchronously every
  0.5 s; the checker wants every acknowledged record seen and the group's
  final committed offset of each partition at least the highest commit
  that was acknowledged (committed offsets never go backwards).

No transactional workload yet.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class Ack:
    key: bytes
    value: bytes
    partition: int
    offset: int
    t: float  # monotonic time of the acknowledgement


@dataclass
class Acked:
    name: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    acks: list[Ack] = field(default_factory=list)
    errors: list[tuple[float, str]] = field(default_factory=list)
    sent: int = 0

    def ok(self, key: bytes, value: bytes, partition: int, offset: int) -> None:
        a = Ack(key, value, partition, offset, time.monotonic())
        with self.lock:
            self.acks.append(a)

    def fail(self, what: str) -> None:
        with self.lock:
            self.errors.append((time.monotonic(), what))


def _pace(rate: float, started: float, sent: int) -> None:
    ahead = sent / rate - (time.monotonic() - started)
    if ahead > 0:
        time.sleep(ahead)


def confluent_producer(bootstrap: str, topic: str, acked: Acked, stop: threading.Event, *, keys: int = 20,
                       rate: float = 500.0, prefix: str = "c", extra: dict | None = None) -> None:
    from confluent_kafka import Producer

    conf = {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5,
            "message.timeout.ms": 600000}
    conf.update(extra or {})
    p = Producer(conf)
    seq = [0] * keys
    started = time.monotonic()

    def cb(err, msg):  # type: ignore[no-untyped-def]
        if err is not None:
            acked.fail(f"{acked.name}: {err}")
        else:
            acked.ok(msg.key(), msg.value(), msg.partition(), msg.offset())

    i = 0
    while not stop.is_set():
        k = i % keys
        key, value = f"{prefix}-{k}".encode(), str(seq[k]).encode()
        seq[k] += 1
        i += 1
        while True:
            try:
                p.produce(topic, key=key, value=value, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.05)
        acked.sent += 1
        p.poll(0)
        _pace(rate, started, i)
    remaining = p.flush(600)
    if remaining:
        acked.fail(f"{acked.name}: {remaining} records neither delivered nor failed at the end")


def kafka_python_producer(bootstrap: str, topic: str, acked: Acked, stop: threading.Event, *, keys: int = 20,
                          rate: float = 150.0, prefix: str = "p") -> None:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all", enable_idempotence=True,
                      linger_ms=5, retries=1000000, delivery_timeout_ms=600000, request_timeout_ms=30000)
    seq = [0] * keys
    started = time.monotonic()
    i = 0
    while not stop.is_set():
        k = i % keys
        key, value = f"{prefix}-{k}".encode(), str(seq[k]).encode()
        seq[k] += 1
        i += 1
        fut = p.send(topic, key=key, value=value)
        fut.add_callback(lambda md, key=key, value=value: acked.ok(key, value, md.partition, md.offset))
        fut.add_errback(lambda e, key=key: acked.fail(f"{acked.name} {key!r}: {e!r}"))
        acked.sent += 1
        _pace(rate, started, i)
    p.flush(timeout=600)
    p.close(timeout=30)


@dataclass
class Consumed:
    """What a consumer-group member saw and committed."""

    name: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    seen: set[tuple[bytes, bytes]] = field(default_factory=set)
    commits: list[tuple[int, int, float]] = field(default_factory=list)  # (partition, offset, t) acknowledged
    errors: list[tuple[float, str]] = field(default_factory=list)
    final_committed: dict[int, int] = field(default_factory=dict)


def group_consumer(bootstrap: str, topic: str, group: str, out: Consumed, stop: threading.Event, *,
                   commit_every_s: float = 0.5) -> None:
    """A librdkafka consumer in a group (classic protocol), auto commit off,
    synchronous commits of what it processed every ``commit_every_s``."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "session.timeout.ms": 45000})
    c.subscribe([topic])
    pos: dict[int, int] = {}
    last_commit = time.monotonic()

    def commit() -> None:
        if not pos:
            return
        offsets = [TopicPartition(topic, p, o) for p, o in pos.items()]
        try:
            res = c.commit(offsets=offsets, asynchronous=False)
        except KafkaException as e:
            with out.lock:
                out.errors.append((time.monotonic(), f"commit: {e}"))
            return
        now = time.monotonic()
        with out.lock:
            for tp in res or []:
                if tp.error is None:
                    out.commits.append((tp.partition, tp.offset, now))

    try:
        while not stop.is_set():
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                with out.lock:
                    out.seen.add((m.key(), m.value()))
                pos[m.partition()] = max(pos.get(m.partition(), 0), m.offset() + 1)
            if time.monotonic() - last_commit >= commit_every_s:
                commit()
                last_commit = time.monotonic()
        commit()
    finally:
        c.close()


def committed_offsets(bootstrap: str, topic: str, group: str, partitions: int) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        res = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=60)
    finally:
        c.close()
    return {tp.partition: tp.offset for tp in res}
