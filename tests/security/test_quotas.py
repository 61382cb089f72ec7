"""Client quotas (security/quotas.py): entity matching, the rate sensor,
DescribeClientQuotas / AlterClientQuotas over a socket, and a real producer
and consumer throttled to their byte rates (throttle_time_ms reported)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from pykbroker.protocol import errors
from pykbroker.security import quotas
from pykbroker.security.quotas import CLIENT_ID, USER, QuotaManager, QuotaStore, Sensor, entity_of
from rawclient import RawClient


def test_entity_precedence_as_kafka() -> None:
    store = QuotaStore()
    m = QuotaManager(store)
    assert m.quota_for(quotas.PRODUCE, "alice", "app") is None
    levels = [((CLIENT_ID, None),), ((CLIENT_ID, "app"),), ((USER, None),),
              entity_of([(USER, None), (CLIENT_ID, None)]), entity_of([(USER, None), (CLIENT_ID, "app")]),
              ((USER, "alice"),),
              entity_of([(USER, "alice"), (CLIENT_ID, None)]), entity_of([(USER, "alice"), (CLIENT_ID, "app")])]
    for i, e in enumerate(levels):  # each more specific level wins over the ones before
        store.alter(e, [(quotas.PRODUCE, 100.0 + i, False)])
        assert m.quota_for(quotas.PRODUCE, "alice", "app") == (e, 100.0 + i)
    assert m.quota_for(quotas.PRODUCE, "bob", "other") == (entity_of([(USER, None), (CLIENT_ID, None)]), 103.0)
    assert m.quota_for(quotas.FETCH, "alice", "app") is None
    # one type twice (refused by validate) still makes an entity, defaults first
    assert entity_of([(USER, "a"), (USER, None)]) == ((USER, None), (USER, "a"))


def test_sensor_rate_and_throttle_time() -> None:
    s = Sensor(11, 1000)
    s.record(5000, 0)
    assert s.window_size_ms(0) == 10000  # at least num - 1 full windows
    assert s.rate(0) == 500.0
    m = QuotaManager(QuotaStore())
    m.store.alter(((CLIENT_ID, "c"),), [(quotas.PRODUCE, 1000.0, False)])
    assert m.record(quotas.PRODUCE, "", "c", 5000, 0) == 0  # 500 B/s over the 10 s window
    # 20000 more: 2500 B/s, 1.5 times over the quota -> 1.5 * 10 s (capped at the 11 s window)
    assert m.record(quotas.PRODUCE, "", "c", 20000, 100) == 11000
    assert m.record(quotas.PRODUCE, "", "c", 0, 20000) == 0  # old samples expired


def test_store_describe_filters_and_file(tmp_path: Path) -> None:
    path = tmp_path / QuotaStore.FILE
    s = QuotaStore(path)
    a, ad, d = ((USER, "alice"),), entity_of([(USER, "alice"), (CLIENT_ID, None)]), ((USER, None),)
    s.alter(a, [(quotas.PRODUCE, 1e6, False)])
    s.alter(ad, [(quotas.FETCH, 2e6, False)])
    s.alter(d, [("request_percentage", 50.0, False)])
    assert {e for e, _ in s.describe([(USER, 0, "alice")], False)} == {a, ad}
    assert [e for e, _ in s.describe([(USER, 0, "alice")], True)] == [a]
    assert [e for e, _ in s.describe([(USER, 1, None)], False)] == [d]
    assert [e for e, _ in s.describe([(CLIENT_ID, 2, None)], False)] == [ad]
    s.write(s.snapshot())
    assert QuotaStore(path).quotas == s.quotas
    s.alter(a, [(quotas.PRODUCE, 0, True)])
    assert a not in s.quotas


def _entity(pairs: list[tuple[str, str | None]]) -> list[dict[str, Any]]:
    return [{"entity_type": t, "entity_name": n} for t, n in pairs]


def test_alter_and_describe_client_quotas(kafka_broker: Any) -> None:
    user = f"u{uuid.uuid4().hex[:6]}"
    with RawClient(kafka_broker.bootstrap) as c:
        r = c.call(49, 1, {"validate_only": False, "entries": [
            {"entity": _entity([("user", user), ("client-id", None)]),
             "ops": [{"key": "producer_byte_rate", "value": 1024.0, "remove": False},
                     {"key": "consumer_byte_rate", "value": 2048.0, "remove": False}]},
            {"entity": _entity([("user", user)]), "ops": [{"key": "request_percentage", "value": 200.0,
                                                             "remove": False}]},
            {"entity": _entity([("ip", "1.2.3.4"), ("user", user)]), "ops": []},
            {"entity": _entity([("user", f"{user}-bad")]), "ops": [{"key": "no_such_key", "value": 1.0,
                                                                      "remove": False}]},
            {"entity": _entity([("user", f"{user}-zero")]), "ops": [{"key": "producer_byte_rate", "value": 0.0,
                                                                       "remove": False}]}]})
        assert [(e["error_code"], e["error_message"]) for e in r["entries"]] == [
            (0, None), (0, None),
            (errors.INVALID_REQUEST, "Invalid quota entity combination, IP entity should not be combined with "
                                     "User or ClientId entities."),
            (errors.INVALID_REQUEST, "Invalid configuration key no_such_key"),
            (errors.INVALID_REQUEST, "Quota producer_byte_rate must be greater than 0")]
        assert r["entries"][0]["entity"] == _entity([("user", user), ("client-id", None)])
        d = c.call(48, 1, {"components": [{"entity_type": "user", "match_type": 0, "match": user}], "strict": False})
        assert d["error_code"] == 0
        got = {tuple((x["entity_type"], x["entity_name"]) for x in e["entity"]):
               {v["key"]: v["value"] for v in e["values"]} for e in d["entries"]}
        assert got == {(("client-id", None), ("user", user)): {"consumer_byte_rate": 2048.0,
                                                               "producer_byte_rate": 1024.0},
                       (("user", user),): {"request_percentage": 200.0}}
        # remove one key; strict match on the user alone
        c.call(49, 0, {"validate_only": False, "entries": [
            {"entity": _entity([("user", user)]), "ops": [{"key": "request_percentage", "value": 0.0,
                                                             "remove": True}]}]})
        d = c.call(48, 0, {"components": [{"entity_type": "user", "match_type": 0, "match": user}], "strict": True})
        assert d["entries"] == []
        bad = c.call(48, 0, {"components": [{"entity_type": "user", "match_type": 0, "match": None}],
                             "strict": False})
        assert bad["error_code"] == errors.INVALID_REQUEST


def test_producer_is_throttled_to_its_byte_rate() -> None:
    """producer_byte_rate 1 MB/s for client-id "slow": over 10 s of steady
    sending the delivered rate is within 20% of it, and librdkafka is told
    the throttle time (throttle_cb)."""
    from confluent_kafka import Producer

    from pykbroker.testing.embedded import BrokerThread

    quota = 1024 * 1024
    # 3 samples of 1 s: the initial burst allowance is 2 s of quota, so the steady state comes quickly
    with BrokerThread({"quota.window.num": 3, "quota.window.size.seconds": 1}) as kb:
        with RawClient(kb.bootstrap) as c:
            r = c.call(49, 1, {"validate_only": False, "entries": [
                {"entity": _entity([("client-id", "slow")]),
                 "ops": [{"key": "producer_byte_rate", "value": float(quota), "remove": False}]}]})
            assert r["entries"][0]["error_code"] == 0
        throttles: list[int] = []
        delivered: list[tuple[float, int]] = []
        p = Producer({"bootstrap.servers": kb.bootstrap, "client.id": "slow", "linger.ms": 5,
                      "batch.size": 64 * 1024, "queue.buffering.max.kbytes": 1024,
                      "throttle_cb": lambda ev: throttles.append(int(ev.throttle_time * 1000))})
        payload = b"x" * 10_000
        topic = f"quota-{uuid.uuid4().hex[:6]}"

        def on_delivery(err: Any, msg: Any) -> None:
            if err is None:
                delivered.append((time.monotonic(), len(msg.value())))

        start = time.monotonic()
        while time.monotonic() - start < 14:
            try:
                p.produce(topic, payload, on_delivery=on_delivery)
            except BufferError:
                p.poll(0.05)
            p.poll(0)
        p.flush(30)
        window = [n for t, n in delivered if start + 4 <= t < start + 14]
        rate = sum(window) / 10
        assert 0.8 * quota <= rate <= 1.2 * quota, rate
        assert throttles and max(throttles) > 0


def test_consumer_is_throttled_and_told() -> None:
    """consumer_byte_rate: a Fetch that takes the rate over the quota carries
    no data and says for how long (Kafka's throttled response)."""
    from confluent_kafka import Producer

    from pykbroker.testing.embedded import BrokerThread

    with BrokerThread({"quota.window.num": 2, "quota.window.size.seconds": 1}) as kb:
        topic = "qfetch"
        with RawClient(kb.bootstrap) as c:
            c.call(49, 1, {"validate_only": False, "entries": [
                {"entity": _entity([("client-id", "reader")]),
                 "ops": [{"key": "consumer_byte_rate", "value": 30000.0, "remove": False}]}]})
        p = Producer({"bootstrap.servers": kb.bootstrap, "linger.ms": 50})
        for _ in range(4):
            p.produce(topic, b"y" * 5000)
        assert p.flush(10) == 0
        req = {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 1, "max_bytes": 1 << 20, "isolation_level": 0,
               "session_id": 0, "session_epoch": -1, "topics": [
                   {"topic": topic, "topic_id": b"\0" * 16, "partitions": [
                       {"partition": 0, "current_leader_epoch": -1, "fetch_offset": 0, "last_fetched_epoch": -1,
                        "log_start_offset": -1, "partition_max_bytes": 1 << 20}]}],
               "forgotten_topics_data": [], "rack_id": ""}
        with RawClient(kb.bootstrap, client_id="reader") as c:
            first = c.call(1, 12, req)  # ~20 kB: under 30 kB/s over the 1 s window
            assert first["throttle_time_ms"] == 0
            assert len(first["responses"][0]["partitions"][0]["records"]) > 20000
            started = time.monotonic()
            second = c.call(1, 12, req)  # ~40 kB in the window: throttled
            assert second["throttle_time_ms"] > 0 and second["responses"] == []
            third = c.call(1, 12, dict(req, max_wait_ms=0))  # read only after the mute
            assert time.monotonic() - started >= second["throttle_time_ms"] / 1000 * 0.9
            assert third is not None
