"""DeleteGroups (key 42), versions 0-2.

- Deletes empty groups with their committed offsets (tombstones for the
  offsets and the group metadata in __consumer_offsets).
- Per group: GROUP_ID_NOT_FOUND (unknown), NON_EMPTY_GROUP (it has
  members), INVALID_GROUP_ID (null id), COORDINATOR_LOAD_IN_PROGRESS.
  Duplicate ids are answered once.
- v2 flexible.
"""

from __future__ import annotations

from ..protocol.codec import Message
from ..group import coordinator_of
from ..protocol import errors
from . import RequestContext, handler


@handler(42, 0, 2)
async def handle(ctx: RequestContext, req: Message) -> Message:
    coord = coordinator_of(ctx.state)
    gids = list(dict.fromkeys(req["groups_names"]))
    if coord is None:
        results = [(g, errors.COORDINATOR_NOT_AVAILABLE) for g in gids]
    else:
        results = await coord.delete_groups(gids)
    return {"throttle_time_ms": 0,
            "results": [{"group_id": g, "error_code": code} for g, code in results]}
