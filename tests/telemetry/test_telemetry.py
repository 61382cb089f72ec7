"""Client telemetry (KIP-714): client-metrics subscriptions as CLIENT_METRICS
config resources, GetTelemetrySubscriptions / PushTelemetry with Kafka's
rules, OTLP decoding, and pushed metrics on /metrics, by librdkafka too."""

from __future__ import annotations

import struct
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pykbroker.protocol import errors
from pykbroker.telemetry import otlp
from pykbroker.testing import BrokerThread
from rawclient import RawClient

CLIENT_METRICS = 16


# -- a tiny OTLP encoder for the tests (protobuf wire format) ------------------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _ld(num: int, payload: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _f64(num: int, v: float) -> bytes:
    return _varint(num << 3 | 1) + struct.pack("<d", v)


def _kv(k: str, v: str) -> bytes:
    return _ld(1, k.encode()) + _ld(2, _ld(1, v.encode()))


def metrics_data(points: list[tuple[str, str, float, dict[str, str]]], resource: dict[str, str] | None = None) -> bytes:
    """MetricsData with one ResourceMetrics/ScopeMetrics; points: (name, gauge|sum, value, attributes)."""
    metrics = b""
    for name, kind, value, attrs in points:
        dp = _f64(4, value) + b"".join(_ld(7, _kv(k, v)) for k, v in attrs.items())
        body = _ld(1, dp) + (_varint(3 << 3) + b"\x01" if kind == "sum" else b"")
        metrics += _ld(2, _ld(1, name.encode()) + _ld(7 if kind == "sum" else 5, body))
    res = _ld(1, b"".join(_ld(1, _kv(k, v)) for k, v in (resource or {}).items()))
    return _ld(1, res + _ld(2, metrics))


def test_otlp_reader_gauges_sums_attributes_and_unknown_fields():
    data = metrics_data([("org.apache.kafka.producer.record.send.rate", "gauge", 12.5, {"node_id": "1"}),
                         ("org.apache.kafka.producer.bytes", "sum", 3.0, {})], {"client_rack": "r1"})
    data += _varint(15 << 3) + _varint(7)  # an unknown varint field at the top level
    got = otlp.read_metrics(data)
    assert [(p.name, p.kind, p.value, p.attributes, p.resource, p.monotonic) for p in got] == [
        ("org.apache.kafka.producer.record.send.rate", "gauge", 12.5, (("node_id", "1"),), (("client_rack", "r1"),),
         False),
        ("org.apache.kafka.producer.bytes", "sum", 3.0, (), (("client_rack", "r1"),), True)]
    for bad in (b"\x0a\x05ab", b"\x0a", b"\x0f", b"\x00\x01"):
        with pytest.raises(otlp.OtlpError):
            otlp.read_metrics(bad)


# -- over the wire -------------------------------------------------------------------------------------

@pytest.fixture
def kb(tmp_path):
    with BrokerThread({"log.dirs": str(tmp_path / "data"), "telemetry.max.bytes": 4096,
                       "pykbroker.client.telemetry.enable": True}, control=True) as b:
        yield b


def alter(c: RawClient, name: str, ops: list[tuple[str, int, str | None]], validate_only: bool = False) -> dict:
    r = c.call(44, 1, {"resources": [{"resource_type": CLIENT_METRICS, "resource_name": name, "configs": [
        {"name": k, "config_operation": op, "value": v} for k, op, v in ops]}], "validate_only": validate_only})
    return r["responses"][0]


def subscribe(c: RawClient, instance: bytes = bytes(16)) -> dict:
    return c.call(71, 0, {"client_instance_id": instance})


def push(c: RawClient, sub: dict, metrics: bytes, *, compression: int = 0, terminating: bool = False,
         subscription_id: int | None = None, instance: bytes | None = None) -> int:
    return c.call(72, 0, {"client_instance_id": sub["client_instance_id"] if instance is None else instance,
                          "subscription_id": sub["subscription_id"] if subscription_id is None else subscription_id,
                          "terminating": terminating, "compression_type": compression,
                          "metrics": metrics})["error_code"]


