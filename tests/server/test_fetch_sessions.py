"""Fetch sessions (KIP-227): the cache (pure) and the wire, one case per test.

The wire tests speak raw Fetch at v7 (the first with sessions), v12 (topic
names, flexible) and v17 (topic ids):
full requests open sessions, incremental ones carry only changes and get
only changed partitions back, forgotten partitions leave the session, and
the session errors come back as Kafka's.
"""

from __future__ import annotations

import struct
import time

import pytest

from pykbroker.protocol import errors
from pykbroker.protocol.records import build_batch, decode_records
from pykbroker.server.fetch_sessions import (EVICTION_MS, CachedPartition, FetchSessionCache,
                                             next_epoch)
from rawclient import RawClient

# -- the cache, with a fake clock -----------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000

    def __call__(self) -> int:
        return self.t


def _fp(p: int, offset: int = 0) -> dict:
    return {"partition": p, "fetch_offset": offset, "partition_max_bytes": 1 << 20,
            "current_leader_epoch": -1, "log_start_offset": -1, "last_fetched_epoch": -1}


def _answered(n: int, topic: str = "t"):
    return [((topic, i), topic, b"\0" * 16, _fp(i), {"high_watermark": 5, "log_start_offset": 0})
            for i in range(n)]


def test_next_epoch_wraps_to_one():
    assert next_epoch(0) == 1 and next_epoch(7) == 8
    assert next_epoch(2**31 - 1) == 1
    assert next_epoch(-1) == -1


def test_cache_contexts_and_epochs():
    cache = FetchSessionCache(10, clock=Clock())
    assert cache.new_context(0, -1, False, [], []).kind == "sessionless"
    assert cache.new_context(0, 0, False, [], []).kind == "full"
    sid = cache.maybe_create(False, False, _answered(3))
    assert sid > 0 and len(cache) == 1 and cache.num_partitions == 3
    assert cache.new_context(sid + 1, 1, False, [], []).error == errors.FETCH_SESSION_ID_NOT_FOUND
    assert cache.new_context(sid, 2, False, [], []).error == errors.INVALID_FETCH_SESSION_EPOCH
    assert cache.new_context(sid, 1, True, [], []).error == errors.FETCH_SESSION_TOPIC_ID_ERROR
    ctx = cache.new_context(sid, 1, False, [(("t", 3), "t", b"\0" * 16, _fp(3, 9))], [("t", 0)])
    assert ctx.kind == "incremental" and ctx.session is not None
    assert list(ctx.session.partitions) == [("t", 1), ("t", 2), ("t", 3)]
    assert ctx.session.partitions[("t", 3)].fetch_offset == 9
    assert ctx.session.partitions[("t", 3)].high_watermark == -1  # new: answered next time
    assert cache.num_partitions == 3
    assert cache.new_context(sid, 2, False, [(("t", 1), "t", b"\0" * 16, _fp(1, 4))], []).kind == "incremental"
    assert ctx.session.partitions[("t", 1)].fetch_offset == 4
    # forgetting every partition closes the session; the answer is sessionless
    assert cache.new_context(sid, 3, False, [], [("t", 1), ("t", 2), ("t", 3)]).kind == "sessionless"
    assert len(cache) == 0 and cache.num_partitions == 0
    # epoch 0 or -1 with an id closes that session
    sid = cache.maybe_create(False, False, _answered(1))
    assert cache.new_context(sid, 0, False, [], []).kind == "full" and len(cache) == 0
    sid = cache.maybe_create(False, False, _answered(1))
    assert cache.new_context(sid, -1, False, [], []).kind == "sessionless" and len(cache) == 0


