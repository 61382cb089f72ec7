"""Every advertised version of the data-path APIs, sent raw with our codec,
its response checked field by field; plus registry invariants.

Versions that real clients send are also covered by tests/clients/; this
module makes sure the versions no client sends work too.
"""

from __future__ import annotations

import time

import pytest

from pykbroker.handlers import load_all
from pykbroker.protocol import codec, errors
from pykbroker.protocol.records import build_batch, decode_records
from rawclient import ConnectionClosed, RawClient

# record timestamps: recent ones (older than log.retention.ms, 7 days, are
# deleted by the broker's first retention check, 30 s after it starts)
BASE_TS = int(time.time() * 1000)

REGISTRY = load_all()


def versions(key: int) -> list[int]:
    h = REGISTRY[key]
    return list(range(h.min_version, h.max_version + 1))


def test_registry_matches_specs():
    for key, h in REGISTRY.items():
        spec = codec.api(key)
        assert h.name == spec.name
        assert spec.valid.lo <= h.min_version <= h.max_version <= spec.valid.hi, h
        assert h.advertised_min <= h.min_version
        # each handler module documents itself
        import importlib

        mod = importlib.import_module(h.module)
        assert mod.__doc__ and spec.name in mod.__doc__.split("\n")[0], h.module


def test_api_versions_lists_exactly_the_registry(shared_broker):
    with RawClient(shared_broker.bootstrap) as c:
        resp = c.call(18, 3, {"client_software_name": "raw", "client_software_version": "1.0"})
    got = {k["api_key"]: (k["min_version"], k["max_version"]) for k in resp["api_keys"]}
    want = {k: (h.advertised_min, h.max_version) for k, h in REGISTRY.items()}
    assert got == want


@pytest.mark.parametrize("v", versions(18))
def test_api_versions(shared_broker, v):
    with RawClient(shared_broker.bootstrap) as c:
        resp = c.call(18, v, {"client_software_name": "raw-client", "client_software_version": "1.2.3"})
    assert resp["error_code"] == 0
    keys = {k["api_key"]: k for k in resp["api_keys"]}
    assert keys[0] == {"api_key": 0, "min_version": 0, "max_version": 13}
    assert keys[18] == {"api_key": 18, "min_version": 0, "max_version": 4}
    if v >= 3:
        with RawClient(shared_broker.bootstrap) as c:
            bad = c.call(18, v, {"client_software_name": "-bad name-", "client_software_version": "1"})
        assert bad["error_code"] == errors.INVALID_REQUEST


def _produce_body(v: int, topic: str, topic_id: bytes, records: bytes, acks: int = -1,
                  partition: int = 0) -> dict:
    return {"transactional_id": None, "acks": acks, "timeout_ms": 5000,
            "topic_data": [{"name": topic, "topic_id": topic_id,
                            "partition_data": [{"index": partition, "records": records}]}]}


def _metadata(c: RawClient, topic: str) -> dict:
    resp = c.call(3, 12, {"topics": [{"name": topic, "topic_id": b"\0" * 16}],
                          "allow_auto_topic_creation": True})
    return resp["topics"][0]


@pytest.mark.parametrize("v", versions(3))
def test_metadata(shared_broker, unique_topic, v):
    host, port = shared_broker.bootstrap.rsplit(":", 1)
    with RawClient(shared_broker.bootstrap) as c:
        body = {"topics": [{"name": unique_topic}], "allow_auto_topic_creation": True,
                "include_topic_authorized_operations": False}
        resp = c.call(3, v, body)
        assert resp["brokers"] == [{"node_id": 0, "host": host, "port": int(port),
                                    "rack": None}]
        if v >= 1:
            assert resp["controller_id"] == 0
        if v >= 2:
            assert isinstance(resp["cluster_id"], str) and len(resp["cluster_id"]) == 22
        (t,) = resp["topics"]
        assert t["error_code"] == 0 and t["name"] == unique_topic
        if v >= 10:
            assert len(t["topic_id"]) == 16 and t["topic_id"] != b"\0" * 16
        assert [p["partition_index"] for p in t["partitions"]] == [0]
        p = t["partitions"][0]
        assert (p["leader_id"], p["replica_nodes"], p["isr_nodes"]) == (0, [0], [0])
        if v >= 7:
            assert p["leader_epoch"] == 0
        # Not creating when the request says so (v4+).
        if v >= 4:
            resp = c.call(3, v, {"topics": [{"name": unique_topic + "-nope"}],
                                 "allow_auto_topic_creation": False})
            assert resp["topics"][0]["error_code"] == errors.UNKNOWN_TOPIC_OR_PARTITION
        # Invalid names are rejected.
        resp = c.call(3, v, {"topics": [{"name": "bad/name"}], "allow_auto_topic_creation": True})
        assert resp["topics"][0]["error_code"] == errors.INVALID_TOPIC_EXCEPTION
        # All topics: null list (v1+) or empty list (v0).
        resp = c.call(3, v, {"topics": [] if v == 0 else None})
        assert unique_topic in [t["name"] for t in resp["topics"]]
        if v >= 1:
            assert c.call(3, v, {"topics": []})["topics"] == []


