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

A null value is a tombstone (offset deleted / group deleted).
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


def decode(key: bytes | None, value: bytes | None) -> OffsetRecord | GroupRecord | None:
    """Decode one record of ``__consumer_offsets``; None for record types
    this broker does not keep (KIP-848, share and streams group records)."""
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
    return None