def test_must_respond_rules():
    cp = CachedPartition("t", b"", 0, 0, 100, high_watermark=5, local_log_start_offset=0)
    base = {"high_watermark": 5, "log_start_offset": 0, "error_code": 0, "preferred_read_replica": -1}
    assert not cp.must_respond(dict(base), False)
    assert cp.must_respond(dict(base), True)  # records
    assert cp.must_respond(dict(base, high_watermark=6), False) and cp.high_watermark == 6
    assert not cp.must_respond(dict(base, high_watermark=6), False)
    assert cp.must_respond(dict(base, high_watermark=6, log_start_offset=2), False)
    assert cp.must_respond(dict(base, high_watermark=6, log_start_offset=2, error_code=1), False)
    assert cp.high_watermark == -1  # answered again when the error is gone
    assert cp.must_respond(dict(base, high_watermark=6, log_start_offset=2), False)


def test_eviction_by_size_privilege_and_age():
    clock = Clock()
    cache = FetchSessionCache(2, clock=clock)
    a = cache.maybe_create(False, False, _answered(5))
    clock.t += 10
    b = cache.maybe_create(False, False, _answered(2))
    # full, nothing stale, both younger than the eviction time: a consumer gets no slot
    clock.t += 10
    assert cache.maybe_create(False, False, _answered(50)) == 0
    # a follower's (privileged) session evicts the smallest consumer session at any time
    f = cache.maybe_create(True, False, _answered(1))
    assert f > 0 and cache.get(b) is None and cache.get(a) is not None and cache.evictions == 1
    # once old (as seen at its last use), a session is evictable by anyone, smallest first,
    # and only by a session at least as large
    clock.t += EVICTION_MS + 1
    cache.touch(cache.sessions[a], clock.t)
    cache.touch(cache.sessions[f], clock.t)
    assert cache.maybe_create(False, False, _answered(4)) == 0  # smaller than a (5); f is privileged
    c = cache.maybe_create(False, False, _answered(6))
    assert c > 0 and cache.get(a) is None and cache.get(f) is not None
    # a session unused for the eviction time is stale: evicted first, whatever its size
    clock.t += EVICTION_MS + 1
    cache.touch(cache.sessions[c], clock.t)
    d = cache.maybe_create(False, False, _answered(1))
    assert d > 0 and cache.get(f) is None and cache.get(c) is not None
    assert cache.evictions == 3


def test_zero_slots_never_creates():
    cache = FetchSessionCache(0, clock=Clock())
    assert cache.maybe_create(True, False, _answered(1)) == 0


# -- the wire ---------------------------------------------------------------------


def _create(c: RawClient, topic: str, partitions: int) -> bytes:
    r = c.call(19, 5, {"topics": [{"name": topic, "num_partitions": partitions, "replication_factor": 1,
                                   "assignments": [], "configs": []}], "timeout_ms": 10000})
    assert r["topics"][0]["error_code"] == 0, r
    md = c.call(3, 12, {"topics": [{"name": topic, "topic_id": b"\0" * 16}],
                        "allow_auto_topic_creation": False})
    return md["topics"][0]["topic_id"]


def _produce(c: RawClient, topic: str, partition: int, values: list[bytes]) -> int:
    ts = int(time.time() * 1000)
    batch = build_batch([(None, v, (), ts) for v in values])
    r = c.call(0, 9, {"transactional_id": None, "acks": -1, "timeout_ms": 5000,
                      "topic_data": [{"name": topic, "partition_data": [{"index": partition, "records": batch}]}]})
    p = r["responses"][0]["partition_responses"][0]
    assert p["error_code"] == 0, p
    return p["base_offset"]


def _values(records: bytes) -> list[tuple[int, bytes | None]]:
    out, pos = [], 0
    while pos + 12 <= len(records):
        (n,) = struct.unpack_from(">i", records, pos + 8)
        out += [(r.offset, r.value) for r in decode_records(records[pos:pos + 12 + n])]
        pos += 12 + n
    return out


