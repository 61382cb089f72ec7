"""OffsetDelete (key 47), version 0.

- Deletes committed offsets of a group (tombstones in __consumer_offsets).
- Group errors (top level): GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP (a classic
  group with members that does not use the consumer protocol),
  COORDINATOR_LOAD_IN_PROGRESS. Per partition: GROUP_SUBSCRIBED_TO_TOPIC
  (the group's members consume that topic), UNKNOWN_TOPIC_OR_PARTITION.
- ACLs (authorizer.class.name): DELETE on the group (else
  GROUP_AUTHORIZATION_FAILED) and READ on each topic (else
  TOPIC_AUTHORIZATION_FAILED for its partitions).
"""

from __future__ import annotations

from ..protocol.codec import Message
from ..group import coordinator_of
from ..protocol import errors
from ..security import acl
from . import RequestContext, handler


@handler(47, 0, 0)
async def handle(ctx: RequestContext, req: Message) -> Message:
    st = ctx.state
    coord = coordinator_of(st)
    if coord is None:
        return {"error_code": errors.COORDINATOR_NOT_AVAILABLE, "throttle_time_ms": 0, "topics": []}
    if not ctx.allowed(acl.DELETE, acl.GROUP, req["group_id"]):
        return {"error_code": errors.GROUP_AUTHORIZATION_FAILED, "throttle_time_ms": 0, "topics": []}
    pre: dict[tuple[str, int], int] = {}
    todo = []
    for t in req["topics"]:
        ts = st.topics.get(t["name"])
        valid = []
        denied = not ctx.allowed(acl.READ, acl.TOPIC, t["name"])
        for p in t["partitions"]:
            i = p["partition_index"]
            if denied:
                pre[(t["name"], i)] = errors.TOPIC_AUTHORIZATION_FAILED
            elif ts is None or not 0 <= i < len(ts.partitions):
                pre[(t["name"], i)] = errors.UNKNOWN_TOPIC_OR_PARTITION
            else:
                valid.append(i)
        if valid:
            todo.append((t["name"], valid))
    code, results = await coord.delete_offsets(req["group_id"], todo)
    if code:
        return {"error_code": code, "throttle_time_ms": 0, "topics": []}
    topics = []
    for t in req["topics"]:
        parts = []
        for p in t["partitions"]:
            k = (t["name"], p["partition_index"])
            parts.append({"partition_index": p["partition_index"],
                          "error_code": pre.get(k, results.get(k, errors.NONE))})
        topics.append({"name": t["name"], "partitions": parts})
    return {"error_code": errors.NONE, "throttle_time_ms": 0, "topics": topics}
