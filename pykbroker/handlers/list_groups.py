"""ListGroups (key 16), versions 0-5.

- Every group this coordinator knows (classic, KIP-848 consumer, and the
  "simple" groups that only hold committed offsets), with its protocol
  type ("consumer" for consumer groups; "" for simple groups).
- COORDINATOR_LOAD_IN_PROGRESS while __consumer_offsets (or
  __share_group_state) is still loading (with the groups loaded so far).
- v3 flexible. v4+: state filter (case-insensitive), group state in the
  answer. v5+: type filter ("classic", "consumer", "share"), group type.
- Share groups (pykbroker/share/) are listed too: protocol type "share",
  state Empty or Stable, group type "share"; in a cluster only those this
  broker coordinates (not persisted: a share group reappears after a
  coordinator move once a member joins).
- ACLs (authorizer.class.name): every group with DESCRIBE on the cluster,
  else only the groups the principal may DESCRIBE.
"""

from __future__ import annotations

from ..protocol.codec import Message
from ..group import coordinator_of
from ..protocol import errors
from ..share import share_coordinator_of
from ..security import acl
from . import RequestContext, handler


@handler(16, 0, 5)
async def handle(ctx: RequestContext, req: Message) -> Message:
    v = ctx.api_version
    coord = coordinator_of(ctx.state)
    if coord is None:
        return {"throttle_time_ms": 0, "error_code": errors.COORDINATOR_NOT_AVAILABLE, "groups": []}
    code, groups = coord.list_groups(req["states_filter"] if v >= 4 else [],
                                     req["types_filter"] if v >= 5 else [])
    share = share_coordinator_of(ctx.state)
    if share is not None:
        share_code, share_groups = share.list_groups(req["states_filter"] if v >= 4 else [],
                                                     req["types_filter"] if v >= 5 else [])
        groups = groups + share_groups
        code = code or share_code
    if not ctx.allowed(acl.DESCRIBE, acl.CLUSTER):
        groups = [g for g in groups if ctx.allowed(acl.DESCRIBE, acl.GROUP, g["group_id"])]
    return {"throttle_time_ms": 0, "error_code": code, "groups": groups}
