"""CreateTopics (key 19), versions 2-7 (Kafka 4.x's range).

Checks per topic, in the order of Kafka's KRaft controller
(ControllerApis.createTopics + ReplicationControlManager.createTopics), with
its error codes and messages:

- A name given more than once in the request: one INVALID_REQUEST result,
  "Duplicate topic name." (listed after the other results, as Kafka does);
  ``__cluster_metadata``: INVALID_REQUEST, "Creation of internal topic
  __cluster_metadata is prohibited.".
- Name rules (``topic_configs.topic_name_error``): INVALID_TOPIC_EXCEPTION,
  "Topic name is invalid: ..."; a name that differs from an existing topic
  only by '.' vs '_': INVALID_TOPIC_EXCEPTION, "Topic 'a.b' collides with
  existing topic: a_b".
- Existing topic: TOPIC_ALREADY_EXISTS, "Topic 'x' already exists.".
- Configs (``topic_configs.validate_topic_configs``): INVALID_CONFIG with
  Kafka's message (unknown name, unparsable or out-of-range value, null
  value, min > max compaction lag, tiered storage).
- Manual assignments: replication_factor and num_partitions must both be -1
  (INVALID_REQUEST), partition indexes unique and 0..n-1, each replica list
  non-empty, without duplicates, of registered brokers only (this broker)
  and of one size (INVALID_REPLICA_ASSIGNMENT).
- Otherwise num_partitions / replication_factor -1 take num.partitions /
  default.replication.factor; 0 or < -1 give INVALID_PARTITIONS /
  INVALID_REPLICATION_FACTOR; a replication factor above the number of
  brokers (1) gives INVALID_REPLICATION_FACTOR, "Unable to replicate the
  partition 3 time(s): The target replication factor of 3 cannot be reached
  because only 1 broker(s) are registered." (Kafka 4.x's KRaft message; the
  old ZooKeeper-era "Replication factor: 3 larger than available brokers: 1."
  is no longer what Kafka says).
- validate_only: every check runs, nothing is created; a success result
  looks like a real one (Kafka even returns a fresh random topic id).
- Cluster mode (zookeeper.connect): a broker that is not the controller
  answers NOT_CONTROLLER for every topic (Kafka's ZooKeeper mode); the
  controller checks replication factors and manual assignments against the
  live brokers, writes the assignment (spread over the brokers, rack-aware
  with broker.rack) to ZooKeeper, elects the leaders and waits up to
  timeout_ms for them to show in its metadata.

Results: v5+ carry num_partitions, replication_factor and every topic config
with its value and source (``topic_configs.effective_topic_configs``);
failed topics have -1/-1 and no configs. v7 carries the topic id.
- ACLs (authorizer.class.name): CREATE on the cluster or on the topic,
  else TOPIC_AUTHORIZATION_FAILED "Authorization failed.".
- controller_mutation_rate (KIP-599; security/quotas.py): after a topic's
  checks, its partitions are taken from the client's token bucket (also
  with validate_only, as Kafka's KRaft controller). v6+ is strict: while
  the bucket is below zero a topic gets THROTTLING_QUOTA_EXCEEDED "The
  throttling quota has been exceeded." and is not created (the topic that
  empties the bucket is still created and may overdraw it); v2-5 are
  permissive: every topic is created. throttle_time_ms is the time the
  bucket needs to refill to zero (the longer of that and request_percentage's)
  and the connection is muted that long.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter

from ..protocol.codec import Message
from .. import topic_configs as tc
from ..protocol import errors
from ..protocol.primitives import ZERO_UUID
from ..security import quotas
from . import RequestContext, handler

log = logging.getLogger("pykbroker.handlers.create_topics")

CLUSTER_METADATA_TOPIC = "__cluster_metadata"


class AdminError(Exception):
    def __init__(self, code: int, message: str | None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def error_result(name: str, code: int, message: str | None) -> Message:
    return {"name": name, "topic_id": ZERO_UUID, "error_code": code, "error_message": message,
            "topic_config_error_code": errors.NONE, "num_partitions": -1,
            "replication_factor": -1, "configs": []}


def check_replicas(broker_ids: list[int], registered: set[int], rf: int | None) -> None:
    """Kafka's validateManualPartitionAssignment."""
    if not broker_ids:
        raise AdminError(errors.INVALID_REPLICA_ASSIGNMENT,
                    "The manual partition assignment includes an empty replica list.")
    prev = None
    for b in sorted(broker_ids):
        if b not in registered:
            raise AdminError(errors.INVALID_REPLICA_ASSIGNMENT,
                        f"The manual partition assignment includes broker {b}, but no such "
                        "broker is registered.")
        if b == prev:
            raise AdminError(errors.INVALID_REPLICA_ASSIGNMENT,
                        f"The manual partition assignment includes the broker {prev} more than once.")
        prev = b
    if rf is not None and len(broker_ids) != rf:
        raise AdminError(errors.INVALID_REPLICA_ASSIGNMENT,
                    f"The manual partition assignment includes a partition with {len(broker_ids)} "
                    "replica(s), but this is not consistent with previous partitions, which have "
                    f"{rf} replica(s).")


