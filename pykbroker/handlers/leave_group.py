"""LeaveGroup (key 13), versions 0-5.

- Removes members from a classic group; the group rebalances (or, when
  the last member leaves, becomes Empty).
- v0-2: one member id; its error is the response's error code.
- v3+: a batch of members (member id and/or group.instance.id: an admin
  removes a static member by instance id with an empty member id), one
  result each: UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID; an unknown group gives
  UNKNOWN_MEMBER_ID for every member. v4 flexible. v5+: reason.
- ACLs (authorizer.class.name): READ on the group, else GROUP_AUTHORIZATION_FAILED.
"""

from __future__ import annotations

from ..protocol.codec import Message
from ..group import coordinator_of
from ..protocol import errors
from ..security import acl
from . import RequestContext, handler


@handler(13, 0, 5)
async def handle(ctx: RequestContext, req: Message) -> Message:
    v = ctx.api_version
    if v >= 3:
        members = [{"member_id": m["member_id"], "group_instance_id": m["group_instance_id"]}
                   for m in req["members"]]
    else:
        members = [{"member_id": req["member_id"], "group_instance_id": None}]
    coord = coordinator_of(ctx.state)
    if not ctx.allowed(acl.READ, acl.GROUP, req["group_id"]):
        res: Message = {"error_code": errors.GROUP_AUTHORIZATION_FAILED, "members": []}
    elif coord is None:
        res = {"error_code": errors.COORDINATOR_NOT_AVAILABLE, "members": []}
    else:
        res = await coord.leave_group(req["group_id"], members)
    if v >= 3:
        return {"throttle_time_ms": 0, "error_code": res["error_code"], "members": res["members"]}
    code = res["error_code"]
    if code == errors.NONE and res["members"]:
        code = res["members"][0]["error_code"]
    return {"throttle_time_ms": 0, "error_code": code, "members": []}
