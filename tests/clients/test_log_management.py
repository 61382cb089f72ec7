"""Log management with real clients over real sockets (issue 5 acceptance).

Each test starts its own broker with short background intervals
(``log.retention.check.interval.ms``, ``log.cleaner.backoff.ms``) and tiny
segments (Kafka 4's test-only ``internal.segment.bytes``), and waits for
outcomes with bounded polling, never fixed sleeps.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from pathlib import Path

import pytest
from clientlib import create_topic
from rawclient import RawClient

from pykbroker.protocol import errors
from pykbroker.protocol.records import build_batch, iter_batches

FAST = {"log.retention.check.interval.ms": 200, "log.cleaner.backoff.ms": 100,
        "log.segment.delete.delay.ms": 500}


def now_ms() -> int:
    return int(time.time() * 1000)


def wait_until(fn, timeout: float = 20.0, interval: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last value {v!r})")
        time.sleep(interval)

def settled_low(bootstrap: str, topic: str, quiet_s: float = 1.0) -> int | None:
    """The log start offset once retention has stopped moving it (the same
    value across several retention checks: the produce may still have been
    filling segments when the first check ran), else None."""
    first = watermarks(bootstrap, topic)[0]
    time.sleep(quiet_s)
    return first if first and watermarks(bootstrap, topic)[0] == first else None


def produce(bootstrap: str, topic: str, items, *, partition: int = 0, extra: dict | None = None):  # type: ignore[no-untyped-def]
    """confluent-kafka: items of (key, value[, timestamp]); returns [(offset, key, value)] acked."""
    from confluent_kafka import Producer

    conf = {"bootstrap.servers": bootstrap, "linger.ms": 2, "acks": "all", "batch.size": 3000}
    conf.update(extra or {})
    p = Producer(conf)
    acked: list = []
    errs: list = []

    def cb(err, msg):  # type: ignore[no-untyped-def]
        if err is not None:
            errs.append(err)
        else:
            acked.append((msg.offset(), msg.key(), msg.value()))

    for it in items:
        kw = {"timestamp": it[2]} if len(it) > 2 else {}
        while True:
            try:
                p.produce(topic, key=it[0], value=it[1], partition=partition, on_delivery=cb, **kw)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert p.flush(30) == 0
    assert not errs, errs[:3]
    return sorted(acked)


def read_all(bootstrap: str, topic: str, partition: int = 0, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    """confluent-kafka consumer from the beginning to the high watermark: [(offset, key, value, ts)]."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"ra-{time.time_ns()}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    out = []
    try:
        low, high = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        c.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        deadline = time.monotonic() + timeout
        pos = low
        while pos < high and time.monotonic() < deadline:
            for m in c.consume(500, 0.5):
                if m.error():
                    raise AssertionError(m.error())
                out.append((m.offset(), m.key(), m.value(), m.timestamp()))
                pos = m.offset() + 1
            if pos < high:
                p = c.position([TopicPartition(topic, partition)])[0].offset
                pos = max(pos, p)
        assert pos >= high, (pos, high)
    finally:
        c.close()
    return out


def watermarks(bootstrap: str, topic: str, partition: int = 0) -> tuple[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "wm"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
    finally:
        c.close()


def cleanings(b) -> int:  # type: ignore[no-untyped-def]
    return b.log.count("pykbroker.log_tasks: cleaned ")


COMPACT_CFG = {"cleanup.policy": "compact", "internal.segment.bytes": "8192",
               "min.cleanable.dirty.ratio": "0.01"}


# --- compaction ----------------------------------------------------------------------------


def test_compacted_topic_keeps_newest_value_per_key_at_original_offsets(broker_factory, unique_topic):
    b = broker_factory(FAST)
    create_topic(b.bootstrap, unique_topic, 1, COMPACT_CFG)
    items = [(b"key-%02d" % (i % 20), b"value-%d-" % i + b"x" * 40) for i in range(600)]
    acked = produce(b.bootstrap, unique_topic, items)
    assert [o for o, _, _ in acked] == list(range(600))
    produced = {o: (k, v) for o, k, v in acked}
    wait_until(lambda: cleanings(b) > 0)
    got = read_all(b.bootstrap, unique_topic)
    assert len(got) < 600
    # every record read is exactly the one produced at that offset
    for off, k, v, _ in got:
        assert produced[off] == (k, v)
    newest = {}
    for o, k, _v in acked:
        newest[k] = o
    got_offsets = [o for o, *_ in got]
    assert got_offsets == sorted(got_offsets)
    for o in newest.values():  # the newest record of every key is there, at its offset
        assert o in got_offsets
    # the same through kafka-python
    from kafka import KafkaConsumer, TopicPartition

    kc = KafkaConsumer(bootstrap_servers=b.bootstrap, enable_auto_commit=False)
    tp = TopicPartition(unique_topic, 0)
    kc.assign([tp])
    kc.seek_to_beginning(tp)
    seen = []
    deadline = time.monotonic() + 20
    while len(seen) < len(got) and time.monotonic() < deadline:
        for msgs in kc.poll(timeout_ms=500).values():
            seen += [(m.offset, m.key, m.value) for m in msgs]
    kc.close()
    assert seen[:len(got)] == [(o, k, v) for o, k, v, _ in got]


def test_keyless_record_rejected_on_compacted_topic(broker_factory, unique_topic):
    from confluent_kafka import KafkaError, Producer

    b = broker_factory(FAST)
    create_topic(b.bootstrap, unique_topic, 1, {"cleanup.policy": "compact"})
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 0, "retries": 0})
    errs = []
    p.produce(unique_topic, value=b"no key", partition=0, on_delivery=lambda e, m: errs.append(e))
    p.flush(10)
    assert errs and errs[0].code() == KafkaError.INVALID_RECORD
    # raw: Kafka's per-record error and summary message
    with RawClient(b.bootstrap) as c:
        resp = c.call(0, 9, {"acks": -1, "timeout_ms": 5000, "topic_data": [
            {"name": unique_topic, "partition_data": [
                {"index": 0, "records": build_batch([(None, b"a", [], now_ms()), (b"k", b"b", [], now_ms())])}]}]})
    pr = resp["responses"][0]["partition_responses"][0]
    msg = f"Compacted topic cannot accept message without key in topic partition {unique_topic}-0"
    assert pr["error_code"] == errors.INVALID_RECORD
    assert pr["record_errors"] == [{"batch_index": 0, "batch_index_error_message": msg}]
    assert pr["error_message"].startswith("One or more records have been rejected due to 1 record errors")


