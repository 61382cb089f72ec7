"""JoinGroup (key 11), versions 0-9.

- The classic rebalance protocol's first phase (see pykbroker/group/classic_ops.py):
  the request is parked until the join phase completes; the leader gets
  every member's metadata for the protocol chosen by vote.
- INVALID_GROUP_ID for an empty group id; INVALID_SESSION_TIMEOUT outside
  [group.min.session.timeout.ms, group.max.session.timeout.ms];
  INCONSISTENT_GROUP_PROTOCOL for no protocols / a protocol type or
  protocols the group does not share; GROUP_MAX_SIZE_REACHED past
  group.max.size; UNKNOWN_MEMBER_ID / FENCED_INSTANCE_ID for members the
  group does not know; COORDINATOR_LOAD_IN_PROGRESS while the group's
  partition of __consumer_offsets is loading.
- v0: no rebalance timeout (the session timeout is used). v4+: a new
  dynamic member first gets MEMBER_ID_REQUIRED with its member id (KIP-394).
  v5+: group.instance.id (static membership, KIP-345). v6 flexible.
  v7+: protocol type in the response (v0-6: a null protocol name is sent
  as ""). v8+: reason. v9+: skip_assignment for a static leader rejoining
  a stable group.
- ACLs (authorizer.class.name): READ on the group, else GROUP_AUTHORIZATION_FAILED.
"""

from __future__ import annotations

from ..protocol.codec import Message
from ..group import client_host, coordinator_of
from ..group.classic_ops import join_error
from ..protocol import errors
from ..security import acl
from . import RequestContext, handler


@handler(11, 0, 9)
async def handle(ctx: RequestContext, req: Message) -> Message:
    v = ctx.api_version
    coord = coordinator_of(ctx.state)
    if not ctx.allowed(acl.READ, acl.GROUP, req["group_id"]):
        resp = join_error(errors.GROUP_AUTHORIZATION_FAILED, req["member_id"])
    elif coord is None:
        resp = join_error(errors.COORDINATOR_NOT_AVAILABLE, req["member_id"])
    else:
        resp = await coord.join_group(req, v, ctx.client_id or "", client_host(ctx.peer))
    resp = dict(resp)
    if v < 7 and resp["protocol_name"] is None:
        resp["protocol_name"] = ""
    resp["throttle_time_ms"] = 0
    return resp
