"""A classic consumer-group member for ``pykbroker consume --group``.

The classic protocol as Kafka's console consumer speaks it: JoinGroup
(retried once with the member id the broker hands out, KIP-394), the
leader computes a range assignment (Kafka's RangeAssignor: per topic,
members sorted by id, each gets ``n // m`` consecutive partitions and the
first ``n % m`` one more), SyncGroup, Heartbeat between fetches (a fetch
waits at most 500 ms, well inside the session timeout), offsets committed
with the generation, LeaveGroup at the end. A heartbeat or commit that
answers REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION or UNKNOWN_MEMBER_ID
means: commit what we have if we still may, then join again.
"""

from __future__ import annotations

import struct
import time
from typing import Any

from ..protocol import codec
from ..protocol import errors as E
from .client import ClientError, Connection, KafkaClient, check

REJOIN = {E.REBALANCE_IN_PROGRESS, E.ILLEGAL_GENERATION, E.UNKNOWN_MEMBER_ID}
MEMBER_ID_REQUIRED = 79


def encode_subscription(topics: list[str]) -> bytes:
    schema = codec.load_data_schema("consumer_protocol_subscription")
    return struct.pack(">h", 0) + schema.encode({"topics": sorted(topics), "user_data": None}, 0)


def decode_subscription(data: bytes) -> list[str]:
    schema = codec.load_data_schema("consumer_protocol_subscription")
    version = min(struct.unpack_from(">h", data)[0], 3)
    msg, _ = schema.decode(data, version, 2)
    return list(msg["topics"])


def encode_assignment(parts: dict[str, list[int]]) -> bytes:
    schema = codec.load_data_schema("consumer_protocol_assignment")
    body = {"assigned_partitions": [{"topic": t, "partitions": ps} for t, ps in sorted(parts.items())],
            "user_data": None}
    return struct.pack(">h", 0) + schema.encode(body, 0)


def decode_assignment(data: bytes) -> dict[str, list[int]]:
    if len(data) < 2:
        return {}
    schema = codec.load_data_schema("consumer_protocol_assignment")
    version = min(struct.unpack_from(">h", data)[0], 3)
    msg, _ = schema.decode(data, version, 2)
    return {tp["topic"]: sorted(tp["partitions"]) for tp in msg["assigned_partitions"]}


def range_assign(subscriptions: dict[str, list[str]], partitions: dict[str, int]) -> dict[str, dict[str, list[int]]]:
    """member -> topic -> partitions, as Kafka's RangeAssignor."""
    out: dict[str, dict[str, list[int]]] = {m: {} for m in subscriptions}
    for topic in sorted({t for ts in subscriptions.values() for t in ts}):
        members = sorted(m for m, ts in subscriptions.items() if topic in ts)
        n = partitions.get(topic, 0)
        per, extra = divmod(n, len(members))
        start = 0
        for i, m in enumerate(members):
            count = per + (1 if i < extra else 0)
            if count:
                out[m][topic] = list(range(start, start + count))
            start += count
    return out


