"""Records of the ``__consumer_offsets`` topic, in Kafka's formats.

Every record's key and value start with an int16: the key's type
(0/1 offset commit, 2 classic group metadata, 3+ KIP-848 / share / streams
records, which this broker does not write and skips when loading) and the
value's schema version. The rest is the non-flexible (v0-3) or flexible
(v4+) encoding of these schemas (Kafka's group-coordinator module,
``OffsetCommitKey/Value``, ``GroupMetadataKey/Value``):

- OffsetCommitKey (types 0 and 1): group, topic, partition.
- OffsetCommitValue v0-4 (4 flexible): offset, leaderEpoch (v3+),
  metadata, commitTimestamp, expireTimestamp (v1 only). Written as v3, or
  v1 when the commit carries an expire timestamp (OffsetCommit v2-4
  retention time), as Kafka does.
- GroupMetadataKey (type 2): group.
- GroupMetadataValue v0-4 (4 flexible): protocolType, generation,
  protocol, leader, currentStateTimestamp (v2+), members (memberId,
  groupInstanceId v3+, clientId, clientHost, rebalanceTimeout v1+,
  sessionTimeout, subscription, assignment). Written as v3.

KIP-848 consumer groups (Kafka's ``ConsumerGroup*`` coordinator records;
keys are non-flexible, values flexible version 0, unknown tagged fields
ignored):

- type 3 ConsumerGroupMetadata, key group: value epoch (the group epoch).
- type 4 ConsumerGroupPartitionMetadata, key group: value epoch, topics
  (topicId, topicName, numPartitions, partitionRacks) — the subscribed
  topics the target assignment was computed for.
- type 5 ConsumerGroupMemberMetadata, key group + member: instanceId,
  rackId, clientId, clientHost, subscribedTopicNames,
  subscribedTopicRegex, rebalanceTimeoutMs, serverAssignor.
- type 6 ConsumerGroupTargetAssignmentMetadata, key group: assignmentEpoch.
- type 7 ConsumerGroupTargetAssignmentMember, key group + member: the
  member's target partitions (topicId, partitions).
- type 8 ConsumerGroupCurrentMemberAssignment, key group + member:
  memberEpoch, previousMemberEpoch, state (0 stable, 1 unrevoked, 2
  unreleased partitions), assigned partitions, partitions pending revocation.

A null value is a tombstone (offset deleted / group deleted / member gone).
"""

from __future__ import annotations

import struct
from typing import Any

import attrs

from ..protocol.codec import MessageCodec, VersionRange

OFFSETS_TOPIC = "__consumer_offsets"

KEY_LEGACY_OFFSET_COMMIT = 0
KEY_OFFSET_COMMIT = 1
KEY_GROUP_METADATA = 2
KEY_CG_METADATA = 3
KEY_CG_PARTITION_METADATA = 4
KEY_CG_MEMBER_METADATA = 5
KEY_CG_TARGET_METADATA = 6
KEY_CG_TARGET_MEMBER = 7
KEY_CG_CURRENT_MEMBER = 8
CONSUMER_GROUP_KEYS = range(KEY_CG_METADATA, KEY_CG_CURRENT_MEMBER + 1)

OFFSET_VALUE_VERSION = 3
OFFSET_VALUE_VERSION_WITH_EXPIRE = 1
GROUP_VALUE_VERSION = 3

_I16 = struct.Struct(">h")


def java_string_hash(s: str) -> int:
    """Java's ``String.hashCode`` (over UTF-16 code units, 32-bit overflow)."""
    h = 0
    data = s.encode("utf-16-be", "surrogatepass")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(group_id: str, partitions: int) -> int:
    """Kafka's ``Utils.abs(groupId.hashCode()) % partitions``."""
    h = java_string_hash(group_id)
    return (0 if h == -(1 << 31) else abs(h)) % partitions


# -- schemas (our own definitions of Kafka's record formats) --------------------------------

