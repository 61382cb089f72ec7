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

Readers keep, per share-partition, the snapshot with the highest
(StateEpoch, LeaderEpoch), the later one on a tie (:func:`latest`): a
write by a data-partition leader that was already deposed (it decided
before it learnt of the new leader) cannot override what the new leader
wrote, and one from before AlterShareGroupOffsets cannot override the
altered state. In a cluster a broker reading a partition led by another
broker first appends a read barrier (key type 32767, null value: never
decoded as state) with acks=-1 and reads up to it, so every write
acknowledged before is seen (pykbroker's own, not Kafka's).
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
KEY_READ_BARRIER = 32767  # pykbroker: a tombstone appended before a remote read (see above)
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


def read_barrier_key() -> bytes:
    return _I16.pack(KEY_READ_BARRIER)


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


SnapKey = tuple[str, bytes, int]  # (group id, topic id, partition)


def latest(snaps: "list[ShareSnapshot]") -> dict[SnapKey, dict[str, Any] | None]:
    """The state of each share-partition from its records in log order: the
    last snapshot unless an earlier one has a higher (StateEpoch,
    LeaderEpoch); a tombstone clears it (None)."""
    out: dict[SnapKey, dict[str, Any] | None] = {}
    for s in snaps:
        k = (s.group_id, s.topic_id, s.partition)
        cur = out.get(k)
        if s.value is not None and cur is not None and \
                (s.value["state_epoch"], s.value["leader_epoch"]) < (cur["state_epoch"], cur["leader_epoch"]):
            continue  # written by a deposed leader, or before the offsets were altered
        out[k] = s.value
    return out
