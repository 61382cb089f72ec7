"""AlterShareGroupOffsets (key 91), version 0 (KIP-932).

- ``share.version`` finalized at 0 (UpdateFeatures): UNSUPPORTED_VERSION,
  before any other check (Kafka 4.x).
- Sets the share-partition start offset of each given partition (clamped
  to [log start offset, high watermark]; -1 = the high watermark) and
  forgets its in-flight state; persisted in __share_group_state.
- The group must be empty (NON_EMPTY_GROUP); an unknown group is created
  empty. Unknown topic or partition: UNKNOWN_TOPIC_OR_PARTITION per
  partition. A classic or consumer group's id: GROUP_ID_NOT_FOUND. Flexible.
- A cluster: served by the group's coordinator (the leader of its
  __consumer_offsets partition, FindCoordinator GROUP); NOT_COORDINATOR
  elsewhere (COORDINATOR_LOAD_IN_PROGRESS / COORDINATOR_NOT_AVAILABLE as
  for other groups).
  The new state is written with the next state epoch; a partition's
  leader reads it when a share session opens there.
- ACLs (authorizer.class.name): ALTER on the group, else GROUP_AUTHORIZATION_FAILED.
"""

from __future__ import annotations

from typing import Any

from ..protocol import errors
from ..share import DISABLED, share_coordinator_of, share_groups_disabled
from ..security import acl
from . import RequestContext, handler


@handler(91, 0, 0)
async def handle(ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    coord = share_coordinator_of(ctx.state)
    resp: dict[str, Any]
    if share_groups_disabled(ctx.state):
        resp = {"error_code": errors.UNSUPPORTED_VERSION, "error_message": DISABLED, "responses": []}
    elif not ctx.allowed(acl.ALTER, acl.GROUP, req["group_id"]):
        resp = {"error_code": errors.GROUP_AUTHORIZATION_FAILED, "error_message": None, "responses": []}
    else:
        resp = await coord.alter_offsets(req["group_id"], req["topics"])
    return {"throttle_time_ms": 0, **resp}
