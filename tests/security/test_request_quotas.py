"""request_percentage and controller_mutation_rate (security/quotas.py):
the token bucket's strict and permissive rules, and over real sockets a
client held to its share of request handling time and CreateTopics /
CreatePartitions / DeleteTopics refused or throttled by KIP-599's
partition mutation rate (raw client and kafka-python's admin client)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from pykbroker.protocol import errors
from pykbroker.security import quotas
from pykbroker.security.quotas import CLIENT_ID, MutationQuota, QuotaManager, QuotaStore, TokenBucket
from pykbroker.testing.embedded import BrokerThread
from rawclient import RawClient

THROTTLED = "The throttling quota has been exceeded."


def _set_quota(bootstrap: str, client_id: str, key: str, value: float) -> None:
    with RawClient(bootstrap) as c:
        r = c.call(49, 1, {"validate_only": False, "entries": [
            {"entity": [{"entity_type": "client-id", "entity_name": client_id}],
             "ops": [{"key": key, "value": value, "remove": False}]}]})
        assert r["entries"][0]["error_code"] == 0


def _topic(name: str, partitions: int) -> dict[str, Any]:
    return {"name": name, "num_partitions": partitions, "replication_factor": 1, "assignments": [],
            "configs": []}


def _existing(c: RawClient, names: list[str]) -> dict[str, int]:
    """name -> partition count of the topics of ``names`` that exist."""
    md = c.call(3, 12, {"topics": [{"name": n, "topic_id": b"\0" * 16} for n in names],
                        "allow_auto_topic_creation": False})
    return {t["name"]: len(t["partitions"]) for t in md["topics"] if t["error_code"] == 0}


# -- the token bucket (Kafka's TokenBucket, Strict/PermissiveControllerMutationQuota) -------------

def test_token_bucket_strict_and_permissive() -> None:
    b = TokenBucket(2.0)  # 2 windows of 1 s: 2 x quota tokens
    now = [0.0]
    strict = MutationQuota(b, 1.0, True, clock=lambda: now[0])
    strict.record(1)  # a new bucket is full: 2 -> 1
    strict.record(3)  # not below zero yet: taken, overdrawn to -2
    assert b.tokens == -2.0 and strict.throttle_ms() == 0
    with pytest.raises(quotas.ThrottlingQuotaExceeded) as e:
        strict.record(1)  # below zero: refused, nothing taken
    assert e.value.throttle_ms == 2000 and b.tokens == -2.0
    now[0] = 500.0  # the reported throttle time shrinks with the time since; the bucket refills
    assert strict.throttle_ms() == 1500
    permissive = MutationQuota(b, 1.0, False, clock=lambda: now[0])
    permissive.record(1)  # -1.5 - 1: accepted, throttled for the refill time
    assert b.tokens == -2.5 and permissive.throttle_ms() == 2500
    now[0] = 10_000.0
    assert b.measure(1.0, now[0]) == 2.0  # refilled up to the burst, no further
    assert MutationQuota(None, 0.0, True).throttle_ms() == 0  # no quota: unbounded


def test_mutation_quota_per_entity() -> None:
    m = QuotaManager(QuotaStore(), mutation_samples=3, mutation_window_s=1)
    m.store.alter(((CLIENT_ID, "admin"),), [(quotas.MUTATION, 2.0, False)])
    q = m.mutation_quota("", "admin", strict=True)
    assert q.bucket is not None and q.bound == 2.0 and q.bucket.burst_s == 3.0
    assert m.mutation_quota("", "admin", strict=False).bucket is q.bucket  # shared by the entity
    assert m.mutation_quota("", "other", strict=True).bucket is None


# -- request_percentage ----------------------------------------------------------------------------

def _metadata_loop(bootstrap: str, client_id: str, seconds: float) -> tuple[int, list[int]]:
    """Back-to-back Metadata requests for ``seconds``: (requests answered, their throttle times)."""
    throttles: list[int] = []
    with RawClient(bootstrap, client_id=client_id) as c:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            r = c.call(3, 12, {"topics": None, "allow_auto_topic_creation": False})
            throttles.append(r["throttle_time_ms"])
    return len(throttles), throttles


def test_request_percentage_throttles_a_busy_client() -> None:
    """A client-id allowed 0.1 % of a thread (1 ms of handling per second)
    sending Metadata requests back to back is told throttle_time_ms > 0
    (at most one 1 s window) and, muted that long, gets far fewer answers
    than a client-id without a quota in the same time; the other client is
    never throttled."""
    with BrokerThread({"quota.window.num": 2, "quota.window.size.seconds": 1}) as kb:
        with RawClient(kb.bootstrap) as c:  # some topics, so that Metadata has work to do
            c.call(19, 7, {"topics": [_topic(f"rq-{i}", 4) for i in range(20)], "timeout_ms": 5000,
                           "validate_only": False})
        _set_quota(kb.bootstrap, "busy", quotas.REQUEST, 0.1)
        busy, busy_throttles = _metadata_loop(kb.bootstrap, "busy", 3.0)
        free, free_throttles = _metadata_loop(kb.bootstrap, "free", 3.0)
        assert max(busy_throttles) > 0
        assert all(0 <= t <= 1000 for t in busy_throttles)
        assert set(free_throttles) == {0}
        assert busy * 3 < free, (busy, free)


def test_request_percentage_fetch_is_empty_when_throttled() -> None:
    """A consumer over its request_percentage gets Kafka's throttled Fetch
    answer: no data, throttle_time_ms > 0 (no consumer_byte_rate set)."""
    with BrokerThread({"quota.window.num": 2, "quota.window.size.seconds": 1}) as kb:
        with RawClient(kb.bootstrap) as c:
            c.call(19, 7, {"topics": [_topic("rqf", 1)], "timeout_ms": 5000, "validate_only": False})
            c.call(0, 9, {"transactional_id": None, "acks": -1, "timeout_ms": 5000, "topic_data": [
                {"name": "rqf", "partition_data": [{"index": 0, "records": _batch(b"v" * 100)}]}]})
        _set_quota(kb.bootstrap, "reader", quotas.REQUEST, 1.0)  # 10 ms of handling per second
        req = {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 1, "max_bytes": 1 << 20, "isolation_level": 0,
               "session_id": 0, "session_epoch": -1, "topics": [
                   {"topic": "rqf", "topic_id": b"\0" * 16, "partitions": [
                       {"partition": 0, "current_leader_epoch": -1, "fetch_offset": 0, "last_fetched_epoch": -1,
                        "log_start_offset": -1, "partition_max_bytes": 1 << 20}]}],
               "forgotten_topics_data": [], "rack_id": ""}
        answers = []
        with RawClient(kb.bootstrap, client_id="reader") as c:
            for _ in range(2000):
                answers.append(c.call(1, 12, req))
                if answers[-1]["throttle_time_ms"] > 0:
                    break
        throttled = answers[-1]
        assert throttled["throttle_time_ms"] > 0 and throttled["responses"] == []
        # the answers before it carried the data
        assert all(a["responses"][0]["partitions"][0]["records"] for a in answers[:-1])


def test_request_percentage_exempts_follower_fetches() -> None:
    """A fetch with a replica id (a follower's, allowed CLUSTER_ACTION: no
    authorizer) is not counted, as Kafka exempts cluster actions; the same
    client-id's consumer fetches are."""
    with BrokerThread({"quota.window.num": 2, "quota.window.size.seconds": 1}) as kb:
        with RawClient(kb.bootstrap) as c:
            c.call(19, 7, {"topics": [_topic("rqx", 1)], "timeout_ms": 5000, "validate_only": False})
        _set_quota(kb.bootstrap, "node", quotas.REQUEST, 0.01)  # 0.1 ms of handling per second
        req = {"replica_id": 1, "max_wait_ms": 0, "min_bytes": 1, "max_bytes": 1 << 20, "isolation_level": 0,
               "session_id": 0, "session_epoch": -1, "topics": [
                   {"topic": "rqx", "topic_id": b"\0" * 16, "partitions": [
                       {"partition": 0, "current_leader_epoch": -1, "fetch_offset": 0, "last_fetched_epoch": -1,
                        "log_start_offset": -1, "partition_max_bytes": 1 << 20}]}],
               "forgotten_topics_data": [], "rack_id": ""}
        with RawClient(kb.bootstrap, client_id="node") as c:
            assert {c.call(1, 12, req)["throttle_time_ms"] for _ in range(200)} == {0}
            for _ in range(2000):  # a consumer's fetches are counted: soon throttled
                if c.call(1, 12, dict(req, replica_id=-1))["throttle_time_ms"] > 0:
                    break
            else:
                pytest.fail("consumer fetches never throttled")