@pytest.mark.parametrize("v", versions(0))
def test_produce(shared_broker, unique_topic, v):
    with RawClient(shared_broker.bootstrap) as c:
        tid = _metadata(c, unique_topic)["topic_id"]
        ts = int(time.time() * 1000)
        batch = build_batch([(b"k1", b"v1", (("h", b"x"),), ts), (None, b"v2", (), ts + 1)])
        resp = c.call(0, v, _produce_body(v, unique_topic, tid, batch))
        (t,) = resp["responses"]
        assert (t["name"] if v < 13 else t["topic_id"]) == (unique_topic if v < 13 else tid)
        (p,) = t["partition_responses"]
        assert (p["index"], p["error_code"], p["base_offset"]) == (0, 0, 0)
        assert p["log_append_time_ms"] == -1
        assert p["log_start_offset"] == (0 if v >= 5 else -1)  # -1: not in this version
        resp = c.call(0, v, _produce_body(v, unique_topic, tid, batch))
        assert resp["responses"][0]["partition_responses"][0]["base_offset"] == 2
        if v >= 13:
            resp = c.call(0, v, _produce_body(v, unique_topic, b"\x01" * 16, batch))
            assert resp["responses"][0]["partition_responses"][0]["error_code"] == errors.UNKNOWN_TOPIC_ID
        # acks=0: no response; the next request on the connection is answered.
        c.send_frame(__import__("pykbroker.protocol.framing", fromlist=["x"]).encode_request(
            codec.api(0), v, 999, _produce_body(v, unique_topic, tid, batch, acks=0)))
        resp = c.call(0, v, _produce_body(v, unique_topic, tid, batch))
        assert resp["responses"][0]["partition_responses"][0]["base_offset"] == 6


@pytest.mark.parametrize("v", [0, 1, 2])
def test_produce_old_versions_close_connection(shared_broker, v):
    with RawClient(shared_broker.bootstrap) as c:
        with pytest.raises(ConnectionClosed):
            c.call(0, v, {"acks": 1, "timeout_ms": 100, "topic_data": []})


def assert_stored(stored: bytes, sent: bytes, base_offset: int, epoch: int = 0) -> None:
    """The batch as stored: sent bytes with base offset and leader epoch patched."""
    assert len(stored) == len(sent)
    assert stored[:8] == base_offset.to_bytes(8, "big")
    assert stored[8:12] == sent[8:12]
    assert stored[12:16] == epoch.to_bytes(4, "big", signed=True)
    assert stored[16:] == sent[16:]