def _codec(name: str, fields: list[dict[str, Any]], structs: list[dict[str, Any]] | None = None,
           valid: str = "0", flexible: str = "none") -> MessageCodec:
    return MessageCodec(name, fields, structs or [], VersionRange(valid), VersionRange(flexible))


OFFSET_COMMIT_KEY = _codec("OffsetCommitKey", [
    {"name": "Group", "type": "string", "versions": "0"},
    {"name": "Topic", "type": "string", "versions": "0"},
    {"name": "Partition", "type": "int32", "versions": "0"},
])
GROUP_METADATA_KEY = _codec("GroupMetadataKey", [
    {"name": "Group", "type": "string", "versions": "0"},
])
OFFSET_COMMIT_VALUE = _codec("OffsetCommitValue", [
    {"name": "Offset", "type": "int64", "versions": "0+"},
    {"name": "LeaderEpoch", "type": "int32", "versions": "3+", "default": "-1"},
    {"name": "Metadata", "type": "string", "versions": "0+"},
    {"name": "CommitTimestamp", "type": "int64", "versions": "0+"},
    {"name": "ExpireTimestamp", "type": "int64", "versions": "1", "default": "-1"},
], valid="0-4", flexible="4+")
GROUP_METADATA_VALUE = _codec("GroupMetadataValue", [
    {"name": "ProtocolType", "type": "string", "versions": "0+"},
    {"name": "Generation", "type": "int32", "versions": "0+"},
    {"name": "Protocol", "type": "string", "versions": "0+", "nullableVersions": "0+"},
    {"name": "Leader", "type": "string", "versions": "0+", "nullableVersions": "0+"},
    {"name": "CurrentStateTimestamp", "type": "int64", "versions": "2+", "default": "-1"},
    {"name": "Members", "type": "[]MemberMetadata", "versions": "0+"},
], [{"name": "MemberMetadata", "versions": "0+", "fields": [
    {"name": "MemberId", "type": "string", "versions": "0+"},
    {"name": "GroupInstanceId", "type": "string", "versions": "3+", "nullableVersions": "3+",
     "default": "null"},
    {"name": "ClientId", "type": "string", "versions": "0+"},
    {"name": "ClientHost", "type": "string", "versions": "0+"},
    {"name": "RebalanceTimeout", "type": "int32", "versions": "1+"},
    {"name": "SessionTimeout", "type": "int32", "versions": "0+"},
    {"name": "Subscription", "type": "bytes", "versions": "0+"},
    {"name": "Assignment", "type": "bytes", "versions": "0+"},
]}], valid="0-4", flexible="4+")


_GROUP_KEY_FIELDS = [{"name": "GroupId", "type": "string", "versions": "0"}]
_MEMBER_KEY_FIELDS = [{"name": "GroupId", "type": "string", "versions": "0"},
                      {"name": "MemberId", "type": "string", "versions": "0"}]
