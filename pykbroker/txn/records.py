"""Records of ``__transaction_state``, in Kafka's formats.

Key: int16 version (0) + TransactionLogKey (TransactionalId string).
Value: int16 version + TransactionLogValue; a null value is a tombstone
(the transactional id expired). Version 0 is written for classic
transactions and version 1 (flexible, with tagged PreviousProducerId (0),
NextProducerId (1), ClientTransactionVersion (2)) for transaction version 2,
as Kafka does once transaction.version 2 is enabled::

    ProducerId int64, ProducerEpoch int16, TransactionTimeoutMs int32,
    TransactionStatus int8, TransactionPartitions [Topic, [PartitionIds]]
    (null in Empty), TransactionLastUpdateTimestampMs int64,
    TransactionStartTimestampMs int64

The partition of a transactional id is ``abs(javaHashCode(id)) %
transaction.state.log.num.partitions``, as Kafka's.
"""

from __future__ import annotations

import struct
from typing import Any

from ..group.records import java_string_hash
from ..protocol.codec import MessageCodec, VersionRange
from .metadata import EMPTY, TV_2, TxnTransit

TRANSACTION_STATE_TOPIC = "__transaction_state"

_I16 = struct.Struct(">h")

TXN_LOG_KEY = MessageCodec("TransactionLogKey", [
    {"name": "TransactionalId", "type": "string", "versions": "0"},
], [], VersionRange("0"), VersionRange("none"))

TXN_LOG_VALUE = MessageCodec("TransactionLogValue", [
    {"name": "ProducerId", "type": "int64", "versions": "0+"},
    {"name": "PreviousProducerId", "type": "int64", "versions": "1+", "taggedVersions": "1+", "tag": 0,
     "default": "-1"},
    {"name": "NextProducerId", "type": "int64", "versions": "1+", "taggedVersions": "1+", "tag": 1, "default": "-1"},
    {"name": "ProducerEpoch", "type": "int16", "versions": "0+"},
    {"name": "TransactionTimeoutMs", "type": "int32", "versions": "0+"},
    {"name": "TransactionStatus", "type": "int8", "versions": "0+"},
    {"name": "TransactionPartitions", "type": "[]PartitionsSchema", "versions": "0+", "nullableVersions": "0+",
     "fields": [
         {"name": "Topic", "type": "string", "versions": "0+"},
         {"name": "PartitionIds", "type": "[]int32", "versions": "0+"},
     ]},
    {"name": "TransactionLastUpdateTimestampMs", "type": "int64", "versions": "0+"},
    {"name": "TransactionStartTimestampMs", "type": "int64", "versions": "0+"},
    {"name": "ClientTransactionVersion", "type": "int16", "versions": "1+", "taggedVersions": "1+", "tag": 2,
     "default": "0"},
], [], VersionRange("0-1"), VersionRange("1+"))


def partition_for(transactional_id: str, partitions: int) -> int:
    h = java_string_hash(transactional_id)
    return (0 if h == -(1 << 31) else abs(h)) % partitions


def key_bytes(transactional_id: str) -> bytes:
    return _I16.pack(0) + TXN_LOG_KEY.encode({"transactional_id": transactional_id}, 0)


def value_bytes(t: TxnTransit) -> bytes:
    if t.state == EMPTY:
        parts = None
    else:
        by_topic: dict[str, list[int]] = {}
        for topic, p in sorted(t.partitions):
            by_topic.setdefault(topic, []).append(p)
        parts = [{"topic": topic, "partition_ids": ids} for topic, ids in by_topic.items()]
    version = 1 if t.tv >= TV_2 else 0
    return _I16.pack(version) + TXN_LOG_VALUE.encode({
        "producer_id": t.producer_id, "previous_producer_id": t.prev_producer_id,
        "next_producer_id": t.next_producer_id, "producer_epoch": t.producer_epoch,
        "transaction_timeout_ms": t.timeout_ms, "transaction_status": t.state,
        "transaction_partitions": parts, "transaction_last_update_timestamp_ms": t.update_ts,
        "transaction_start_timestamp_ms": t.start_ts, "client_transaction_version": t.tv,
    }, version)


def decode(key: bytes | None, value: bytes | None) -> tuple[str, dict[str, Any] | None] | None:
    """(transactional id, decoded value or None for a tombstone); None for a
    key version this broker does not know."""
    if key is None or len(key) < 2:
        raise ValueError("record without a versioned key")
    (kv,) = _I16.unpack_from(key, 0)
    if kv != 0:
        return None
    k, _ = TXN_LOG_KEY.decode(key, 0, 2)
    if value is None:
        return k["transactional_id"], None
    (vv,) = _I16.unpack_from(value, 0)
    if not 0 <= vv <= 1:
        raise ValueError(f"unknown TransactionLogValue version {vv}")
    v, _ = TXN_LOG_VALUE.decode(value, vv, 2)
    return k["transactional_id"], v
