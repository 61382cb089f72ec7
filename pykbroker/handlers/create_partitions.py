"""CreatePartitions (key 37), versions 0-3 (Kafka 4.x's range).

Follows Kafka's KRaft controller (ControllerApis.createPartitions +
ReplicationControlManager.createPartitions), per topic:

- A name given more than once: one INVALID_REQUEST result, "Duplicate topic
  name." (listed first, as Kafka does).
- Unknown topic: UNKNOWN_TOPIC_OR_PARTITION (no message).
- count equal to the current count: INVALID_PARTITIONS "Topic already has 3
  partition(s)."; lower: INVALID_PARTITIONS "The topic t currently has 3
  partition(s); 2 would not be an increase." (Kafka 4.x's wording; the
  ZooKeeper-era "Topic currently has 3 partitions, which is higher than the
  requested 2." is gone).
- assignments (nullable): one replica list per new partition, else
  INVALID_REPLICA_ASSIGNMENT "Attempted to add 2 additional partition(s),
  but only 1 assignment(s) were specified."; each list checked like
  CreateTopics' manual assignments, against the topic's replication factor
  (1).
- validate_only: checks only. timeout_ms is ignored (the change is
  immediate).
- Cluster mode (zookeeper.connect): only the controller serves it (others:
  NOT_CONTROLLER); assignments are checked against the live brokers and the
  topic's replication factor; new replicas are placed like Kafka's
  (continuing the round-robin of partition 0's first replica); the answer
  waits up to timeout_ms for the new partitions' leaders.
- ACLs (authorizer.class.name): ALTER on each topic, else TOPIC_AUTHORIZATION_FAILED.
- controller_mutation_rate (KIP-599; security/quotas.py): after a topic's
  checks, the partitions it adds are taken from the client's token bucket
  (also with validate_only, as Kafka's KRaft controller). v3 is strict:
  while the bucket is below zero a topic gets THROTTLING_QUOTA_EXCEEDED
  "The throttling quota has been exceeded." and nothing is added; v0-2 are
  permissive. throttle_time_ms is the time the bucket needs to refill to
  zero and the connection is muted that long.
"""

from __future__ import annotations

import logging
from collections import Counter

from ..protocol.codec import Message
from ..protocol import errors
from ..security import acl
from . import RequestContext, handler
from .create_topics import AdminError, answer_throttle, check_replicas, throttled

log = logging.getLogger("pykbroker.handlers.create_partitions")



MAX_PARTITIONS_PER_REQUEST = 10000


def _result(name: str, code: int = errors.NONE, message: str | None = None) -> Message:
    return {"name": name, "error_code": code, "error_message": message}


def _check(ctx: RequestContext, t: Message) -> int:
    """The current partition count of a valid request entry, else AdminError."""
    name = t["name"]
    ts = ctx.state.topics.get(name)
    if ts is None:
        raise AdminError(errors.UNKNOWN_TOPIC_OR_PARTITION, None)
    current = len(ts.partitions)
    count = t["count"]
    if count == current:
        raise AdminError(errors.INVALID_PARTITIONS, f"Topic already has {current} partition(s).")
    if count < current:
        raise AdminError(errors.INVALID_PARTITIONS, f"The topic {name} currently has {current} "
                    f"partition(s); {count} would not be an increase.")
    additional = count - current
    if additional > MAX_PARTITIONS_PER_REQUEST:
        # Kafka's controller (ReplicationControlManager.MAX_PARTITIONS_PER_BATCH)
        raise AdminError(errors.POLICY_VIOLATION, "Excessively large number of partitions per request.")
    assignments = t["assignments"]
    if assignments is not None:
        if len(assignments) != additional:
            raise AdminError(errors.INVALID_REPLICA_ASSIGNMENT,
                        f"Attempted to add {additional} additional partition(s), but only "
                        f"{len(assignments)} assignment(s) were specified.")
        st = ctx.state
        # the live brokers, the topic's replication factor
        rf = st.replicas.replication_factor(name)
        for a in assignments:
            check_replicas(list(a["broker_ids"]), set(st.live_broker_ids()), rf)
    return current


@handler(37, 0, 3)
async def handle(ctx: RequestContext, req: Message) -> Message:
    st = ctx.state
    topics = req["topics"] or []
    counts = Counter(t["name"] for t in topics)
    results = [_result(n, errors.INVALID_REQUEST, "Duplicate topic name.")
               for n in counts if counts[n] > 1]
    if not st.replicas.is_controller():
        # only the controller adds partitions
        return {"throttle_time_ms": 0, "results": results + [
            _result(t["name"], errors.NOT_CONTROLLER) for t in topics if counts[t["name"]] == 1]}
    quota = ctx.mutation_quota(strict_since=3)
    for t in topics:
        name = t["name"]
        if counts[name] > 1:
            continue
        if not ctx.allowed(acl.ALTER, acl.TOPIC, name):
            results.append(_result(name, errors.TOPIC_AUTHORIZATION_FAILED, "Authorization failed."))
            continue
        try:
            current = _check(ctx, t)
            throttled(quota, t["count"] - current)
        except AdminError as f:
            results.append(_result(name, f.code, f.message))
            continue
        if not req["validate_only"]:
            try:
                assignment = [list(a["broker_ids"]) for a in t["assignments"]] if t["assignments"] else None
                await st.replicas.create_partitions(name, t["count"], assignment, req["timeout_ms"])
            except errors.KafkaError as e:
                results.append(_result(name, e.code, e.message))
                continue
            except Exception:
                log.exception("adding partitions to %s failed", name)
                results.append(_result(name, errors.UNKNOWN_SERVER_ERROR))
                continue
        results.append(_result(name))
    return {"throttle_time_ms": answer_throttle(ctx, quota), "results": results}
