"""Produce (key 0), versions 3-13 served, 0-13 advertised.

- Advertised from v0 as Kafka 4.x does (KAFKA-18659: older librdkafka stops
  compressing unless v0 is in range); v0-2 requests close the connection.
- Record batches stay bytes: header and CRC-32C validated, then every
  record walked as Kafka's LogValidator does (protocol/validator.py:
  decompression bounded to 16 x max.message.bytes, record structure,
  consecutive offset deltas, keys on compacted topics, timestamps), in a
  worker thread unless the data is small and uncompressed; offsets
  assigned by patching the header, appended as received (or recompressed
  to the topic's compression.type, also in the worker thread). Legacy message sets (magic
  0/1) are rejected with INVALID_RECORD, as Kafka 4.x does (Produce v3+
  carries only magic-2 batches); nothing is converted.
- acks 0 (no response), 1 and -1/all (all goes through the same path that
  replication will extend: with one replica the ISR is this broker); any
  other value: INVALID_REQUIRED_ACKS for every partition.
- Per-partition errors: UNKNOWN_TOPIC_OR_PARTITION (or UNKNOWN_TOPIC_ID, v13),
  MESSAGE_TOO_LARGE, CORRUPT_MESSAGE, INVALID_RECORD, ...; an unknown topic is
  auto-created when auto.create.topics.enable is on.
- v8+: error_message per partition. v13: topics by id.
- Idempotence and transactions (pykbroker/txn/): per producer and
  partition, sequences and epochs are checked in the append path
  (OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH, INVALID_TXN_STATE);
  a retried batch already in the log is answered with its original offsets
  (success, as Kafka, not DUPLICATE_SEQUENCE_NUMBER). A transactional batch
  needs a transactional_id (else TRANSACTIONAL_ID_AUTHORIZATION_FAILED) and
  its partition added to the transaction before its first write there:
  else INVALID_TXN_STATE (v3-10), TRANSACTION_ABORTABLE (v11); v12+ adds
  it implicitly (KIP-890). Coordinator trouble during that check answers
  NOT_ENOUGH_REPLICAS (retriable for every client), a fenced epoch
  INVALID_PRODUCER_EPOCH.
- Cluster mode (zookeeper.connect): a broker that does not lead the
  partition answers NOT_LEADER_OR_FOLLOWER (before validating the data, as
  Kafka); acks=all waits for the ISR through the high watermark, the
  partitions of one request together, at most timeout_ms
  (REQUEST_TIMED_OUT), and may answer NOT_ENOUGH_REPLICAS (ISR below
  min.insync.replicas, nothing written) or NOT_ENOUGH_REPLICAS_AFTER_APPEND.
- ACLs (authorizer.class.name): WRITE on the transactional id, if any (else
  TRANSACTIONAL_ID_AUTHORIZATION_FAILED for every partition), and WRITE on
  each topic (else TOPIC_AUTHORIZATION_FAILED, whether it exists or not);
  auto-creation also needs CREATE on the cluster or the topic.
- Quotas (security/quotas.py): the request's record bytes count against
  the client's producer_byte_rate; over it, throttle_time_ms says for how
  long, and the connection is muted that long after the answer (KIP-219;
  with acks=0 only muted). request_percentage is counted by the dispatcher
  (server/connection.py); the answer carries the longer throttle time.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import trio

import functools

from ..protocol import errors
from ..protocol.codec import Message
from ..protocol.records import (
    COMPRESSION_NONE,
    COMPRESSION_ZSTD,
    BatchHeader,
    Buffer,
    InvalidRecords,
    validate_batches,
)
from ..protocol.validator import validate_records
from ..storage.convert import convert_batches, needs_conversion
from ..storage.api import PartitionStore
from ..security import acl, quotas
from ..txn.producers import verify_transactional
from . import CloseConnection, RequestContext, handler

if TYPE_CHECKING:
    from ..server.state import BrokerState, PartitionState

#: Uncompressed data up to this size is validated on the event loop (a few
#: hundred microseconds); anything else goes to a worker thread.
INLINE_VALIDATION_BYTES = 32 * 1024
#: Worker threads validating (and recompressing) batches at once, per broker
#: run: bounds the memory decompression can take (each at most
#: DECOMPRESSION_FACTOR x max.message.bytes).
VALIDATION_THREADS = 2
_LIMITER: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar("produce_validation_limiter")


def _limiter() -> trio.CapacityLimiter:
    try:
        return _LIMITER.get()
    except LookupError:
        lim = trio.CapacityLimiter(VALIDATION_THREADS)
        _LIMITER.set(lim)
        return lim


def _validate_sync(log: PartitionStore, data: Buffer, headers: list[BatchHeader],
                   now: int) -> tuple[Buffer, list[BatchHeader]]:
    """Record-level validation (protocol/validator.py), then the topic's
    compression.type conversion where the log engine performs one, so the
    append finds the batches already in the topic's codec."""
    c = log.config
    validate_records(
        data, headers, max_message_bytes=c.max_message_bytes, compact=c.compact, partition=log.name,
        now_ms=None if c.log_append_time else now,
        timestamp_before_max_ms=c.message_timestamp_before_max_ms,
        timestamp_after_max_ms=c.message_timestamp_after_max_ms,
    )
    if needs_conversion(c, headers):  # either engine: the append then finds nothing to convert
        return convert_batches(data, headers, c, log.name, now, validated=True)
    return data, headers


