"""ShareGroupDescribe (key 77), version 1 (KIP-932, Kafka 4.2).

- ``share.version`` finalized at 0 (UpdateFeatures): UNSUPPORTED_VERSION,
  before any other check (Kafka 4.x).
- Per group: state (Empty, Stable; Dead when unknown), group epoch,
  assignment epoch, assignor ("simple") and the members with their
  subscriptions and assignments (topic ids and names).
- Unknown group, or a group of another type: GROUP_ID_NOT_FOUND with a
  message. Authorized operations when asked (no ACLs: everything allowed).
- A cluster: served by the group's coordinator (the leader of its
  __consumer_offsets partition, FindCoordinator GROUP); NOT_COORDINATOR
  elsewhere (COORDINATOR_LOAD_IN_PROGRESS / COORDINATOR_NOT_AVAILABLE as
  for other groups).
- Flexible.
- ACLs (authorizer.class.name): DESCRIBE on each group, else
  GROUP_AUTHORIZATION_FAILED; authorized_operations are the principal's own.
"""

from __future__ import annotations

from typing import Any

from ..protocol import errors
from ..share import DISABLED, share_coordinator_of, share_groups_disabled
from ..share.coordinator import NOT_REQUESTED
from ..security import acl
from . import RequestContext, handler


@handler(77, 1, 1)
async def handle(ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    coord = share_coordinator_of(ctx.state)
    out = []
    disabled = share_groups_disabled(ctx.state)
    for gid in req["group_ids"]:
        if disabled:
            out.append({"error_code": errors.UNSUPPORTED_VERSION, "error_message": DISABLED, "group_id": gid,
                        "group_state": "", "group_epoch": -1, "assignment_epoch": -1, "assignor_name": "",
                        "members": [], "authorized_operations": NOT_REQUESTED})
        elif not ctx.allowed(acl.DESCRIBE, acl.GROUP, gid):
            out.append({"error_code": errors.GROUP_AUTHORIZATION_FAILED, "error_message": None, "group_id": gid,
                        "group_state": "", "group_epoch": -1, "assignment_epoch": -1, "assignor_name": "",
                        "members": [], "authorized_operations": NOT_REQUESTED})
        else:
            await coord.loaded.wait()
            d = coord.describe(gid, bool(req["include_authorized_operations"]))
            if req["include_authorized_operations"] and d.get("authorized_operations", NOT_REQUESTED) != NOT_REQUESTED:
                d["authorized_operations"] = ctx.authorized_ops(acl.GROUP, gid)
            out.append(d)
    return {"throttle_time_ms": 0, "groups": out}
