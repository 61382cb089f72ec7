"""Record-level validation of produced batches, as Kafka's LogValidator does.

:func:`~pykbroker.protocol.records.validate_batches` checks batch headers and
checksums; a CRC only proves the bytes are what the client computed, not that
the records inside make sense. This module walks the records themselves
(decompressing first), so nothing a reader cannot parse gets into the log:

- compression codec: ids 5-7 (unknown) are UNSUPPORTED_COMPRESSION_TYPE (76);
  zstd needs Produce v7+ (checked by the Produce handler, same code).
- decompression is *bounded*: a batch may expand to at most
  :func:`max_decompressed_bytes` (``DECOMPRESSION_FACTOR`` × the topic's
  max.message.bytes). The codec writes into a lazily-mapped buffer of that
  size and stops when it is full, so a decompression bomb costs at most that
  much memory and time; it is answered MESSAGE_TOO_LARGE (10). A batch whose
  recordsCount could not fit in that bound (each record takes at least 7
  bytes) is rejected before decompressing. Garbage the codec cannot decode
  is CORRUPT_MESSAGE (2), as Kafka answers a failed decompression.
- each record (Kafka's ``DefaultRecord.readFrom``): length, attributes,
  timestamp/offset deltas, key, value and header lengths must be
  consistent varints within the record; a record that does not end where
  its length says, a batch with fewer records than recordsCount or bytes
  left after them: INVALID_RECORD (87).
- offset deltas must be 0, 1, ..., recordsCount - 1 (so lastOffsetDelta =
  recordsCount - 1 describes the records). Deviation: Kafka rewrites a
  compressed batch whose inner offsets are not consecutive (old clients)
  and accepts uncompressed ones as they are; no current client writes such
  batches, and both poison readers here, so they are INVALID_RECORD.
- header keys must be UTF-8 (deviation: Java decodes them leniently;
  our readers decode them strictly, so they are checked here).
- per record (``LogValidator.validateRecord``), collected as Kafka's
  record errors: a keyless record on a compacted topic (INVALID_RECORD), a
  CreateTime timestamp outside [now - message.timestamp.before.max.ms,
  now + message.timestamp.after.max.ms] (INVALID_TIMESTAMP).

Pure functions on bytes: the Produce handler runs them in a worker thread
for anything but small uncompressed batches (cramjam releases the GIL while
decompressing), so one hostile batch costs only its own request.
"""

from __future__ import annotations

import mmap
from collections.abc import Sequence

from ..util import LONG_MAX

from .records import (
    BATCH_OVERHEAD,
    COMPRESSION_GZIP,
    COMPRESSION_LZ4,
    COMPRESSION_NAMES,
    COMPRESSION_NONE,
    COMPRESSION_SNAPPY,
    COMPRESSION_ZSTD,
    CORRUPT_MESSAGE,
    INVALID_RECORD,
    INVALID_TIMESTAMP,
    MESSAGE_TOO_LARGE,
    NO_TIMESTAMP,
    TIMESTAMP_LOG_APPEND_TIME,
    XERIAL_MAGIC,
    _I32,
    _SNAPPY_FRAMED_MAGIC,
    BatchHeader,
    InvalidRecords,
)

UNSUPPORTED_COMPRESSION_TYPE = 76

#: A batch may decompress to at most this many times max.message.bytes.
DECOMPRESSION_FACTOR = 16
#: The smallest v2 record: length, attributes, timestamp delta, offset
#: delta, key length, value length and header count, one byte each.
MIN_RECORD_SIZE = 7
#: At most this many per-record errors are kept (all are counted).
MAX_RECORD_ERRORS = 1000


class RecordErrors(InvalidRecords):
    """Records rejected one by one (Kafka's RecordValidationException): the
    produce response carries ``record_errors`` [(batch_index, message)] and
    Kafka's summary as the partition's error message."""

    def __init__(self, error_code: int, message: str, record_errors: list[tuple[int, str]]) -> None:
        super().__init__(error_code, message)
        self.record_errors = record_errors