def test_subscriptions_are_client_metrics_config_resources(kb):
    with RawClient(kb.bootstrap) as c:
        assert alter(c, "all", [("metrics", 0, "*"), ("interval.ms", 0, "1000")])["error_code"] == 0
        assert alter(c, "producers", [("metrics", 0, "org.apache.kafka.producer."),
                                      ("match", 0, "client_id=prod-.*")])["error_code"] == 0
        bad = alter(c, "x", [("interval.ms", 0, "50")])
        assert bad["error_code"] == errors.INVALID_CONFIG and "between 100 and 3600000" in bad["error_message"]
        bad = alter(c, "x", [("colour", 0, "red")])
        assert bad["error_code"] == errors.INVALID_CONFIG and "Unknown client metrics configuration" in \
            bad["error_message"]
        bad = alter(c, "x", [("match", 0, "hostname=a")])
        assert bad["error_code"] == errors.INVALID_CONFIG and "Illegal client matching selector" in bad["error_message"]
        assert alter(c, "y", [("metrics", 0, "a.")], validate_only=True)["error_code"] == 0
        assert alter(c, "producers", [("metrics", 2, "org.apache.kafka.consumer.")])["error_code"] == 0  # APPEND
        d = c.call(32, 4, {"resources": [{"resource_type": CLIENT_METRICS, "resource_name": "producers",
                                          "configuration_keys": None}],
                           "include_synonyms": False, "include_documentation": False})["results"][0]
        assert {e["name"]: (e["value"], e["config_source"]) for e in d["configs"]} == {
            "metrics": ("org.apache.kafka.producer.,org.apache.kafka.consumer.", 7),
            "interval.ms": ("300000", 5), "match": ("client_id=prod-.*", 7)}
        assert c.call(74, 0, {})["config_resources"] == [
            {"resource_name": "all", "resource_type": 16}, {"resource_name": "producers", "resource_type": 16}]
        v1 = c.call(74, 1, {"resource_types": [CLIENT_METRICS]})
        assert [r["resource_name"] for r in v1["config_resources"]] == ["all", "producers"]
        assert c.call(74, 1, {"resource_types": [99]})["error_code"] == errors.UNSUPPORTED_VERSION
        # deleting every config removes the subscription
        assert alter(c, "all", [("metrics", 1, None), ("interval.ms", 1, None)])["error_code"] == 0
        assert [r["resource_name"] for r in c.call(74, 0, {})["config_resources"]] == ["producers"]


def test_telemetry_apis_advertised_only_when_enabled(tmp_path):
    """As Kafka, which advertises them only with a ClientTelemetry metrics reporter."""
    with BrokerThread() as b, RawClient(b.bootstrap) as c:
        keys = {k["api_key"] for k in c.call(18, 3, {"client_software_name": "t", "client_software_version": "1"})
                ["api_keys"]}
        assert 71 not in keys and 72 not in keys and 74 in keys
    with BrokerThread({"pykbroker.client.telemetry.enable": True}) as b, RawClient(b.bootstrap) as c:
        keys = {k["api_key"] for k in c.call(18, 3, {"client_software_name": "t", "client_software_version": "1"})
                ["api_keys"]}
        assert {71, 72, 74} <= keys


def test_subscriptions_survive_a_restart(tmp_path):
    props = {"log.dirs": str(tmp_path / "data"), "pykbroker.storage": "disk", "pykbroker.client.telemetry.enable": True}
    with BrokerThread(props) as b, RawClient(b.bootstrap) as c:
        assert alter(c, "keep", [("metrics", 0, "org.apache."), ("interval.ms", 0, "1000")])["error_code"] == 0
    with BrokerThread(props) as b, RawClient(b.bootstrap) as c:
        assert [r["resource_name"] for r in c.call(74, 0, {})["config_resources"]] == ["keep"]
        s = subscribe(c)
        assert s["requested_metrics"] == ["org.apache."] and s["push_interval_ms"] == 1000