def check_replication(rf: int, brokers: int) -> None:
    """Kafka's replica placer: enough registered brokers for ``rf`` replicas."""
    if rf > brokers:
        raise AdminError(errors.INVALID_REPLICATION_FACTOR,
                    f"Unable to replicate the partition {rf} time(s): The target replication "
                    f"factor of {rf} cannot be reached because only {brokers} broker(s) are "
                    "registered.")


THROTTLED_MESSAGE = "The throttling quota has been exceeded."


def throttled(quota: quotas.MutationQuota, partitions: int) -> None:
    """Take ``partitions`` from the controller_mutation_rate; AdminError
    THROTTLING_QUOTA_EXCEEDED when a strict quota refuses them."""
    try:
        quota.record(partitions)
    except quotas.ThrottlingQuotaExceeded:
        raise AdminError(errors.THROTTLING_QUOTA_EXCEEDED, THROTTLED_MESSAGE) from None


def answer_throttle(ctx: RequestContext, quota: quotas.MutationQuota) -> int:
    """The answer's throttle_time_ms from the mutation quota; the connection is muted that long."""
    ms = quota.throttle_ms()
    ctx.throttle(ms)
    return ms


def _plan(ctx: RequestContext, t: Message) -> tuple[int, int]:
    """(partitions, replication factor) of a valid request entry, else AdminError."""
    st = ctx.state
    registered = set(st.live_broker_ids())
    assignments = t["assignments"] or []
    if assignments:
        if t["replication_factor"] != -1:
            raise AdminError(errors.INVALID_REQUEST, "A manual partition assignment was specified, "
                        "but replication factor was not set to -1.")
        if t["num_partitions"] != -1:
            raise AdminError(errors.INVALID_REQUEST, "A manual partition assignment was specified, "
                        "but numPartitions was not set to -1.")
        seen: set[int] = set()
        rf: int | None = None
        for a in assignments:
            idx = a["partition_index"]
            if idx in seen:
                raise AdminError(errors.INVALID_REPLICA_ASSIGNMENT,
                            f"Found multiple manual partition assignments for partition {idx}")
            check_replicas(list(a["broker_ids"]), registered, rf)
            rf = len(a["broker_ids"])
            seen.add(idx)
        if seen != set(range(len(seen))):
            raise AdminError(errors.INVALID_REPLICA_ASSIGNMENT,
                        "partitions should be a consecutive 0-based integer sequence")
        return len(seen), rf or 1
    rf = t["replication_factor"]
    n = t["num_partitions"]
    if rf < -1 or rf == 0:
        raise AdminError(errors.INVALID_REPLICATION_FACTOR,
                    "Replication factor must be larger than 0, or -1 to use the default value.")
    if n < -1 or n == 0:
        raise AdminError(errors.INVALID_PARTITIONS,
                    "Number of partitions was set to an invalid non-positive value.")
    if n == -1:
        n = int(st.config["num.partitions"])
    if rf == -1:
        rf = int(st.config["default.replication.factor"])
    check_replication(rf, len(registered))
    return n, rf