def max_decompressed_bytes(max_message_bytes: int) -> int:
    """The most a produced batch may decompress to."""
    return DECOMPRESSION_FACTOR * max(max_message_bytes, 1 << 16)


def _too_large(codec: int, limit: int) -> InvalidRecords:
    return InvalidRecords(
        MESSAGE_TOO_LARGE,
        f"{COMPRESSION_NAMES.get(codec, codec)} records decompress to more than {limit} bytes "
        f"({DECOMPRESSION_FACTOR} x max.message.bytes)",
    )


def _corrupt(codec: int, e: Exception) -> InvalidRecords:
    return InvalidRecords(
        CORRUPT_MESSAGE, f"failed to decompress {COMPRESSION_NAMES.get(codec, codec)} records: {e}"
    )


def _into(fn, data, limit: int, codec: int) -> bytes:  # type: ignore[no-untyped-def]
    """``fn(data, out)`` into an anonymous mapping of ``limit`` bytes (pages
    are only backed once written): never more than ``limit`` materialized."""
    out = mmap.mmap(-1, max(limit, 1))
    try:
        try:
            n = fn(data, out)
        except Exception as e:  # cramjam's DecompressionError
            if "whole buffer" in str(e):
                raise _too_large(codec, limit) from None
            raise _corrupt(codec, e) from None
        return out[:n]
    finally:
        out.close()


def _snappy_raw(data, limit: int) -> bytes:  # type: ignore[no-untyped-def]
    import cramjam

    try:
        n = cramjam.snappy.decompress_raw_len(data)
    except Exception as e:
        raise _corrupt(COMPRESSION_SNAPPY, e) from None
    if n > limit:
        raise _too_large(COMPRESSION_SNAPPY, limit)
    try:
        return bytes(cramjam.snappy.decompress_raw(data))
    except Exception as e:
        raise _corrupt(COMPRESSION_SNAPPY, e) from None


def decompress_bounded(codec: int, data: bytes | memoryview, limit: int) -> bytes:
    """:func:`~pykbroker.protocol.records.decompress` that never produces
    (or allocates) more than ``limit`` bytes: MESSAGE_TOO_LARGE past it,
    CORRUPT_MESSAGE for data the codec rejects, UNSUPPORTED_COMPRESSION_TYPE
    for an unknown codec id."""
    data = bytes(data)
    if codec == COMPRESSION_NONE:
        return data
    import cramjam  # the codecs load on first use, not at start-up (issue 17)

    if codec == COMPRESSION_GZIP:
        return _into(cramjam.gzip.decompress_into, data, limit, codec)
    if codec == COMPRESSION_LZ4:
        return _into(cramjam.lz4.decompress_into, data, limit, codec)
    if codec == COMPRESSION_ZSTD:
        return _into(cramjam.zstd.decompress_into, data, limit, codec)
    if codec == COMPRESSION_SNAPPY:
        if data.startswith(XERIAL_MAGIC):
            chunks: list[bytes] = []
            total = 0
            pos = 16
            while pos < len(data):
                if len(data) - pos < 4:
                    raise _corrupt(codec, ValueError("truncated xerial snappy chunk header"))
                (clen,) = _I32.unpack_from(data, pos)
                pos += 4
                if clen < 0 or pos + clen > len(data):
                    raise _corrupt(codec, ValueError("truncated xerial snappy chunk"))
                chunk = _snappy_raw(data[pos : pos + clen], limit - total)
                total += len(chunk)
                chunks.append(chunk)
                pos += clen
            return b"".join(chunks)
        if data.startswith(_SNAPPY_FRAMED_MAGIC):
            return _into(cramjam.snappy.decompress_into, data, limit, codec)
        return _snappy_raw(data, limit)
    raise InvalidRecords(UNSUPPORTED_COMPRESSION_TYPE, f"unknown compression type id {codec}")


# --- records ------------------------------------------------------------------------------


def _varint(body: bytes, p: int, max_bytes: int = 5) -> tuple[int, int]:
    result = 0
    shift = 0
    for i in range(max_bytes):
        b = body[p + i]
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return (result >> 1) ^ -(result & 1), p + i + 1
        shift += 7
    raise ValueError(f"varint longer than {max_bytes} bytes")


