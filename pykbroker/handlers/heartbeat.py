"""Heartbeat (key 12), versions 0-4.

- Keeps a classic group member's session alive (resets its
  session.timeout.ms timer).
- Errors exactly where Kafka's coordinator answers them: UNKNOWN_MEMBER_ID
  (unknown group, unknown member, or the group is Empty), FENCED_INSTANCE_ID
  (a static member replaced by a newer instance), ILLEGAL_GENERATION
  (generation is not the group's), REBALANCE_IN_PROGRESS (the group is
  preparing a rebalance: rejoin), COORDINATOR_NOT_AVAILABLE (Dead group).
  While the group's partition is loading the heartbeat is accepted blindly
  (as Kafka).
- v3+: group.instance.id. v4 flexible.
- ACLs (authorizer.class.name): READ on the group, else GROUP_AUTHORIZATION_FAILED.
"""

from __future__ import annotations

from ..protocol.codec import Message
from ..group import coordinator_of
from ..protocol import errors
from ..security import acl
from . import RequestContext, handler


@handler(12, 0, 4)
async def handle(ctx: RequestContext, req: Message) -> Message:
    if not ctx.allowed(acl.READ, acl.GROUP, req["group_id"]):
        return {"throttle_time_ms": 0, "error_code": errors.GROUP_AUTHORIZATION_FAILED}
    coord = coordinator_of(ctx.state)
    code = errors.COORDINATOR_NOT_AVAILABLE if coord is None else await coord.heartbeat(req)
    return {"throttle_time_ms": 0, "error_code": code}