class GroupMember:
    def __init__(self, client: KafkaClient, group: str, topics: list[str], *,
                 session_timeout_ms: int = 10000, rebalance_timeout_ms: int = 30000) -> None:
        self.client = client
        self.group = group
        self.topics = topics
        self.session_timeout_ms = session_timeout_ms
        self.rebalance_timeout_ms = rebalance_timeout_ms
        self.member_id = ""
        self.generation = -1
        self.assignment: dict[str, list[int]] = {}
        self._conn: Connection | None = None
        self._last_heartbeat = 0.0

    @property
    def conn(self) -> Connection:
        if self._conn is None:
            self._conn = self.client.coordinator(self.group)
        return self._conn

    def join(self) -> dict[str, list[int]]:
        """Join (or rejoin) and return this member's assignment."""
        conn = self.conn
        conn.sock.settimeout(max(self.client.timeout, self.rebalance_timeout_ms / 1000 + 5))
        try:
            while True:
                resp = conn.call(11, {
                    "group_id": self.group, "session_timeout_ms": self.session_timeout_ms,
                    "rebalance_timeout_ms": self.rebalance_timeout_ms, "member_id": self.member_id,
                    "group_instance_id": None, "protocol_type": "consumer",
                    "protocols": [{"name": "range", "metadata": encode_subscription(self.topics)}],
                    "reason": "pykbroker consume"})
                if resp["error_code"] in (MEMBER_ID_REQUIRED, E.UNKNOWN_MEMBER_ID):
                    self.member_id = resp["member_id"] if resp["error_code"] == MEMBER_ID_REQUIRED else ""
                    continue
                if resp["error_code"] == E.REBALANCE_IN_PROGRESS:
                    continue
                check(resp["error_code"], f"JoinGroup {self.group!r}")
                self.member_id = resp["member_id"]
                self.generation = resp["generation_id"]
                assignments = []
                if resp["leader"] == self.member_id:
                    subs = {m["member_id"]: decode_subscription(bytes(m["metadata"])) for m in resp["members"]}
                    counts = {}
                    for t in sorted({t for ts in subs.values() for t in ts}):
                        try:
                            counts[t] = len(self.client.topic(t).partitions)
                        except ClientError:
                            counts[t] = 0
                    plan = range_assign(subs, counts)
                    assignments = [{"member_id": m, "assignment": encode_assignment(a)} for m, a in plan.items()]
                sync = conn.call(14, {"group_id": self.group, "generation_id": self.generation,
                                      "member_id": self.member_id, "group_instance_id": None,
                                      "protocol_type": "consumer", "protocol_name": "range",
                                      "assignments": assignments})
                if sync["error_code"] in REJOIN:
                    if sync["error_code"] == E.UNKNOWN_MEMBER_ID:
                        self.member_id = ""
                    continue
                check(sync["error_code"], f"SyncGroup {self.group!r}")
                self.assignment = decode_assignment(bytes(sync["assignment"] or b""))
                self._last_heartbeat = time.monotonic()
                return self.assignment
        finally:
            conn.sock.settimeout(self.client.timeout)

    def committed(self, topic: str) -> dict[int, int]:
        return {p: o for (t, p), o in self.client.committed(self.group).items() if t == topic}

    def heartbeat_due(self) -> bool:
        return (time.monotonic() - self._last_heartbeat) * 1000 >= self.session_timeout_ms / 3

    def heartbeat(self) -> bool:
        """False: the group is rebalancing, join again."""
        resp = self.conn.call(12, {"group_id": self.group, "generation_id": self.generation,
                                   "member_id": self.member_id, "group_instance_id": None})
        self._last_heartbeat = time.monotonic()
        if resp["error_code"] in REJOIN:
            if resp["error_code"] == E.UNKNOWN_MEMBER_ID:
                self.member_id = ""
            return False
        check(resp["error_code"], f"Heartbeat {self.group!r}")
        return True

    def commit(self, offsets: dict[tuple[str, int], int]) -> bool:
        """Commit with this generation; False when the group moved on."""
        if not offsets:
            return True
        topics: dict[str, list[dict[str, Any]]] = {}
        for (t, p), off in sorted(offsets.items()):
            topics.setdefault(t, []).append({"partition_index": p, "committed_offset": off,
                                             "committed_leader_epoch": -1, "committed_metadata": ""})
        resp = self.conn.call(8, {"group_id": self.group, "generation_id_or_member_epoch": self.generation,
                                  "member_id": self.member_id, "group_instance_id": None,
                                  "retention_time_ms": -1,
                                  "topics": [{"name": t, "topic_id": None, "partitions": ps}
                                             for t, ps in topics.items()]})
        for t in resp["topics"]:
            for p in t["partitions"]:
                if p["error_code"] in REJOIN:
                    return False
                check(p["error_code"], f"OffsetCommit {self.group!r} {t['name']}-{p['partition_index']}")
        return True

    def leave(self) -> None:
        if not self.member_id:
            return
        try:
            self.conn.call(13, {"group_id": self.group, "member_id": self.member_id,
                                "members": [{"member_id": self.member_id, "group_instance_id": None,
                                             "reason": "pykbroker consume ends"}]})
        except ClientError:
            pass
        self.member_id = ""