@pytest.mark.parametrize("v", versions(1))
def test_fetch(shared_broker, unique_topic, v):
    with RawClient(shared_broker.bootstrap) as c:
        tid = _metadata(c, unique_topic)["topic_id"]
        ts = int(time.time() * 1000)
        b1 = build_batch([(b"a", b"1", (), ts), (b"b", b"2", (), ts)])
        b2 = build_batch([(b"c", b"3", (), ts + 5)])
        for b in (b1, b2):
            assert c.call(0, 9, _produce_body(9, unique_topic, tid, b))["responses"][0][
                "partition_responses"][0]["error_code"] == 0

        def fetch(offset: int, max_wait: int = 0, min_bytes: int = 1, pmax: int = 1 << 20,
                  epoch: int = -1) -> dict:
            body = {"replica_id": -1, "max_wait_ms": max_wait, "min_bytes": min_bytes,
                    "max_bytes": 1 << 20, "isolation_level": 0, "session_id": 0, "session_epoch": -1,
                    "topics": [{"topic": unique_topic, "topic_id": tid, "partitions": [
                        {"partition": 0, "current_leader_epoch": epoch, "fetch_offset": offset,
                         "last_fetched_epoch": -1, "log_start_offset": -1,
                         "partition_max_bytes": pmax}]}],
                    "forgotten_topics_data": [], "rack_id": ""}
            resp = c.call(1, v, body)
            assert resp["error_code"] == 0 and resp["session_id"] == 0
            (t,) = resp["responses"]
            assert (t["topic"] if v < 13 else t["topic_id"]) == (unique_topic if v < 13 else tid)
            (p,) = t["partitions"]
            return p

        p = fetch(0)
        assert (p["partition_index"], p["error_code"], p["high_watermark"]) == (0, 0, 3)
        if v >= 4:
            assert p["last_stable_offset"] == 3
        if v >= 5:
            assert p["log_start_offset"] == 0
        recs = decode_records(p["records"][: len(b1)]) + decode_records(p["records"][len(b1):])
        assert [(r.offset, r.key, r.value, r.timestamp) for r in recs] == [
            (0, b"a", b"1", ts), (1, b"b", b"2", ts), (2, b"c", b"3", ts + 5)]
        # partition_max_bytes smaller than a batch: the first batch still comes whole.
        p = fetch(0, pmax=10)
        assert_stored(p["records"], b1, 0)
        # Offset inside the second batch: the batch containing it.
        assert_stored(fetch(2)["records"], b2, 2)
        # At the end: empty; beyond: OFFSET_OUT_OF_RANGE.
        assert fetch(3)["records"] == b""
        assert fetch(4)["error_code"] == errors.OFFSET_OUT_OF_RANGE
        # an errored partition carries an empty record set, never null (as Kafka's):
        # librdkafka fails to parse the whole response on a null one ("invalid
        # MessageSetSize -1") and loses the other partitions' records with it
        assert fetch(4)["records"] == b""
        if v >= 9:
            assert fetch(0, epoch=5)["error_code"] == errors.UNKNOWN_LEADER_EPOCH
            assert fetch(0, epoch=5)["records"] == b""
            assert fetch(0, epoch=0)["error_code"] == 0
        # Long poll: waits max_wait_ms when nothing arrives...
        t0 = time.monotonic()
        assert fetch(3, max_wait=300)["records"] == b""
        assert time.monotonic() - t0 >= 0.25


@pytest.mark.parametrize("v", versions(2))
def test_list_offsets(shared_broker, unique_topic, v):
    with RawClient(shared_broker.bootstrap) as c:
        tid = _metadata(c, unique_topic)["topic_id"]
        base = BASE_TS
        for i in range(5):  # one batch per produce; timestamps base+0, +10, ... +40
            b = build_batch([(None, b"x%d" % i, (), base + i * 10)])
            c.call(0, 9, _produce_body(9, unique_topic, tid, b))

        def lookup(ts: int) -> dict:
            resp = c.call(2, v, {"replica_id": -1, "isolation_level": 0, "timeout_ms": 1000,
                                 "topics": [{"name": unique_topic, "partitions": [
                                     {"partition_index": 0, "current_leader_epoch": -1,
                                      "timestamp": ts}]}]})
            (t,) = resp["topics"]
            assert t["name"] == unique_topic
            (p,) = t["partitions"]
            assert p["partition_index"] == 0 and p["error_code"] == 0
            return p

        assert lookup(-2)["offset"] == 0
        assert lookup(-1)["offset"] == 5
        p = lookup(base + 15)
        assert (p["offset"], p["timestamp"]) == (2, base + 20)
        p = lookup(base)
        assert (p["offset"], p["timestamp"]) == (0, base)
        assert lookup(base + 1000)["offset"] == -1
        if v >= 4:
            assert lookup(-1)["leader_epoch"] == 0
        if v >= 7:
            p = lookup(-3)
            assert (p["offset"], p["timestamp"]) == (4, base + 40)
        resp = c.call(2, v, {"replica_id": -1, "topics": [{"name": unique_topic + "x", "partitions": [
            {"partition_index": 0, "current_leader_epoch": -1, "timestamp": -1}]}]})
        assert resp["topics"][0]["partitions"][0]["error_code"] == errors.UNKNOWN_TOPIC_OR_PARTITION