async def validate(p: PartitionState, data: Buffer, now: int, version: int) -> tuple[Buffer, list[BatchHeader]]:
    """Kafka's produce-path validation of one partition's records: headers
    and CRCs on the event loop, records (decompressed within a bound) in a
    worker thread unless the data is small and uncompressed. Returns the
    (possibly recompressed) data and its batch headers; raises InvalidRecords."""
    log = p.log
    c = log.config
    headers = validate_batches(
        data,
        max_batch_bytes=c.max_message_bytes,
        now_ms=now,
        log_append_time=c.log_append_time,
        timestamp_before_max_ms=c.message_timestamp_before_max_ms,
        timestamp_after_max_ms=c.message_timestamp_after_max_ms,
    )
    if version < 7 and any(h.compression == COMPRESSION_ZSTD for h in headers):
        raise InvalidRecords(errors.UNSUPPORTED_COMPRESSION_TYPE, "zstd compression needs Produce v7 or later")
    work = functools.partial(_validate_sync, log, data, headers, now)
    if (len(data) <= INLINE_VALIDATION_BYTES and all(h.compression == COMPRESSION_NONE for h in headers)
            and not needs_conversion(c, headers)):
        return work()
    return await trio.to_thread.run_sync(work, limiter=_limiter())


def _part(index: int, code: int, base_offset: int = -1, append_time: int = -1,
          log_start: int = -1, message: str | None = None, record_errors: list[Message] | None = None) -> Message:
    return {"index": index, "error_code": code, "base_offset": base_offset,
            "log_append_time_ms": append_time, "log_start_offset": log_start,
            "record_errors": record_errors or [], "error_message": message}


def _invalid(index: int, e: InvalidRecords) -> Message:
    """Rejected records; per-record errors (e.g. a keyless record on a
    compacted topic, storage/convert.py) go in record_errors as Kafka's."""
    recs = [{"batch_index": i, "batch_index_error_message": m} for i, m in getattr(e, "record_errors", ())]
    return _part(index, e.error_code, message=str(e), record_errors=recs)


async def _append(st: BrokerState, p: PartitionState, idx: int, data: Buffer, headers: list[BatchHeader], acks: int,
                  now: int, timeout_ms: int,
                  txn_id: str | None = None, version: int = 3) -> Message:
    if any(h.is_transactional for h in headers):
        # the partition must be in the producer's transaction (KIP-890 verification;
        # Produce v12+ adds it implicitly), checked right before the append
        code, msg = await verify_transactional(st, txn_id, p, headers, add_partition=version >= 12,
                                               generic_errors=version >= 11)
        if code:
            return _part(idx, code, message=msg)
    try:
        res = await st.append(p, bytearray(data), headers, acks=acks, now=now, timeout_ms=timeout_ms)
    except InvalidRecords as e:
        return _invalid(idx, e)
    except errors.KafkaError as e:
        return _part(idx, e.code, message=e.message)
    return _part(idx, errors.NONE, res.base_offset, res.log_append_time, p.log_start_offset)


