"""Issue 18: a JoinGroup or SyncGroup parked for a rebalance is cancelled
the moment its client closes the connection (the socket is released at
once); the group keeps the member as Kafka does until its session timeout,
so the other consumers get their assignment without waiting on the dead
connection."""

from __future__ import annotations

import os
import struct
import threading
import time

from clientlib import create_topic, produce_confluent, expected_records
from rawclient import RawClient

from pykbroker.protocol import codec, errors

# record timestamps: recent ones (older than log.retention.ms, 7 days, are
# deleted by the broker's first retention check, 30 s after it starts)
BASE_TS = int(time.time() * 1000)


def subscription(*topics: str) -> bytes:
    sub = codec.load_data_schema("consumer_protocol_subscription")
    return struct.pack(">h", 0) + sub.encode({"topics": list(topics), "user_data": None}, 0)


def join_body(gid: str, member_id: str, topic: str, session_ms: int = 6000) -> dict:
    return {"group_id": gid, "session_timeout_ms": session_ms, "rebalance_timeout_ms": 10_000,
            "member_id": member_id, "group_instance_id": None, "protocol_type": "consumer",
            "protocols": [{"name": "range", "metadata": subscription(topic)},
                          {"name": "roundrobin", "metadata": subscription(topic)}], "reason": None}


def open_sockets(pid: int) -> int:
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n


