"""DescribeTopicPartitions (key 75), version 0 (KIP-966, Kafka 3.7+).

- Topics by name, sorted by name (duplicates once); an empty list means
  every topic (internal ones included), also sorted. Per partition: leader,
  leader epoch, replicas, ISR, offline replicas (as Metadata answers them:
  LEADER_NOT_AVAILABLE with leader -1 when the leader is not live), and
  empty eligible-leader-replica lists (no ELR: ZooKeeper-era leadership).
- Pagination: at most min(ResponsePartitionLimit,
  ``max.request.partition.size.limit``, 2000) partitions per answer. When
  the limit falls inside a topic, that topic is answered up to it and
  NextCursor names it and the next partition; when it falls between two
  topics, NextCursor names the next topic at partition 0. A Cursor in the
  request starts there: topics named before it are skipped, its topic
  starts at its partition.
- A requested topic that does not exist: UNKNOWN_TOPIC_OR_PARTITION, topic
  id zero, no partitions (when listing every topic there are none). A
  cursor naming a topic that was not requested: every requested topic
  answered with INVALID_REQUEST, as Kafka's error response.
- Needs DESCRIBE on each topic: a named topic without it gets
  TOPIC_AUTHORIZATION_FAILED, a listing of every topic leaves it out (as
  Metadata). TopicAuthorizedOperations always filled (the principal's
  operations on the topic).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..protocol.codec import Message
from ..protocol import errors
from ..protocol.primitives import ZERO_UUID
from ..security import acl
from . import RequestContext, handler

if TYPE_CHECKING:
    from ..server.topics import PartitionState, TopicState


def _partition(ctx: RequestContext, ts: TopicState, p: PartitionState) -> Message:
    info = ctx.state.replicas.partition_info(ts, p)
    return {"error_code": errors.LEADER_NOT_AVAILABLE if info.leader < 0 else errors.NONE,
            "partition_index": p.index, "leader_id": info.leader, "leader_epoch": info.leader_epoch,
            "replica_nodes": info.replicas, "isr_nodes": info.isr, "eligible_leader_replicas": [],
            "last_known_elr": [], "offline_replicas": info.offline}


def _missing(name: str, code: int) -> Message:
    return {"error_code": code, "name": name, "topic_id": ZERO_UUID, "is_internal": False,
            "partitions": [], "topic_authorized_operations": -2147483648}


@handler(75, 0, 0)
async def handle(ctx: RequestContext, req: Message) -> Message:
    st = ctx.state
    cursor = req["cursor"]
    requested = sorted({t["name"] for t in req["topics"]})
    every = not requested
    if cursor is not None and not every and cursor["topic_name"] not in requested:
        return {"throttle_time_ms": 0, "next_cursor": None,
                "topics": [_missing(t["name"], errors.INVALID_REQUEST) for t in req["topics"]]}
    names = sorted(st.topics) if every else requested
    if cursor is not None:
        names = [n for n in names if n >= cursor["topic_name"]]
    remaining = min(req["response_partition_limit"], st.config["max.request.partition.size.limit"])
    topics: list[Message] = []
    next_cursor: Message | None = None
    for name in names:
        if remaining <= 0:
            next_cursor = {"topic_name": name, "partition_index": 0}
            break
        ts = st.topics.get(name)
        if not ctx.allowed(acl.DESCRIBE, acl.TOPIC, name):
            # as Metadata: named topics are refused, a listing of every topic leaves them out
            if not every:
                topics.append(_missing(name, errors.TOPIC_AUTHORIZATION_FAILED))
            continue
        if ts is None:
            if not every:
                topics.append(_missing(name, errors.UNKNOWN_TOPIC_OR_PARTITION))
            continue
        start = cursor["partition_index"] if cursor is not None and name == cursor["topic_name"] else 0
        start = max(start, 0)
        chosen = ts.partitions[start:start + remaining]
        topics.append({"error_code": errors.NONE, "name": ts.name, "topic_id": ts.topic_id,
                       "is_internal": ts.internal,
                       "partitions": [_partition(ctx, ts, p) for p in chosen],
                       "topic_authorized_operations": ctx.authorized_ops(acl.TOPIC, ts.name)})
        if start + len(chosen) < len(ts.partitions):
            next_cursor = {"topic_name": name, "partition_index": start + len(chosen)}
            break
        remaining -= len(chosen)
    return {"throttle_time_ms": 0, "topics": topics, "next_cursor": next_cursor}