def _batch(value: bytes) -> bytes:
    from pykbroker.protocol.records import build_batch

    return build_batch([(None, value, [], int(time.time() * 1000))])


# -- controller_mutation_rate --------------------------------------------------------------------

def test_create_topics_strict_and_permissive() -> None:
    """controller_mutation_rate 1 partition/s, a bucket of 2 (2 windows of
    1 s): CreateTopics v7 creates a (1) and b (2, overdrawing the bucket to
    -1), refuses c with THROTTLING_QUOTA_EXCEEDED and throttle_time_ms > 0,
    c not created; v5 (permissive) creates d while the bucket is below zero,
    throttled only; a client-id without a quota is not limited."""
    with BrokerThread({"controller.quota.window.num": 2, "controller.quota.window.size.seconds": 1}) as kb:
        _set_quota(kb.bootstrap, "admin", quotas.MUTATION, 1.0)
        with RawClient(kb.bootstrap, client_id="admin") as c:
            r = c.call(19, 7, {"topics": [_topic("a", 1), _topic("b", 2), _topic("c", 1)],
                               "timeout_ms": 5000, "validate_only": False})
            assert [(t["name"], t["error_code"], t["error_message"]) for t in r["topics"]] == [
                ("a", 0, None), ("b", 0, None), ("c", errors.THROTTLING_QUOTA_EXCEEDED, THROTTLED)]
            assert r["topics"][2]["num_partitions"] == -1
            assert 0 < r["throttle_time_ms"] <= 1000
        with RawClient(kb.bootstrap, client_id="admin") as c:
            r5 = c.call(19, 5, {"topics": [_topic("d", 3)], "timeout_ms": 5000, "validate_only": False})
            assert [(t["name"], t["error_code"]) for t in r5["topics"]] == [("d", 0)]
            assert r5["throttle_time_ms"] > 0
        with RawClient(kb.bootstrap, client_id="other") as c:
            r = c.call(19, 7, {"topics": [_topic(f"o{i}", 5) for i in range(4)], "timeout_ms": 5000,
                               "validate_only": False})
            assert {t["error_code"] for t in r["topics"]} == {0} and r["throttle_time_ms"] == 0
            assert _existing(c, ["a", "b", "c", "d"]) == {"a": 1, "b": 2, "d": 3}


