"""ShareGroupDescribe (key 77), version 1 (KIP-932, Kafka 4.2).

- Per group: state (Empty, Stable; Dead when unknown), group epoch,
  assignment epoch, assignor ("simple") and the members with their
  subscriptions and assignments (topic ids and names).
- Unknown group, or a group of another type: GROUP_ID_NOT_FOUND with a
  message. Authorized operations when asked (no ACLs: everything allowed).
- Flexible.
"""

from __future__ import annotations

from typing import Any

from ..protocol import errors
from ..share import share_coordinator_of
from ..share.coordinator import NOT_REQUESTED
from . import RequestContext, handler


@handler(77, 1, 1)
async def handle(ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    coord = share_coordinator_of(ctx.state)
    out = []
    for gid in req["group_ids"]:
        if coord is None:
            out.append({"error_code": errors.COORDINATOR_NOT_AVAILABLE, "error_message": None, "group_id": gid,
                        "group_state": "", "group_epoch": -1, "assignment_epoch": -1, "assignor_name": "",
                        "members": [], "authorized_operations": NOT_REQUESTED})
        else:
            await coord.loaded.wait()
            out.append(coord.describe(gid, bool(req["include_authorized_operations"])))
    return {"throttle_time_ms": 0, "groups": out}
