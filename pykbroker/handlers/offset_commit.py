"""OffsetCommit (key 8), versions 2-10.

- Stores committed offsets (offset, leader epoch, metadata) of a group in
  __consumer_offsets (Kafka's OffsetCommitKey/Value records) before
  answering; they survive restarts.
- Commits with generation -1 and no member id are accepted from outside
  group membership when the group is Empty or does not exist (a "simple"
  group is created), as Kafka; otherwise the member and generation are
  checked: UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, ILLEGAL_GENERATION,
  REBALANCE_IN_PROGRESS (group in CompletingRebalance); for KIP-848 groups
  STALE_MEMBER_EPOCH / UNKNOWN_MEMBER_ID (and UNSUPPORTED_VERSION below v9).
  An unknown group with a generation gets ILLEGAL_GENERATION (v0-8) or
  GROUP_ID_NOT_FOUND (v9+).
- Per partition: UNKNOWN_TOPIC_OR_PARTITION (v10: UNKNOWN_TOPIC_ID) for
  topics/partitions that do not exist, OFFSET_METADATA_TOO_LARGE past
  offset.metadata.max.bytes; storage failures map as Kafka's
  (COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR, UNKNOWN_SERVER_ERROR).
- v2-4: retention time (an explicit one sets the offset's expire
  timestamp); later versions use offsets.retention.minutes.
  v6+: leader epoch. v7+: group.instance.id. v8 flexible. v9+: KIP-848
  member epochs. v10: topics by id.
- ACLs (authorizer.class.name): READ on the group (else
  GROUP_AUTHORIZATION_FAILED for every partition) and READ on each topic
  (else TOPIC_AUTHORIZATION_FAILED for its partitions).
"""

from __future__ import annotations

from ..protocol.codec import Message
from ..group import coordinator_of
from ..protocol import errors
from ..security import acl
from . import RequestContext, handler


@handler(8, 2, 10)
async def handle(ctx: RequestContext, req: Message) -> Message:
    st = ctx.state
    v = ctx.api_version
    coord = coordinator_of(st)
    pre: dict[tuple[int, int], int] = {}  # (topic index, partition index in topic) -> error
    names: list[str | None] = []
    todo = []
    group_denied = not ctx.allowed(acl.READ, acl.GROUP, req["group_id"])
    for ti, t in enumerate(req["topics"]):
        if v >= 10:
            ts = st.topics_by_id.get(t["topic_id"])
            missing = errors.UNKNOWN_TOPIC_ID
        else:
            ts = st.topics.get(t["name"])
            missing = errors.UNKNOWN_TOPIC_OR_PARTITION
        names.append(ts.name if ts is not None else None)
        name = ts.name if ts is not None else t["name"]
        topic_denied = name is not None and not ctx.allowed(acl.READ, acl.TOPIC, name)
        for pi, p in enumerate(t["partitions"]):
            if group_denied:
                pre[(ti, pi)] = errors.GROUP_AUTHORIZATION_FAILED
            elif topic_denied:
                pre[(ti, pi)] = errors.TOPIC_AUTHORIZATION_FAILED
            elif ts is None:
                pre[(ti, pi)] = missing
            elif not 0 <= p["partition_index"] < len(ts.partitions):
                pre[(ti, pi)] = errors.UNKNOWN_TOPIC_OR_PARTITION
            else:
                todo.append((ts.name, p["partition_index"], p["committed_offset"],
                             p["committed_leader_epoch"], p["committed_metadata"]))
    results: dict[tuple[str, int], int] = {}
    if todo:
        if coord is None:
            results = {(t, p): errors.COORDINATOR_NOT_AVAILABLE for t, p, *_ in todo}
        else:
            retention = req["retention_time_ms"] if 2 <= v <= 4 else -1
            results = await coord.commit_offsets(req["group_id"], req["generation_id_or_member_epoch"],
                                                 req["member_id"], req["group_instance_id"], retention, v, todo)
    topics = []
    for ti, t in enumerate(req["topics"]):
        parts = []
        for pi, p in enumerate(t["partitions"]):
            code = pre.get((ti, pi))
            name = names[ti]
            if code is None:
                code = errors.UNKNOWN_SERVER_ERROR if name is None else results.get(
                    (name, p["partition_index"]), errors.UNKNOWN_SERVER_ERROR)
            parts.append({"partition_index": p["partition_index"], "error_code": code})
        topics.append({"name": t["name"], "topic_id": t["topic_id"], "partitions": parts})
    return {"throttle_time_ms": 0, "topics": topics}
