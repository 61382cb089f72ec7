"""SyncGroup (key 14), versions 0-5.

- The classic protocol's second phase: followers wait until the leader's
  SyncGroup brings the assignment; the assignment is persisted (a
  GroupMetadata record in __consumer_offsets) before anyone gets it, then
  the group is Stable. A Stable group answers at once with the member's
  assignment.
- UNKNOWN_MEMBER_ID (unknown group or member), FENCED_INSTANCE_ID,
  ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS (the group is rebalancing again:
  rejoin), INCONSISTENT_GROUP_PROTOCOL (protocol type/name not the group's;
  v5+ requires both), UNKNOWN_SERVER_ERROR when the group metadata cannot be
  stored (e.g. larger than the topic's max.message.bytes), as Kafka.
- v3+: group.instance.id. v4 flexible. v5+: protocol type and name.
- ACLs (authorizer.class.name): READ on the group, else GROUP_AUTHORIZATION_FAILED.
"""

from __future__ import annotations

from ..protocol.codec import Message
from ..group import coordinator_of
from ..group.classic_ops import sync_error
from ..protocol import errors
from ..security import acl
from . import RequestContext, handler


@handler(14, 0, 5)
async def handle(ctx: RequestContext, req: Message) -> Message:
    v = ctx.api_version
    coord = coordinator_of(ctx.state)
    if not ctx.allowed(acl.READ, acl.GROUP, req["group_id"]):
        resp = sync_error(errors.GROUP_AUTHORIZATION_FAILED)
    elif coord is None:
        resp = sync_error(errors.COORDINATOR_NOT_AVAILABLE)
    elif v >= 5 and (req["protocol_type"] is None or req["protocol_name"] is None):
        resp = sync_error(errors.INCONSISTENT_GROUP_PROTOCOL)
    else:
        resp = await coord.sync_group(req, v)
    return {"throttle_time_ms": 0, **resp}
