"""ConsumerGroupHeartbeat (key 68), versions 0-1 (KIP-848).

- Joins, heartbeats in and leaves a consumer group whose assignment the
  broker computes (server-side assignors "uniform" and "range", see
  pykbroker/group/consumer.py): member epoch 0 joins, -1 leaves, -2 is a
  static member leaving temporarily; the answer carries the member's
  epoch, the heartbeat interval (group.consumer.heartbeat.interval.ms) and,
  when it changed (or on a full request), its assignment by topic id.
  Partitions are revoked before they are given to another member.
- Errors: INVALID_REQUEST (bad field combinations, with a message),
  UNSUPPORTED_ASSIGNOR, INVALID_REGULAR_EXPRESSION, FENCED_MEMBER_EPOCH,
  UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, UNRELEASED_INSTANCE_ID,
  GROUP_MAX_SIZE_REACHED, GROUP_ID_NOT_FOUND (the id belongs to a
  non-empty classic group), COORDINATOR_LOAD_IN_PROGRESS.
- ``group.version`` finalized below 1 (UpdateFeatures): UNSUPPORTED_VERSION
  before anything else, as Kafka 4.x (the consumer protocol is off).
- v1: subscribed topic regex (full match against topic names). Flexible only.
- ACLs (authorizer.class.name): READ on the group (else
  GROUP_AUTHORIZATION_FAILED) and DESCRIBE on each subscribed topic (else
  TOPIC_AUTHORIZATION_FAILED naming them).
"""

from __future__ import annotations

from ..protocol.codec import Message
from ..group import client_host, coordinator_of
from ..protocol import errors
from ..security import acl
from . import RequestContext, handler


@handler(68, 0, 1)
async def handle(ctx: RequestContext, req: Message) -> Message:
    coord = coordinator_of(ctx.state)
    denied_topics = [t for t in req["subscribed_topic_names"] or [] if not ctx.allowed(acl.DESCRIBE, acl.TOPIC, t)]
    resp: Message
    if ctx.state.finalized_level("group.version") < 1:
        resp = {"error_code": errors.UNSUPPORTED_VERSION, "error_message": None, "member_id": None,
                "member_epoch": 0, "heartbeat_interval_ms": 0, "assignment": None}
    elif not ctx.allowed(acl.READ, acl.GROUP, req["group_id"]):
        resp = {"error_code": errors.GROUP_AUTHORIZATION_FAILED, "error_message": None, "member_id": None,
                "member_epoch": 0, "heartbeat_interval_ms": 0, "assignment": None}
    elif denied_topics:
        resp = {"error_code": errors.TOPIC_AUTHORIZATION_FAILED,
                "error_message": "The following topics are unauthorized: " + ", ".join(sorted(denied_topics)),
                "member_id": None, "member_epoch": 0, "heartbeat_interval_ms": 0, "assignment": None}
    elif coord is None:
        resp = {"error_code": errors.COORDINATOR_NOT_AVAILABLE, "error_message": None, "member_id": None,
                "member_epoch": 0, "heartbeat_interval_ms": 0, "assignment": None}
    else:
        if ctx.api_version < 1:
            req = dict(req, subscribed_topic_regex=None)
        resp = await coord.consumer_group_heartbeat(req, ctx.api_version, ctx.client_id or "",
                                                    client_host(ctx.peer))
    return {"throttle_time_ms": 0, **resp}
