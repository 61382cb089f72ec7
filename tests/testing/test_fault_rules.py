"""Fault injection rules, in-process (Python API on the broker handle).

What is proved here:
- every API's error response is built in its own shape (arrays mirror the
  request, keys copied, every error code set) and encodes for every version;
- a fail rule makes a confluent-kafka produce fail twice with a retriable
  error, the client retries, and the topic holds the record exactly once;
- count / probability+seed / client id / topic filters decide when a rule
  fires; a topic-scoped failure fails only that topic's part of a request;
- delay, drop-after-processing, pause_fetch and acks=0 behave as documented.
"""

from __future__ import annotations

import time

import pytest

from pykbroker.handlers import load_all
from pykbroker.protocol import codec, errors
from pykbroker.protocol.records import build_batch, decode_records, iter_batches
from pykbroker.testing.faults import FaultInjector, FaultRuleError, error_response
from rawclient import ConnectionClosed, RawClient


# -- the generic error response -------------------------------------------------------------

def _sample(fields, v):
    """A request with one element in every array, so mirroring is exercised."""
    out = {}
    for f in fields:
        if v not in f.versions:
            continue
        if f.is_array and f.fields is not None:
            out[f.key] = [_sample(f.fields, v)]
        elif f.is_array:
            out[f.key] = ["s1"] if f.elem == "string" else ([7] if f.elem.startswith("int") else [])
        elif f.fields is not None:
            out[f.key] = _sample(f.fields, v)
        elif f.type == "string":
            out[f.key] = "s1"
        else:
            out[f.key] = f.default()
    return out


def _error_codes(obj, acc, shape=None):
    """Error codes in ``obj`` at the places ``shape`` (the built body) has them
    (the decoder fills fields of other versions with defaults)."""
    shape = obj if shape is None else shape
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k not in shape:
                continue
            if k.endswith("error_code"):
                acc.append(v)
            _error_codes(v, acc, shape[k])
    elif isinstance(obj, list):
        assert len(obj) == len(shape)
        for v, sv in zip(obj, shape):
            _error_codes(v, acc, sv)
    return acc


@pytest.mark.parametrize("api_key", sorted(codec.load_apis()))
def test_error_response_every_api_and_version(api_key):
    api = codec.api(api_key)
    for v in range(api.valid.lo, api.valid.hi + 1):
        req = _sample(api.request.fields, v)
        body = error_response(api, v, req, errors.NOT_LEADER_OR_FOLLOWER, "injected")
        decoded, _ = api.response.decode(api.response.encode(body, v), v)
        codes = _error_codes(decoded, [], body)
        assert codes, (api.name, v)
        assert set(codes) == {errors.NOT_LEADER_OR_FOLLOWER}, (api.name, v, codes)


def test_error_response_shapes():
    produce = codec.api(0)
    req = {"acks": -1, "topic_data": [{"name": "a", "partition_data": [{"index": 0, "records": b""},
                                                                      {"index": 2, "records": b""}]},
                                      {"name": "b", "partition_data": [{"index": 1, "records": b""}]}]}
    body = error_response(produce, 9, req, 6, "m")
    assert [(t["name"], [(p["index"], p["error_code"], p["error_message"]) for p in t["partition_responses"]])
            for t in body["responses"]] == [("a", [(0, 6, "m"), (2, 6, "m")]), ("b", [(1, 6, "m")])]
    fetch = codec.api(1)
    req = {"topics": [{"topic": "a", "topic_id": b"\0" * 16, "partitions": [{"partition": 3}]}],
           "forgotten_topics_data": [{"topic": "z", "partitions": [1]}]}
    body = error_response(fetch, 12, req, 6, None)
    assert body["error_code"] == 6
    assert [(t["topic"], [(p["partition_index"], p["error_code"]) for p in t["partitions"]])
            for t in body["responses"]] == [("a", [(3, 6)])]
    delete = codec.api(20)  # v1-5: a list of names; v6: structs
    assert error_response(delete, 1, {"topic_names": ["x", "y"]}, 41, None)["responses"] == [
        {"name": "x", "error_code": 41}, {"name": "y", "error_code": 41}]
    create = codec.api(19)  # response configs describe the topic: not mirrored
    body = error_response(create, 7, {"topics": [{"name": "t", "configs": [{"name": "retention.ms"}]}]}, 36, "x")
    assert body["topics"][0]["configs"] == [] and body["topics"][0]["error_code"] == 36


# -- rules --------------------------------------------------------------------------------------

class _Ctx:
    def __init__(self, api_key=0, client_id="c", state=None):
        self.api_key, self.client_id, self.state = api_key, client_id, state