CG_GROUP_KEY = _codec("ConsumerGroupKey", _GROUP_KEY_FIELDS)
CG_MEMBER_KEY = _codec("ConsumerGroupMemberKey", _MEMBER_KEY_FIELDS)
_TOPIC_PARTITIONS = {"name": "TopicPartitions", "versions": "0+", "fields": [
    {"name": "TopicId", "type": "uuid", "versions": "0+"},
    {"name": "Partitions", "type": "[]int32", "versions": "0+"},
]}
CG_VALUES: dict[int, MessageCodec] = {
    KEY_CG_METADATA: _codec("ConsumerGroupMetadataValue", [
        {"name": "Epoch", "type": "int32", "versions": "0+"},
    ], flexible="0+"),
    KEY_CG_PARTITION_METADATA: _codec("ConsumerGroupPartitionMetadataValue", [
        {"name": "Epoch", "type": "int32", "versions": "0+"},
        {"name": "Topics", "type": "[]TopicMetadata", "versions": "0+"},
    ], [{"name": "TopicMetadata", "versions": "0+", "fields": [
        {"name": "TopicId", "type": "uuid", "versions": "0+"},
        {"name": "TopicName", "type": "string", "versions": "0+"},
        {"name": "NumPartitions", "type": "int32", "versions": "0+"},
        {"name": "PartitionRacks", "type": "[]PartitionRacks", "versions": "0+"},
    ]}, {"name": "PartitionRacks", "versions": "0+", "fields": [
        {"name": "Partition", "type": "int32", "versions": "0+"},
        {"name": "Racks", "type": "[]string", "versions": "0+"},
    ]}], flexible="0+"),
    KEY_CG_MEMBER_METADATA: _codec("ConsumerGroupMemberMetadataValue", [
        {"name": "InstanceId", "type": "string", "versions": "0+", "nullableVersions": "0+"},
        {"name": "RackId", "type": "string", "versions": "0+", "nullableVersions": "0+"},
        {"name": "ClientId", "type": "string", "versions": "0+"},
        {"name": "ClientHost", "type": "string", "versions": "0+"},
        {"name": "SubscribedTopicNames", "type": "[]string", "versions": "0+"},
        {"name": "SubscribedTopicRegex", "type": "string", "versions": "0+", "nullableVersions": "0+"},
        {"name": "RebalanceTimeoutMs", "type": "int32", "versions": "0+", "default": "-1"},
        {"name": "ServerAssignor", "type": "string", "versions": "0+", "nullableVersions": "0+"},
    ], flexible="0+"),
    KEY_CG_TARGET_METADATA: _codec("ConsumerGroupTargetAssignmentMetadataValue", [
        {"name": "AssignmentEpoch", "type": "int32", "versions": "0+"},
    ], flexible="0+"),
    KEY_CG_TARGET_MEMBER: _codec("ConsumerGroupTargetAssignmentMemberValue", [
        {"name": "TopicPartitions", "type": "[]TopicPartitions", "versions": "0+"},
    ], [_TOPIC_PARTITIONS], flexible="0+"),
    KEY_CG_CURRENT_MEMBER: _codec("ConsumerGroupCurrentMemberAssignmentValue", [
        {"name": "MemberEpoch", "type": "int32", "versions": "0+"},
        {"name": "PreviousMemberEpoch", "type": "int32", "versions": "0+"},
        {"name": "State", "type": "int8", "versions": "0+"},
        {"name": "AssignedPartitions", "type": "[]TopicPartitions", "versions": "0+"},
        {"name": "PartitionsPendingRevocation", "type": "[]TopicPartitions", "versions": "0+"},
    ], [_TOPIC_PARTITIONS], flexible="0+"),
}
_MEMBER_KEYED = (KEY_CG_MEMBER_METADATA, KEY_CG_TARGET_MEMBER, KEY_CG_CURRENT_MEMBER)


# -- typed records ------------------------------------------------------------------------

@attrs.frozen
class OffsetAndMetadata:
    offset: int
    leader_epoch: int  # -1 = none
    metadata: str
    commit_timestamp: int
    expire_timestamp: int = -1  # -1 = none (broker retention applies)


@attrs.frozen
class OffsetRecord:
    group: str
    topic: str
    partition: int
    value: OffsetAndMetadata | None  # None = tombstone


@attrs.frozen
class GroupRecord:
    group: str
    value: dict[str, Any] | None  # decoded GroupMetadataValue (snake_case keys); None = tombstone


@attrs.frozen
class ConsumerGroupRecord:
    """One KIP-848 record: ``kind`` is its key type (3-8), ``member_id``
    set for the member-keyed kinds (5, 7, 8); ``value`` decoded, None = tombstone."""

    kind: int
    group: str
    member_id: str | None
    value: dict[str, Any] | None


def consumer_group_key(kind: int, group: str, member_id: str | None = None) -> bytes:
    if kind in _MEMBER_KEYED:
        return _with_version(kind, CG_MEMBER_KEY.encode({"group_id": group, "member_id": member_id}, 0))
    return _with_version(kind, CG_GROUP_KEY.encode({"group_id": group}, 0))


