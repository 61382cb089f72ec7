"""Fetch sessions (KIP-227) with real clients.

kafka-python (enable_incremental_fetch_sessions, on by default) opens a
session and then sends incremental fetches; it must get every record of
many partitions exactly once, in order, also when the broker evicts its
session or restarts under it. librdkafka 2.16 does not implement fetch
sessions (it sends session id 0, epoch -1: sessionless) and must keep
working unchanged. The broker's counters (/metrics) show what was used.
"""

from __future__ import annotations

import re
import socket
import time
import urllib.request

from clientlib import Rec, consume_confluent, create_topic, expected_records, produce_confluent
from rawclient import RawClient

# record timestamps: recent ones (older than log.retention.ms, 7 days, are
# deleted by the broker's first retention check, 30 s after it starts)
BASE_TS = int(time.time() * 1000)

PARTS = 48
PER_PART = 20  # per phase


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _broker(broker_factory, **overrides):  # type: ignore[no-untyped-def]
    port = _free_port()
    b = broker_factory({"pykbroker.control.listener": f"127.0.0.1:{port}", **overrides})
    return b, f"http://127.0.0.1:{port}"


def _metrics(url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = re.fullmatch(r"(pykbroker_(?:fetch_session|incremental_fetch)\w*) (\S+)", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    errs = re.search(r'pykbroker_request_errors_total\{api="Fetch"\} (\S+)', text)
    out["fetch_errors"] = float(errs.group(1)) if errs else 0.0
    return out


def _records(topic: str, phase: int) -> list[Rec]:
    """PER_PART records per partition; phase 1's follow phase 0's offsets."""
    base = expected_records(topic, PARTS * PER_PART * 2, PARTS, BASE_TS)
    return [r for r in base if (r.offset >= PER_PART) == bool(phase)]


class KafkaPythonReader:
    def __init__(self, bootstrap: str, topic: str) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                               fetch_max_wait_ms=200, reconnect_backoff_ms=100,
                               enable_incremental_fetch_sessions=True)
        tps = [TopicPartition(topic, p) for p in range(PARTS)]
        self.c.assign(tps)
        for tp in tps:
            self.c.seek(tp, 0)
        self.got: dict[int, list[Rec]] = {p: [] for p in range(PARTS)}

    def read_until(self, n_per_part: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while any(len(v) < n_per_part for v in self.got.values()) and time.monotonic() < deadline:
            for msgs in self.c.poll(timeout_ms=500).values():
                for m in msgs:
                    self.got[m.partition].append(Rec(m.partition, m.offset, m.key, m.value,
                                                     tuple((k, v) for k, v in m.headers), m.timestamp))

    def check(self, want: list[Rec]) -> None:
        by_part: dict[int, list[Rec]] = {p: [] for p in range(PARTS)}
        for r in want:
            by_part[r.partition].append(r)
        for p in range(PARTS):
            assert self.got[p] == by_part[p], f"partition {p}"

    def close(self) -> None:
        self.c.close()


def _phase(b, topic: str, reader: KafkaPythonReader, phase: int) -> list[Rec]:  # type: ignore[no-untyped-def]
    recs = _records(topic, phase)
    acked = produce_confluent(b.bootstrap, topic, recs)
    assert acked == [(r.partition, r.offset) for r in recs]
    reader.read_until(PER_PART * (phase + 1))
    return recs


def test_kafka_python_consumes_many_partitions_incrementally(broker_factory, unique_topic):
    b, url = _broker(broker_factory)
    create_topic(b.bootstrap, unique_topic, PARTS)
    reader = KafkaPythonReader(b.bootstrap, unique_topic)
    try:
        want = _phase(b, unique_topic, reader, 0)
        reader.read_until(PER_PART)
        before = _metrics(url)
        # the consumer is caught up; its fetches are incremental now (kafka-python fetches
        # inside poll), and the second phase's records come through them
        for _ in range(3):
            assert not reader.c.poll(timeout_ms=300)
        idle = _metrics(url)
        assert idle["pykbroker_incremental_fetches_total"] > before["pykbroker_incremental_fetches_total"]
        want += _phase(b, unique_topic, reader, 1)
        reader.check(want)
    finally:
        reader.close()
    m = _metrics(url)
    assert m["pykbroker_fetch_sessions_created_total"] == 1  # one session, never lost
    assert m["pykbroker_incremental_fetches_total"] >= 3
    assert m["fetch_errors"] == 0


def _evict_with_follower_session(bootstrap: str, topic: str) -> None:
    """A follower's full fetch (replica id 1, epoch 0) takes the only slot (privileged)."""
    with RawClient(bootstrap) as c:
        md = c.call(3, 12, {"topics": [{"name": topic, "topic_id": b"\0" * 16}],
                            "allow_auto_topic_creation": False})
        tid = md["topics"][0]["topic_id"]
        r = c.call(1, 17, {"replica_state": {"replica_id": 1, "replica_epoch": -1}, "max_wait_ms": 0,
                           "min_bytes": 1, "max_bytes": 1 << 20, "isolation_level": 0, "session_id": 0,
                           "session_epoch": 0, "topics": [{"topic_id": tid, "partitions": [
                               {"partition": 0, "current_leader_epoch": -1, "fetch_offset": 0,
                                "last_fetched_epoch": -1, "log_start_offset": -1,
                                "partition_max_bytes": 1024}]}],
                           "forgotten_topics_data": [], "rack_id": ""})
        assert r["error_code"] == 0 and r["session_id"] > 0


def test_kafka_python_survives_eviction(broker_factory, unique_topic):
    b, url = _broker(broker_factory, **{"max.incremental.fetch.session.cache.slots": 1})
    create_topic(b.bootstrap, unique_topic, PARTS)
    reader = KafkaPythonReader(b.bootstrap, unique_topic)
    try:
        want = _phase(b, unique_topic, reader, 0)
        assert _metrics(url)["pykbroker_fetch_sessions"] == 1
        _evict_with_follower_session(b.bootstrap, unique_topic)
        m = _metrics(url)
        assert m["pykbroker_fetch_session_evictions_total"] == 1 and m["pykbroker_fetch_sessions"] == 1
        # the consumer's next incremental fetch gets FETCH_SESSION_ID_NOT_FOUND; it starts
        # over with a full fetch (answered sessionless: the slot is the follower's)
        want += _phase(b, unique_topic, reader, 1)
        reader.check(want)
    finally:
        reader.close()
    m = _metrics(url)
    assert m["fetch_errors"] >= 1
    assert m["pykbroker_fetch_sessions_created_total"] == 2  # the consumer's, the follower's


def test_kafka_python_across_a_broker_restart(broker_factory, unique_topic):
    b, url = _broker(broker_factory)
    create_topic(b.bootstrap, unique_topic, PARTS)
    reader = KafkaPythonReader(b.bootstrap, unique_topic)
    try:
        want = _phase(b, unique_topic, reader, 0)
        assert _metrics(url)["pykbroker_fetch_sessions"] == 1
        b.restart()  # the session cache is memory: gone
        want += _phase(b, unique_topic, reader, 1)
        reader.check(want)
    finally:
        reader.close()
    m = _metrics(url)  # counters since the restart
    assert m["pykbroker_fetch_sessions_created_total"] >= 1
    assert m["pykbroker_incremental_fetches_total"] >= 1


def test_librdkafka_fetches_sessionless(broker_factory, unique_topic):
    b, url = _broker(broker_factory)
    create_topic(b.bootstrap, unique_topic, 8)
    recs = expected_records(unique_topic, 400, 8, BASE_TS)
    produce_confluent(b.bootstrap, unique_topic, recs)
    got = consume_confluent(b.bootstrap, unique_topic, {p: 0 for p in range(8)}, {p: 50 for p in range(8)})
    for p in range(8):
        assert got[p] == [r for r in recs if r.partition == p]
    m = _metrics(url)
    assert m["pykbroker_fetch_sessions_created_total"] == 0 and m["fetch_errors"] == 0