class Session:
    """A raw fetcher that keeps its session as a client does."""

    def __init__(self, c: RawClient, v: int, topic: str, tid: bytes) -> None:
        self.c, self.v, self.topic, self.tid = c, v, topic, tid
        self.id, self.epoch = 0, 0

    def fetch(self, parts: dict[int, int], forget: list[int] = (), *, epoch: int | None = None,
              max_wait: int = 0, replica_id: int = -1, pmax: int = 1 << 20, max_bytes: int = 1 << 20) -> dict:
        topics = [{"topic": self.topic, "topic_id": self.tid, "partitions": [
            {"partition": p, "current_leader_epoch": -1, "fetch_offset": o, "last_fetched_epoch": -1,
             "log_start_offset": -1, "partition_max_bytes": pmax} for p, o in parts.items()]}] if parts else []
        body = {"replica_id": replica_id, "replica_state": {"replica_id": replica_id, "replica_epoch": -1},
                "max_wait_ms": max_wait, "min_bytes": 1, "max_bytes": max_bytes,
                "isolation_level": 0, "session_id": self.id,
                "session_epoch": self.epoch if epoch is None else epoch, "topics": topics,
                "forgotten_topics_data": ([{"topic": self.topic, "topic_id": self.tid, "partitions": list(forget)}]
                                          if forget else []), "rack_id": ""}
        r = self.c.call(1, self.v, body)
        if r["error_code"] == 0 and epoch is None:
            if r["session_id"] != self.id:
                self.id, self.epoch = r["session_id"], 1
            elif self.id:
                self.epoch += 1
        return r

    def parts(self, r: dict) -> list[tuple[int, int, int, list]]:
        """(partition, error, high watermark, [(offset, value)]) in answer order."""
        out = []
        for t in r["responses"]:
            assert (t["topic_id"] if self.v >= 13 else t["topic"]) == (self.tid if self.v >= 13 else self.topic)
            for p in t["partitions"]:
                out.append((p["partition_index"], p["error_code"], p["high_watermark"], _values(p["records"])))
        return out


@pytest.mark.parametrize("v", [7, 12, 17])
def test_full_then_incremental(shared_broker, unique_topic, v):
    with RawClient(shared_broker.bootstrap) as c:
        tid = _create(c, unique_topic, 4)
        for p in range(4):
            _produce(c, unique_topic, p, [f"{p}-a".encode(), f"{p}-b".encode()])
        s = Session(c, v, unique_topic, tid)
        r = s.fetch({0: 0, 1: 0, 2: 0, 3: 0})
        assert r["error_code"] == 0 and r["session_id"] > 0 and s.epoch == 1
        assert s.parts(r) == [(p, 0, 2, [(0, f"{p}-a".encode()), (1, f"{p}-b".encode())]) for p in range(4)]
        # incremental: the new offsets; nothing new, nothing changed: an empty answer
        r = s.fetch({0: 2, 1: 2, 2: 2, 3: 2})
        assert r["error_code"] == 0 and r["session_id"] == s.id and s.parts(r) == []
        # new data on partition 2 only: only partition 2 comes back, with no partition listed
        _produce(c, unique_topic, 2, [b"2-c"])
        r = s.fetch({}, max_wait=2000)
        assert s.parts(r) == [(2, 0, 3, [(2, b"2-c")])]
        # the session kept partition 2's offset (2): asked again without a change, only the
        # records are new to the session, the high watermark is not
        r = s.fetch({})
        assert s.parts(r) == [(2, 0, 3, [(2, b"2-c")])]
        r = s.fetch({2: 3})
        assert s.parts(r) == []
        # long-poll on the session's partitions: an append to partition 0 wakes it
        _produce(c, unique_topic, 0, [b"0-c", b"0-d"])
        r = s.fetch({}, max_wait=5000)
        assert s.parts(r) == [(0, 0, 4, [(2, b"0-c"), (3, b"0-d")])]
        # answered partitions move to the end of the session's order: now 1, 3, 2, 0
        _produce(c, unique_topic, 0, [b"0-e"])
        _produce(c, unique_topic, 1, [b"1-c"])
        r = s.fetch({0: 4})
        assert s.parts(r) == [(1, 0, 3, [(2, b"1-c")]), (0, 0, 5, [(4, b"0-e")])]