def check_records(
    body: bytes,
    h: BatchHeader,
    *,
    compact: bool = False,
    partition: str = "",
    now_ms: int | None = None,
    timestamp_before_max_ms: int = LONG_MAX,
    timestamp_after_max_ms: int = LONG_MAX,
) -> list[tuple[int, int, str]]:
    """Walk the (decompressed) records of batch ``h``; raise INVALID_RECORD
    for a structural fault, return the per-record errors as
    (batch_index, error_code, message)."""
    n = len(body)
    count = h.records_count
    if count * MIN_RECORD_SIZE > n:
        raise InvalidRecords(
            INVALID_RECORD,
            f"batch claims {count} records but holds only {n} bytes of records "
            f"(a record takes at least {MIN_RECORD_SIZE})",
        )
    errs: list[tuple[int, int, str]] = []
    check_ts = (now_ms is not None and h.timestamp_type != TIMESTAMP_LOG_APPEND_TIME
                and (timestamp_before_max_ms < LONG_MAX or timestamp_after_max_ms < LONG_MAX))
    base_ts = h.base_timestamp
    p = 0
    i = 0
    try:
        for i in range(count):
            b = body[p]
            if b < 0x80:
                length = (b >> 1) ^ -(b & 1)
                p += 1
            else:
                length, p = _varint(body, p)
            end = p + length
            if length < MIN_RECORD_SIZE - 1 or end > n:
                raise ValueError(f"record length {length} is invalid or runs past the batch")
            q = p + 1  # attributes
            b = body[q]
            if b < 0x80:
                ts_delta = (b >> 1) ^ -(b & 1)
                q += 1
            else:
                ts_delta, q = _varint(body, q, 10)
            b = body[q]
            if b < 0x80:
                off_delta = (b >> 1) ^ -(b & 1)
                q += 1
            else:
                off_delta, q = _varint(body, q)
            if off_delta != i:
                raise ValueError(f"record {i} has offset delta {off_delta}; offsets must be consecutive")
            b = body[q]
            if b < 0x80:
                klen = (b >> 1) ^ -(b & 1)
                q += 1
            else:
                klen, q = _varint(body, q)
            if klen < -1:
                raise ValueError(f"invalid key length {klen}")
            if klen >= 0:
                q += klen
            elif compact:
                errs.append((i, INVALID_RECORD,
                             f"Compacted topic cannot accept message without key in topic partition {partition}"))
            b = body[q]
            if b < 0x80:
                vlen = (b >> 1) ^ -(b & 1)
                q += 1
            else:
                vlen, q = _varint(body, q)
            if vlen < -1:
                raise ValueError(f"invalid value length {vlen}")
            if vlen > 0:
                q += vlen
            b = body[q]
            if b == 0:  # no headers: the common case
                if q + 1 != end:
                    raise ValueError(f"expected to read {length} bytes in record payload, but read {q + 1 - p}")
                p = end
                if check_ts and base_ts != NO_TIMESTAMP:
                    _check_ts(errs, i, base_ts + ts_delta, now_ms, timestamp_before_max_ms, timestamp_after_max_ms)
                continue
            nh, q = _varint(body, q)
            if nh < 0:
                raise ValueError(f"invalid negative header count {nh}")
            if nh > end - q:
                raise ValueError(f"header count {nh} does not fit the record")
            for _ in range(nh):
                hk, q = _varint(body, q)
                if hk < 0:
                    raise ValueError(f"invalid negative header key size {hk}")
                # header keys are strings: readers here (and Java's) decode them
                body[q : q + hk].decode("utf-8")
                q += hk
                hv, q = _varint(body, q)
                if hv < -1:
                    raise ValueError(f"invalid header value size {hv}")
                if hv > 0:
                    q += hv
                if q > end:
                    break
            if q != end:
                raise ValueError(f"expected to read {length} bytes in record payload, but read {q - p}")
            p = end
            if check_ts and base_ts != NO_TIMESTAMP:
                _check_ts(errs, i, base_ts + ts_delta, now_ms, timestamp_before_max_ms, timestamp_after_max_ms)
    except (ValueError, IndexError) as e:  # UnicodeDecodeError is a ValueError
        raise InvalidRecords(INVALID_RECORD, f"found invalid record structure (record {i}): {e}") from None
    if p != n:
        raise InvalidRecords(
            INVALID_RECORD,
            f"incorrect declared batch size, {n - p} bytes remaining after {count} records",
        )
    return errs