def test_tombstones_disappear_after_delete_retention(broker_factory, unique_topic):
    b = broker_factory(FAST)
    cfg = dict(COMPACT_CFG, **{"delete.retention.ms": "1000"})
    create_topic(b.bootstrap, unique_topic, 1, cfg)
    produce(b.bootstrap, unique_topic, [(b"k%d" % (i % 10), b"v%d" % i) for i in range(100)])
    produce(b.bootstrap, unique_topic, [(b"k3", None), (b"k7", None)])  # tombstones
    # keep writing other keys so the log keeps getting dirty and cleaned again
    stop = time.monotonic() + 30
    n = 0

    def tombstones_gone() -> bool:
        nonlocal n
        produce(b.bootstrap, unique_topic, [(b"filler-%d" % (j % 5), b"f" * 200) for j in range(40)])
        n += 1
        keys = {k for _, k, _, _ in read_all(b.bootstrap, unique_topic)}
        return b"k3" not in keys and b"k7" not in keys

    seen_tombstone = any(v is None for _, k, v, _ in read_all(b.bootstrap, unique_topic) if k == b"k3")
    assert seen_tombstone  # present right after the delete
    wait_until(tombstones_gone, timeout=max(stop - time.monotonic(), 1), interval=0.3)
    latest = {}
    for _, k, v, _ in read_all(b.bootstrap, unique_topic):
        latest[k] = v
    assert latest[b"k1"] == b"v91" and latest[b"k9"] == b"v99"


def test_compaction_while_producing_and_consuming_loses_nothing(broker_factory, unique_topic):
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    b = broker_factory(FAST)
    create_topic(b.bootstrap, unique_topic, 1, COMPACT_CFG)
    last_acked: dict[bytes, tuple[int, bytes]] = {}
    done = threading.Event()
    failures: list = []

    def producer() -> None:
        try:
            i = 0
            end = time.monotonic() + 6
            while time.monotonic() < end:
                batch = [(b"key-%03d" % random.randrange(50), b"seq-%06d-" % (i + j) + b"p" * 60)
                         for j in range(50)]
                for o, k, v in produce(b.bootstrap, unique_topic, batch):
                    last_acked[k] = (o, v)
                i += 50
        except BaseException as e:  # pragma: no cover - reported below
            failures.append(e)
        finally:
            done.set()

    t = threading.Thread(target=producer)
    t.start()
    # a live consumer follows from the beginning while cleaning runs
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "live", "enable.auto.commit": False})
    c.assign([TopicPartition(unique_topic, 0, OFFSET_BEGINNING)])
    live: dict[bytes, tuple[int, bytes]] = {}
    last_off = -1
    while not done.is_set():
        for m in c.consume(500, 0.2):
            assert not m.error(), m.error()
            assert m.offset() > last_off  # never backwards, never twice
            last_off = m.offset()
            live[m.key()] = (m.offset(), m.value())
    t.join()
    assert not failures, failures
    _, high = watermarks(b.bootstrap, unique_topic)
    deadline = time.monotonic() + 20
    while last_off + 1 < high and time.monotonic() < deadline:
        for m in c.consume(500, 0.2):
            assert not m.error(), m.error()
            assert m.offset() > last_off
            last_off = m.offset()
            live[m.key()] = (m.offset(), m.value())
    c.close()
    assert cleanings(b) > 0
    # the live consumer saw every key's final acknowledged value
    assert live == last_acked
    # and so does a fresh read of the compacted log
    final = {}
    for o, k, v, _ in read_all(b.bootstrap, unique_topic):
        final[k] = (o, v)
    assert final == last_acked


