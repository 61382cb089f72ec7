"""DeleteGroups (key 42), versions 0-2.

- Deletes empty groups with their committed offsets (tombstones for the
  offsets and the group metadata in __consumer_offsets).
- Per group: GROUP_ID_NOT_FOUND (unknown), NON_EMPTY_GROUP (it has
  members), INVALID_GROUP_ID (null id), COORDINATOR_LOAD_IN_PROGRESS.
  Duplicate ids are answered once.
- v2 flexible.
- ACLs (authorizer.class.name): DELETE on each group, else GROUP_AUTHORIZATION_FAILED for it.
"""

from __future__ import annotations

from ..protocol.codec import Message
from ..group import coordinator_of
from ..protocol import errors
from ..security import acl
from . import RequestContext, handler


@handler(42, 0, 2)
async def handle(ctx: RequestContext, req: Message) -> Message:
    coord = coordinator_of(ctx.state)
    gids = list(dict.fromkeys(req["groups_names"]))
    denied = {g for g in gids if not ctx.allowed(acl.DELETE, acl.GROUP, g)}
    allowed = [g for g in gids if g not in denied]
    if coord is None:
        done = {g: errors.COORDINATOR_NOT_AVAILABLE for g in allowed}
    else:
        done = dict(await coord.delete_groups(allowed)) if allowed else {}
    results = [(g, errors.GROUP_AUTHORIZATION_FAILED if g in denied else done[g]) for g in gids]
    return {"throttle_time_ms": 0,
            "results": [{"group_id": g, "error_code": code} for g, code in results]}
