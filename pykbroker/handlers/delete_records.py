"""DeleteRecords (key 21), versions 0-2 (Kafka 4.x's range).

- Moves each partition's log start offset forward (Kafka's
  ReplicaManager.deleteRecords / Partition.deleteRecordsOnLeader); segments
  wholly below it go at once, ListOffsets EARLIEST follows, a fetch below
  it gets OFFSET_OUT_OF_RANGE.
- offset -1 means the high watermark; any other negative offset:
  OFFSET_OUT_OF_RANGE; an offset past the high watermark:
  OFFSET_OUT_OF_RANGE ("Cannot increment the log start offset to ... since
  it is larger than the high watermark ...", logged, not sent: the
  response has no message field).
- a topic whose cleanup.policy lacks ``delete``: POLICY_VIOLATION.
- internal topics (``__consumer_offsets``, ``__transaction_state``,
  ``__share_group_state``): INVALID_TOPIC_EXCEPTION; unknown topic or
  partition: UNKNOWN_TOPIC_OR_PARTITION; a log that failed on I/O:
  KAFKA_STORAGE_ERROR.
- low_watermark is the new log start offset (-1 on error). The start
  offset may fall inside a batch; segments wholly below it are removed at
  once (files renamed ``.deleted``, gone after file.delete.delay.ms), so
  ListOffsets EARLIEST follows and a fetch below it gets
  OFFSET_OUT_OF_RANGE.
- On a replicated partition (a cluster) the answer waits, as Kafka's
  DelayedDeleteRecords, until every live replica's log start offset
  reached the new one (followers learn it from their fetch responses and
  report theirs in the next fetch): low_watermark is then the lowest of
  them; REQUEST_TIMED_OUT (low_watermark -1) after timeout_ms. The
  partitions of one request wait together. With one replica the low
  watermark is reached at once.
- ACLs (authorizer.class.name): DELETE on each topic, else TOPIC_AUTHORIZATION_FAILED.
"""

from __future__ import annotations

import logging

import trio

from ..protocol.codec import Message
from ..protocol import errors
from ..storage.log import OffsetOutOfRange
from ..security import acl
from . import RequestContext, handler

log = logging.getLogger("pykbroker.handlers.delete_records")

INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state", "__share_group_state"})
HIGH_WATERMARK = -1


def _delete_one(ctx: RequestContext, topic: str, index: int, offset: int) -> tuple[int, int]:
    """(error code, low watermark) for one partition."""
    st = ctx.state
    if not ctx.allowed(acl.DELETE, acl.TOPIC, topic):
        return errors.TOPIC_AUTHORIZATION_FAILED, -1
    if topic in INTERNAL_TOPICS:
        return errors.INVALID_TOPIC_EXCEPTION, -1
    p = st.partition(topic, index)
    if p is None:
        return errors.UNKNOWN_TOPIC_OR_PARTITION, -1
    if not st.replicas.is_leader(p):
        return errors.NOT_LEADER_OR_FOLLOWER, -1  # the leader moves the log start
    plog = p.log
    if not plog.config.delete:
        return errors.POLICY_VIOLATION, -1
    target = plog.high_watermark if offset == HIGH_WATERMARK else offset
    if target < 0:
        log.info("DeleteRecords: the offset %d for partition %s-%d is not valid", target, topic, index)
        return errors.OFFSET_OUT_OF_RANGE, -1
    try:
        plog.advance_log_start_offset(target)
    except OffsetOutOfRange as e:
        log.info("DeleteRecords: %s", e)
        return errors.OFFSET_OUT_OF_RANGE, -1
    except OSError as e:
        log.warning("DeleteRecords on %s-%d failed: %s", topic, index, e)
        return errors.KAFKA_STORAGE_ERROR, -1
    return errors.NONE, plog.log_start_offset


@handler(21, 0, 2)
async def handle(ctx: RequestContext, req: Message) -> Message:
    topics = []
    pending: list[tuple[Message, str, int]] = []
    for t in req["topics"] or []:
        parts = []
        for pr in t["partitions"] or []:
            code, low = _delete_one(ctx, t["name"], pr["partition_index"], pr["offset"])
            out = {"partition_index": pr["partition_index"], "low_watermark": low, "error_code": code}
            parts.append(out)
            if code == errors.NONE:
                pending.append((out, t["name"], pr["partition_index"]))
        topics.append({"name": t["name"], "partitions": parts})
    if pending:
        async with trio.open_nursery() as nursery:
            for out, topic, index in pending:
                nursery.start_soon(_wait_replicas, ctx, out, topic, index, req["timeout_ms"])
    return {"throttle_time_ms": 0, "topics": topics}


async def _wait_replicas(ctx: RequestContext, out: Message, topic: str, index: int, timeout_ms: int) -> None:
    """Until every live replica moved its log start offset (the low watermark)."""
    p = ctx.state.partition(topic, index)
    if p is None:
        out["error_code"], out["low_watermark"] = errors.UNKNOWN_TOPIC_OR_PARTITION, -1
        return
    try:
        out["low_watermark"] = await ctx.state.replicas.wait_low_watermark(p, out["low_watermark"], timeout_ms)
    except errors.KafkaError as e:
        out["error_code"], out["low_watermark"] = e.code, -1