def test_create_partitions_and_delete_topics_strict_and_permissive() -> None:
    """With the bucket overdrawn, CreatePartitions v3 and DeleteTopics v6
    refuse with THROTTLING_QUOTA_EXCEEDED (nothing changes); v2 and v4
    (permissive) add the partitions / delete the topic, throttled."""
    with BrokerThread({"controller.quota.window.num": 2, "controller.quota.window.size.seconds": 1}) as kb:
        with RawClient(kb.bootstrap) as c:
            c.call(19, 7, {"topics": [_topic("p", 1), _topic("q", 1), _topic("x", 2), _topic("y", 2)],
                           "timeout_ms": 5000, "validate_only": False})
        _set_quota(kb.bootstrap, "admin", quotas.MUTATION, 0.5)
        with RawClient(kb.bootstrap, client_id="admin") as c:
            # a bucket of 1: 4 more partitions overdraw it to -3 (6 s to refill)
            r = c.call(37, 3, {"topics": [{"name": "p", "count": 5, "assignments": None}], "timeout_ms": 5000,
                               "validate_only": False})
            assert r["results"] == [{"name": "p", "error_code": 0, "error_message": None}]
        with RawClient(kb.bootstrap, client_id="admin") as c:
            r = c.call(37, 3, {"topics": [{"name": "q", "count": 2, "assignments": None}], "timeout_ms": 5000,
                               "validate_only": False})
            assert r["results"] == [{"name": "q", "error_code": errors.THROTTLING_QUOTA_EXCEEDED,
                                     "error_message": THROTTLED}]
            assert r["throttle_time_ms"] > 0
        with RawClient(kb.bootstrap, client_id="admin") as c:
            d = c.call(20, 6, {"topics": [{"name": "x", "topic_id": b"\0" * 16}], "timeout_ms": 5000})
            assert [(t["name"], t["error_code"], t["error_message"]) for t in d["responses"]] == [
                ("x", errors.THROTTLING_QUOTA_EXCEEDED, THROTTLED)]
            assert d["throttle_time_ms"] > 0
        with RawClient(kb.bootstrap, client_id="admin") as c:
            r2 = c.call(37, 2, {"topics": [{"name": "q", "count": 3, "assignments": None}], "timeout_ms": 5000,
                                "validate_only": False})
            assert r2["results"][0]["error_code"] == 0 and r2["throttle_time_ms"] > 0
        with RawClient(kb.bootstrap, client_id="admin") as c:
            d4 = c.call(20, 4, {"topic_names": ["y"], "timeout_ms": 5000})
            assert [(t["name"], t["error_code"]) for t in d4["responses"]] == [("y", 0)]
            assert d4["throttle_time_ms"] > 0
        with RawClient(kb.bootstrap) as c:
            assert _existing(c, ["p", "q", "x", "y"]) == {"p": 5, "q": 3, "x": 2}