@pytest.mark.parametrize("v", [12, 17])
def test_forgotten_partitions_and_closing(shared_broker, unique_topic, v):
    with RawClient(shared_broker.bootstrap) as c:
        tid = _create(c, unique_topic, 3)
        s = Session(c, v, unique_topic, tid)
        r = s.fetch({0: 0, 1: 0})
        assert s.id and [p[0] for p in s.parts(r)] == [0, 1]
        # forget 0, add 2 (new: always answered once)
        r = s.fetch({2: 0}, forget=[0])
        assert s.parts(r) == [(2, 0, 0, [])]
        _produce(c, unique_topic, 0, [b"gone"])
        _produce(c, unique_topic, 1, [b"kept"])
        r = s.fetch({})
        assert s.parts(r) == [(1, 0, 1, [(0, b"kept")])]
        # forgetting the rest closes the session: a sessionless (empty) answer
        old = s.id
        r = s.fetch({}, forget=[1, 2])
        assert r["error_code"] == 0 and r["session_id"] == 0 and r["responses"] == []
        s.id, s.epoch = old, 4
        assert s.fetch({}, epoch=4)["error_code"] == errors.FETCH_SESSION_ID_NOT_FOUND


@pytest.mark.parametrize("v", [12, 17])
def test_session_errors(shared_broker, unique_topic, v):
    with RawClient(shared_broker.bootstrap) as c:
        tid = _create(c, unique_topic, 1)
        s = Session(c, v, unique_topic, tid)
        s.fetch({0: 0})
        sid = s.id
        r = s.fetch({}, epoch=5)
        assert (r["error_code"], r["session_id"], r["responses"]) == (errors.INVALID_FETCH_SESSION_EPOCH, 0, [])
        # an error does not move the epoch: the right one still works
        assert s.fetch({}, epoch=1)["error_code"] == 0
        s.epoch = 2
        # a session opened with names used with ids, or the reverse
        other = Session(c, 17 if v == 12 else 12, unique_topic, tid)
        other.id, other.epoch = sid, 2
        assert other.fetch({}, epoch=2)["error_code"] == errors.FETCH_SESSION_TOPIC_ID_ERROR
        assert s.fetch({})["error_code"] == 0
        # an unknown id
        other.id = sid ^ 0x5A5A
        r = other.fetch({}, epoch=1)
        assert (r["error_code"], r["session_id"]) == (errors.FETCH_SESSION_ID_NOT_FOUND, 0)
        # epoch -1 closes the session and answers sessionless
        r = s.fetch({0: 0}, epoch=-1)
        assert r["error_code"] == 0 and r["session_id"] == 0 and len(s.parts(r)) == 1
        assert s.fetch({}, epoch=3)["error_code"] == errors.FETCH_SESSION_ID_NOT_FOUND
        # id 0 and epoch -1: sessionless, as before sessions existed
        s.id = 0
        r = s.fetch({0: 0}, epoch=-1)
        assert r["session_id"] == 0 and len(s.parts(r)) == 1


def test_error_partitions_always_answered(shared_broker, unique_topic):
    with RawClient(shared_broker.bootstrap) as c:
        tid = _create(c, unique_topic, 1)
        _produce(c, unique_topic, 0, [b"x"])
        s = Session(c, 12, unique_topic, tid)
        s.fetch({0: 1})
        assert s.parts(s.fetch({})) == []
        r = s.fetch({5: 0})  # no such partition: answered with its error, every time
        assert [(p[0], p[1]) for p in s.parts(r)] == [(5, errors.UNKNOWN_TOPIC_OR_PARTITION)]
        r = s.fetch({})
        assert [(p[0], p[1]) for p in s.parts(r)] == [(5, errors.UNKNOWN_TOPIC_OR_PARTITION)]
        r = s.fetch({0: 5})  # out of range
        assert sorted((p[0], p[1]) for p in s.parts(r)) == [(0, errors.OFFSET_OUT_OF_RANGE),
                                                          (5, errors.UNKNOWN_TOPIC_OR_PARTITION)]
        r = s.fetch({0: 1}, forget=[5])  # back in range: answered once (the error reset its state)
        assert s.parts(r) == [(0, 0, 1, [])]
        assert s.parts(s.fetch({})) == []


