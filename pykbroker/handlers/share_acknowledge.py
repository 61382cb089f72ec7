"""ShareAcknowledge (key 79), versions 1-2 (KIP-932, Kafka 4.2+).

- ``share.version`` finalized at 0 (UpdateFeatures): UNSUPPORTED_VERSION,
  before any other check (Kafka 4.x).
- Acknowledges records acquired through ShareFetch in an open share
  session (the epoch must be the session's next one; 0 is
  INVALID_SHARE_SESSION_EPOCH; -1 applies the acknowledgements and closes
  the session, releasing what the member still holds).
- Types: 0 Gap and 3 Reject archive, 1 Accept acknowledges, 2 Release
  makes the record available again (archived once its delivery count
  reached group.share.delivery.count.limit), 4 Renew (v2, with IsRenewAck)
  restarts the record's lock. One type for the whole range or one per
  offset. A partition's batches are applied all or none:
  INVALID_RECORD_STATE when a record is not acquired by this member.
- Persisted in __share_group_state before the answer.
- A cluster: a partition led by another broker answers
  NOT_LEADER_OR_FOLLOWER with its CurrentLeader and NodeEndpoints;
  records acquired on a former leader are INVALID_RECORD_STATE (the new
  leader made them available again).
- v2: AcquisitionLockTimeoutMs in the answer. Flexible.
- ACLs (authorizer.class.name): READ on the group (else
  GROUP_AUTHORIZATION_FAILED) and on each topic (else
  TOPIC_AUTHORIZATION_FAILED for its partitions).
"""

from __future__ import annotations

from typing import Any

from ..protocol import errors
from ..share import DISABLED, share_coordinator_of, share_groups_disabled
from . import RequestContext, handler
from .share_fetch import authorize_share, with_leader_endpoints


@handler(79, 1, 2)
async def handle(ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    coord = share_coordinator_of(ctx.state)
    resp: dict[str, Any]
    checked = authorize_share(ctx, req)
    if share_groups_disabled(ctx.state):
        resp = {"error_code": errors.UNSUPPORTED_VERSION, "error_message": DISABLED,
                "acquisition_lock_timeout_ms": 0, "responses": [], "node_endpoints": []}
    elif checked is None:
        resp = {"error_code": errors.GROUP_AUTHORIZATION_FAILED, "error_message": None,
                "acquisition_lock_timeout_ms": 0, "responses": [], "node_endpoints": []}
    else:
        resp = await coord.share_acknowledge(checked[0], ctx.api_version)
        resp = with_leader_endpoints(ctx, dict(resp, responses=list(resp["responses"]) + checked[1]))
    return {"throttle_time_ms": 0, **resp}
