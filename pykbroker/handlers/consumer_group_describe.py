"""ConsumerGroupDescribe (key 69), versions 0-1 (KIP-848).

- KIP-848 consumer groups: state (Empty, Assigning, Reconciling, Stable),
  group epoch, target assignment epoch, assignor, and per member its
  epoch, subscription, current and target assignment (topic id and name).
- GROUP_ID_NOT_FOUND for unknown groups and for classic groups (with a
  message), INVALID_GROUP_ID for an empty id, COORDINATOR_LOAD_IN_PROGRESS.
- Authorized operations when asked (no ACLs yet: all allowed).
- ``group.version`` finalized below 1 (UpdateFeatures): UNSUPPORTED_VERSION
  for every group, as Kafka 4.x.
- v1: member type (1 = consumer protocol). Flexible only.
- ACLs (authorizer.class.name): DESCRIBE on each group, else
  GROUP_AUTHORIZATION_FAILED for it; authorized_operations are the
  principal's own.
"""

from __future__ import annotations

from ..protocol.codec import Message
from ..group import coordinator_of
from ..group.coordinator import NOT_REQUESTED
from ..protocol import errors
from ..security import acl
from . import RequestContext, handler


@handler(69, 0, 1)
async def handle(ctx: RequestContext, req: Message) -> Message:
    coord = coordinator_of(ctx.state)
    include_ops = bool(req["include_authorized_operations"])
    groups = []
    disabled = ctx.state.finalized_level("group.version") < 1
    for gid in req["group_ids"]:
        if disabled:
            groups.append({"error_code": errors.UNSUPPORTED_VERSION, "error_message": None,
                           "group_id": gid, "group_state": "", "group_epoch": 0, "assignment_epoch": 0,
                           "assignor_name": "", "members": [], "authorized_operations": NOT_REQUESTED})
        elif coord is None:
            groups.append({"error_code": errors.COORDINATOR_NOT_AVAILABLE, "error_message": None,
                           "group_id": gid, "group_state": "", "group_epoch": 0, "assignment_epoch": 0,
                           "assignor_name": "", "members": [], "authorized_operations": NOT_REQUESTED})
        elif not ctx.allowed(acl.DESCRIBE, acl.GROUP, gid):
            groups.append({"error_code": errors.GROUP_AUTHORIZATION_FAILED, "error_message": None,
                           "group_id": gid, "group_state": "", "group_epoch": 0, "assignment_epoch": 0,
                           "assignor_name": "", "members": [], "authorized_operations": NOT_REQUESTED})
        else:
            d = coord.describe_consumer_group(gid, include_ops, ctx.api_version)
            if include_ops and d.get("authorized_operations", NOT_REQUESTED) != NOT_REQUESTED:
                d["authorized_operations"] = ctx.authorized_ops(acl.GROUP, gid)
            groups.append(d)
    return {"throttle_time_ms": 0, "groups": groups}
