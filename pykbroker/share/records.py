"""Records of ``__share_group_state``: one snapshot of a share-partition per record.

Modelled on Kafka's share coordinator ``ShareSnapshot`` records: the key
starts with an int16 record type (0) followed by (GroupId, TopicId,
Partition); the value starts with an int16 version (0) followed by the
flexible encoding of (SnapshotEpoch, StateEpoch, LeaderEpoch, StartOffset,
StateBatches[FirstOffset, LastOffset, DeliveryState, DeliveryCount]).
Deviation: every change writes a whole snapshot (Kafka also writes
``ShareUpdate`` delta records, type 1, between snapshots); records of
other types are skipped when loading. A null value (tombstone) deletes the
share-partition's state (DeleteShareGroupOffsets). The topic is compacted,
so the latest snapshot of each share-partition is what survives.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import attrs

from ..group.records import java_string_hash
from ..protocol.codec import MessageCodec, VersionRange

SHARE_STATE_TOPIC = "__share_group_state"
KEY_SHARE_SNAPSHOT = 0
SNAPSHOT_VALUE_VERSION = 0

_I16 = struct.Struct(">h")


def _codec(name: str, fields: list[dict[str, Any]], structs: list[dict[str, Any]] | None = None,
           flexible: str = "none") -> MessageCodec:
    return MessageCodec(name, fields, structs or [], VersionRange("0"), VersionRange(flexible))


SNAPSHOT_KEY = _codec("ShareSnapshotKey", [
    {"name": "GroupId", "type": "string", "versions": "0"},
    {"name": "TopicId", "type": "uuid", "versions": "0"},
    {"name": "Partition", "type": "int32", "versions": "0"},
])
SNAPSHOT_VALUE = _codec("ShareSnapshotValue", [
    {"name": "SnapshotEpoch", "type": "int32", "versions": "0"},
    {"name": "StateEpoch", "type": "int32", "versions": "0"},
    {"name": "LeaderEpoch", "type": "int32", "versions": "0"},
    {"name": "StartOffset", "type": "int64", "versions": "0"},
    {"name": "StateBatches", "type": "[]StateBatch", "versions": "0", "fields": [
        {"name": "FirstOffset", "type": "int64", "versions": "0"},
        {"name": "LastOffset", "type": "int64", "versions": "0"},
        {"name": "DeliveryState", "type": "int8", "versions": "0"},
        {"name": "DeliveryCount", "type": "int16", "versions": "0"},
    ]},
], flexible="0+")


@attrs.frozen
class ShareSnapshot:
    group_id: str
    topic_id: bytes
    partition: int
    value: dict[str, Any] | None  # decoded ShareSnapshotValue (snake_case keys); None = tombstone


def coordinator_key(group_id: str, topic_id: bytes, partition: int) -> str:
    """Kafka's share coordinator key: ``groupId:topicId:partition`` (topic id in base64url)."""
    tid = base64.urlsafe_b64encode(topic_id).rstrip(b"=").decode()
    return f"{group_id}:{tid}:{partition}"


def partition_for(key: str, partitions: int) -> int:
    h = java_string_hash(key)
    return (0 if h == -(1 << 31) else abs(h)) % partitions


def snapshot_key(group_id: str, topic_id: bytes, partition: int) -> bytes:
    return _I16.pack(KEY_SHARE_SNAPSHOT) + SNAPSHOT_KEY.encode(
        {"group_id": group_id, "topic_id": topic_id, "partition": partition}, 0)


def snapshot_value(value: dict[str, Any]) -> bytes:
    return _I16.pack(SNAPSHOT_VALUE_VERSION) + SNAPSHOT_VALUE.encode(value, SNAPSHOT_VALUE_VERSION)


def decode(key: bytes | None, value: bytes | None) -> ShareSnapshot | None:
    """One record of ``__share_group_state``; None for record types not kept."""
    if key is None or len(key) < 2:
        raise ValueError("record without a versioned key")
    (ktype,) = _I16.unpack_from(key, 0)
    if ktype != KEY_SHARE_SNAPSHOT:
        return None
    k, _ = SNAPSHOT_KEY.decode(key, 0, 2)
    v = None
    if value is not None:
        (vv,) = _I16.unpack_from(value, 0)
        if vv != SNAPSHOT_VALUE_VERSION:
            raise ValueError(f"unknown ShareSnapshotValue version {vv}")
        v, _ = SNAPSHOT_VALUE.decode(value, vv, 2)
    return ShareSnapshot(k["group_id"], bytes(k["topic_id"]), k["partition"], v)