class Consumer(threading.Thread):
    """A confluent-kafka consumer in the group, recording its assignments
    and the values it receives."""

    def __init__(self, bootstrap: str, gid: str, topic: str, heartbeat_ms: int = 300) -> None:
        super().__init__(daemon=True)
        self.heartbeat_ms = heartbeat_ms
        self.bootstrap, self.gid, self.topic = bootstrap, gid, topic
        self.assignments: list[tuple[float, list[int]]] = []
        self.values: list[bytes] = []
        self.stop = threading.Event()
        self.errors: list[str] = []

    def run(self) -> None:
        from confluent_kafka import Consumer as C

        c = C({"bootstrap.servers": self.bootstrap, "group.id": self.gid, "auto.offset.reset": "earliest",
               "session.timeout.ms": 10000, "heartbeat.interval.ms": self.heartbeat_ms, "enable.auto.commit": False,
               "partition.assignment.strategy": "range"})

        def on_assign(consumer, parts) -> None:  # type: ignore[no-untyped-def]
            self.assignments.append((time.monotonic(), sorted(p.partition for p in parts)))

        def on_revoke(consumer, parts) -> None:  # type: ignore[no-untyped-def]
            self.assignments.append((time.monotonic(), []))

        c.subscribe([self.topic], on_assign=on_assign, on_revoke=on_revoke)
        try:
            while not self.stop.is_set():
                m = c.poll(0.1)
                if m is None:
                    continue
                if m.error():
                    self.errors.append(str(m.error()))
                    continue
                self.values.append(m.value())
        finally:
            c.close()

    def wait_assigned(self, parts: list[int] | int, after: float, timeout: float) -> float:
        """When the consumer got ``parts`` (or any ``parts`` partitions) after ``after``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, got in self.assignments:
                if t >= after and (got == parts if isinstance(parts, list) else len(got) == parts):
                    return t
            time.sleep(0.05)
        raise AssertionError(f"no assignment {parts} after {after}: {self.assignments}")


def test_join_group_of_a_closed_connection_is_cancelled(broker_factory) -> None:
    b = broker_factory({"group.initial.rebalance.delay.ms": "0"})
    create_topic(b.bootstrap, "jt", 4)
    # the live consumer learns of the rebalance at its next heartbeat (3 s):
    # the dead member's JoinGroup stays parked that long
    a = Consumer(b.bootstrap, "g1", "jt", heartbeat_ms=3000)
    a.start()
    try:
        a.wait_assigned([0, 1, 2, 3], 0, 30)
        base = open_sockets(b.pid)
        dead = RawClient(b.bootstrap)
        r = dead.call(11, 5, join_body("g1", "", "jt"))
        assert r["error_code"] == errors.MEMBER_ID_REQUIRED
        t_join = time.monotonic()
        dead.send_frame(dead.encode(11, 5, join_body("g1", r["member_id"], "jt")))
        time.sleep(0.3)  # parked: the rebalance waits for the live consumer to rejoin ...
        assert open_sockets(b.pid) >= base + 1
        dead.close()  # ... and the client goes away meanwhile
        t0 = time.monotonic()
        while open_sockets(b.pid) > base and time.monotonic() - t0 < 5:
            time.sleep(0.02)
        assert open_sockets(b.pid) <= base, "the parked JoinGroup kept its socket"
        assert time.monotonic() - t0 < 1.0
        # the live consumer gets its share of the rebalance at once, then (the
        # dead member's session timing out) every partition again
        t_share = a.wait_assigned(2, t_join, 15)
        assert t_share - t_join < 3 + 3
        t_all = a.wait_assigned([0, 1, 2, 3], t_share, 25)
        assert t_all - t_share < 6 + 3 + 3  # its session timeout, the next heartbeat, a margin
        recs = expected_records("jt", 40, 4, base_ts=BASE_TS)
        produce_confluent(b.bootstrap, "jt", recs)
        deadline = time.monotonic() + 20
        while len(a.values) < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(a.values, key=lambda v: v or b"") == sorted((r.value for r in recs), key=lambda v: v or b"")
    finally:
        a.stop.set()
        a.join(10)
    assert "Traceback" not in b.log, b.log_tail(60)


def test_sync_group_of_a_closed_connection_is_cancelled(broker_factory) -> None:
    b = broker_factory({"group.initial.rebalance.delay.ms": "0"})
    create_topic(b.bootstrap, "st", 2)
    with RawClient(b.bootstrap) as leader:
        r = leader.call(11, 5, join_body("g2", "", "st"))
        lj = leader.call(11, 5, join_body("g2", r["member_id"], "st"))
        assert lj["error_code"] == 0 and lj["leader"] == lj["member_id"]
        lid = lj["member_id"]
        ls = leader.call(14, 5, {"group_id": "g2", "generation_id": lj["generation_id"], "member_id": lid,
                                 "group_instance_id": None, "protocol_type": "consumer",
                                 "protocol_name": "range", "assignments": []})
        assert ls["error_code"] == 0
        base = open_sockets(b.pid)
        follower = RawClient(b.bootstrap)
        r = follower.call(11, 5, join_body("g2", "", "st"))
        follower.send_frame(follower.encode(11, 5, join_body("g2", r["member_id"], "st")))
        # the leader rejoins; both joins complete
        lj2 = leader.call(11, 5, join_body("g2", lid, "st"))
        assert lj2["error_code"] == 0
        fj = follower.read_frame()
        assert fj
        # the follower's SyncGroup parks until the leader's; the follower goes away
        follower.send_frame(follower.encode(14, 5, {
            "group_id": "g2", "generation_id": lj2["generation_id"], "member_id": r["member_id"],
            "group_instance_id": None, "protocol_type": "consumer", "protocol_name": "range",
            "assignments": []}))
        time.sleep(0.3)
        follower.close()
        t0 = time.monotonic()
        while open_sockets(b.pid) > base and time.monotonic() - t0 < 5:
            time.sleep(0.02)
        assert open_sockets(b.pid) <= base, "the parked SyncGroup kept its socket"
        assert time.monotonic() - t0 < 1.0
        # the group goes on: the leader's SyncGroup completes the generation
        ls2 = leader.call(14, 5, {"group_id": "g2", "generation_id": lj2["generation_id"], "member_id": lid,
                                  "group_instance_id": None, "protocol_type": "consumer",
                                  "protocol_name": "range", "assignments": []})
        assert ls2["error_code"] == 0
    assert "Traceback" not in b.log, b.log_tail(60)


def test_share_fetch_long_poll_of_a_closed_connection_is_cancelled(broker_factory) -> None:
    import uuid

    b = broker_factory({"group.share.record.lock.duration.ms": "1000"})
    with RawClient(b.bootstrap) as c:
        resp = c.call(19, 7, {"topics": [{"name": "sq", "num_partitions": 1, "replication_factor": 1,
                                          "assignments": [], "configs": []}], "timeout_ms": 5000,
                              "validate_only": False})
        tid = bytes(resp["topics"][0]["topic_id"])
        member = uuid.uuid4().hex
        hb = c.call(76, 1, {"group_id": "sg", "member_id": member, "member_epoch": 0, "rack_id": None,
                            "subscribed_topic_names": ["sq"]})
        assert hb["error_code"] == 0, hb
    base = open_sockets(b.pid)
    clients = []
    for _ in range(20):  # share sessions of one member: each its own long poll on an empty partition
        c = RawClient(b.bootstrap)
        c.send_frame(c.encode(78, 1, {
            "group_id": "sg", "member_id": member, "share_session_epoch": 0, "max_wait_ms": 600_000,
            "min_bytes": 1, "max_bytes": 1 << 20, "max_records": 100, "batch_size": 100, "is_renew_ack": False,
            "topics": [{"topic_id": tid, "partitions": [{"partition_index": 0, "partition_max_bytes": 0,
                                                          "acknowledgement_batches": []}]}],
            "forgotten_topics_data": []}))
        clients.append(c)
    deadline = time.monotonic() + 10
    while open_sockets(b.pid) < base + 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    for c in clients:
        c.close()
    t0 = time.monotonic()
    while open_sockets(b.pid) > base and time.monotonic() - t0 < 10:
        time.sleep(0.02)
    assert open_sockets(b.pid) <= base, "parked ShareFetches kept their sockets"
    assert time.monotonic() - t0 < 1.5
    assert "Traceback" not in b.log, b.log_tail(60)
