"""ListPartitionReassignments (key 46), version 0 (Kafka 4.x's range).

- Needs DESCRIBE on the cluster (else top-level CLUSTER_AUTHORIZATION_FAILED).
- Served by the controller (others: top-level NOT_CONTROLLER), as in
  Kafka's ZooKeeper mode.
- ``topics`` null lists every partition being reassigned; else only those
  asked for that are being reassigned (unknown partitions and partitions
  not moving are left out, no error).
- Per partition: ``replicas`` the full replica set during the move (target
  + origin), ``adding_replicas`` (target - origin), ``removing_replicas``
  (the rest), as the topic znode holds them.
- A lone broker never moves anything: always empty. Flexible.
"""

from __future__ import annotations

from ..protocol.codec import Message
from ..protocol import errors
from ..security import acl
from . import RequestContext, handler


@handler(46, 0, 0)
async def handle(ctx: RequestContext, req: Message) -> Message:
    st = ctx.state
    body: Message = {"throttle_time_ms": 0, "error_code": errors.NONE, "error_message": None, "topics": []}
    if not ctx.allowed(acl.DESCRIBE, acl.CLUSTER):
        body["error_code"] = errors.CLUSTER_AUTHORIZATION_FAILED
        return body
    if not st.replicas.is_controller():
        body["error_code"] = errors.NOT_CONTROLLER
        return body
    asked = None if req["topics"] is None else [(t["name"], p) for t in req["topics"]
                                                 for p in t["partition_indexes"]]
    try:
        moving = st.replicas.list_reassignments(asked)
    except errors.KafkaError as e:
        body["error_code"] = e.code
        return body
    by_topic: dict[str, list[Message]] = {}
    for (t, p), (replicas, adding, removing) in sorted(moving.items()):
        by_topic.setdefault(t, []).append({"partition_index": p, "replicas": replicas, "adding_replicas": adding,
                                           "removing_replicas": removing})
    body["topics"] = [{"name": t, "partitions": ps} for t, ps in by_topic.items()]
    return body
