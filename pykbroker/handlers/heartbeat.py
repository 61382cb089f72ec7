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
"""

from __future__ import annotations

from ..protocol.codec import Message
from ..group import coordinator_of
from ..protocol import errors
from . import RequestContext, handler


@handler(12, 0, 4)
async def handle(ctx: RequestContext, req: Message) -> Message:
    coord = coordinator_of(ctx.state)
    code = errors.COORDINATOR_NOT_AVAILABLE if coord is None else await coord.heartbeat(req)
    return {"throttle_time_ms": 0, "error_code": code}