def test_rule_validation_and_names():
    f = FaultInjector()
    r = f.add(action="fail", api="produce", error="not_leader_or_follower", count=2)
    assert (r["api"], r["error"], r["count"], r["remaining"], r["active"]) == (
        "Produce", "NOT_LEADER_OR_FOLLOWER", 2, 2, True)
    assert f.add({"action": "delay", "api": 3, "delay_ms": 5})["api"] == "Metadata"
    assert f.add(action="pause-fetch", topic="t")["api"] == "Fetch"
    assert f.add(action="fail", api="ListOffsets", error=6)["api"] == "ListOffsets"
    for bad in ({"action": "explode"}, {"action": "fail", "api": "Produce"},
                {"action": "fail", "api": "Nope", "error": 6}, {"action": "fail", "error": "NO_SUCH_ERROR"},
                {"action": "delay", "api": "Fetch"}, {"action": "fail", "error": 6, "probability": 2},
                {"action": "pause_fetch", "api": "Produce", "topic": "t"}, {"action": "drop", "partition": 1},
                {"action": "fail", "error": 6, "colour": "red"}):
        with pytest.raises(FaultRuleError):
            f.add(bad)
    assert [r["id"] for r in f.list()] == [1, 2, 3, 4]
    assert f.remove(2) and not f.remove(2)
    assert f.clear() == 3 and f.list() == [] and not f.active


def test_count_probability_seed_client_filters():
    f = FaultInjector()
    f.add(action="drop", api="Metadata", count=2)
    fired = [f.plan(_Ctx(3), {}) is not None for _ in range(4)]
    assert fired == [True, True, False, False]
    assert f.list()[0]["hits"] == 2 and f.list()[0]["active"] is False

    def draws(seed):
        g = FaultInjector()
        g.add(action="drop", probability=0.5, seed=seed)
        return [g.plan(_Ctx(3), {}) is not None for _ in range(40)]

    assert draws(7) == draws(7) and 5 < sum(draws(7)) < 35 and draws(7) != draws(8)

    g = FaultInjector()
    g.add(action="drop", client_id="app-*")
    assert g.plan(_Ctx(3, "app-1"), {}) is not None
    assert g.plan(_Ctx(3, "other"), {}) is None
    assert g.plan(_Ctx(3, None), {}) is None


# -- with real clients ---------------------------------------------------------------------------

def test_confluent_produce_retries_through_two_failures(kafka_broker, kafka_faults, kafka_topic):
    """Acceptance: fail Produce twice with a retriable error; the client
    retries; the record is in the topic exactly once."""
    from confluent_kafka import Producer

    kafka_faults.fail("Produce", "NOT_LEADER_OR_FOLLOWER", count=2, topic=kafka_topic)
    p = Producer({"bootstrap.servers": kafka_broker.bootstrap, "linger.ms": 0, "retry.backoff.ms": 10,
                  "retry.backoff.max.ms": 50, "enable.idempotence": False, "acks": "all"})
    delivered = []
    p.produce(kafka_topic, b"exactly-once", partition=0, on_delivery=lambda e, m: delivered.append((e, m.offset())))
    assert p.flush(30) == 0
    assert delivered == [(None, 0)]
    assert kafka_faults.list()[0]["hits"] == 2
    assert kafka_broker.values(kafka_topic) == [b"exactly-once"]
    produces = kafka_broker.metrics()["apis"]["Produce"]
    assert produces["errors"] >= 2 and produces["requests"] >= 3


@pytest.mark.skipif(22 not in load_all(), reason="pending: idempotent producer (InitProducerId, issue 6) "
                    "not implemented yet")
def test_confluent_idempotent_produce_retries_through_two_failures(kafka_broker, kafka_faults, kafka_topic):
    from confluent_kafka import Producer

    kafka_faults.fail("Produce", "NOT_LEADER_OR_FOLLOWER", count=2, topic=kafka_topic)
    p = Producer({"bootstrap.servers": kafka_broker.bootstrap, "linger.ms": 0, "retry.backoff.ms": 10,
                  "enable.idempotence": True})
    delivered = []
    p.produce(kafka_topic, b"exactly-once", partition=0, on_delivery=lambda e, m: delivered.append(e))
    assert p.flush(30) == 0 and delivered == [None]
    assert kafka_broker.values(kafka_topic) == [b"exactly-once"]


def _produce_req(topics: dict[str, bytes], acks: int = 1) -> dict:
    return {"acks": acks, "timeout_ms": 1000, "topic_data": [
        {"name": t, "partition_data": [{"index": 0, "records": data}]} for t, data in topics.items()]}


def _batch(*values: bytes) -> bytes:
    return build_batch([(None, v, [], 1000 + i) for i, v in enumerate(values)])


