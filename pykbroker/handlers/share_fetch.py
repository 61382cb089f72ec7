"""ShareFetch (key 78), versions 1-2 (KIP-932, Kafka 4.2+).

- ``share.version`` finalized at 0 (UpdateFeatures): UNSUPPORTED_VERSION,
  before any other check (Kafka 4.x).
- Share sessions: epoch 0 opens one for (group, member) (acknowledgements
  in it are INVALID_REQUEST), -1 closes it (acknowledgements only, no
  fetch; the member's acquired records are released), any other must be
  the next epoch (INVALID_SHARE_SESSION_EPOCH; SHARE_SESSION_NOT_FOUND).
  A request adds its partitions to the session and removes the forgotten
  ones; records come from every partition of the session.
- Acknowledgements (Accept, Release, Reject, Gap; Renew in v2) are applied
  first, all batches of a partition or none (INVALID_RECORD_STATE in the
  partition's AcknowledgeErrorCode when a record is not held by the
  member).
- Then available records below the high watermark are acquired for
  group.share.record.lock.duration.ms (AcquisitionLockTimeoutMs), at most
  MaxRecords across partitions (rounded up to whole batches) and at most
  group.share.partition.max.record.locks records in flight per
  share-partition; each acquisition counts a delivery. Whole batches are
  returned with AcquiredRecords ranges (first, last, delivery count).
- Nothing to acquire: waits up to MaxWaitMs for an append or a release
  (a partition error answers at once).
- A cluster (docs/share-groups.md): served by each partition's leader; a
  partition led elsewhere answers NOT_LEADER_OR_FOLLOWER with its
  CurrentLeader and the leader in NodeEndpoints. A leader reads a
  share-partition's last snapshot from __share_group_state before it
  first serves it (an error while it cannot, e.g. the state partition has
  no leader: the client fetches again).
- State changes are persisted in __share_group_state before the answer.
- v2: ShareAcquireMode is accepted and treated as batch-optimized;
  IsRenewAck must be set for Renew acknowledgements. Flexible.
- ACLs (authorizer.class.name): READ on the group (else
  GROUP_AUTHORIZATION_FAILED) and on each topic (else
  TOPIC_AUTHORIZATION_FAILED for its partitions, left out of the session).
"""

from __future__ import annotations

from typing import Any

from ..protocol import errors
from ..share import DISABLED, share_coordinator_of, share_groups_disabled
from ..security import acl
from . import RequestContext, handler


def authorize_share(ctx: RequestContext, req: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """ShareFetch/ShareAcknowledge ACLs: None when the group is refused;
    else the request without the topics the principal may not READ, and the
    answers for those (TOPIC_AUTHORIZATION_FAILED per partition)."""
    if not ctx.allowed(acl.READ, acl.GROUP, req["group_id"]):
        return None
    kept, denied = [], []
    for t in req["topics"] or []:
        ts = ctx.state.topics_by_id.get(t["topic_id"])
        if ts is not None and not ctx.allowed(acl.READ, acl.TOPIC, ts.name):
            denied.append({"topic_id": t["topic_id"], "partitions": [
                {"partition_index": p["partition_index"], "error_code": errors.TOPIC_AUTHORIZATION_FAILED,
                 "error_message": None, "acknowledge_error_code": errors.NONE, "acknowledge_error_message": None,
                 "current_leader": {"leader_id": -1, "leader_epoch": -1}, "records": b"", "acquired_records": []}
                for p in t["partitions"]]})
        else:
            kept.append(t)
    return dict(req, topics=kept), denied


def with_leader_endpoints(ctx: RequestContext, resp: dict[str, Any]) -> dict[str, Any]:
    """NodeEndpoints: the address (on this listener) of every leader named
    in a NOT_LEADER_OR_FOLLOWER answer, so the client moves there."""
    ids = sorted({p["current_leader"]["leader_id"] for t in resp["responses"] for p in t["partitions"]
                  if p["error_code"] == errors.NOT_LEADER_OR_FOLLOWER and p["current_leader"]["leader_id"] >= 0})
    eps = []
    for nid in ids:
        b = ctx.state.replicas.broker(nid)
        ep = None if b is None else ctx.state.endpoint_for(b, ctx.listener)
        if b is not None and ep is not None:
            eps.append({"node_id": nid, "host": ep[0], "port": ep[1], "rack": b.rack})
    return dict(resp, node_endpoints=eps)


@handler(78, 1, 2)
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
        resp = await coord.share_fetch(checked[0], ctx.api_version)
        resp = with_leader_endpoints(ctx, dict(resp, responses=list(resp["responses"]) + checked[1]))
    return {"throttle_time_ms": 0, **resp}
