"""DescribeShareGroupOffsets (key 90), versions 0-1 (KIP-932).

- ``share.version`` finalized at 0 (UpdateFeatures): UNSUPPORTED_VERSION,
  before any other check (Kafka 4.x).
- Per group and partition: the share-partition start offset (SPSO), the
  partition's leader epoch and (v1) the lag: records from the SPSO to the
  high watermark not yet acknowledged or archived. Topics null: every
  share-partition the group has state for. A partition without state has
  start offset -1.
- Unknown group: GROUP_ID_NOT_FOUND at group level; unknown topic or
  partition: UNKNOWN_TOPIC_OR_PARTITION per partition.
- A cluster: served by the group's coordinator (the leader of its
  __consumer_offsets partition, FindCoordinator GROUP); NOT_COORDINATOR
  elsewhere (COORDINATOR_LOAD_IN_PROGRESS / COORDINATOR_NOT_AVAILABLE as
  for other groups).
  Start offsets are read from __share_group_state; the lag is -1 for a
  partition without a replica on the coordinator.
- v1: Lag. Flexible.
- ACLs (authorizer.class.name): DESCRIBE on each group, else GROUP_AUTHORIZATION_FAILED.
"""

from __future__ import annotations

from typing import Any

from ..protocol import errors
from ..share import DISABLED, share_coordinator_of, share_groups_disabled
from ..security import acl
from . import RequestContext, handler


@handler(90, 0, 1)
async def handle(ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    coord = share_coordinator_of(ctx.state)
    out = []
    disabled = share_groups_disabled(ctx.state)
    for g in req["groups"]:
        if disabled:
            out.append({"group_id": g["group_id"], "topics": [], "error_message": DISABLED,
                        "error_code": errors.UNSUPPORTED_VERSION})
            continue
        if not ctx.allowed(acl.DESCRIBE, acl.GROUP, g["group_id"]):
            out.append({"group_id": g["group_id"], "topics": [], "error_message": None,
                        "error_code": errors.GROUP_AUTHORIZATION_FAILED})
            continue
        await coord.loaded.wait()
        out.append(await coord.describe_offsets(g["group_id"], g["topics"], ctx.api_version))
    return {"throttle_time_ms": 0, "groups": out}