# --- retention -------------------------------------------------------------------------------


def test_retention_by_time_and_size_advances_the_earliest_offset(broker_factory, unique_topic):
    b = broker_factory(FAST)
    timed, sized = unique_topic + "-time", unique_topic + "-size"
    create_topic(b.bootstrap, timed, 1, {"retention.ms": "60000", "internal.segment.bytes": "8192"})
    create_topic(b.bootstrap, sized, 1, {"retention.bytes": "20000", "internal.segment.bytes": "8192"})
    now = int(time.time() * 1000)
    old = [(None, b"old-%d-" % i + b"o" * 100, now - 3_600_000 + i) for i in range(150)]
    new = [(None, b"new-%d-" % i + b"n" * 100, now + i) for i in range(50)]
    produce(b.bootstrap, timed, old + new)
    produce(b.bootstrap, sized, [(None, b"s" * 200) for _ in range(400)])
    low = wait_until(lambda: settled_low(b.bootstrap, timed))
    assert 0 < low <= 150  # the hour-old records went, whole segments at a time
    recs = read_all(b.bootstrap, timed)
    assert recs[0][0] == low and all(v.startswith(b"new") for _, _, v, _ in recs[150 - low:])
    low_s = wait_until(lambda: watermarks(b.bootstrap, sized)[0] or None)
    remaining = read_all(b.bootstrap, sized)
    assert remaining[0][0] == low_s and len(remaining) == 400 - low_s
    assert len(remaining) * 270 >= 20000 * 0.9  # never below retention.bytes (batch overhead ~70 B)
    # a consumer at a deleted offset gets OFFSET_OUT_OF_RANGE (raw) and resets by its policy
    with RawClient(b.bootstrap) as c:
        resp = c.call(1, 12, {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
                              "isolation_level": 0, "session_id": 0, "session_epoch": -1, "topics": [
                                  {"topic": timed, "partitions": [
                                      {"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20,
                                       "current_leader_epoch": -1, "log_start_offset": -1,
                                       "last_fetched_epoch": -1}]}],
                              "forgotten_topics_data": [], "rack_id": ""})
    part = resp["responses"][0]["partitions"][0]
    assert part["error_code"] == errors.OFFSET_OUT_OF_RANGE and part["log_start_offset"] == low
    from kafka import KafkaConsumer, TopicPartition

    kc = KafkaConsumer(bootstrap_servers=b.bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    tp = TopicPartition(timed, 0)
    kc.assign([tp])
    kc.seek(tp, 0)
    first = None
    deadline = time.monotonic() + 20
    while first is None and time.monotonic() < deadline:
        for msgs in kc.poll(timeout_ms=500).values():
            first = msgs[0].offset
    kc.close()
    assert first == low


def test_delete_records_with_both_admin_clients(broker_factory, unique_topic):
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient
    from kafka import KafkaAdminClient
    from kafka import TopicPartition as KTP

    b = broker_factory(FAST)
    create_topic(b.bootstrap, unique_topic, 2, {"internal.segment.bytes": "8192"})
    for p in (0, 1):
        produce(b.bootstrap, unique_topic, [(None, b"v%d" % i + b"x" * 100) for i in range(100)], partition=p)
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    res = admin.delete_records([TopicPartition(unique_topic, 0, 37)])
    [(tp, fut)] = list(res.items())
    assert fut.result(10).low_watermark == 37
    ka = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    try:
        out = ka.delete_records({KTP(unique_topic, 1): 61})
        assert out[KTP(unique_topic, 1)]["low_watermark"] == 61
        # past the high watermark: OFFSET_OUT_OF_RANGE
        with pytest.raises(Exception) as e:
            ka.delete_records({KTP(unique_topic, 1): 1000})
        assert "OffsetOutOfRange" in type(e.value).__name__ or "OUT_OF_RANGE" in str(e.value).upper()
    finally:
        ka.close()
    assert watermarks(b.bootstrap, unique_topic, 0)[0] == 37
    assert watermarks(b.bootstrap, unique_topic, 1)[0] == 61
    assert read_all(b.bootstrap, unique_topic, 0)[0][0] == 37
    assert read_all(b.bootstrap, unique_topic, 1)[0][0] == 61
    # survives a restart (log-start-offset checkpoint written at shutdown)
    b.restart()
    assert watermarks(b.bootstrap, unique_topic, 0)[0] == 37
    # raw: -1 = the high watermark; compact-only topics refuse; internal topics refuse
    compacted = unique_topic + "-c"
    create_topic(b.bootstrap, compacted, 1, {"cleanup.policy": "compact"})
    with RawClient(b.bootstrap) as c:
        resp = c.call(21, 2, {"topics": [
            {"name": unique_topic, "partitions": [{"partition_index": 0, "offset": -1},
                                                  {"partition_index": 5, "offset": 1}]},
            {"name": compacted, "partitions": [{"partition_index": 0, "offset": 0}]},
            {"name": "__consumer_offsets", "partitions": [{"partition_index": 0, "offset": 0}]}],
            "timeout_ms": 1000})
    got = {(t["name"], p["partition_index"]): (p["error_code"], p["low_watermark"])
           for t in resp["topics"] for p in t["partitions"]}
    assert got == {(unique_topic, 0): (0, 100), (unique_topic, 5): (errors.UNKNOWN_TOPIC_OR_PARTITION, -1),
                   (compacted, 0): (errors.POLICY_VIOLATION, -1),
                   ("__consumer_offsets", 0): (errors.INVALID_TOPIC_EXCEPTION, -1)}


# --- configs ----------------------------------------------------------------------------------------


def test_configs_round_trip_with_both_admin_clients_and_survive_restart(broker_factory, unique_topic):
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource as KCR
    from kafka.admin import ConfigResourceType

    b = broker_factory(FAST)
    create_topic(b.bootstrap, unique_topic, 1)
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    res = ConfigResource(ResourceType.TOPIC, unique_topic)

    def describe() -> dict:
        return {k: (e.value, e.source) for k, e in admin.describe_configs([res])[res].result(10).items()}

    # confluent: incremental SET / APPEND / DELETE
    inc = ConfigResource(ResourceType.TOPIC, unique_topic, incremental_configs=[
        ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
        ConfigEntry("max.message.bytes", "200000", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([inc])[inc].result(10)
    d = describe()
    assert d["retention.ms"] == ("3600000", 1) and d["cleanup.policy"] == ("delete,compact", 1)
    assert d["segment.ms"] == ("604800000", 5)
    inc = ConfigResource(ResourceType.TOPIC, unique_topic, incremental_configs=[
        ConfigEntry("max.message.bytes", None, incremental_operation=AlterConfigOpType.DELETE),
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SUBTRACT)])
    admin.incremental_alter_configs([inc])[inc].result(10)
    d = describe()
    assert d["max.message.bytes"] == ("1048588", 5) and d["cleanup.policy"] == ("delete", 1)
    # bad values get Kafka's errors
    bad = ConfigResource(ResourceType.TOPIC, unique_topic, incremental_configs=[
        ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as e:
        admin.incremental_alter_configs([bad])[bad].result(10)
    assert e.value.args[0].code() == 40  # INVALID_CONFIG
    assert "Invalid value soon for configuration retention.ms: Not a number of type LONG" in str(e.value)
    bad = ConfigResource(ResourceType.TOPIC, unique_topic, incremental_configs=[
        ConfigEntry("segment.ms", "1", incremental_operation=AlterConfigOpType.APPEND)])
    with pytest.raises(KafkaException) as e:
        admin.incremental_alter_configs([bad])[bad].result(10)
    assert "Can't APPEND to key segment.ms because its type is not LIST." in str(e.value)
    missing = ConfigResource(ResourceType.TOPIC, unique_topic + "-nope", incremental_configs=[
        ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as e:
        admin.incremental_alter_configs([missing])[missing].result(10)
    assert e.value.args[0].code() == 3  # UNKNOWN_TOPIC_OR_PARTITION
    # kafka-python: legacy AlterConfigs replaces the set; incremental keeps the rest
    ka = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    try:
        out = ka.alter_configs([KCR(ConfigResourceType.TOPIC, unique_topic,
                                    configs={"segment.bytes": "2097152", "retention.ms": "7200000"})],
                               incremental=False)
        assert out["topic"][unique_topic] == "OK" or out
        d = describe()
        assert d["segment.bytes"] == ("2097152", 1) and d["retention.ms"] == ("7200000", 1)
        ka.alter_configs([KCR(ConfigResourceType.TOPIC, unique_topic,
                              configs={"message.timestamp.type": "LogAppendTime"})], incremental=True)
        desc = ka.describe_configs([KCR(ConfigResourceType.TOPIC, unique_topic)])
        flat = desc["topic"][unique_topic] if isinstance(desc, dict) else desc
        assert flat["message.timestamp.type"]["value"] == "LogAppendTime"
        assert flat["retention.ms"]["value"] == "7200000"
        bad = ka.alter_configs([KCR(ConfigResourceType.TOPIC, unique_topic,
                                    configs={"min.insync.replicas": "0"})], incremental=True,
                               raise_on_unknown=False)
        assert "Value must be at least 1" in str(bad)
    finally:
        ka.close()
    # legacy AlterConfigs replaces the whole override set (raw: kafka-python
    # re-sends the other overrides itself)
    with RawClient(b.bootstrap) as c:
        resp = c.call(33, 2, {"resources": [{"resource_type": 2, "resource_name": unique_topic, "configs": [
            {"name": "segment.bytes", "value": "2097152"}, {"name": "retention.ms", "value": "7200000"},
            {"name": "message.timestamp.type", "value": "LogAppendTime"}]}], "validate_only": False})
    assert resp["responses"][0]["error_code"] == 0
    assert describe()["cleanup.policy"] == ("delete", 5)
    # a dynamic cluster default for topics without an override
    # (confluent-kafka refuses an empty broker name client-side: raw request)
    with RawClient(b.bootstrap) as c:
        resp = c.call(44, 1, {"resources": [{"resource_type": 4, "resource_name": "", "configs": [
            {"name": "log.roll.ms", "config_operation": 0, "value": "86400000"}]}], "validate_only": False})
        assert resp["responses"][0]["error_code"] == 0
        resp = c.call(32, 4, {"resources": [{"resource_type": 4, "resource_name": "",
                                             "configuration_keys": None}], "include_synonyms": True})
    [entry] = resp["results"][0]["configs"]
    assert (entry["name"], entry["value"], entry["config_source"]) == ("log.roll.ms", "86400000", 3)
    assert describe()["segment.ms"] == ("86400000", 3)
    # all of it survives a restart
    b.restart()
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    d = describe()
    assert d["segment.bytes"] == ("2097152", 1) and d["retention.ms"] == ("7200000", 1)
    assert d["message.timestamp.type"] == ("LogAppendTime", 1) and d["segment.ms"] == ("86400000", 3)


def test_dynamic_broker_configs(broker_factory, unique_topic):
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    b = broker_factory(dict(FAST, **{"log.retention.hours": "24"}))
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    node = ConfigResource(ResourceType.BROKER, "0", incremental_configs=[
        ConfigEntry("log.retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([node])[node].result(10)
    res = ConfigResource(ResourceType.BROKER, "0")
    entry = admin.describe_configs([res])[res].result(10)["log.retention.ms"]
    assert (entry.value, entry.source, entry.is_read_only) == ("1000", 2, False)
    # it is live: a topic without an override now keeps records ~1 s
    create_topic(b.bootstrap, unique_topic, 1, {"internal.segment.bytes": "8192"})
    now = int(time.time() * 1000)
    produce(b.bootstrap, unique_topic, [(None, b"x" * 300, now - 10_000) for _ in range(40)])
    wait_until(lambda: watermarks(b.bootstrap, unique_topic)[0] > 0)
    # not dynamically updatable: Kafka's error
    bad = ConfigResource(ResourceType.BROKER, "0", incremental_configs=[
        ConfigEntry("log.dirs", "/tmp/x", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as e:
        admin.incremental_alter_configs([bad])[bad].result(10)
    assert e.value.args[0].code() == 42 and "Cannot update these configs dynamically: Set(log.dirs)" in str(e.value)


# --- timestamps ---------------------------------------------------------------------------------------


def test_log_append_time_is_what_consumers_see(broker_factory, unique_topic):
    from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME

    b = broker_factory(FAST)
    create_topic(b.bootstrap, unique_topic, 1, {"message.timestamp.type": "LogAppendTime"})
    before = int(time.time() * 1000)
    produce(b.bootstrap, unique_topic, [(b"k", b"v%d" % i, 1_000_000 + i) for i in range(20)])
    after = int(time.time() * 1000)
    recs = read_all(b.bootstrap, unique_topic)
    for _, _, _, (ts_type, ts) in recs:
        assert ts_type == TIMESTAMP_LOG_APPEND_TIME and before <= ts <= after
    from kafka import KafkaConsumer, TopicPartition

    kc = KafkaConsumer(bootstrap_servers=b.bootstrap, enable_auto_commit=False)
    tp = TopicPartition(unique_topic, 0)
    kc.assign([tp])
    kc.seek_to_beginning(tp)
    msgs = []
    deadline = time.monotonic() + 20
    while len(msgs) < 20 and time.monotonic() < deadline:
        for ms in kc.poll(timeout_ms=500).values():
            msgs += ms
    kc.close()
    assert len(msgs) == 20 and all(m.timestamp_type == 1 and before <= m.timestamp <= after for m in msgs)


def test_list_offsets_by_timestamp_across_segments(broker_factory, unique_topic):
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient, OffsetSpec

    b = broker_factory(FAST)
    create_topic(b.bootstrap, unique_topic, 1, {"internal.segment.bytes": "2048"})
    base = int(time.time() * 1000) - 1_000_000
    stamps = [base + 1000 * i for i in range(200)]
    stamps[120] = base + 500_000  # the max timestamp sits in the middle
    produce(b.bootstrap, unique_topic, [(None, b"r%d" % i + b"x" * 80, ts) for i, ts in enumerate(stamps)],
            extra={"batch.size": 1000})
    seg_files = [f for f in os.listdir(Path(b.log_dir) / f"{unique_topic}-0") if f.endswith(".log")]
    assert len(seg_files) > 5
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "lo"})
    try:
        for target in (base - 5, base, base + 1, base + 57_000, base + 120_500, base + 199_000, base + 900_000):
            want = next((i for i, ts in enumerate(stamps) if ts >= target), -1)
            [tp] = c.offsets_for_times([TopicPartition(unique_topic, 0, target)], timeout=10)
            assert tp.offset == want, (target, tp.offset, want)
    finally:
        c.close()
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    tp = TopicPartition(unique_topic, 0)
    r = admin.list_offsets({tp: OffsetSpec.max_timestamp()})[tp].result(10)
    assert (r.offset, r.timestamp) == (120, base + 500_000)


# --- compression.type -----------------------------------------------------------------------------


def test_topic_compression_type_recompresses(broker_factory, unique_topic):
    b = broker_factory(FAST)
    create_topic(b.bootstrap, unique_topic, 1, {"compression.type": "zstd"})
    produce(b.bootstrap, unique_topic, [(b"k%d" % i, b"value-%d" % i * 20) for i in range(50)],
            extra={"compression.type": "gzip", "linger.ms": 50})
    data = b"".join((Path(b.log_dir) / f"{unique_topic}-0" / f).read_bytes()
                    for f in sorted(os.listdir(Path(b.log_dir) / f"{unique_topic}-0")) if f.endswith(".log"))
    assert {h.compression for h in iter_batches(data)} == {4}  # zstd on disk
    recs = read_all(b.bootstrap, unique_topic)
    assert [(k, v) for _, k, v, _ in recs] == [(b"k%d" % i, b"value-%d" % i * 20) for i in range(50)]


# --- durability -----------------------------------------------------------------------------------


def _raw_produce(c: RawClient, topic: str, value: bytes) -> int:
    resp = c.call(0, 9, {"acks": -1, "timeout_ms": 5000, "topic_data": [
        {"name": topic, "partition_data": [{"index": 0, "records": build_batch([(None, value, [], now_ms())])}]}]})
    pr = resp["responses"][0]["partition_responses"][0]
    if pr["error_code"]:
        raise RuntimeError(pr)
    return pr["base_offset"]


def test_crash_loop_keeps_every_acknowledged_record(broker_factory, unique_topic):
    """20 rounds of kill -9 while a producer writes with an fsync per message
    (flush.messages=1): every acknowledged record is there afterwards, at its
    offset, and the log reads cleanly with a real consumer."""
    b = broker_factory(FAST)
    create_topic(b.bootstrap, unique_topic, 1, {"flush.messages": "1", "internal.segment.bytes": "8192"})
    acked: dict[int, bytes] = {}
    rng = random.Random(5)
    t_end = time.monotonic() + 150
    for rnd in range(20):
        stop = threading.Event()

        def writer(rnd: int = rnd, stop: threading.Event = stop) -> None:
            try:
                with RawClient(b.bootstrap, timeout=5) as c:
                    i = 0
                    while not stop.is_set():
                        value = b"r%02d-%05d-" % (rnd, i) + b"z" * rng.randrange(10, 400)
                        off = _raw_produce(c, unique_topic, value)
                        acked[off] = value
                        i += 1
            except Exception:
                pass  # the broker died under us

        t = threading.Thread(target=writer)
        t.start()
        time.sleep(rng.uniform(0.15, 0.5))
        b.kill()
        stop.set()
        t.join(10)
        b.restart()
        assert time.monotonic() < t_end, "crash loop too slow"
    assert len(acked) > 100
    recs = read_all(b.bootstrap, unique_topic, timeout=60)
    by_offset = {o: v for o, _, v, _ in recs}
    missing = [o for o in acked if by_offset.get(o) != acked[o]]
    assert not missing, missing[:10]
    offs = [o for o, *_ in recs]
    assert offs == list(range(len(offs)))  # contiguous, readable to the end
    # and the log still takes appends
    with RawClient(b.bootstrap) as c:
        assert _raw_produce(c, unique_topic, b"after") == offs[-1] + 1


STORAGE_LIMIT = 2 * 1024 * 1024
LIMITED = (
    "import resource, runpy, sys\n"
    f"resource.setrlimit(resource.RLIMIT_FSIZE, ({STORAGE_LIMIT}, {STORAGE_LIMIT}))\n"
    "sys.argv = ['pykbroker'] + sys.argv[1:]\n"
    "runpy.run_module('pykbroker', run_name='__main__', alter_sys=True)\n"
)


def test_full_disk_is_a_storage_error_for_that_partition_only(broker_factory, unique_topic):
    """A log file that cannot grow (RLIMIT_FSIZE stands in for a full disk):
    its partition answers KAFKA_STORAGE_ERROR, the others keep working, the
    broker stays up, and what was acknowledged stays readable."""
    b = broker_factory(FAST, command=[sys.executable, "-c", LIMITED])
    create_topic(b.bootstrap, unique_topic, 2)
    big = b"b" * 200_000
    codes = []
    with RawClient(b.bootstrap) as c:
        for _ in range(15):  # 3 MB into partition 0: past the 2 MiB file limit
            resp = c.call(0, 9, {"acks": -1, "timeout_ms": 5000, "topic_data": [
                {"name": unique_topic, "partition_data": [
                    {"index": 0, "records": build_batch([(None, big, [], now_ms())])},
                    {"index": 1, "records": build_batch([(None, b"small", [], now_ms())])}]}]})
            parts = {p["index"]: p for p in resp["responses"][0]["partition_responses"]}
            codes.append(parts[0]["error_code"])
            assert parts[1]["error_code"] == 0
    assert errors.KAFKA_STORAGE_ERROR in codes and codes[0] == 0
    assert b.is_running()
    ok = codes.index(errors.KAFKA_STORAGE_ERROR)
    recs = read_all(b.bootstrap, unique_topic, 0)
    assert len(recs) == ok and all(v == big for _, _, v, _ in recs)
    assert len(read_all(b.bootstrap, unique_topic, 1)) == 15


def test_delete_topic_removes_its_files(broker_factory, unique_topic):
    from confluent_kafka.admin import AdminClient

    b = broker_factory(FAST)
    create_topic(b.bootstrap, unique_topic, 3)
    produce(b.bootstrap, unique_topic, [(None, b"x" * 100) for _ in range(50)])
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.delete_topics([unique_topic])[unique_topic].result(10)

    def gone() -> bool:
        return not [n for n in os.listdir(b.log_dir) if n.startswith(unique_topic)]

    wait_until(gone, timeout=10)


# --- every version of the new APIs, raw -----------------------------------------------------------


@pytest.mark.parametrize("v", [0, 1, 2])
def test_raw_delete_records_versions(shared_broker, unique_topic, v):
    create_topic(shared_broker.bootstrap, unique_topic, 1)
    with RawClient(shared_broker.bootstrap) as c:
        for _ in range(3):
            _raw_produce(c, unique_topic, b"x")
        resp = c.call(21, v, {"topics": [{"name": unique_topic, "partitions": [
            {"partition_index": 0, "offset": 2}, {"partition_index": 1, "offset": 0}]}], "timeout_ms": 1000})
    parts = resp["topics"][0]["partitions"]
    assert [(p["partition_index"], p["error_code"], p["low_watermark"]) for p in parts] == [
        (0, 0, 2), (1, errors.UNKNOWN_TOPIC_OR_PARTITION, -1)]


@pytest.mark.parametrize("v", [0, 1, 2])
def test_raw_alter_configs_versions(shared_broker, unique_topic, v):
    create_topic(shared_broker.bootstrap, unique_topic, 1)
    with RawClient(shared_broker.bootstrap) as c:
        resp = c.call(33, v, {"resources": [
            {"resource_type": 2, "resource_name": unique_topic, "configs": [{"name": "retention.ms", "value": "5000"}]},
            {"resource_type": 2, "resource_name": unique_topic + "-x",
             "configs": [{"name": "retention.ms", "value": "1"}]},
            {"resource_type": 2, "resource_name": "", "configs": []},
            {"resource_type": 8, "resource_name": "0", "configs": []},
            {"resource_type": 4, "resource_name": "0", "configs": [{"name": "num.io.threads", "value": "x"}]},
        ], "validate_only": True})
        got = [(r["error_code"], r["error_message"]) for r in resp["responses"]]
        assert got == [
            (0, None),
            (errors.UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{unique_topic}-x' does not exist."),
            (errors.INVALID_REQUEST, "Default topic resources are not allowed."),
            (errors.INVALID_REQUEST, "Unknown resource type 8"),
            # num.io.threads is dynamic in Kafka: the value is checked (INVALID_REQUEST, KAFKA-13609)
            (errors.INVALID_REQUEST, "Invalid value x for configuration num.io.threads: Not a number of type INT"),
        ]
        # validate_only changed nothing
        d = c.call(32, 4, {"resources": [{"resource_type": 2, "resource_name": unique_topic,
                                          "configuration_keys": ["retention.ms"]}]})
        assert d["results"][0]["configs"][0]["config_source"] == 5


@pytest.mark.parametrize("v", [0, 1])
def test_raw_incremental_alter_configs_versions(shared_broker, unique_topic, v):
    create_topic(shared_broker.bootstrap, unique_topic, 1)
    with RawClient(shared_broker.bootstrap) as c:
        resp = c.call(44, v, {"resources": [
            {"resource_type": 2, "resource_name": unique_topic, "configs": [
                {"name": "cleanup.policy", "config_operation": 2, "value": "compact"}]},
            {"resource_type": 2, "resource_name": unique_topic, "configs": []},
            {"resource_type": 8, "resource_name": "0", "configs": [
                {"name": "pykbroker", "config_operation": 0, "value": "LOUD"}]},
        ], "validate_only": False})
        got = [(r["error_code"], r["error_message"]) for r in resp["responses"]]
        assert got == [
            (errors.INVALID_REQUEST, "Each resource must appear at most once."),
            (errors.INVALID_REQUEST, "Each resource must appear at most once."),
            (errors.INVALID_CONFIG, "Cannot set the log level of pykbroker to LOUD as it is not a supported log "
                                    "level. Valid log levels are DEBUG, ERROR, FATAL, INFO, TRACE, WARN"),
        ]
        resp = c.call(44, v, {"resources": [{"resource_type": 2, "resource_name": unique_topic, "configs": [
            {"name": "cleanup.policy", "config_operation": 2, "value": "compact"}]}], "validate_only": False})
        assert resp["responses"][0]["error_code"] == 0
        d = c.call(32, 4, {"resources": [{"resource_type": 2, "resource_name": unique_topic,
                                          "configuration_keys": ["cleanup.policy"]}]})
        assert d["results"][0]["configs"][0]["value"] == "delete,compact"


def test_shutdown_during_compaction_is_prompt_and_clean(broker_factory, unique_topic):
    """SIGTERM while the cleaner works: the broker exits promptly (the worker
    process is terminated, not waited for), and the next start finds the
    log intact with no leftover cleaning files."""
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    b = broker_factory(FAST)
    create_topic(b.bootstrap, unique_topic, 1, {"internal.segment.bytes": "1048576"})
    items = [(b"k%d" % (i % 5000), b"v%d-" % i + b"x" * 60) for i in range(300_000)]
    acked = produce(b.bootstrap, unique_topic, items, extra={"batch.size": 100_000, "linger.ms": 20})
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    r = ConfigResource(ResourceType.TOPIC, unique_topic, incremental_configs=[
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("min.cleanable.dirty.ratio", "0.01", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([r])[r].result(10)

    def cleaner_process() -> bool:  # the worker process the cleaner spawns, working
        kids = Path(f"/proc/{b.pid}/task/{b.pid}/children")
        return bool(kids.exists() and kids.read_text().split())

    wait_until(cleaner_process, timeout=20, interval=0.05)
    time.sleep(0.3)  # mid-cleaning (300 000 records take seconds); finished would be fine too
    t0 = time.monotonic()
    assert b.stop(timeout=20) == 0
    assert time.monotonic() - t0 < 10
    b.restart()
    assert not [f for f in os.listdir(Path(b.log_dir) / f"{unique_topic}-0") if f.endswith((".cleaned", ".swap"))]
    latest = {}
    for o, k, v in acked:
        latest[k] = (o, v)
    got = {}
    for o, k, v, _ in read_all(b.bootstrap, unique_topic, timeout=60):
        got[k] = (o, v)
    assert got == latest


def test_librdkafka_resets_out_of_range_offsets(broker_factory, unique_topic):
    """librdkafka 2.15/2.16 once failed to parse the Fetch v16 answer to an
    out-of-range fetch ("Protocol parse failure for Fetch v16(flex)") and
    then never reset. Below the log start offset and past the end, with
    auto.offset.reset earliest and latest: the partition error parses, the
    consumer resets and reads the right records."""
    import logging

    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient

    b = broker_factory()
    create_topic(b.bootstrap, unique_topic, 1)
    produce(b.bootstrap, unique_topic, [(None, b"v%d" % i) for i in range(10)])
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    for f in admin.delete_records([TopicPartition(unique_topic, 0, 5)]).values():
        f.result(10)

    class Lines(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.lines: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.lines.append(record.getMessage())

    logs = Lines()
    logger = logging.getLogger(f"rdkafka-{unique_topic}")
    logger.addHandler(logs)
    logger.setLevel(logging.DEBUG)

    def consume(start: int, reset: str, n: int, then: list[bytes] = (), end: int = -1) -> list[tuple[int, bytes]]:
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": f"oor-{start}-{reset}",
                      "auto.offset.reset": reset, "enable.auto.commit": False, "debug": "fetch,protocol"},
                     logger=logger)
        got: list[tuple[int, bytes]] = []
        try:
            c.assign([TopicPartition(unique_topic, 0, start)])
            deadline = time.monotonic() + 20
            fetching_at_end = f"Fetch topic {unique_topic} [0] at offset {end} "
            produced = not then
            while len(got) < n and time.monotonic() < deadline:
                m = c.poll(0.2)
                # once reset to the end and fetching there (librdkafka's fetch debug line)
                if not produced and any(fetching_at_end in line for line in logs.lines):
                    produced = True
                    produce(b.bootstrap, unique_topic, [(None, v) for v in then])
                if m is not None:
                    assert not m.error(), m.error()
                    got.append((m.offset(), m.value()))
        finally:
            c.close()
        return got

    want = [(i, b"v%d" % i) for i in range(5, 10)]
    assert consume(0, "earliest", 5) == want  # below the log start offset
    assert consume(1000, "earliest", 5) == want  # past the end
    # past the end and below the start with "latest": from the end, so only what comes after
    assert consume(1000, "latest", 1, then=[b"late-1"], end=10) == [(10, b"late-1")]
    assert consume(2, "latest", 1, then=[b"late-2"], end=11) == [(11, b"late-2")]
    assert not [line for line in logs.lines if "parse failure" in line.lower()]
    assert sum("offset reset" in line for line in logs.lines) >= 4
