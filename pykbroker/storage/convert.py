"""Record-level work on batches: what needs the records, not just headers.

- :func:`validate_records` — checks Kafka's LogValidator makes per record
  that the header-only :func:`~pykbroker.protocol.records.validate_batches`
  cannot: a compacted topic rejects records without a key (INVALID_RECORD,
  with Kafka's per-record errors and summary message).
- :func:`needs_conversion` / :func:`convert_batches` — the topic's
  ``compression.type``: ``producer`` keeps batches as sent; a codec name
  (``uncompressed``, ``gzip``, ``snappy``, ``lz4``, ``zstd``) rebuilds a batch
  whose codec differs, at the topic's ``compression.<codec>.level``
  (Kafka's LogValidator "not in-place" path: records renumbered from delta
  0, producer id/epoch/sequence, transactional flag and timestamps kept).
- :func:`build_batch_v2` — encodes a v2 batch from raw record parts, with
  the delete-horizon flag the log cleaner sets on batches holding
  tombstones (base timestamp = delete horizon, KIP-534).
- :func:`split_records` — a batch's records as (offset delta, timestamp
  delta, key, has value, raw bytes) without building objects (the cleaner).

Pure functions on bytes; safe in worker threads and processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from ..protocol.records import (
    unpack_header,
    ATTR_CONTROL,
    ATTR_DELETE_HORIZON,
    ATTR_TIMESTAMP_TYPE,
    ATTR_TRANSACTIONAL,
    BATCH_HEADER,
    BATCH_OVERHEAD,
    COMPRESSION_GZIP,
    COMPRESSION_LZ4,
    COMPRESSION_NONE,
    COMPRESSION_SNAPPY,
    COMPRESSION_ZSTD,
    INVALID_RECORD,
    LOG_OVERHEAD,
    MAGIC_V2,
    MESSAGE_TOO_LARGE,
    BatchHeader,
    InvalidRecords,
    batch_crc,
    compress,
    decode_varint,
    decode_varlong,
    decompress,
    encode_varint,
    encode_varlong,
)
from ..protocol.validator import RecordErrors, batch_body, max_decompressed_bytes
from .log_config import LogConfig

CODECS = {
    "uncompressed": COMPRESSION_NONE,
    "gzip": COMPRESSION_GZIP,
    "snappy": COMPRESSION_SNAPPY,
    "lz4": COMPRESSION_LZ4,
    "zstd": COMPRESSION_ZSTD,
}


class RawRecord(NamedTuple):
    offset_delta: int
    timestamp_delta: int
    key: bytes | None
    has_value: bool
    body: bytes  # the batch's decompressed records
    start: int  # the record in ``body``, length prefix included
    end: int
    body_start: int  # offset from ``start`` of the attributes byte

    @property
    def raw(self) -> memoryview:
        return memoryview(self.body)[self.start : self.end]


# --- record parsing ----------------------------------------------------------------------


def split_records(batch: bytes | memoryview, h: BatchHeader) -> list[RawRecord]:
    """The records of one whole batch (``batch`` starts at its base offset
    field), decompressed, without decoding headers or copying values. The
    one-byte varints that dominate are decoded inline (this is the log
    cleaner's inner loop)."""
    body = decompress(h.compression, memoryview(batch)[BATCH_OVERHEAD : h.size])
    out: list[RawRecord] = []
    append = out.append
    n = len(body)
    p = 0
    try:
        for _ in range(h.records_count):
            start = p
            b = body[p]
            if b < 0x80:
                length = (b >> 1) ^ -(b & 1)
                p += 1
            elif body[p + 1] < 0x80:
                z = (b & 0x7F) | (body[p + 1] << 7)
                length = (z >> 1) ^ -(z & 1)
                p += 2
            else:
                length, p = decode_varint(body, p)
            end = p + length
            if length < 0 or end > n:
                raise ValueError(f"record length {length} runs past the end of the batch")
            body_start = p - start
            q = p + 1  # attributes
            b = body[q]
            if b < 0x80:
                ts_delta = (b >> 1) ^ -(b & 1)
                q += 1
            elif body[q + 1] < 0x80:
                z = (b & 0x7F) | (body[q + 1] << 7)
                ts_delta = (z >> 1) ^ -(z & 1)
                q += 2
            else:
                ts_delta, q = decode_varlong(body, q)
            b = body[q]
            if b < 0x80:
                off_delta = (b >> 1) ^ -(b & 1)
                q += 1
            elif body[q + 1] < 0x80:
                z = (b & 0x7F) | (body[q + 1] << 7)
                off_delta = (z >> 1) ^ -(z & 1)
                q += 2
            else:
                off_delta, q = decode_varint(body, q)
            b = body[q]
            if b < 0x80:
                klen = (b >> 1) ^ -(b & 1)
                q += 1
            else:
                klen, q = decode_varint(body, q)
            if klen >= 0:
                key: bytes | None = body[q : q + klen]
                q += klen
            else:
                key = None
            # value length -1 (null: a tombstone) is the single byte 0x01
            append(RawRecord(off_delta, ts_delta, key, body[q] != 1, body, start, end, body_start))
            p = end
    except (ValueError, IndexError) as e:
        raise InvalidRecords(INVALID_RECORD, f"invalid record in batch at offset {h.base_offset}: {e}") from e
    return out


def reencode_timestamp(r: RawRecord, new_ts_delta: int) -> bytes:
    """``r`` with another timestamp delta (the rest of the record unchanged)."""
    raw = bytes(r.raw)
    p = r.body_start + 1
    _, after_ts = decode_varlong(raw, p)
    body = raw[r.body_start : p] + encode_varlong(new_ts_delta) + raw[after_ts:]
    return encode_varint(len(body)) + body


def reencode_offset(r: RawRecord, new_offset_delta: int) -> bytes:
    """``r`` with another offset delta."""
    raw = bytes(r.raw)
    p = r.body_start + 1
    _, p = decode_varlong(raw, p)
    _, after_off = decode_varint(raw, p)
    body = raw[r.body_start : p] + encode_varint(new_offset_delta) + raw[after_off:]
    return encode_varint(len(body)) + body


# --- compression with levels ---------------------------------------------------------------


def compress_level(codec: int, raw: bytes, config: LogConfig | None) -> bytes:
    """Compress a records block at the topic's compression.<codec>.level."""
    if config is None:
        return compress(codec, raw)
    import cramjam  # the codecs load on first use, not at start-up (issue 17)

    if codec == COMPRESSION_GZIP and config.compression_gzip_level != -1:
        return bytes(cramjam.gzip.compress(raw, level=config.compression_gzip_level))
    if codec == COMPRESSION_LZ4:
        c = cramjam.lz4.Compressor(level=config.compression_lz4_level, content_checksum=False, block_linked=False)
        c.compress(raw)
        return bytes(c.finish())
    if codec == COMPRESSION_ZSTD:
        return bytes(cramjam.zstd.compress(raw, level=config.compression_zstd_level))
    return compress(codec, raw)


# --- building batches --------------------------------------------------------------------------


def build_batch_v2(
    records: Sequence[bytes | memoryview],
    *,
    base_offset: int,
    last_offset_delta: int,
    base_timestamp: int,
    max_timestamp: int,
    codec: int = COMPRESSION_NONE,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    partition_leader_epoch: int = -1,
    log_append_time: bool = False,
    transactional: bool = False,
    control: bool = False,
    delete_horizon: bool = False,
    config: LogConfig | None = None,
    records_count: int | None = None,
) -> bytearray:
    """A v2 batch around already-encoded records (length-prefixed), CRC set.
    ``records`` may also be one block of several records with
    ``records_count`` given."""
    raw = b"".join(bytes(r) if isinstance(r, memoryview) else r for r in records)
    body = compress_level(codec, raw, config) if codec != COMPRESSION_NONE else raw
    attributes = codec & 0x07
    if log_append_time:
        attributes |= ATTR_TIMESTAMP_TYPE
    if transactional:
        attributes |= ATTR_TRANSACTIONAL
    if control:
        attributes |= ATTR_CONTROL
    if delete_horizon:
        attributes |= ATTR_DELETE_HORIZON
    size = BATCH_OVERHEAD + len(body)
    buf = bytearray(size)
    BATCH_HEADER.pack_into(
        buf, 0, base_offset, size - LOG_OVERHEAD, partition_leader_epoch, MAGIC_V2, 0, attributes,
        last_offset_delta, base_timestamp, max_timestamp, producer_id, producer_epoch, base_sequence,
        len(records) if records_count is None else records_count,
    )
    buf[BATCH_OVERHEAD:] = body
    crc = batch_crc(buf, 0, size)
    buf[17:21] = crc.to_bytes(4, "big")
    return buf


def header_of(buf: bytes | bytearray | memoryview, position: int = 0) -> BatchHeader:
    return unpack_header(buf, position, position)


# --- produce-path checks and conversion ------------------------------------------------------


def validate_records(data: bytes | bytearray | memoryview, headers: Sequence[BatchHeader],
                     config: LogConfig, partition: str) -> None:
    """Kafka's per-record checks that need the records (LogValidator.validateKey):
    on a compacted topic every record needs a key. Raises :class:`RecordErrors`
    (INVALID_RECORD) with one error per keyless record."""
    if not config.compact:
        return
    errors: list[tuple[int, str]] = []
    view = memoryview(data)
    for h in headers:
        if h.is_control:
            continue
        for i, r in enumerate(split_records(view[h.position : h.position + h.size], h)):
            if r.key is None:
                errors.append((i, f"Compacted topic cannot accept message without key in topic partition {partition}"))
    if errors:
        shown = ", ".join(f"RecordError(batchIndex={i}, message='{m}')" for i, m in errors[:3])
        raise RecordErrors(
            INVALID_RECORD,
            f"One or more records have been rejected due to {len(errors)} record errors in total, and "
            f"only showing the first three errors at most: [{shown}]",
            errors,
        )


def target_codec(config: LogConfig) -> int | None:
    """The codec a topic's compression.type imposes; None for ``producer``."""
    return CODECS.get(config.compression_type)


def needs_conversion(config: LogConfig, headers: Sequence[BatchHeader]) -> bool:
    target = target_codec(config)
    if target is None:
        return False
    for h in headers:
        if h.compression == target:
            continue
        if h.is_control and h.compression == COMPRESSION_NONE:
            continue  # Kafka does not compress control batches written uncompressed
        return True
    return False


def convert_batches(data: bytes | bytearray | memoryview, headers: Sequence[BatchHeader], config: LogConfig,
                    partition: str, now_ms: int, *, validated: bool = False) -> tuple[bytearray, list[BatchHeader]]:
    """Rebuild the batches whose codec is not the topic's compression.type
    (each keeps its producer id/epoch/sequence, flags and record
    timestamps; offsets are assigned later). MESSAGE_TOO_LARGE when a
    rebuilt batch exceeds max.message.bytes, as Kafka checks after
    conversion.

    With ``validated`` (the records passed protocol/validator.py, so their
    offset deltas are already 0..n-1) the records block is decompressed
    within the validator's bound and recompressed as one block, without a
    Python object per record."""
    target = target_codec(config)
    assert target is not None
    out = bytearray()
    new_headers: list[BatchHeader] = []
    view = memoryview(data)
    for h in headers:
        batch = view[h.position : h.position + h.size]
        if h.compression == target or (h.is_control and h.compression == COMPRESSION_NONE):
            pos = len(out)
            out += batch
            new_headers.append(header_of(out, pos))
            continue
        if validated:
            # one block: decompressed within the validator's bound, offset deltas already 0..n-1
            records: list[bytes | memoryview] = [batch_body(batch, header_of(batch, 0),
                                                             max_decompressed_bytes(config.max_message_bytes))]
            count, last_delta = h.records_count, h.last_offset_delta
        else:
            recs = split_records(batch, h)
            # renumber offset deltas 0..n-1 (Kafka's builder appends with consecutive offsets)
            records = [bytes(r.raw) if r.offset_delta == i else reencode_offset(r, i) for i, r in enumerate(recs)]
            count, last_delta = len(recs), max(len(recs) - 1, 0)
        # timestamp deltas stay relative to the same base timestamp
        nb = build_batch_v2(
            records,
            records_count=count,
            base_offset=0,
            last_offset_delta=last_delta,
            base_timestamp=h.base_timestamp,
            max_timestamp=h.max_timestamp,
            codec=target,
            producer_id=h.producer_id,
            producer_epoch=h.producer_epoch,
            base_sequence=h.base_sequence,
            partition_leader_epoch=h.partition_leader_epoch,
            transactional=h.is_transactional,
            control=h.is_control,
            config=config,
        )
        _check_converted_size(nb, config, partition)
        pos = len(out)
        out += nb
        new_headers.append(header_of(out, pos))
    return out, new_headers


def _check_converted_size(nb: bytearray, config: LogConfig, partition: str) -> None:
    if len(nb) > config.max_message_bytes:
        raise InvalidRecords(
            MESSAGE_TOO_LARGE,
            f"Message batch size is {len(nb)} bytes in append to partition {partition} which exceeds "
            f"the maximum configured size of {config.max_message_bytes}.",
        )


__all__ = [
    "CODECS",
    "RawRecord",
    "RecordErrors",
    "build_batch_v2",
    "compress_level",
    "convert_batches",
    "needs_conversion",
    "split_records",
    "target_codec",
    "validate_records",
]
