"""ElectLeaders (key 43), versions 0-2 (Kafka 4.x's range).

- Preferred (type 0, the only one in v0) or unclean (type 1) leader
  election, served by the controller as in Kafka's ZooKeeper mode (admin
  clients send it to the controller named by Metadata).
- Not the controller: NOT_CONTROLLER for every partition (top-level NONE).
- Per partition: unknown: UNKNOWN_TOPIC_OR_PARTITION "The partition does
  not exist."; preferred: ELECTION_NOT_NEEDED if the first replica of the
  assignment already leads, PREFERRED_LEADER_NOT_AVAILABLE if it is not
  live or not in the ISR, else it becomes leader (leader epoch + 1);
  unclean: ELECTION_NOT_NEEDED if the leader is live, else a live ISR
  member, else any live replica (ELIGIBLE_LEADERS_NOT_AVAILABLE if none).
- ``topic_partitions`` null means every partition, and then the answer
  leaves out those that needed no election (as Kafka).
- Waits up to ``timeout_ms`` for the new leaders to show in this broker's
  metadata (Kafka's DelayedElectLeader).
- A lone broker is its own controller and the only replica: nothing ever
  needs an election.
- v1+: election_type and a top-level error_code (INVALID_REQUEST for an
  unknown election type). v2: flexible.
- ACLs (authorizer.class.name): ALTER on the cluster, else CLUSTER_AUTHORIZATION_FAILED.
"""

from __future__ import annotations

from ..protocol.codec import Message
from ..protocol import errors
from ..security import acl
from . import RequestContext, handler

PREFERRED, UNCLEAN = 0, 1


def _response(code: int, results: dict[tuple[str, int], tuple[int, str | None]], drop_not_needed: bool) -> Message:
    by_topic: dict[str, list[Message]] = {}
    for (t, p), (c, msg) in results.items():
        if drop_not_needed and c == errors.ELECTION_NOT_NEEDED:
            continue
        by_topic.setdefault(t, []).append({"partition_id": p, "error_code": c, "error_message": msg})
    return {"throttle_time_ms": 0, "error_code": code,
            "replica_election_results": [{"topic": t, "partition_result": ps} for t, ps in by_topic.items()]}


@handler(43, 0, 2)
async def handle(ctx: RequestContext, req: Message) -> Message:
    st = ctx.state
    v = ctx.api_version
    etype = req["election_type"] if v >= 1 else PREFERRED
    requested = req["topic_partitions"]
    if not ctx.allowed(acl.ALTER, acl.CLUSTER):
        return _response(errors.CLUSTER_AUTHORIZATION_FAILED, {}, False)
    if etype not in (PREFERRED, UNCLEAN):
        return _response(errors.INVALID_REQUEST, {}, False)
    if requested is None:
        wanted = [(ts.name, p.index) for ts in st.topics.values() for p in ts.partitions]
    else:
        wanted = [(t["topic"], p) for t in requested for p in t["partitions"]]
    results: dict[tuple[str, int], tuple[int, str | None]]
    if not st.replicas.is_controller():
        results = {tp: (errors.NOT_CONTROLLER, None) for tp in wanted}
    else:
        try:
            results = await st.replicas.elect_leaders(wanted, etype, req["timeout_ms"])
        except errors.KafkaError as e:  # NOT_CONTROLLER: resigned meanwhile
            results = {tp: (e.code, None) for tp in wanted}
    return _response(errors.NONE, results, requested is None)