def test_kafka_python_admin_sees_throttling_quota_exceeded() -> None:
    """kafka-python's KafkaAdminClient.create_topics (CreateTopics v6+,
    strict): past the bucket, the excess topics come back with error code
    89 (ThrottlingQuotaExceededError when raise_errors) and are not created;
    the client honours the throttle time (its connection is paused)."""
    from kafka import KafkaAdminClient
    from kafka.errors import ThrottlingQuotaExceededError

    with BrokerThread({"controller.quota.window.num": 2, "controller.quota.window.size.seconds": 1}) as kb:
        # 0.1 partition/s, a bucket of 0.2: the first topic overdraws it for 8 s
        _set_quota(kb.bootstrap, "kp-admin", quotas.MUTATION, 0.1)
        admin = KafkaAdminClient(bootstrap_servers=kb.bootstrap, client_id="kp-admin")
        try:
            suffix = uuid.uuid4().hex[:6]
            names = [f"k{i}-{suffix}" for i in range(4)]
            res = admin.create_topics({n: {"num_partitions": 1, "replication_factor": 1} for n in names},
                                      raise_errors=False)
            codes = {t["name"]: t["error_code"] for t in res["topics"]}
            assert codes == {names[0]: 0, names[1]: errors.THROTTLING_QUOTA_EXCEEDED,
                             names[2]: errors.THROTTLING_QUOTA_EXCEEDED, names[3]: errors.THROTTLING_QUOTA_EXCEEDED}
        finally:
            admin.close()
        # the first client pauses its connection for the throttle time; a new one is refused at once
        admin = KafkaAdminClient(bootstrap_servers=kb.bootstrap, client_id="kp-admin")
        try:
            with pytest.raises(ThrottlingQuotaExceededError):
                admin.create_topics({f"k9-{suffix}": {"num_partitions": 1, "replication_factor": 1}})
        finally:
            admin.close()
        with RawClient(kb.bootstrap) as c:
            assert set(_existing(c, names + [f"k9-{suffix}"])) == {names[0]}
