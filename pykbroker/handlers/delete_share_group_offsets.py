"""DeleteShareGroupOffsets (key 92), version 0 (KIP-932).

- ``share.version`` finalized at 0 (UpdateFeatures): UNSUPPORTED_VERSION,
  before any other check (Kafka 4.x).
- Deletes the share-partition state of every partition of the given topics
  for the group (a tombstone in __share_group_state); the next assignment
  initializes them again (share.auto.offset.reset).
- The group must exist (GROUP_ID_NOT_FOUND) and be empty
  (NON_EMPTY_GROUP). Unknown topic: UNKNOWN_TOPIC_OR_PARTITION per topic.
  Flexible.
- A cluster: served by the group's coordinator (the leader of its
  __consumer_offsets partition, FindCoordinator GROUP); NOT_COORDINATOR
  elsewhere (COORDINATOR_LOAD_IN_PROGRESS / COORDINATOR_NOT_AVAILABLE as
  for other groups).
  Tombstones are written for every partition of the topic.
- ACLs (authorizer.class.name): DELETE on the group, else GROUP_AUTHORIZATION_FAILED.
"""

from __future__ import annotations

from typing import Any

from ..protocol import errors
from ..share import DISABLED, share_coordinator_of, share_groups_disabled
from ..security import acl
from . import RequestContext, handler


@handler(92, 0, 0)
async def handle(ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    coord = share_coordinator_of(ctx.state)
    resp: dict[str, Any]
    if share_groups_disabled(ctx.state):
        resp = {"error_code": errors.UNSUPPORTED_VERSION, "error_message": DISABLED, "responses": []}
    elif not ctx.allowed(acl.DELETE, acl.GROUP, req["group_id"]):
        resp = {"error_code": errors.GROUP_AUTHORIZATION_FAILED, "error_message": None, "responses": []}
    else:
        resp = await coord.delete_offsets(req["group_id"], req["topics"])
    return {"throttle_time_ms": 0, **resp}
