"""Small produce-then-consume workloads with each real client (no consumer
group: assign + seek), used by the tests of this directory."""

from __future__ import annotations

import asyncio
import time

DEADLINE = 30.0


def confluent_roundtrip(bootstrap: str, topic: str, value: bytes, client_id: str = "t-confluent") -> list[bytes]:
    from confluent_kafka import Consumer, Producer, TopicPartition

    p = Producer({"bootstrap.servers": bootstrap, "client.id": client_id, "linger.ms": 0})
    errs: list = []
    p.produce(topic, value, partition=0, on_delivery=lambda e, m: errs.append(e))
    assert p.flush(DEADLINE) == 0 and errs == [None], errs
    c = Consumer({"bootstrap.servers": bootstrap, "client.id": client_id, "group.id": f"g-{time.time_ns()}",
                  "enable.auto.commit": False})
    got: list[bytes] = []
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + DEADLINE
        while value not in got and time.monotonic() < deadline:
            for m in c.consume(100, 0.2):
                assert m.error() is None, m.error()
                got.append(m.value())
    finally:
        c.close()
    return got


def kafka_python_roundtrip(bootstrap: str, topic: str, value: bytes,
                           client_id: str = "t-kafka-python") -> list[bytes]:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    p = KafkaProducer(bootstrap_servers=bootstrap, client_id=client_id, enable_idempotence=False)
    try:
        p.send(topic, value, partition=0).get(timeout=DEADLINE)
    finally:
        p.close(timeout=5)
    c = KafkaConsumer(bootstrap_servers=bootstrap, client_id=client_id, group_id=None, enable_auto_commit=False)
    got: list[bytes] = []
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        c.seek(tp, 0)
        deadline = time.monotonic() + DEADLINE
        while value not in got and time.monotonic() < deadline:
            for msgs in c.poll(timeout_ms=200).values():
                got += [m.value for m in msgs]
    finally:
        c.close()
    return got


def aiokafka_roundtrip(bootstrap: str, topic: str, value: bytes, client_id: str = "t-aiokafka") -> list[bytes]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    async def run() -> list[bytes]:
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, client_id=client_id)
        await p.start()
        try:
            await p.send_and_wait(topic, value, partition=0)
        finally:
            await p.stop()
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, client_id=client_id, group_id=None,
                             enable_auto_commit=False)
        await c.start()
        got: list[bytes] = []
        try:
            tp = TopicPartition(topic, 0)
            c.assign([tp])
            c.seek(tp, 0)
            deadline = time.monotonic() + DEADLINE
            while value not in got and time.monotonic() < deadline:
                for msgs in (await c.getmany(timeout_ms=200)).values():
                    got += [m.value for m in msgs]
        finally:
            await c.stop()
        return got

    return asyncio.run(run())


CLIENTS = {
    "confluent-kafka": confluent_roundtrip,
    "kafka-python": kafka_python_roundtrip,
    "aiokafka": aiokafka_roundtrip,
}