async def _create_one(ctx: RequestContext, t: Message, collisions: dict[str, str],
                      validate_only: bool, timeout_ms: int, quota: quotas.MutationQuota) -> Message:
    st = ctx.state
    name = t["name"]
    try:
        bad_name = tc.topic_name_error(name)
        if bad_name is not None:
            raise AdminError(errors.INVALID_TOPIC_EXCEPTION, bad_name)
        if name in st.topics:
            raise AdminError(errors.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
        if "." in name or "_" in name:
            other = collisions.get(tc.collision_key(name))
            if other is not None:
                raise AdminError(errors.INVALID_TOPIC_EXCEPTION,
                            f"Topic '{name}' collides with existing topic: {other}")
        pairs = [(c["name"], c["value"]) for c in (t["configs"] or [])]
        bad = tc.validate_topic_configs(pairs, st.config)
        if bad is not None:
            raise AdminError(*bad)
        # last value wins for a name given twice; store Kafka's canonical form
        overrides = {k: tc.normalize(k, v) or "" for k, v in pairs if v is not None}
        partitions, rf = _plan(ctx, t)
        throttled(quota, partitions)
    except AdminError as f:
        return error_result(name, f.code, f.message)
    if validate_only:
        topic_id = uuid.uuid4().bytes
    else:
        # a cluster's controller writes the assignment (replicas spread,
        # rack-aware) and elects the leaders; a lone broker creates the logs
        manual = {a["partition_index"]: list(a["broker_ids"]) for a in (t["assignments"] or [])} or None
        try:
            topic_id = await st.replicas.create_topic(name, partitions, rf, overrides, manual, timeout_ms)
        except errors.KafkaError as e:
            return error_result(name, e.code, e.message)
        except Exception:
            log.exception("creating topic %s failed", name)
            return error_result(name, errors.UNKNOWN_SERVER_ERROR, None)
    return {"name": name, "topic_id": topic_id, "error_code": errors.NONE, "error_message": None,
            "topic_config_error_code": errors.NONE, "num_partitions": partitions,
            "replication_factor": rf,
            "configs": tc.effective_topic_configs(st.config, overrides)}


MAX_PARTITIONS_PER_REQUEST = 10000


def _total_partitions(ctx: RequestContext, topics: list[Message]) -> int:
    """Partitions a CreateTopics request asks for, counted as Kafka does."""
    total = 0
    for t in topics:
        if t["assignments"]:
            total += len(t["assignments"])
        elif t["num_partitions"] == -1:
            total += int(ctx.state.config["num.partitions"])
        elif t["num_partitions"] > 0:
            total += t["num_partitions"]
    return total


@handler(19, 2, 7)
async def handle(ctx: RequestContext, req: Message) -> Message:
    st = ctx.state
    topics = req["topics"] or []
    counts = Counter(t["name"] for t in topics)
    duplicates = [n for n in counts if counts[n] > 1]
    collisions: dict[str, str] = {}
    for existing in st.topics:
        if "." in existing or "_" in existing:
            collisions.setdefault(tc.collision_key(existing), existing)
    results = []
    metadata_topic = False
    if not st.replicas.is_controller():
        # only the controller creates topics (clients send it there)
        return {"throttle_time_ms": 0, "topics": [error_result(t["name"], errors.NOT_CONTROLLER, None)
                                                   for t in topics]}
    if _total_partitions(ctx, topics) > MAX_PARTITIONS_PER_REQUEST:
        # Kafka's controller rejects the whole request (MAX_PARTITIONS_PER_BATCH)
        return {"throttle_time_ms": 0, "topics": [
            error_result(t["name"], errors.POLICY_VIOLATION, "Excessively large number of partitions per request.")
            for t in topics]}
    quota = ctx.mutation_quota(strict_since=6)
    for t in topics:
        name = t["name"]
        if counts[name] > 1:
            continue
        if name == CLUSTER_METADATA_TOPIC:
            metadata_topic = True
            continue
        if not ctx.may_create_topic(name):
            results.append(error_result(name, errors.TOPIC_AUTHORIZATION_FAILED, "Authorization failed."))
            continue
        results.append(await _create_one(ctx, t, collisions, bool(req["validate_only"]), req["timeout_ms"],
                                         quota))
    for name in duplicates:
        results.append(error_result(name, errors.INVALID_REQUEST, "Duplicate topic name."))
    if metadata_topic:
        results.append(error_result(
            CLUSTER_METADATA_TOPIC, errors.INVALID_REQUEST,
            f"Creation of internal topic {CLUSTER_METADATA_TOPIC} is prohibited."))
    return {"throttle_time_ms": answer_throttle(ctx, quota), "topics": results}
