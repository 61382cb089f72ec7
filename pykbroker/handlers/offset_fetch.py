"""OffsetFetch (key 9), versions 1-10.

- Committed offsets of a group: offset, leader epoch (v5+) and metadata;
  -1 / -1 / "" for partitions without one (also for unknown groups).
- A null topic list (v2+) returns every committed offset of the group.
- v1-7: one group; group-level errors (COORDINATOR_LOAD_IN_PROGRESS,
  INVALID_GROUP_ID...) in the top-level error code (v2+) or in every
  partition (v1). v6 flexible. v7+: require_stable: partitions with a transactional
  commit waiting for its transaction's marker answer UNSTABLE_OFFSET_COMMIT. v8+: several groups per request,
  each with its own error. v9+: KIP-848 member id and epoch are checked for consumer groups
  (UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH). v10: topics by id (unknown ids:
  UNKNOWN_TOPIC_ID; offsets of deleted topics are left out of "all").
- ACLs (authorizer.class.name): DESCRIBE on the group (else
  GROUP_AUTHORIZATION_FAILED) and on each topic: named topics get
  TOPIC_AUTHORIZATION_FAILED, the others are left out of "all".
"""

from __future__ import annotations

from typing import Any

from ..protocol.codec import Message
from ..group import coordinator_of
from ..protocol import errors
from ..security import acl
from . import RequestContext, handler


def _part(index: int, om: Any, code: int = errors.NONE) -> Message:
    if om is None:
        return {"partition_index": index, "committed_offset": -1, "committed_leader_epoch": -1,
                "metadata": "", "error_code": code}
    return {"partition_index": index, "committed_offset": om.offset,
            "committed_leader_epoch": om.leader_epoch, "metadata": om.metadata, "error_code": code}


def _fetch_group(ctx: RequestContext, group_id: str, topics: list[Message] | None, by_id: bool,
                 member_id: str | None, member_epoch: int, require_stable: bool = False) -> tuple[int, list[Message]]:
    st = ctx.state
    coord = coordinator_of(st)
    if coord is None:
        return errors.COORDINATOR_NOT_AVAILABLE, []
    if not group_id:
        return errors.INVALID_GROUP_ID, []
    if not ctx.allowed(acl.DESCRIBE, acl.GROUP, group_id):
        return errors.GROUP_AUTHORIZATION_FAILED, []
    req_topics = None
    unknown: list[Message] = []
    if topics is not None:
        req_topics = []
        for t in topics:
            if by_id:
                ts = st.topics_by_id.get(t["topic_id"])
                if ts is None:
                    unknown.append({"name": "", "topic_id": t["topic_id"], "partitions": [
                        _part(p, None, errors.UNKNOWN_TOPIC_ID) for p in t["partition_indexes"]]})
                    continue
                req_topics.append((ts.name, list(t["partition_indexes"])))
            elif not ctx.allowed(acl.DESCRIBE, acl.TOPIC, t["name"]):
                unknown.append({"name": t["name"], "topic_id": t["topic_id"], "partitions": [
                    _part(p, None, errors.TOPIC_AUTHORIZATION_FAILED) for p in t["partition_indexes"]]})
            else:
                req_topics.append((t["name"], list(t["partition_indexes"])))
    code, found = coord.fetch_offsets(group_id, req_topics, member_id, member_epoch)
    if code:
        return code, []
    out = []
    for name, parts in found:
        if topics is None and not ctx.allowed(acl.DESCRIBE, acl.TOPIC, name):
            continue  # all the group's offsets: only those of topics the principal may describe
        tid = b"\0" * 16
        if by_id:
            ts = st.topics.get(name)
            if ts is None:
                continue
            tid = ts.topic_id
        if require_stable and coord.pending_txn_offsets:
            # a transactional commit waiting for its marker (Kafka: UNSTABLE_OFFSET_COMMIT)
            out.append({"name": name, "topic_id": tid, "partitions": [
                _part(p, None, errors.UNSTABLE_OFFSET_COMMIT) if coord.has_pending_txn_offsets(group_id, name, p)
                else _part(p, om) for p, om in parts]})
            continue
        out.append({"name": name, "topic_id": tid, "partitions": [_part(p, om) for p, om in parts]})
    return errors.NONE, out + unknown


@handler(9, 1, 10)
async def handle(ctx: RequestContext, req: Message) -> Message:
    v = ctx.api_version
    if v >= 8:
        groups = []
        for g in req["groups"]:
            code, topics = _fetch_group(ctx, g["group_id"], g["topics"], v >= 10,
                                        g["member_id"] if v >= 9 else None,
                                        g["member_epoch"] if v >= 9 else -1, req["require_stable"])
            groups.append({"group_id": g["group_id"], "topics": topics, "error_code": code})
        return {"throttle_time_ms": 0, "groups": groups}
    code, topics = _fetch_group(ctx, req["group_id"], req["topics"], False, None, -1,
                                v >= 7 and req["require_stable"])
    if code and v < 2:
        topics = [{"name": t["name"], "partitions": [_part(p, None, code) for p in t["partition_indexes"]]}
                  for t in req["topics"] or []]
    return {"throttle_time_ms": 0, "topics": topics, "error_code": code}
