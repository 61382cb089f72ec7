"""ListOffsets (key 2), versions 1-11.

- timestamp -2 (EARLIEST): log start offset; -1 (LATEST): high watermark, or
  the last stable offset with isolation_level=1 (v2+); -3 (MAX_TIMESTAMP,
  v7+): offset and timestamp of the record with the largest timestamp;
  -4 (EARLIEST_LOCAL, v8+): log start offset (no tiered storage);
  -5 (LATEST_TIERED, v9+): -1/-1 (no tiered storage); -6 (EARLIEST_PENDING_UPLOAD,
  v11): -1/-1.
- Any other timestamp: the first offset whose record timestamp is >= it,
  found through the time index (O(log n)); none → offset -1, timestamp -1.
- Only offsets below the high watermark are returned (as Kafka does).
- v4+: leader epoch; current_leader_epoch checked (FENCED/UNKNOWN_LEADER_EPOCH).
- Cluster mode: only the leader answers (NOT_LEADER_OR_FOLLOWER), except
  for replica_id -2 (debugging), which any broker holding a replica answers.
- ACLs (authorizer.class.name): DESCRIBE on each topic, else TOPIC_AUTHORIZATION_FAILED.
"""

from __future__ import annotations

from ..protocol.codec import Message
from ..protocol import errors
from ..security import acl
from . import RequestContext, handler
from .fetch import _check_epoch

EARLIEST, LATEST, MAX_TIMESTAMP, EARLIEST_LOCAL, LATEST_TIERED, EARLIEST_PENDING = -2, -1, -3, -4, -5, -6
DEBUGGING_REPLICA = -2  # replica_id of debugging tools: any replica answers (Kafka)


@handler(2, 1, 11)
async def handle(ctx: RequestContext, req: Message) -> Message:
    st = ctx.state
    v = ctx.api_version
    read_committed = req["isolation_level"] == 1
    topics = []
    for t in req["topics"]:
        ts = st.topics.get(t["name"])
        denied = not ctx.allowed(acl.DESCRIBE, acl.TOPIC, t["name"])
        parts = []
        for lp in t["partitions"]:
            idx = lp["partition_index"]
            out = {"partition_index": idx, "error_code": errors.NONE, "timestamp": -1,
                   "offset": -1, "leader_epoch": -1}
            parts.append(out)
            if denied:
                out["error_code"] = errors.TOPIC_AUTHORIZATION_FAILED
                continue
            if ts is None or not 0 <= idx < len(ts.partitions):
                out["error_code"] = errors.UNKNOWN_TOPIC_OR_PARTITION
                continue
            p = ts.partitions[idx]
            code = _check_epoch(lp["current_leader_epoch"], p.leader_epoch)
            if not code and (p.log is None if req["replica_id"] == DEBUGGING_REPLICA
                             else not st.replicas.is_leader(p)):
                code = errors.NOT_LEADER_OR_FOLLOWER
            if code:
                out["error_code"] = code
                continue
            limit = p.last_stable_offset if read_committed else p.high_watermark
            want = lp["timestamp"]
            if want in (EARLIEST, EARLIEST_LOCAL):
                out["offset"] = p.log_start_offset
                out["leader_epoch"] = p.log.epoch_for_offset(out["offset"])
            elif want == LATEST:
                out["offset"] = limit
                out["leader_epoch"] = p.leader_epoch
            elif want == MAX_TIMESTAMP and v >= 7:
                found = p.log.max_timestamp()
                if found is not None and found[1] < limit:
                    out["timestamp"], out["offset"] = found
                    out["leader_epoch"] = p.log.epoch_for_offset(found[1])
            elif want in (LATEST_TIERED, EARLIEST_PENDING) or want < 0:
                pass
            else:
                found = p.log.offset_for_timestamp(want)
                if found is not None and found[0] < limit:
                    out["offset"], out["timestamp"] = found
                    out["leader_epoch"] = p.log.epoch_for_offset(found[0])
        topics.append({"name": t["name"], "partitions": parts})
    return {"throttle_time_ms": 0, "topics": topics}