def test_subscribe_and_push_follow_kafkas_rules(kb):
    with RawClient(kb.bootstrap, client_id="app-1") as c:
        # no subscription: nothing requested, Kafka's default interval
        s0 = subscribe(c)
        assert s0["error_code"] == 0 and s0["client_instance_id"] != bytes(16)
        assert s0["requested_metrics"] == [] and s0["push_interval_ms"] == 300000
        assert s0["accepted_compression_types"] == [4, 3, 1, 2] and s0["telemetry_max_bytes"] == 4096
        assert s0["delta_temporality"] is True
        assert subscribe(c, s0["client_instance_id"])["error_code"] == errors.THROTTLING_QUOTA_EXCEEDED
        # a subscription appears: the next request is answered at once, with a new subscription id
        assert alter(c, "all", [("metrics", 0, "*"), ("interval.ms", 0, "200")])["error_code"] == 0
        s = subscribe(c, s0["client_instance_id"])
        assert s["error_code"] == 0 and s["requested_metrics"] == [""] and s["push_interval_ms"] == 200
        assert s["subscription_id"] != s0["subscription_id"]
        data = metrics_data([("org.apache.kafka.producer.record.send.rate", "gauge", 7.5, {"node_id": "0"})])
        assert push(c, s, data) == 0
        assert push(c, s, data) == errors.THROTTLING_QUOTA_EXCEEDED  # within the interval
        time.sleep(0.25)
        assert push(c, s, data, subscription_id=s["subscription_id"] + 1) == errors.UNKNOWN_SUBSCRIPTION_ID
        time.sleep(0.25)
        assert push(c, s, data, compression=9) == errors.UNSUPPORTED_COMPRESSION_TYPE
        time.sleep(0.25)
        assert push(c, s, b"\0" * 5000) == errors.TELEMETRY_TOO_LARGE
        time.sleep(0.25)
        assert push(c, s, b"\x0a\xff\xff") == errors.INVALID_RECORD
        time.sleep(0.25)
        import cramjam

        gz = bytes(cramjam.gzip.compress(metrics_data([("org.apache.kafka.producer.record.send.rate", "gauge",
                                                          9.0, {"node_id": "0"})])))
        assert push(c, s, gz, compression=1) == 0
        assert push(c, s, b"", instance=bytes(16)) == errors.INVALID_REQUEST
        # a terminating push is accepted at any time; nothing after it
        assert push(c, s, b"", terminating=True) == 0
        assert push(c, s, b"", terminating=True) == errors.INVALID_REQUEST
    text = urllib.request.urlopen(kb.control_url + "/metrics", timeout=10).read().decode()
    iid = str(uuid.UUID(bytes=s["client_instance_id"]))
    line = [x for x in text.splitlines() if x.startswith("pykbroker_client_metric{")]
    assert line == [f'pykbroker_client_metric{{client_instance_id="{iid}",client_id="app-1",node_id="0",'
                    f'name="org.apache.kafka.producer.record.send.rate"}} 9.0']


def test_match_patterns_select_clients(kb):
    with RawClient(kb.bootstrap) as admin:
        assert alter(admin, "prod", [("metrics", 0, "org.apache.kafka.producer."), ("interval.ms", 0, "5000"),
                                     ("match", 0, "client_id=prod-.*")])["error_code"] == 0
    with RawClient(kb.bootstrap, client_id="prod-7") as c:
        s = subscribe(c)
        assert s["requested_metrics"] == ["org.apache.kafka.producer."] and s["push_interval_ms"] == 5000
    with RawClient(kb.bootstrap, client_id="consumer-1") as c:
        s = subscribe(c)
        assert s["requested_metrics"] == [] and s["push_interval_ms"] == 300000


def test_librdkafka_pushes_metrics_that_show_on_metrics(kb):
    from confluent_kafka import Producer

    with RawClient(kb.bootstrap) as c:
        assert alter(c, "all", [("metrics", 0, "*"), ("interval.ms", 0, "500")])["error_code"] == 0
    kb.create_topic("tele", 1)
    p = Producer({"bootstrap.servers": kb.bootstrap, "client.id": "tele-producer", "enable.metrics.push": True,
                  "linger.ms": 5})
    deadline = time.monotonic() + 30
    lines: list[str] = []
    while time.monotonic() < deadline:
        for i in range(50):
            p.produce("tele", value=f"v{i}".encode())
        p.poll(0.2)
        text = urllib.request.urlopen(kb.control_url + "/metrics", timeout=10).read().decode()
        lines = [x for x in text.splitlines()
                 if x.startswith("pykbroker_client_metric{") and 'client_id="tele-producer"' in x]
        if any("org.apache.kafka.producer." in x for x in lines):
            break
    p.flush(10)
    assert any('name="org.apache.kafka.producer.' in x for x in lines), lines[:5]
    assert all('client_instance_id="' in x for x in lines)
