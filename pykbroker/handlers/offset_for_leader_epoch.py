"""OffsetForLeaderEpoch (key 23), versions 2-4 (Kafka 4.x's range).

- Where does a leader epoch end in the leader's log? Followers ask after a
  leader change to find where their log diverges (KIP-101/279); consumers
  ask to validate their position after seeing a new leader epoch (KIP-320:
  librdkafka sends v2, kafka-python up to v4, Java v3+).
- Per partition: ``current_leader_epoch`` is checked first
  (FENCED_LEADER_EPOCH if older than ours, UNKNOWN_LEADER_EPOCH if newer,
  -1 skips the check); then only the leader answers
  (NOT_LEADER_OR_FOLLOWER), whatever the replica id (Kafka's ReplicaManager
  uses fetchOnlyFromLeader = true). Unknown topic or partition:
  UNKNOWN_TOPIC_OR_PARTITION.
- The answer is Kafka's ``LeaderEpochFileCache.endOffsetFor``: for the
  latest epoch, the log end offset; for an older one, the largest epoch
  <= it and the start offset of the next epoch; an epoch older than the
  first cached one: that epoch and the first entry's start offset; newer
  than every cached one, or no epochs at all: -1/-1 (error NONE).
- v3+: ``replica_id`` (-1 consumer, -2 debugging, >= 0 a follower); it
  changes nothing here. v4: flexible.
- ACLs (authorizer.class.name): a consumer needs DESCRIBE on the topic, a
  follower CLUSTER_ACTION on the cluster; else TOPIC_AUTHORIZATION_FAILED.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..protocol.codec import Message
from ..protocol import errors
from ..security import acl
from . import RequestContext, handler
from .fetch import _check_epoch

if TYPE_CHECKING:
    from ..server.topics import TopicState


def _answer(ctx: RequestContext, ts: TopicState | None, idx: int, current: int, epoch: int) -> Message:
    st = ctx.state
    if ts is None or not 0 <= idx < len(ts.partitions):
        return {"error_code": errors.UNKNOWN_TOPIC_OR_PARTITION, "leader_epoch": -1, "end_offset": -1}
    p = ts.partitions[idx]
    code = _check_epoch(current, p.leader_epoch)
    if not code and not st.replicas.is_leader(p):
        code = errors.NOT_LEADER_OR_FOLLOWER
    if code:
        return {"error_code": code, "leader_epoch": -1, "end_offset": -1}
    e, off = p.log.end_offset_for_epoch(epoch)
    return {"error_code": errors.NONE, "leader_epoch": e, "end_offset": off}


@handler(23, 2, 4)
async def handle(ctx: RequestContext, req: Message) -> Message:
    st = ctx.state
    topics = []
    follower = ctx.api_version >= 3 and req["replica_id"] >= 0
    cluster_denied = follower and not ctx.allowed(acl.CLUSTER_ACTION, acl.CLUSTER)
    for t in req["topics"]:
        ts = st.topics.get(t["topic"])
        parts = []
        denied = cluster_denied or (not follower and not ctx.allowed(acl.DESCRIBE, acl.TOPIC, t["topic"]))
        for pp in t["partitions"]:
            if denied:
                parts.append({"partition": pp["partition"], "error_code": errors.TOPIC_AUTHORIZATION_FAILED,
                              "leader_epoch": -1, "end_offset": -1})
                continue
            r = _answer(ctx, ts, pp["partition"], pp["current_leader_epoch"], pp["leader_epoch"])
            r["partition"] = pp["partition"]
            parts.append(r)
        topics.append({"topic": t["topic"], "partitions": parts})
    return {"throttle_time_ms": 0, "topics": topics}