@handler(0, 3, 13, advertised_min=0)
async def handle(ctx: RequestContext, req: Message) -> Message | None:
    st = ctx.state
    v = ctx.api_version
    acks = req["acks"]
    now = int(time.time() * 1000)
    responses = []
    # acks=all: the partitions wait for their in-sync replicas together
    deferred: list[tuple[list[Message | None], int, PartitionState, int, Buffer, list[BatchHeader]]] = []
    txn_denied = req["transactional_id"] is not None and \
        not ctx.allowed(acl.WRITE, acl.TRANSACTIONAL_ID, req["transactional_id"])
    for t in req["topic_data"]:
        denied = txn_denied
        if v >= 13:
            ts = st.topics_by_id.get(t["topic_id"])
            missing = errors.UNKNOWN_TOPIC_ID
            denied = denied or (ts is not None and not ctx.allowed(acl.WRITE, acl.TOPIC, ts.name))
        else:
            denied = denied or not ctx.allowed(acl.WRITE, acl.TOPIC, t["name"])
            ts = st.topics.get(t["name"])
            if ts is None and not denied and ctx.may_create_topic(t["name"]):
                ts = st.maybe_auto_create(t["name"])
            missing = errors.UNKNOWN_TOPIC_OR_PARTITION
        parts: list[Message | None] = []
        for pd in t["partition_data"]:
            idx = pd["index"]
            if acks not in (0, 1, -1):
                parts.append(_part(idx, errors.INVALID_REQUIRED_ACKS))
                continue
            if denied:
                parts.append(_part(idx, errors.TRANSACTIONAL_ID_AUTHORIZATION_FAILED if txn_denied
                                   else errors.TOPIC_AUTHORIZATION_FAILED))
                continue
            if ts is None or not 0 <= idx < len(ts.partitions):
                parts.append(_part(idx, missing if ts is None else errors.UNKNOWN_TOPIC_OR_PARTITION))
                continue
            p = ts.partitions[idx]
            data = pd["records"]
            try:
                st.replicas.check_leader(p)  # NOT_LEADER_OR_FOLLOWER before validation, as Kafka
                if not data:
                    raise InvalidRecords(errors.INVALID_RECORD, "produce request with no records")
                data, headers = await validate(p, data, now, v)
            except InvalidRecords as e:
                parts.append(_invalid(idx, e))
                continue
            except errors.KafkaError as e:
                parts.append(_part(idx, e.code, message=e.message))
                continue
            if acks == -1:
                deferred.append((parts, len(parts), p, idx, data, headers))
                parts.append(None)
                continue
            parts.append(await _append(st, p, idx, data, headers, acks, now, req["timeout_ms"],
                                       req["transactional_id"], v))
        responses.append({"name": t["name"], "topic_id": t["topic_id"], "partition_responses": parts})
    if deferred:
        async def one(parts: list[Message | None], slot: int, p: PartitionState, idx: int, data: Buffer,
                      headers: list[BatchHeader]) -> None:
            parts[slot] = await _append(st, p, idx, data, headers, acks, now, req["timeout_ms"],
                                        req["transactional_id"], v)

        async with trio.open_nursery() as n:
            for job in deferred:
                n.start_soon(one, *job)
    # producer_byte_rate (security/quotas.py): throttle_time_ms, and the connection muted that long
    throttle = ctx.record_quota(quotas.PRODUCE, sum(len(pd["records"] or b"") for t in req["topic_data"]
                                                     for pd in t["partition_data"]))
    if acks == 0:
        # Kafka closes the connection of an acks=0 producer whose request
        # failed, the only way such a producer learns of the error.
        if any(pr["error_code"] for r in responses for pr in r["partition_responses"]):
            raise CloseConnection("acks=0 produce failed")
        return None
    return {"responses": responses, "throttle_time_ms": throttle}
