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
- :func:`transactional_loop`: consume-transform-produce with librdkafka
  (read_committed input, output records and consumed offsets in one
  transaction); the checker reads the output with read_committed: no
  record of an aborted transaction, every committed one exactly once, no
  input record processed twice.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any


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
    from confluent_kafka import KafkaError, KafkaException, Producer

    conf = {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5,
            "message.timeout.ms": 600000}
    if os.environ.get("NEMESIS_PRODUCER_DEBUG"):  # librdkafka debug contexts, e.g. "eos"
        conf["debug"] = os.environ["NEMESIS_PRODUCER_DEBUG"]
    conf.update(extra or {})
    p = Producer(conf)
    seq = [0] * keys
    started = time.monotonic()

    def cb(err, msg):  # type: ignore[no-untyped-def]
        if err is not None:
            acked.fail(f"{acked.name}: {err}")
        else:
            acked.ok(msg.key(), msg.value(), msg.partition(), msg.offset())

    def replace(old: Any, e: Any) -> Any:
        """A fatal idempotence error (e.g. the sequence desynchronized after an
        unclean leader election lost acknowledged records), raised by produce,
        poll or flush: as an application must, drop this producer and start a
        new one. (Raised out of the thread, it kept the dead producer alive
        through the stored traceback, reconnecting for the rest of the test run.)"""
        if not e.args or not (e.args[0].fatal() or e.args[0].code() == KafkaError._FATAL):
            raise e
        acked.fail(f"{acked.name}: fatal, new producer: {e.args[0].str()}")
        try:
            old.purge()
            old.flush(0)
        except KafkaException:
            pass  # a fatal producer raises its error again: nothing more to get from it
        return Producer(conf)

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
                try:
                    p.poll(0.05)
                except KafkaException as e:
                    p = replace(p, e)
            except KafkaException as e:
                p = replace(p, e)
        acked.sent += 1
        try:
            p.poll(0)
        except KafkaException as e:
            p = replace(p, e)
        _pace(rate, started, i)
    try:
        remaining = p.flush(600)
    except KafkaException as e:
        p = replace(p, e)
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

    from confluent_kafka import KafkaException

    from pykbroker.protocol import errors

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    deadline = time.monotonic() + 120
    try:
        while True:  # a coordinator moving at the end of a run answers NOT_COORDINATOR for a while
            try:
                res = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=60)
                break
            except KafkaException as e:
                coordinator_moving = e.args[0].code() in (errors.NOT_COORDINATOR, errors.COORDINATOR_NOT_AVAILABLE,
                                                          errors.COORDINATOR_LOAD_IN_PROGRESS)
                if not (e.args[0].retriable() or coordinator_moving) or time.monotonic() > deadline:
                    raise
                time.sleep(1)
    finally:
        c.close()
    return {tp.partition: tp.offset for tp in res}


