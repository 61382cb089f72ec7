"""DescribeGroups (key 15), versions 0-6.

- Classic groups: state (Empty, PreparingRebalance, CompletingRebalance,
  Stable), protocol type, and the members (member id, group.instance.id
  v4+, client id, client host); the chosen protocol and each member's
  metadata and assignment only when Stable (as Kafka).
- An unknown group (or a KIP-848 consumer group, see ConsumerGroupDescribe,
  or a share group, see ShareGroupDescribe) is described as Dead (v0-5) or
  gets GROUP_ID_NOT_FOUND (v6+, KIP-1043).
- v3+: authorized operations when asked (every operation is allowed: no
  ACLs yet). v5 flexible. v6+: error message.
- ACLs (authorizer.class.name): DESCRIBE on each group, else
  GROUP_AUTHORIZATION_FAILED for it; authorized_operations are the
  principal's own.
"""

from __future__ import annotations

from ..protocol.codec import Message
from ..group import coordinator_of
from ..group.coordinator import NOT_REQUESTED
from ..protocol import errors
from ..share import share_coordinator_of
from ..security import acl
from . import RequestContext, handler


@handler(15, 0, 6)
async def handle(ctx: RequestContext, req: Message) -> Message:
    v = ctx.api_version
    coord = coordinator_of(ctx.state)
    include_ops = bool(req["include_authorized_operations"])
    out = []
    for gid in req["groups"]:
        if coord is None:
            out.append({"error_code": errors.COORDINATOR_NOT_AVAILABLE, "group_id": gid, "group_state": "",
                        "protocol_type": "", "protocol_data": "", "members": [],
                        "authorized_operations": NOT_REQUESTED})
        elif not ctx.allowed(acl.DESCRIBE, acl.GROUP, gid):
            out.append({"error_code": errors.GROUP_AUTHORIZATION_FAILED, "group_id": gid, "group_state": "",
                        "protocol_type": "", "protocol_data": "", "members": [],
                        "authorized_operations": NOT_REQUESTED})
        else:
            d = coord.describe_group(gid, v, include_ops)
            if include_ops and d.get("authorized_operations", NOT_REQUESTED) != NOT_REQUESTED:
                d["authorized_operations"] = ctx.authorized_ops(acl.GROUP, gid)
            share = share_coordinator_of(ctx.state)
            if share is not None and gid in share.groups and d["error_code"] == errors.GROUP_ID_NOT_FOUND:
                d["error_message"] = f"Group {gid} is not a classic group."
            out.append(d)
    return {"throttle_time_ms": 0, "groups": out}
