"""ShareGroupHeartbeat (key 76), version 1 (KIP-932, Kafka 4.2).

- ``share.version`` finalized at 0 (UpdateFeatures): UNSUPPORTED_VERSION,
  before any other check (Kafka 4.x).
- Joins (member epoch 0, with the subscribed topic names), heartbeats in and
  leaves (-1) a share group. The member id is the client's own (an empty
  one is INVALID_REQUEST). The broker assigns partitions with the "simple"
  share assignor (pykbroker/share/coordinator.py): every subscribed
  partition goes to at least one member, and several members share a
  partition when there are more members than partitions. The answer
  carries the member epoch, group.share.heartbeat.interval.ms and the
  assignment by topic id when it changed (always after a join).
- A member silent for group.share.session.timeout.ms is removed; the
  records it had acquired are released.
- Errors: INVALID_GROUP_ID, INVALID_REQUEST, UNKNOWN_MEMBER_ID,
  FENCED_MEMBER_EPOCH, GROUP_MAX_SIZE_REACHED (group.share.max.size),
  GROUP_ID_NOT_FOUND (the id belongs to a classic or consumer group).
- A cluster: served by the group's coordinator (the leader of its
  __consumer_offsets partition, FindCoordinator GROUP); NOT_COORDINATOR
  elsewhere (COORDINATOR_LOAD_IN_PROGRESS / COORDINATOR_NOT_AVAILABLE as
  for other groups).
  Membership is dropped when the coordinator loses the partition (members
  get NOT_COORDINATOR and rejoin the new one). Share-partitions are
  initialized by each partition's leader at the group's first ShareFetch
  there, not at assignment.
- v0 was Kafka 4.0's early access and is not served (as Kafka 4.1+). Flexible.
- ACLs (authorizer.class.name): READ on the group (else
  GROUP_AUTHORIZATION_FAILED) and DESCRIBE on each subscribed topic (else
  TOPIC_AUTHORIZATION_FAILED naming them).
"""

from __future__ import annotations

from typing import Any

from ..group import client_host
from ..protocol import errors
from ..share import DISABLED, share_coordinator_of, share_groups_disabled
from ..security import acl
from . import RequestContext, handler


@handler(76, 1, 1)
async def handle(ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    coord = share_coordinator_of(ctx.state)
    resp: dict[str, Any]
    denied_topics = [t for t in req["subscribed_topic_names"] or [] if not ctx.allowed(acl.DESCRIBE, acl.TOPIC, t)]
    if share_groups_disabled(ctx.state):
        resp = {"error_code": errors.UNSUPPORTED_VERSION, "error_message": DISABLED, "member_id": None,
                "member_epoch": 0, "heartbeat_interval_ms": 0, "assignment": None}
    elif not ctx.allowed(acl.READ, acl.GROUP, req["group_id"]):
        resp = {"error_code": errors.GROUP_AUTHORIZATION_FAILED, "error_message": None, "member_id": None,
                "member_epoch": 0, "heartbeat_interval_ms": 0, "assignment": None}
    elif denied_topics:
        resp = {"error_code": errors.TOPIC_AUTHORIZATION_FAILED,
                "error_message": "The following topics are unauthorized: " + ", ".join(sorted(denied_topics)),
                "member_id": None, "member_epoch": 0, "heartbeat_interval_ms": 0, "assignment": None}
    else:
        resp = await coord.heartbeat(req, ctx.client_id or "", client_host(ctx.peer))
    return {"throttle_time_ms": 0, **resp}
