"""Client workloads (confluent-kafka / librdkafka), each bounded in time."""

from __future__ import annotations

import math
import os
import struct
import threading
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def create_topic(bootstrap: str, topic: str, partitions: int = 1, timeout: float = 15.0) -> None:
    """CreateTopics (falls back to auto-create), then wait until metadata has a leader."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        for f in admin.create_topics([NewTopic(topic, partitions, 1)],
                                     operation_timeout=10, request_timeout=10).values():
            f.result(timeout)
    except Exception as e:  # report and rely on auto-create
        print(f"    (CreateTopics {topic} failed: {e}; relying on auto-create)")
    deadline = time.monotonic() + timeout
    p = Producer({"bootstrap.servers": bootstrap})
    try:
        while True:
            md = p.list_topics(topic, timeout=5)
            t = md.topics.get(topic)
            if t and t.error is None and t.partitions and all(
                    pm.leader >= 0 for pm in t.partitions.values()):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"topic {topic} has no leader after {timeout}s: {t}")
            time.sleep(0.1)
    finally:
        p.flush(1)


def produce(bootstrap: str, topic: str, count: int, size: int, acks: str,
            timeout: float, soft_seconds: float | None = None,
            extra_conf: dict | None = None) -> dict:
    """Produce up to `count` values of `size` bytes as fast as possible; wait for all acks.

    After `soft_seconds` no new messages are enqueued ("capped": the rate is
    still delivered / elapsed); `timeout` bounds the whole run, flush included.
    """
    conf = {
        "bootstrap.servers": bootstrap,
        "acks": acks,
        # big enough local queue that produce() rarely raises BufferError
        "queue.buffering.max.messages": 2_000_000,
        "queue.buffering.max.kbytes": 2_097_151,
        **(extra_conf or {}),
    }
    p = Producer(conf)
    delivered = 0
    errors = 0
    first_error = None

    def on_delivery(err, _msg):
        nonlocal delivered, errors, first_error
        if err is None:
            delivered += 1
        else:
            errors += 1
            first_error = first_error or str(err)

    # warm-up: connection, metadata, producer id ... not timed
    p.produce(topic, b"warmup", on_delivery=lambda e, m: None)
    if p.flush(10) != 0:
        raise RuntimeError(f"warm-up message to {topic} not acknowledged within 10s")

    value = os.urandom(size)
    t0 = time.perf_counter()
    deadline = t0 + timeout
    soft_deadline = t0 + (soft_seconds if soft_seconds else timeout)
    timed_out = False
    capped = False
    sent = 0
    while sent < count:
        try:
            p.produce(topic, value, on_delivery=on_delivery)
            sent += 1
        except BufferError:
            p.poll(0.01)
        if sent % 5000 == 0:
            p.poll(0)
            if time.perf_counter() > soft_deadline:
                capped = sent < count
                break
    left = p.flush(max(0.0, deadline - time.perf_counter()))
    elapsed = time.perf_counter() - t0
    if left:
        timed_out = True
        p.purge()
        p.flush(1)
    return {
        "count": count, "sent": sent, "size": size, "acks": acks, "delivered": delivered,
        "errors": errors, "first_error": first_error, "timed_out": timed_out,
        "capped": capped, "elapsed_s": elapsed,
        "msg_per_s": delivered / elapsed if elapsed else 0.0,
        "mb_per_s": delivered * size / elapsed / 1e6 if elapsed else 0.0,
    }


def consume(bootstrap: str, topic: str, count: int, timeout: float) -> dict:
    """Read `count` messages from offset 0 (assign, no group join), default fetch settings.

    The first message (the producer's warm-up message) is read before the clock
    starts, so connection setup and the first ListOffsets/Fetch round trips are
    excluded; the rate is (count - 1) / time to receive the rest.
    """
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"bench-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
    })
    got = 0
    nbytes = 0
    errors = 0
    first_error = None
    t0 = time.perf_counter()
    deadline = t0 + timeout
    t_first = None
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        while got < count and time.perf_counter() < deadline:
            # ask for no more than what is left: consume() waits for a full batch
            for m in c.consume(num_messages=1 if t_first is None else min(10_000, count - got),
                               timeout=0.5):
                err = m.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        errors += 1
                        first_error = first_error or str(err)
                    continue
                got += 1
                if t_first is None:
                    t_first = time.perf_counter()
                else:
                    nbytes += len(m.value())
        t_end = time.perf_counter()
    finally:
        c.close()
    span = (t_end - t_first) if t_first else 0.0
    timed = max(0, got - 1)
    return {
        "count": count, "received": got, "errors": errors, "first_error": first_error,
        "timed_out": got < count, "elapsed_s": t_end - t0,
        "first_msg_s": (t_first or t_end) - t0, "timed_span_s": span,
        "msg_per_s": timed / span if span > 0 else 0.0,
        "mb_per_s": nbytes / span / 1e6 if span > 0 else 0.0,
    }


def _pct(sorted_vals: list[float], p: float) -> float:
    if not sorted_vals:
        return float("nan")
    k = math.ceil(p / 100 * len(sorted_vals)) - 1  # nearest rank
    return sorted_vals[max(0, min(len(sorted_vals) - 1, k))]


def latency(bootstrap: str, topic: str, rate: int, seconds: float, warmup_s: float,
            size: int = 100, grace_s: float = 5.0) -> dict:
    """End-to-end latency: a paced producer and a consumer in this process.

    Both use librdkafka defaults (producer: acks=all, linger.ms=5; consumer:
    fetch.wait.max.ms=500, fetch.min.bytes=1). The value carries the send time
    (CLOCK_MONOTONIC ns); latency = receive time - send time. Messages sent in
    the warm-up period are not counted.
    """
    hdr = struct.Struct(">qq")  # seq, send_ns
    pad = b"\0" * max(0, size - hdr.size)
    warm_n = int(rate * warmup_s)
    total = warm_n + int(rate * seconds)
    lat_ns: list[int] = []
    stop = threading.Event()
    consumer_ready = threading.Event()
    cons_err: list[str] = []

    def consumer_loop():
        c = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-lat-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        })
        try:
            c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
            consumer_ready.set()
            while not stop.is_set():
                # poll() returns as soon as one message is there; consume(n, t)
                # would wait for n messages or t seconds and inflate latency.
                m = c.poll(0.1)
                if m is not None:
                    now = time.monotonic_ns()
                    if m.error() is not None:
                        if m.error().code() != KafkaError._PARTITION_EOF:
                            cons_err.append(str(m.error()))
                        continue
                    v = m.value()
                    if len(v) < hdr.size:
                        continue
                    seq, sent = hdr.unpack_from(v)
                    if seq >= warm_n:
                        lat_ns.append(now - sent)
                    if seq == total - 1:
                        stop.set()
        finally:
            c.close()

    th = threading.Thread(target=consumer_loop, daemon=True, name="latency-consumer")
    th.start()
    consumer_ready.wait(10)
    p = Producer({"bootstrap.servers": bootstrap})
    prod_errors = 0

    def on_delivery(err, _msg):
        nonlocal prod_errors
        if err is not None:
            prod_errors += 1

    start = time.monotonic()
    for i in range(total):
        target = start + i / rate
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        p.produce(topic, hdr.pack(i, time.monotonic_ns()) + pad, on_delivery=on_delivery)
        p.poll(0)
    send_elapsed = time.monotonic() - start
    p.flush(grace_s)
    th.join(grace_s)
    stop.set()
    th.join(5)
    lat = sorted(x / 1e6 for x in lat_ns)
    expected = total - warm_n
    return {
        "rate": rate, "seconds": seconds, "expected": expected, "received": len(lat),
        "achieved_rate": total / send_elapsed if send_elapsed else 0.0,
        "producer_errors": prod_errors, "consumer_errors": len(cons_err),
        "first_error": cons_err[0] if cons_err else None,
        "p50_ms": _pct(lat, 50), "p99_ms": _pct(lat, 99), "p999_ms": _pct(lat, 99.9),
        "max_ms": lat[-1] if lat else float("nan"),
        "mean_ms": sum(lat) / len(lat) if lat else float("nan"),
    }
