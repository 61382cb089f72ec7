"""Metadata (key 3), versions 0-13.

- Lists the brokers (this one alone without zookeeper.connect; every live
  broker in cluster mode) and the requested topics: all for a null list
  (v1+) or an empty list in v0; none for an empty list in v1+.
- Unknown topics are created with broker defaults when
  auto.create.topics.enable is on and the request allows it (v4+ flag; always
  in v0-3); otherwise UNKNOWN_TOPIC_OR_PARTITION. Invalid names get
  INVALID_TOPIC_EXCEPTION. Topics asked for by id (v10+) that do not exist get
  UNKNOWN_TOPIC_ID.
- v7+ leader epochs, v10+ topic ids, v8+ authorized operations (-2147483648
  = not requested; without an authorizer every supported operation).
- ACLs (authorizer.class.name): topics need DESCRIBE; when all topics are
  asked for, the others are left out; named ones get
  TOPIC_AUTHORIZATION_FAILED (existing or not, so existence does not
  leak). Auto-creation needs CREATE on the cluster or the topic, else
  TOPIC_AUTHORIZATION_FAILED. Authorized-operations bit fields are the
  principal's own.
- Cluster mode (zookeeper.connect): every live broker, the controller, and
  per partition its leader (-1 and LEADER_NOT_AVAILABLE when the leader is
  not live), leader epoch, replicas, ISR and offline replicas, from the
  ZooKeeper state this broker watches; v0 lists only live replicas
  (REPLICA_NOT_AVAILABLE when some are not). An auto-created topic is
  written to ZooKeeper and answered LEADER_NOT_AVAILABLE until it exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import struct

from ..protocol.codec import Message
from ..protocol import errors
from ..protocol.primitives import I32, ZERO_UUID, EncodedArray, write_uvarint
from ..storage.manager import validate_topic_name
from ..security import acl
from . import RequestContext, handler

if TYPE_CHECKING:
    from ..server.topics import PartitionState, TopicState

NOT_REQUESTED = -2147483648
_HEAD = struct.Struct(">hi")  # a partition's error_code and partition_index


def broker_list(ctx: RequestContext) -> list[Message]:
    st = ctx.state
    out: list[Message] = []
    for b in st.replicas.live_brokers():
        ep = st.endpoint_for(b, ctx.listener)
        if ep is not None:  # a broker without the client's listener is left out, as Kafka does
            out.append({"node_id": b.node_id, "host": ep[0], "port": ep[1], "rack": b.rack})
    return out


def _fields(ctx: RequestContext, ts: "TopicState", p: "PartitionState"
            ) -> tuple[int, int, int, list[int], list[int], list[int]]:
    """Kafka's ZkMetadataCache.getPartitionMetadata: a leader that is not live
    is -1 with LEADER_NOT_AVAILABLE; v0 lists only live replicas and says
    REPLICA_NOT_AVAILABLE when some are not; a live leader without the
    client's listener is -1 with LISTENER_NOT_FOUND. (error code, leader,
    leader epoch, replicas, ISR, offline replicas)."""
    st = ctx.state
    info = st.replicas.partition_info(ts, p)
    replicas, isr, offline = info.replicas, info.isr, info.offline
    code = errors.NONE
    leader_id = info.leader
    if info.leader < 0:
        code = errors.LEADER_NOT_AVAILABLE
    elif info.leader != st.node_id and ctx.listener is not None:
        b = st.replicas.broker(info.leader)
        if b is not None and st.endpoint_for(b, ctx.listener) is None:
            code, leader_id = errors.LISTENER_NOT_FOUND, -1
    elif ctx.api_version == 0 and offline:
        replicas = [r for r in replicas if r not in offline]
        isr = [r for r in isr if r not in offline]
        code = errors.REPLICA_NOT_AVAILABLE
    return code, leader_id, info.leader_epoch, replicas, isr, offline


def _partition(ctx: RequestContext, ts: "TopicState", p: "PartitionState") -> Message:
    code, leader_id, epoch, replicas, isr, offline = _fields(ctx, ts, p)
    return {"error_code": code, "partition_index": p.index, "leader_id": leader_id,
            "leader_epoch": epoch, "replica_nodes": replicas, "isr_nodes": isr,
            "offline_replicas": offline}


def _int32_array(out: bytearray, values: list[int], flexible: bool) -> None:
    if flexible:
        write_uvarint(out, len(values) + 1)
    else:
        out += I32.pack(len(values))
    if values:
        out += struct.pack(f">{len(values)}i", *values)


def encoded_partitions(ctx: RequestContext, ts: "TopicState") -> EncodedArray:
    """The topic's partitions array, encoded here rather than as one dict per
    partition through the generic encoder (issue 17: 10,000 partitions took
    ~45 ms). Every field after error_code and partition_index (leader, epoch,
    replicas, ISR, offline replicas, tagged fields) is encoded once per
    distinct value in the request (a lone broker: one for every partition)
    and reused. Must match MetadataResponse's partition struct for every
    version (tests/server/test_metadata_encoding.py compares the bytes)."""
    v = ctx.api_version
    flexible = v >= 9
    tails: dict[tuple[int, ...], bytes] = {}
    out = bytearray()
    head = _HEAD.pack
    for p in ts.partitions:
        code, leader_id, epoch, replicas, isr, offline = _fields(ctx, ts, p)
        key = (leader_id, epoch, *replicas, -1, *isr, -1, *offline)  # node ids are >= 0
        tail = tails.get(key)
        if tail is None:
            t = bytearray(I32.pack(leader_id))
            if v >= 7:
                t += I32.pack(epoch)
            _int32_array(t, replicas, flexible)
            _int32_array(t, isr, flexible)
            if v >= 5:
                _int32_array(t, offline, flexible)
            if flexible:
                t.append(0)  # no tagged fields
            tail = tails[key] = bytes(t)
        out += head(code, p.index)
        out += tail
    def items() -> list[dict[str, Any]]:
        dicts = []
        for p in ts.partitions:
            code, leader_id, epoch, replicas, isr, offline = _fields(ctx, ts, p)
            dicts.append({"error_code": code, "partition_index": p.index, "leader_id": leader_id,
                        "leader_epoch": epoch, "replica_nodes": list(replicas), "isr_nodes": list(isr),
                        "offline_replicas": list(offline)})
        return dicts

    return EncodedArray(len(ts.partitions), out, items)


def topic_entry(ctx: RequestContext, ts: "TopicState", include_ops: bool) -> Message:
    return {"error_code": errors.NONE, "name": ts.name, "topic_id": ts.topic_id,
            "is_internal": ts.internal, "partitions": encoded_partitions(ctx, ts),
            "topic_authorized_operations": ctx.authorized_ops(acl.TOPIC, ts.name) if include_ops else NOT_REQUESTED}


def error_entry(name: str | None, code: int, topic_id: bytes = ZERO_UUID) -> Message:
    return {"error_code": code, "name": name, "topic_id": topic_id, "is_internal": False,
            "partitions": [], "topic_authorized_operations": NOT_REQUESTED}


@handler(3, 0, 13)
async def handle(ctx: RequestContext, req: Message) -> Message:
    st = ctx.state
    v = ctx.api_version
    include_ops = bool(req["include_topic_authorized_operations"])
    allow_create = req["allow_auto_topic_creation"] if v >= 4 else True
    topics_out = []
    requested = req["topics"]
    if requested is None or (v == 0 and not requested):
        for known in st.topics.values():
            if ctx.allowed(acl.DESCRIBE, acl.TOPIC, known.name):
                topics_out.append(topic_entry(ctx, known, include_ops))
    else:
        for t in requested:
            name = t["name"]
            if name is None:
                ts = st.topics_by_id.get(t["topic_id"])
                if ts is None:
                    topics_out.append(error_entry(None, errors.UNKNOWN_TOPIC_ID, t["topic_id"]))
                elif not ctx.allowed(acl.DESCRIBE, acl.TOPIC, ts.name):
                    topics_out.append(error_entry(None, errors.TOPIC_AUTHORIZATION_FAILED, t["topic_id"]))
                else:
                    topics_out.append(topic_entry(ctx, ts, include_ops))
                continue
            if not ctx.allowed(acl.DESCRIBE, acl.TOPIC, name):
                topics_out.append(error_entry(name, errors.TOPIC_AUTHORIZATION_FAILED))
                continue
            ts = st.topics.get(name)
            if ts is None:
                if validate_topic_name(name) is not None:
                    topics_out.append(error_entry(name, errors.INVALID_TOPIC_EXCEPTION))
                    continue
                if allow_create and st.auto_create_enabled() and not ctx.may_create_topic(name):
                    topics_out.append(error_entry(name, errors.TOPIC_AUTHORIZATION_FAILED))
                    continue
                if allow_create:
                    ts = st.maybe_auto_create(name)
                if ts is None:
                    # being created elsewhere (a cluster's controller; Kafka: LEADER_NOT_AVAILABLE)
                    creating = allow_create and st.auto_create_enabled()
                    topics_out.append(error_entry(name, errors.LEADER_NOT_AVAILABLE if creating
                                                  else errors.UNKNOWN_TOPIC_OR_PARTITION))
                    continue
            topics_out.append(topic_entry(ctx, ts, include_ops))
    return {
        "throttle_time_ms": 0,
        "brokers": broker_list(ctx),
        "cluster_id": st.cluster_id,
        "controller_id": st.replicas.controller_id(),
        "topics": topics_out,
        "cluster_authorized_operations":
            ctx.authorized_ops(acl.CLUSTER) if req["include_cluster_authorized_operations"] else NOT_REQUESTED,
        "error_code": errors.NONE,
    }