def _check_ts(errs: list[tuple[int, int, str]], i: int, ts: int, now_ms: int | None, before: int, after: int) -> None:
    assert now_ms is not None
    if now_ms - ts > before or ts - now_ms > after:
        errs.append((i, INVALID_TIMESTAMP,
                     f"Timestamp {ts} of message with offset {i} is out of range. The timestamp "
                     f"should be within [{_bound(now_ms, -before)}, {_bound(now_ms, after)}]"))


def _bound(now: int, delta: int) -> str:
    if abs(delta) >= LONG_MAX:
        return "-inf" if delta < 0 else "+inf"
    return str(now + delta)


def batch_body(buf: bytes | bytearray | memoryview, h: BatchHeader, limit: int) -> bytes:
    """The records block of batch ``h`` (at ``h.position`` in ``buf``),
    decompressed within ``limit`` bytes."""
    codec = h.compression
    if codec > COMPRESSION_ZSTD:
        raise InvalidRecords(UNSUPPORTED_COMPRESSION_TYPE, f"unknown compression type id {codec}")
    raw = memoryview(buf)[h.position + BATCH_OVERHEAD : h.position + h.size]
    if codec == COMPRESSION_NONE:
        return bytes(raw)
    if h.records_count * MIN_RECORD_SIZE > limit:
        raise InvalidRecords(
            MESSAGE_TOO_LARGE,
            f"batch claims {h.records_count} records, more than {limit} decompressed bytes can hold",
        )
    return decompress_bounded(codec, raw, limit)


def validate_records(
    buf: bytes | bytearray | memoryview,
    headers: Sequence[BatchHeader],
    *,
    max_message_bytes: int,
    compact: bool = False,
    partition: str = "",
    now_ms: int | None = None,
    timestamp_before_max_ms: int = LONG_MAX,
    timestamp_after_max_ms: int = LONG_MAX,
) -> None:
    """Validate every record of the (header-validated) batches ``headers``
    in ``buf``. Raises InvalidRecords, or :class:`RecordErrors` with
    Kafka's per-record errors and summary message."""
    limit = max_decompressed_bytes(max_message_bytes)
    for h in headers:
        if h.compression > COMPRESSION_ZSTD:
            raise InvalidRecords(UNSUPPORTED_COMPRESSION_TYPE, f"unknown compression type id {h.compression}")
    for h in headers:
        body = batch_body(buf, h, limit)
        errs = check_records(body, h, compact=compact and not h.is_control, partition=partition,
                             now_ms=now_ms, timestamp_before_max_ms=timestamp_before_max_ms,
                             timestamp_after_max_ms=timestamp_after_max_ms)
        if errs:
            shown = ", ".join(f"RecordError(batchIndex={i}, message='{m}')" for i, _, m in errs[:3])
            # Kafka: INVALID_TIMESTAMP when any record has a bad timestamp
            code = INVALID_TIMESTAMP if any(c == INVALID_TIMESTAMP for _, c, _ in errs) else INVALID_RECORD
            raise RecordErrors(
                code,
                f"One or more records have been rejected due to {len(errs)} record errors in total, and "
                f"only showing the first three errors at most: [{shown}]",
                [(i, m) for i, _, m in errs[:MAX_RECORD_ERRORS]],
            )


__all__ = [
    "DECOMPRESSION_FACTOR",
    "MIN_RECORD_SIZE",
    "RecordErrors",
    "UNSUPPORTED_COMPRESSION_TYPE",
    "batch_body",
    "check_records",
    "decompress_bounded",
    "max_decompressed_bytes",
    "validate_records",
]