def consumer_group_value(kind: int, value: dict[str, Any]) -> bytes:
    return _with_version(0, CG_VALUES[kind].encode(value, 0))


def _with_version(version: int, body: bytes) -> bytes:
    return _I16.pack(version) + body


def offset_commit_key(group: str, topic: str, partition: int) -> bytes:
    return _with_version(KEY_OFFSET_COMMIT, OFFSET_COMMIT_KEY.encode(
        {"group": group, "topic": topic, "partition": partition}, 0))


def offset_commit_value(om: OffsetAndMetadata) -> bytes:
    version = OFFSET_VALUE_VERSION_WITH_EXPIRE if om.expire_timestamp >= 0 else OFFSET_VALUE_VERSION
    return _with_version(version, OFFSET_COMMIT_VALUE.encode(
        {"offset": om.offset, "leader_epoch": om.leader_epoch, "metadata": om.metadata,
         "commit_timestamp": om.commit_timestamp, "expire_timestamp": om.expire_timestamp}, version))


def group_metadata_key(group: str) -> bytes:
    return _with_version(KEY_GROUP_METADATA, GROUP_METADATA_KEY.encode({"group": group}, 0))


def group_metadata_value(value: dict[str, Any]) -> bytes:
    return _with_version(GROUP_VALUE_VERSION, GROUP_METADATA_VALUE.encode(value, GROUP_VALUE_VERSION))


def decode(key: bytes | None, value: bytes | None) -> OffsetRecord | GroupRecord | ConsumerGroupRecord | None:
    """Decode one record of ``__consumer_offsets``; None for record types
    this broker does not keep (share and streams group records)."""
    if key is None or len(key) < 2:
        raise ValueError("record without a versioned key")
    (ktype,) = _I16.unpack_from(key, 0)
    if ktype in (KEY_LEGACY_OFFSET_COMMIT, KEY_OFFSET_COMMIT):
        k, _ = OFFSET_COMMIT_KEY.decode(key, 0, 2)
        om = None
        if value is not None:
            (vv,) = _I16.unpack_from(value, 0)
            if not 0 <= vv <= 4:
                raise ValueError(f"unknown OffsetCommitValue version {vv}")
            v, _ = OFFSET_COMMIT_VALUE.decode(value, vv, 2)
            om = OffsetAndMetadata(v["offset"], v["leader_epoch"], v["metadata"] or "",
                                   v["commit_timestamp"], v["expire_timestamp"])
        return OffsetRecord(k["group"], k["topic"], k["partition"], om)
    if ktype == KEY_GROUP_METADATA:
        k, _ = GROUP_METADATA_KEY.decode(key, 0, 2)
        gv = None
        if value is not None:
            (vv,) = _I16.unpack_from(value, 0)
            if not 0 <= vv <= 4:
                raise ValueError(f"unknown GroupMetadataValue version {vv}")
            gv, _ = GROUP_METADATA_VALUE.decode(value, vv, 2)
            if vv < 1:
                for m in gv["members"]:
                    m["rebalance_timeout"] = m["session_timeout"]
        return GroupRecord(k["group"], gv)
    if ktype in CONSUMER_GROUP_KEYS:
        member_keyed = ktype in _MEMBER_KEYED
        k, _ = (CG_MEMBER_KEY if member_keyed else CG_GROUP_KEY).decode(key, 0, 2)
        cv = None
        if value is not None:
            (vv,) = _I16.unpack_from(value, 0)
            if vv != 0:
                raise ValueError(f"unknown version {vv} of consumer group record type {ktype}")
            cv, _ = CG_VALUES[ktype].decode(value, 0, 2)
        return ConsumerGroupRecord(ktype, k["group_id"], k["member_id"] if member_keyed else None, cv)
    return None