@dataclass
class TxnLog:
    """What the transactional loop did: per transaction number, the input
    records it carried and how it ended."""

    name: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    committed: dict[int, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    aborted: dict[int, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    unknown: dict[int, list[tuple[bytes, bytes]]] = field(default_factory=dict)  # fatal error mid-commit
    errors: list[tuple[float, str]] = field(default_factory=list)
    last_commit: float = 0.0  # monotonic time of the last committed transaction
    #: the client call the loop is in (or last made) and when it began: where a stall sits
    phase: str = ""
    phase_at: float = 0.0
    empty_polls: int = 0  # consume() calls in a row that returned nothing
    positions: dict[int, int] = field(default_factory=dict)  # the consumer's, read now and then while idle

    def enter(self, phase: str) -> None:
        with self.lock:
            self.phase, self.phase_at = phase, time.monotonic()

    def processed(self) -> set[tuple[bytes, bytes]]:
        with self.lock:
            return {kv for recs in self.committed.values() for kv in recs}


def txn_value(txn: int, value: bytes) -> bytes:
    return f"{txn}|".encode() + value


def parse_txn_value(v: bytes) -> tuple[int, bytes]:
    n, _, rest = v.partition(b"|")
    return int(n), rest


def transactional_loop(bootstrap: str, in_topic: str, out_topic: str, group: str, out: TxnLog,
                       stop: threading.Event, *, transactional_id: str = "nemesis-txn",
                       batch: int = 200) -> None:
    """Consume-transform-produce with librdkafka: read ``in_topic`` in a group
    (read_committed), write each record to ``out_topic`` (same key, value
    prefixed with the transaction number) and the consumed offsets in one
    transaction. An abortable error aborts and rewinds to the committed
    offsets; a fatal one makes a new producer (which fences the old one)."""
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "isolation.level": "read_committed",
                  "session.timeout.ms": 45000,
                  **({"debug": os.environ["NEMESIS_TXN_CONSUMER_DEBUG"]}
                     if os.environ.get("NEMESIS_TXN_CONSUMER_DEBUG") else {})})
    c.subscribe([in_topic])

    def new_producer() -> Producer:
        while not stop.is_set():
            conf = {"bootstrap.servers": bootstrap, "transactional.id": transactional_id,
                    "transaction.timeout.ms": 60000, "message.timeout.ms": 60000}
            if os.environ.get("NEMESIS_TXN_DEBUG"):  # librdkafka debug contexts, e.g. "eos,protocol"
                conf["debug"] = os.environ["NEMESIS_TXN_DEBUG"]
            p = Producer(conf)
            try:
                out.enter("init_transactions")
                p.init_transactions(60)
                return p
            except KafkaException as e:
                with out.lock:
                    out.errors.append((time.monotonic(), f"init_transactions: {e}"))
                time.sleep(1)
        raise InterruptedError

    def rewind() -> None:
        parts = c.assignment()
        if not parts:
            return
        for tp in c.committed(parts, timeout=60):
            if tp.offset >= 0:
                c.seek(tp)
            else:
                c.seek(TopicPartition(tp.topic, tp.partition, 0))  # OFFSET_BEGINNING would do too

    try:
        p = new_producer()
    except InterruptedError:
        c.close()
        return
    txn = 0
    try:
        while not stop.is_set():
            out.enter("consume")
            msgs = [m for m in c.consume(batch, 0.5) if m.error() is None]
            if not msgs:
                out.empty_polls += 1
                if out.empty_polls % 10 == 0:
                    pos = {tp.partition: tp.offset for tp in c.position(c.assignment())}
                    with out.lock:
                        out.positions = pos
                continue
            out.empty_polls = 0
            txn += 1
            recs = [(m.key(), m.value()) for m in msgs]
            try:
                out.enter("begin_transaction")
                p.begin_transaction()
                out.enter("produce")
                for m in msgs:
                    while True:
                        try:
                            p.produce(out_topic, key=m.key(), value=txn_value(txn, m.value()))
                            break
                        except BufferError:
                            p.poll(0.05)
                positions = c.position(c.assignment())
                out.enter("send_offsets_to_transaction")
                p.send_offsets_to_transaction(positions, c.consumer_group_metadata(), 60)
                out.enter("commit_transaction")
                p.commit_transaction(120)
                with out.lock:
                    out.committed[txn] = recs
                    out.last_commit = time.monotonic()
            except KafkaException as e:
                err = e.args[0]
                with out.lock:
                    out.errors.append((time.monotonic(), f"txn {txn}: {err}"))
                if err.txn_requires_abort():
                    try:
                        out.enter("abort_transaction")
                        p.abort_transaction(120)
                        with out.lock:
                            out.aborted[txn] = recs
                    except KafkaException as e2:
                        with out.lock:
                            out.unknown[txn] = recs
                            out.errors.append((time.monotonic(), f"abort {txn}: {e2}"))
                        p = new_producer()
                elif err.retriable():
                    # commit_transaction may be retried; the outcome is decided by the retry
                    try:
                        out.enter("commit_transaction (retry)")
                        p.commit_transaction(120)
                        with out.lock:
                            out.committed[txn] = recs
                        continue
                    except KafkaException as e2:
                        with out.lock:
                            out.unknown[txn] = recs
                            out.errors.append((time.monotonic(), f"commit retry {txn}: {e2}"))
                        p = new_producer()
                else:
                    with out.lock:
                        out.unknown[txn] = recs
                    p = new_producer()
                out.enter("rewind")
                rewind()
    except InterruptedError:
        pass
    finally:
        c.close()


def read_committed(bootstrap: str, topic: str, partitions: int,
                   timeout_s: float = 120) -> list[tuple[int, bytes, bytes]]:
    """Every record of ``topic`` a read_committed consumer sees: (partition, key, value)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "nemesis-reader", "enable.auto.commit": False,
                  "isolation.level": "read_committed", "auto.offset.reset": "earliest"})
    tps = [TopicPartition(topic, p, 0) for p in range(partitions)]
    ends = {}
    for tp in tps:
        _, hi = c.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=30)
        ends[tp.partition] = hi
    c.assign(tps)
    out: list[tuple[int, bytes, bytes]] = []
    deadline = time.monotonic() + timeout_s
    done: set[int] = {p for p, hi in ends.items() if hi <= 0}
    last_msg = time.monotonic()
    try:
        # until every position reached the end, or nothing came for 5 s (a
        # position may stop short of the end before trailing control records)
        while len(done) < partitions and time.monotonic() < deadline and time.monotonic() - last_msg < 5:
            for m in c.consume(500, 0.5):
                if m.error() is not None:
                    continue
                last_msg = time.monotonic()
                out.append((m.partition(), m.key(), m.value()))
            for p in range(partitions):
                if p in done:
                    continue
                pos = c.position([TopicPartition(topic, p)])[0].offset
                if pos >= ends[p]:
                    done.add(p)
    finally:
        c.close()
    return out