def test_topic_scoped_failure_processes_the_rest(kafka_broker, kafka_faults, kafka_topic_factory):
    a, b = kafka_topic_factory(), kafka_topic_factory()
    kafka_faults.fail("Produce", "KAFKA_STORAGE_ERROR", topic=a, message="disk on fire")
    with RawClient(kafka_broker.bootstrap) as c:
        resp = c.call(0, 9, _produce_req({a: _batch(b"1"), b: _batch(b"2")}))
    got = {t["name"]: t["partition_responses"][0] for t in resp["responses"]}
    assert got[a]["error_code"] == errors.KAFKA_STORAGE_ERROR and got[a]["error_message"] == "disk on fire"
    assert got[b]["error_code"] == 0 and got[b]["base_offset"] == 0
    assert kafka_broker.values(a) == [] and kafka_broker.values(b) == [b"2"]


def test_read_only_api_keeps_the_real_response(kafka_broker, kafka_faults, kafka_topic):
    kafka_faults.fail("Metadata", "LEADER_NOT_AVAILABLE", count=1)
    with RawClient(kafka_broker.bootstrap) as c:
        body = c.call(3, 12, {"topics": [{"name": kafka_topic}], "allow_auto_topic_creation": False})
        again = c.call(3, 12, {"topics": [{"name": kafka_topic}], "allow_auto_topic_creation": False})
    assert body["brokers"] and body["topics"][0]["name"] == kafka_topic
    assert body["topics"][0]["error_code"] == errors.LEADER_NOT_AVAILABLE
    assert {p["error_code"] for p in body["topics"][0]["partitions"]} == {errors.LEADER_NOT_AVAILABLE}
    assert again["topics"][0]["error_code"] == 0


def test_delay(kafka_broker, kafka_faults):
    kafka_faults.delay("ApiVersions", 250, client_id="slow-*")
    with RawClient(kafka_broker.bootstrap, client_id="slow-1") as c:
        t0 = time.monotonic()
        c.call(18, 2, {})
        slow = time.monotonic() - t0
    with RawClient(kafka_broker.bootstrap, client_id="fast") as c:
        t0 = time.monotonic()
        c.call(18, 2, {})
        fast = time.monotonic() - t0
    assert slow >= 0.25 and fast < 0.2


def test_drop_after_processing(kafka_broker, kafka_faults, kafka_topic):
    kafka_faults.drop("Produce", count=1)
    with RawClient(kafka_broker.bootstrap) as c:
        with pytest.raises(ConnectionClosed):
            c.call(0, 9, _produce_req({kafka_topic: _batch(b"landed")}))
    assert kafka_broker.values(kafka_topic) == [b"landed"]  # processed, the answer lost
    with RawClient(kafka_broker.bootstrap) as c:  # count=1: the next one is answered
        r = c.call(0, 9, _produce_req({kafka_topic: _batch(b"again")}))
    assert r["responses"][0]["partition_responses"][0]["base_offset"] == 1


def test_acks0_failure_closes_the_connection(kafka_broker, kafka_faults, kafka_topic):
    kafka_faults.fail("Produce", "NOT_ENOUGH_REPLICAS")
    with RawClient(kafka_broker.bootstrap) as c:
        c.send_frame(c.encode(0, 9, _produce_req({kafka_topic: _batch(b"x")}, acks=0)))
        assert c.is_closed_by_peer(5)
    assert kafka_broker.values(kafka_topic) == []


def _fetch(c, topic, partitions, max_wait_ms=0):
    return c.call(1, 12, {"max_wait_ms": max_wait_ms, "min_bytes": 1, "max_bytes": 1 << 20, "topics": [
        {"topic": topic, "partitions": [{"partition": p, "fetch_offset": 0, "partition_max_bytes": 1 << 20}
                                        for p in partitions]}]})


def _values(records):
    return [r.value for h in iter_batches(records or b"") for r in decode_records(records, h.position)]


def test_pause_fetch(kafka_broker, kafka_faults, kafka_topic_factory):
    topic = kafka_topic_factory(partitions=2)
    with RawClient(kafka_broker.bootstrap) as c:
        for p, v in ((0, b"p0"), (1, b"p1")):
            req = _produce_req({topic: _batch(v)})
            req["topic_data"][0]["partition_data"][0]["index"] = p
            c.call(0, 9, req)
        rule = kafka_faults.pause_fetch(topic, partition=0)
        body = _fetch(c, topic, [0, 1], max_wait_ms=2000)
        parts = {p["partition_index"]: p for p in body["responses"][0]["partitions"]}
        assert _values(parts[1]["records"]) == [b"p1"]
        assert _values(parts[0]["records"]) == [] and parts[0]["high_watermark"] == 1
        assert parts[0]["error_code"] == 0
        t0 = time.monotonic()  # only paused partitions: waits max_wait_ms, then empty
        body = _fetch(c, topic, [0], max_wait_ms=300)
        assert time.monotonic() - t0 >= 0.3
        assert _values(body["responses"][0]["partitions"][0]["records"]) == []
        kafka_faults.remove(rule["id"])
        body = _fetch(c, topic, [0])
        assert _values(body["responses"][0]["partitions"][0]["records"]) == [b"p0"]
