"""DescribeProducers (key 61), version 0.

- Per partition, the producers with state there (idempotent or
  transactional): producer id, epoch, last sequence, last timestamp,
  coordinator epoch of its last marker, first offset of its open
  transaction (-1 if none). Producer ids expire after
  producer.id.expiration.ms without a write and without an open
  transaction.
- Errors per partition: UNKNOWN_TOPIC_OR_PARTITION; in cluster mode a
  broker that does not lead the partition: NOT_LEADER_OR_FOLLOWER.
- Flexible (v0).
- ACLs (authorizer.class.name): READ on each topic, else TOPIC_AUTHORIZATION_FAILED.
"""

from __future__ import annotations

from ..protocol.codec import Message
from ..protocol import errors
from ..txn.producers import producer_state
from ..security import acl
from . import RequestContext, handler


@handler(61, 0, 0)
async def handle(ctx: RequestContext, req: Message) -> Message:
    st = ctx.state
    topics = []
    for t in req["topics"]:
        parts = []
        for i in t["partition_indexes"]:
            out = {"partition_index": i, "error_code": errors.NONE, "error_message": None, "active_producers": []}
            parts.append(out)
            if not ctx.allowed(acl.READ, acl.TOPIC, t["name"]):
                out["error_code"] = errors.TOPIC_AUTHORIZATION_FAILED
                continue
            p = st.partition(t["name"], i)
            if p is None:
                out["error_code"] = errors.UNKNOWN_TOPIC_OR_PARTITION
                continue
            if not st.replicas.is_leader(p):
                out["error_code"] = errors.NOT_LEADER_OR_FOLLOWER
                continue
            ps = producer_state(st, p)
            out["active_producers"] = [{
                "producer_id": pid, "producer_epoch": e.producer_epoch, "last_sequence": e.last_seq,
                "last_timestamp": e.last_timestamp, "coordinator_epoch": e.coordinator_epoch,
                "current_txn_start_offset": e.current_txn_first_offset,
            } for pid, e in sorted(ps.active_producers().items())]
        topics.append({"name": t["name"], "partitions": parts})
    return {"throttle_time_ms": 0, "topics": topics}
