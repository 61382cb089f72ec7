"""AlterPartitionReassignments (key 45), versions 0-1 (Kafka 4.x's range).

Served by the controller as in Kafka's ZooKeeper mode (KIP-455; admin
clients send it to the controller named by Metadata):

- Needs ALTER on the cluster (else top-level CLUSTER_AUTHORIZATION_FAILED).
- Not the controller: top-level NOT_CONTROLLER and no partition results.
- Per partition, checked before anything moves (a bad entry leaves its
  partition as it is; the others go ahead): an empty list, duplicates or a
  negative id: INVALID_REPLICA_ASSIGNMENT ("Empty replica list specified in
  partition reassignment.", "Duplicate replica ids in partition
  reassignment replica list: [..]", "Invalid broker id in replica list:
  [..]"); a replica to add on a broker that is not live:
  INVALID_REPLICA_ASSIGNMENT "Replica assignment has brokers that are not
  alive. ..."; an unknown partition: UNKNOWN_TOPIC_OR_PARTITION "The
  partition does not exist."; null replicas (cancel) with no move in
  progress: NO_REASSIGNMENT_IN_PROGRESS.
- NONE means the new replica set is recorded (ZooKeeper, the topic znode's
  ``adding_replicas``/``removing_replicas``), not that data has moved: the
  controller completes the move once the target replicas are in the ISR
  (docs/cluster.md). Asking for the current replica set is a no-op.
- A lone broker answers as a one-broker Kafka cluster: its own id is the
  only valid replica set (a no-op), any other broker is not alive.
- v1 (KIP-860): ``allow_replication_factor_change`` false rejects a target
  whose size differs from the current replica set's with
  INVALID_REPLICATION_FACTOR "The replication factor is changed from X to
  Y"; the response echoes the flag. All versions flexible.
"""

from __future__ import annotations

from ..protocol.codec import Message
from ..protocol import errors
from ..security import acl
from . import RequestContext, handler


def _response(v: int, code: int, message: str | None, results: dict[tuple[str, int], tuple[int, str | None]],
              allow_rf: bool) -> Message:
    by_topic: dict[str, list[Message]] = {}
    for (t, p), (c, msg) in results.items():
        by_topic.setdefault(t, []).append({"partition_index": p, "error_code": c, "error_message": msg})
    out: Message = {"throttle_time_ms": 0, "error_code": code, "error_message": message,
                    "responses": [{"name": t, "partitions": ps} for t, ps in by_topic.items()]}
    if v >= 1:
        out["allow_replication_factor_change"] = allow_rf
    return out


@handler(45, 0, 1)
async def handle(ctx: RequestContext, req: Message) -> Message:
    st = ctx.state
    v = ctx.api_version
    allow_rf = req["allow_replication_factor_change"] if v >= 1 else True
    if not ctx.allowed(acl.ALTER, acl.CLUSTER):
        return _response(v, errors.CLUSTER_AUTHORIZATION_FAILED, None, {}, allow_rf)
    if not st.replicas.is_controller():
        return _response(v, errors.NOT_CONTROLLER, None, {}, allow_rf)
    wanted: dict[tuple[str, int], list[int] | None] = {}
    for t in req["topics"]:
        for p in t["partitions"]:
            wanted[(t["name"], p["partition_index"])] = p["replicas"]
    results: dict[tuple[str, int], tuple[int, str | None]] = {}
    if not allow_rf:
        moving = st.replicas.list_reassignments(list(wanted))
        for (t, i), target in list(wanted.items()):
            ts = st.topics.get(t)
            if target is None or ts is None or not 0 <= i < len(ts.partitions):
                continue
            if (t, i) in moving:
                rs, adding, _ = moving[(t, i)]
                current = len([r for r in rs if r not in adding])
            else:
                current = len(st.replicas.partition_info(ts, ts.partitions[i]).replicas)
            if target and len(target) != current:
                results[(t, i)] = (errors.INVALID_REPLICATION_FACTOR,
                                   f"The replication factor is changed from {current} to {len(target)}")
                del wanted[(t, i)]
    try:
        results.update(await st.replicas.alter_reassignments(wanted, req["timeout_ms"]))
    except errors.KafkaError as e:  # NOT_CONTROLLER: resigned meanwhile
        return _response(v, e.code, None, {}, allow_rf)
    ordered = {k: results[k] for k in [(t["name"], p["partition_index"]) for t in req["topics"]
                                        for p in t["partitions"]] if k in results}
    return _response(v, errors.NONE, None, ordered, allow_rf)