def test_cache_slots_and_eviction_over_the_wire(broker_factory, unique_topic):
    b = broker_factory({"max.incremental.fetch.session.cache.slots": 1})
    with RawClient(b.bootstrap) as c:
        tid = _create(c, unique_topic, 2)
        first = Session(c, 17, unique_topic, tid)
        first.fetch({0: 0, 1: 0})
        assert first.id
        # the one slot is taken by a young session: a second consumer is answered sessionless
        second = Session(c, 17, unique_topic, tid)
        r = second.fetch({0: 0, 1: 0})
        assert r["error_code"] == 0 and r["session_id"] == 0 and len(second.parts(r)) == 2
        assert first.fetch({})["error_code"] == 0
        # a follower's (privileged) session evicts it
        follower = Session(c, 17, unique_topic, tid)
        r = follower.fetch({0: 0}, replica_id=1)
        assert r["session_id"] > 0
        assert first.fetch({})["error_code"] == errors.FETCH_SESSION_ID_NOT_FOUND
    b2 = broker_factory({"max.incremental.fetch.session.cache.slots": 0})
    with RawClient(b2.bootstrap) as c:
        tid = _create(c, unique_topic, 1)
        assert Session(c, 17, unique_topic, tid).fetch({0: 0})["session_id"] == 0


def test_sessions_do_not_survive_a_restart(broker_factory, unique_topic):
    b = broker_factory()
    with RawClient(b.bootstrap) as c:
        tid = _create(c, unique_topic, 1)
        s = Session(c, 17, unique_topic, tid)
        s.fetch({0: 0})
        assert s.id
    b.restart()
    with RawClient(b.bootstrap) as c:
        s.c = c
        assert s.fetch({}, epoch=s.epoch)["error_code"] == errors.FETCH_SESSION_ID_NOT_FOUND


def test_a_caught_up_consumer_of_1000_partitions_sends_and_gets_almost_nothing(broker_factory):
    """The point of KIP-227 (numbers for docs/bench.md): a full fetch of 1,000
    idle partitions is tens of kilobytes each way, an incremental one a few bytes."""
    from pykbroker.protocol import codec
    from pykbroker.protocol.framing import decode_response, encode_request

    b = broker_factory({"pykbroker.storage": "memory"})
    with RawClient(b.bootstrap, timeout=60) as c:
        tid = _create(c, "many", 1000)
        parts = {p: 0 for p in range(1000)}
        s = Session(c, 17, "many", tid)
        sizes = []
        for _ in range(3):
            body = {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
                    "isolation_level": 0, "session_id": s.id, "session_epoch": s.epoch,
                    "topics": [{"topic_id": tid, "partitions": [
                        {"partition": p, "current_leader_epoch": -1, "fetch_offset": o, "last_fetched_epoch": -1,
                         "log_start_offset": -1, "partition_max_bytes": 1 << 20} for p, o in parts.items()]}]
                    if s.id == 0 else [], "forgotten_topics_data": [], "rack_id": ""}
            frame = encode_request(codec.api(1), 17, 7, body)
            c.send_frame(frame)
            resp = c.read_frame()
            sizes.append((len(frame), len(resp) + 4))
            _, r = decode_response(codec.api(1), 17, resp)
            assert r["error_code"] == 0 and r["session_id"] > 0
            s.id, s.epoch = r["session_id"], s.epoch + 1
        (full_req, full_resp), *incremental = sizes
        assert full_req > 30_000 and full_resp > 30_000
        assert all(req < 100 and resp < 100 for req, resp in incremental), sizes
