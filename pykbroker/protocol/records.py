"""Record batches (magic v2), sans-IO.

Layout of a v2 record batch (all integers big-endian)::

    0  baseOffset            int64
    8  batchLength           int32   bytes after this field (size = batchLength + 12)
    12 partitionLeaderEpoch  int32
    16 magic                 int8    = 2
    17 crc                   uint32  CRC-32C of bytes [21, size)
    21 attributes            int16   bits 0-2 compression, 3 timestamp type,
                                     4 transactional, 5 control, 6 delete horizon
    23 lastOffsetDelta       int32
    27 baseTimestamp         int64
    35 maxTimestamp          int64
    43 producerId            int64
    51 producerEpoch         int16
    53 baseSequence          int32
    57 recordsCount          int32
    61 records               (compressed as one block when compression != 0)

baseOffset and partitionLeaderEpoch are outside the CRC, so the broker can
assign offsets by patching the header in place (what Kafka's LogValidator
does for v2 batches with "in-place assignment").

The produce path (:func:`validate_batches`, :func:`assign_offsets`) only
looks at batch headers and checksums; decoding individual records
(:func:`decode_records`) is there for tests and for features that need
record contents (timestamp lookup inside a batch, compaction, conversion).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Sequence
from typing import cast

import attrs

from ..util import LONG_MAX


_CRC32C: Callable[[Buffer], int] | None = None


def _crc32c_fn() -> Callable[[Buffer], int]:
    """crc32c.crc32c, imported on first use: the package imports
    importlib.metadata, which costs ~50 ms of broker start-up."""
    global _CRC32C
    if _CRC32C is None:
        from crc32c import crc32c

        _CRC32C = crc32c
    return _CRC32C

# --- Kafka error codes used here ------------------------------------------------
CORRUPT_MESSAGE = 2
MESSAGE_TOO_LARGE = 10
RECORD_LIST_TOO_LARGE = 18
INVALID_TIMESTAMP = 32
UNSUPPORTED_FOR_MESSAGE_FORMAT = 43
INVALID_RECORD = 87

# --- constants ------------------------------------------------------------------
MAGIC_V2 = 2
LOG_OVERHEAD = 12  # baseOffset + batchLength
BATCH_OVERHEAD = 61  # full v2 header
MIN_BATCH_LENGTH = BATCH_OVERHEAD - LOG_OVERHEAD  # 49
LEGACY_RECORD_OVERHEAD_V0 = 14  # smallest size any message format can have
NO_TIMESTAMP = -1
NO_PRODUCER_ID = -1
NO_PARTITION_LEADER_EPOCH = -1

COMPRESSION_NONE = 0
COMPRESSION_GZIP = 1
COMPRESSION_SNAPPY = 2
COMPRESSION_LZ4 = 3
COMPRESSION_ZSTD = 4
COMPRESSION_NAMES = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}

TIMESTAMP_CREATE_TIME = 0
TIMESTAMP_LOG_APPEND_TIME = 1

ATTR_COMPRESSION_MASK = 0x07
ATTR_TIMESTAMP_TYPE = 0x08
ATTR_TRANSACTIONAL = 0x10
ATTR_CONTROL = 0x20
ATTR_DELETE_HORIZON = 0x40

# field offsets inside a batch
OFF_BASE_OFFSET = 0
OFF_LENGTH = 8
OFF_LEADER_EPOCH = 12
OFF_MAGIC = 16
OFF_CRC = 17
OFF_ATTRIBUTES = 21
OFF_LAST_OFFSET_DELTA = 23
OFF_BASE_TIMESTAMP = 27
OFF_MAX_TIMESTAMP = 35
OFF_PRODUCER_ID = 43
OFF_RECORDS_COUNT = 57

BATCH_HEADER = struct.Struct(">qiibIhiqqqhii")  # the 61-byte v2 header, field order of BatchHeader
_HEADER = BATCH_HEADER
assert _HEADER.size == BATCH_OVERHEAD
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")
_I16 = struct.Struct(">h")


Buffer = bytes | bytearray | memoryview


class InvalidRecords(Exception):
    """Records rejected; ``error_code`` is the Kafka error code to answer with."""

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


# --- varints ----------------------------------------------------------------------


def zigzag_encode(n: int) -> int:
    """Zig-zag map a signed 64-bit (or 32-bit) integer to an unsigned one."""
    return (n << 1) ^ (n >> 63)


def zigzag_decode(z: int) -> int:
    return (z >> 1) ^ -(z & 1)


def encode_unsigned_varint(n: int) -> bytes:
    if n < 0:
        raise ValueError(f"unsigned varint cannot be negative: {n}")
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def encode_varint(n: int) -> bytes:
    """Signed zig-zag varint (int32 range)."""
    if not -(2**31) <= n < 2**31:
        raise ValueError(f"varint out of int32 range: {n}")
    return encode_unsigned_varint(zigzag_encode(n) & 0xFFFFFFFF)


def encode_varlong(n: int) -> bytes:
    """Signed zig-zag varlong (int64 range)."""
    if not -(2**63) <= n < 2**63:
        raise ValueError(f"varlong out of int64 range: {n}")
    return encode_unsigned_varint(zigzag_encode(n) & 0xFFFFFFFFFFFFFFFF)


def decode_unsigned_varint(buf: Buffer, pos: int, max_bytes: int = 5) -> tuple[int, int]:
    """Return (value, new position). Raises ValueError if truncated or too long."""
    result = 0
    shift = 0
    for i in range(max_bytes):
        try:
            b = buf[pos + i]
        except IndexError:
            raise ValueError("truncated varint") from None
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos + i + 1
        shift += 7
    raise ValueError(f"varint longer than {max_bytes} bytes")


def decode_varint(buf: Buffer, pos: int) -> tuple[int, int]:
    z, pos = decode_unsigned_varint(buf, pos, 5)
    return zigzag_decode(z), pos


def decode_varlong(buf: Buffer, pos: int) -> tuple[int, int]:
    z, pos = decode_unsigned_varint(buf, pos, 10)
    return zigzag_decode(z), pos


def size_of_unsigned_varint(n: int) -> int:
    size = 1
    while n >= 0x80:
        n >>= 7
        size += 1
    return size


def size_of_varint(n: int) -> int:
    return size_of_unsigned_varint(zigzag_encode(n) & 0xFFFFFFFFFFFFFFFF)


# --- batch header -------------------------------------------------------------------


@attrs.frozen
class BatchHeader:
    """The 61-byte header of a v2 batch, plus where it was found."""

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int
    position: int = 0  # byte offset of the batch in the buffer/file it was read from

    @property
    def size(self) -> int:
        """Whole batch size in bytes, log overhead included."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def end(self) -> int:
        """Position just after the batch."""
        return self.position + self.batch_length + LOG_OVERHEAD

    @property
    def compression(self) -> int:
        return self.attributes & ATTR_COMPRESSION_MASK

    @property
    def timestamp_type(self) -> int:
        """0 = CreateTime, 1 = LogAppendTime."""
        return 1 if self.attributes & ATTR_TIMESTAMP_TYPE else 0

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & ATTR_TRANSACTIONAL)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & ATTR_CONTROL)

    @property
    def has_producer_id(self) -> bool:
        return self.producer_id >= 0

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1


#: what BATCH_HEADER unpacks: BatchHeader's fields but position
HeaderFields = tuple[int, int, int, int, int, int, int, int, int, int, int, int, int]


def unpack_header(buf: Buffer, offset: int, position: int) -> BatchHeader:
    """The header in the 61 bytes at ``offset`` of ``buf``, of a batch found at ``position``."""
    return BatchHeader(*cast(HeaderFields, _HEADER.unpack_from(buf, offset)), position=position)


def parse_batch_header(buf: Buffer, pos: int = 0) -> BatchHeader:
    """Parse the v2 header at ``pos`` (no validation beyond length)."""
    if len(buf) - pos < BATCH_OVERHEAD:
        raise InvalidRecords(
            CORRUPT_MESSAGE,
            f"record batch header needs {BATCH_OVERHEAD} bytes, {max(len(buf) - pos, 0)} available",
        )
    return unpack_header(buf, pos, pos)


def batch_crc(buf: Buffer, pos: int, size: int) -> int:
    """CRC-32C of a batch's bytes from attributes to the end."""
    return _crc32c_fn()(memoryview(buf)[pos + OFF_ATTRIBUTES : pos + size])


def iter_batches(buf: Buffer, pos: int = 0) -> Iterator[BatchHeader]:
    """Headers of every whole batch in ``buf``, stopping at a partial tail.

    Batch framing is checked (a length too small for a v2 batch raises
    CORRUPT_MESSAGE); checksums are not.
    """
    n = len(buf)
    while n - pos >= LOG_OVERHEAD:
        (length,) = _I32.unpack_from(buf, pos + OFF_LENGTH)
        if length < MIN_BATCH_LENGTH:
            raise InvalidRecords(
                CORRUPT_MESSAGE, f"record batch at {pos} has length {length} < {MIN_BATCH_LENGTH}"
            )
        if n - pos < length + LOG_OVERHEAD:
            return
        yield unpack_header(buf, pos, pos)
        pos += length + LOG_OVERHEAD


# --- produce-path validation ------------------------------------------------------------


def validate_batches(
    data: Buffer | None,
    *,
    max_batch_bytes: int | None,
    client: bool = True,
    now_ms: int | None = None,
    log_append_time: bool = False,
    timestamp_before_max_ms: int = LONG_MAX,
    timestamp_after_max_ms: int = 3600000,
) -> list[BatchHeader]:
    """Validate produced record data without decoding records; return the headers.

    Follows Kafka 4.x (``ProduceRequest.validateRecords``,
    ``UnifiedLog.analyzeAndValidateRecords``, ``LogValidator.validateBatch``),
    in Kafka's order, with Kafka's error codes:

    - empty/null data, or not even one whole batch: INVALID_RECORD ("must have
      at least one record batch per partition").
    - a batch length below the smallest any format allows (14): CORRUPT_MESSAGE.
    - magic != 2: INVALID_RECORD. Kafka 4 accepts Produce v3+ only, and
      ``ProduceRequest.validateRecords`` raises InvalidRecordException for any
      other magic, so legacy message sets (magic 0/1) get INVALID_RECORD (87),
      not UNSUPPORTED_FOR_MESSAGE_FORMAT (43), which Kafka 4 no longer uses on
      this path.
    - with ``client`` (AppendOrigin.CLIENT, i.e. a Produce request): more than
      one batch: INVALID_RECORD (Kafka allows exactly one batch per partition
      in Produce v3+); baseOffset != 0: INVALID_RECORD.
    - batch size (batchLength + 12) > ``max_batch_bytes`` (max.message.bytes):
      MESSAGE_TOO_LARGE.
    - size < 61 or CRC-32C mismatch: CORRUPT_MESSAGE.
    - with ``client``: lastOffsetDelta + 1 <= 0, recordsCount <= 0, or
      recordsCount != lastOffsetDelta + 1: INVALID_RECORD; control batches:
      INVALID_RECORD; a producer id with baseSequence < 0: INVALID_RECORD.
    - when ``now_ms`` is given, timestamps (Kafka checks every record; here
      only the header is read): with ``log_append_time`` a batch that claims
      LogAppendTime is INVALID_TIMESTAMP; with CreateTime, maxTimestamp later
      than now + timestamp_after_max_ms, or baseTimestamp earlier than
      now - timestamp_before_max_ms, is INVALID_TIMESTAMP (records inside the
      batch older than its base timestamp are not caught).

    Deviation from Kafka: whole batches followed by a partial batch are
    rejected with CORRUPT_MESSAGE; Kafka silently drops the partial tail.
    """
    if not data:
        raise InvalidRecords(
            INVALID_RECORD, "produce requests must have at least one record batch per partition"
        )
    buf = data
    n = len(buf)
    # 1. framing (Kafka's ByteBufferLogInputStream)
    spans: list[tuple[int, int]] = []
    pos = 0
    partial = False
    while pos < n:
        if n - pos < LOG_OVERHEAD:
            partial = True
            break
        (length,) = _I32.unpack_from(buf, pos + OFF_LENGTH)
        if length < LEGACY_RECORD_OVERHEAD_V0:
            raise InvalidRecords(
                CORRUPT_MESSAGE,
                f"record size {length} at byte {pos} is smaller than the minimum record overhead "
                f"({LEGACY_RECORD_OVERHEAD_V0})",
            )
        if n - pos < length + LOG_OVERHEAD:
            partial = True
            break
        spans.append((pos, length + LOG_OVERHEAD))
        pos += length + LOG_OVERHEAD
    if not spans:
        raise InvalidRecords(
            INVALID_RECORD, "produce requests must have at least one record batch per partition"
        )
    # 2. ProduceRequest.validateRecords
    for p, _ in spans:
        magic = buf[p + OFF_MAGIC]
        if magic != MAGIC_V2:
            raise InvalidRecords(
                INVALID_RECORD,
                f"produce requests are only allowed to contain record batches with magic version 2 "
                f"(got magic {magic})",
            )
    if client and len(spans) > 1:
        raise InvalidRecords(
            INVALID_RECORD, "produce requests are only allowed to contain exactly one record batch per partition"
        )
    if partial:
        raise InvalidRecords(
            CORRUPT_MESSAGE, f"record data ends with a partial batch ({n - pos} trailing bytes)"
        )
    headers: list[BatchHeader] = []
    for p, size in spans:
        (base_offset,) = _I64.unpack_from(buf, p)
        # 3. UnifiedLog.analyzeAndValidateRecords
        if client and base_offset != 0:
            raise InvalidRecords(
                INVALID_RECORD, f"the baseOffset of the record batch should be 0, but it is {base_offset}"
            )
        if max_batch_bytes is not None and size > max_batch_bytes:
            raise InvalidRecords(
                MESSAGE_TOO_LARGE,
                f"the record batch size is {size} bytes which exceeds the maximum configured value "
                f"of {max_batch_bytes}",
            )
        if size < BATCH_OVERHEAD:
            raise InvalidRecords(
                CORRUPT_MESSAGE,
                f"record batch is corrupt (the size {size} is smaller than the minimum allowed "
                f"overhead {BATCH_OVERHEAD})",
            )
        h = unpack_header(buf, p, p)
        computed = batch_crc(buf, p, size)
        if computed != h.crc:
            raise InvalidRecords(
                CORRUPT_MESSAGE,
                f"record is corrupt (stored crc = {h.crc}, computed crc = {computed})",
            )
        # 4. LogValidator.validateBatch
        if client:
            count_from_offsets = h.last_offset_delta + 1
            if count_from_offsets <= 0:
                raise InvalidRecords(
                    INVALID_RECORD,
                    f"batch has an invalid offset range: [{h.base_offset}, {h.last_offset}]",
                )
            if h.records_count <= 0:
                raise InvalidRecords(
                    INVALID_RECORD, f"invalid reported count for record batch: {h.records_count}"
                )
            if count_from_offsets != h.records_count:
                raise InvalidRecords(
                    INVALID_RECORD,
                    f"inconsistent batch offset range [{h.base_offset}, {h.last_offset}] and count "
                    f"of records {h.records_count}",
                )
            if h.is_control:
                raise InvalidRecords(INVALID_RECORD, "clients are not allowed to write control records")
            if h.producer_id >= 0 and h.base_sequence < 0:
                raise InvalidRecords(
                    INVALID_RECORD,
                    f"invalid sequence number {h.base_sequence} in record batch with producerId "
                    f"{h.producer_id}",
                )
        # 5. timestamps
        if now_ms is not None:
            if log_append_time:
                if h.timestamp_type == TIMESTAMP_LOG_APPEND_TIME:
                    raise InvalidRecords(
                        INVALID_TIMESTAMP,
                        "invalid timestamp type: producer should not set timestamp type to LogAppendTime",
                    )
            else:
                if h.max_timestamp != NO_TIMESTAMP and h.max_timestamp - now_ms > timestamp_after_max_ms:
                    raise _invalid_timestamp(h.max_timestamp, now_ms, timestamp_before_max_ms, timestamp_after_max_ms)
                if h.base_timestamp != NO_TIMESTAMP and now_ms - h.base_timestamp > timestamp_before_max_ms:
                    raise _invalid_timestamp(h.base_timestamp, now_ms, timestamp_before_max_ms, timestamp_after_max_ms)
                if h.timestamp_type == TIMESTAMP_LOG_APPEND_TIME and h.max_timestamp == NO_TIMESTAMP:
                    raise InvalidRecords(
                        INVALID_TIMESTAMP,
                        "invalid timestamp type: producer should not set timestamp type to LogAppendTime",
                    )
        headers.append(h)
    return headers


def _invalid_timestamp(ts: int, now: int, before: int, after: int) -> InvalidRecords:
    lo = now - before if before < LONG_MAX else "-inf"
    hi = now + after if after < LONG_MAX else "+inf"
    return InvalidRecords(
        INVALID_TIMESTAMP,
        f"timestamp {ts} of message is out of range. The timestamp should be within [{lo}, {hi}]",
    )


def assign_offsets(
    data: bytearray | memoryview,
    headers: Sequence[BatchHeader],
    base_offset: int,
    *,
    partition_leader_epoch: int,
    log_append_time: int | None,
) -> int:
    """Patch offsets (and leader epoch, timestamps) into validated batches in place.

    Each batch gets its base offset (consecutive, starting at ``base_offset``)
    and ``partition_leader_epoch``; both are outside the CRC. When
    ``log_append_time`` is given (topic with message.timestamp.type =
    LogAppendTime) the timestamp-type attribute bit is set and maxTimestamp
    becomes the append time, and the CRC is recomputed, as Kafka's
    ``DefaultRecordBatch.setMaxTimestamp`` does (baseTimestamp and the records
    are untouched: readers take every record's timestamp from maxTimestamp).
    With CreateTime, a LogAppendTime bit set by the producer is cleared (Kafka
    rewrites the batch as CreateTime too). Returns the last offset assigned.
    """
    offset = base_offset
    for h in headers:
        p = h.position
        _I64.pack_into(data, p + OFF_BASE_OFFSET, offset)
        _I32.pack_into(data, p + OFF_LEADER_EPOCH, partition_leader_epoch)
        attributes = h.attributes
        max_ts = h.max_timestamp
        if log_append_time is not None:
            attributes |= ATTR_TIMESTAMP_TYPE
            max_ts = log_append_time
        else:
            attributes &= ~ATTR_TIMESTAMP_TYPE
        if attributes != h.attributes or max_ts != h.max_timestamp:
            _I16.pack_into(data, p + OFF_ATTRIBUTES, attributes)
            _I64.pack_into(data, p + OFF_MAX_TIMESTAMP, max_ts)
            _U32.pack_into(data, p + OFF_CRC, batch_crc(data, p, h.size))
        offset += h.last_offset_delta + 1
    return offset - 1


# --- compression -----------------------------------------------------------------------

XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = XERIAL_MAGIC + struct.pack(">ii", 1, 1)
_XERIAL_BLOCK = 32 * 1024  # xerial SnappyOutputStream default block size
_SNAPPY_FRAMED_MAGIC = b"\xff\x06\x00\x00sNaPpY"


def compress(codec: int, raw: bytes) -> bytes:
    """Compress a records block as Kafka's Java client does."""
    if codec == COMPRESSION_NONE:
        return raw
    import cramjam  # the codecs load on first use, not at start-up (issue 17)

    if codec == COMPRESSION_GZIP:
        return bytes(cramjam.gzip.compress(raw))
    if codec == COMPRESSION_SNAPPY:
        # Java's SnappyOutputStream (xerial framing): magic, version 1,
        # compatible version 1, then [int32 length, raw snappy block]...
        out = bytearray(_XERIAL_HEADER)
        for i in range(0, max(len(raw), 1), _XERIAL_BLOCK):
            block = bytes(cramjam.snappy.compress_raw(raw[i : i + _XERIAL_BLOCK]))
            out += _I32.pack(len(block))
            out += block
        return bytes(out)
    if codec == COMPRESSION_LZ4:
        # LZ4 frame format with independent blocks: Kafka's Lz4BlockInputStream
        # rejects linked blocks (cramjam.lz4.compress links them)
        c = cramjam.lz4.Compressor(content_checksum=False, block_linked=False)
        c.compress(raw)
        return bytes(c.finish())
    if codec == COMPRESSION_ZSTD:
        return bytes(cramjam.zstd.compress(raw))
    raise InvalidRecords(CORRUPT_MESSAGE, f"unknown compression codec {codec}")


def decompress(codec: int, data: Buffer) -> bytes:
    """Inverse of :func:`compress`; accepts what Java, librdkafka and kafka-python write.

    Snappy: xerial framing (Java, kafka-python) or a raw snappy block
    (librdkafka); the official snappy framing format is accepted too.
    LZ4: the LZ4 frame format (magic v2 batches; the broken v0 header
    checksum of magic 0 does not concern v2).
    """
    data = bytes(data)
    if codec == COMPRESSION_NONE:
        return data
    import cramjam  # the codecs load on first use, not at start-up (issue 17)

    try:
        if codec == COMPRESSION_GZIP:
            return bytes(cramjam.gzip.decompress(data))
        if codec == COMPRESSION_SNAPPY:
            if data.startswith(XERIAL_MAGIC):
                out = bytearray()
                pos = 16
                while pos < len(data):
                    if len(data) - pos < 4:
                        raise ValueError("truncated xerial snappy chunk header")
                    (clen,) = _I32.unpack_from(data, pos)
                    pos += 4
                    if clen < 0 or pos + clen > len(data):
                        raise ValueError("truncated xerial snappy chunk")
                    out += bytes(cramjam.snappy.decompress_raw(data[pos : pos + clen]))
                    pos += clen
                return bytes(out)
            if data.startswith(_SNAPPY_FRAMED_MAGIC):
                return bytes(cramjam.snappy.decompress(data))
            return bytes(cramjam.snappy.decompress_raw(data))
        if codec == COMPRESSION_LZ4:
            return bytes(cramjam.lz4.decompress(data))
        if codec == COMPRESSION_ZSTD:
            return bytes(cramjam.zstd.decompress(data))
    except InvalidRecords:
        raise
    except Exception as e:  # cramjam raises its own DecompressionError / ValueError
        raise InvalidRecords(
            CORRUPT_MESSAGE, f"failed to decompress {COMPRESSION_NAMES.get(codec, codec)} records: {e}"
        ) from e
    raise InvalidRecords(CORRUPT_MESSAGE, f"unknown compression codec {codec}")


# --- records ------------------------------------------------------------------------------

Headers = tuple[tuple[str, bytes | None], ...]


@attrs.frozen
class Record:
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()


RecordInput = Record | tuple[bytes | None, bytes | None, Sequence[tuple[str, bytes | None]], int]


def _decode_bytes(buf: bytes, pos: int) -> tuple[bytes | None, int]:
    n, pos = decode_varint(buf, pos)
    if n < 0:
        return None, pos
    end = pos + n
    if end > len(buf):
        raise ValueError("record field runs past the end of the record")
    return buf[pos:end], end


def decode_records(buf: Buffer, pos: int = 0) -> list[Record]:
    """Decode the records of the batch at ``pos`` (decompressing as needed).

    Offsets are absolute (baseOffset + offsetDelta). With LogAppendTime every
    record's timestamp is the batch's maxTimestamp, as Kafka's readers do.
    Control records are returned like any other (their key/value hold the
    control type and marker). Raises InvalidRecords on malformed data.
    """
    h = parse_batch_header(buf, pos)
    if h.magic != MAGIC_V2:
        raise InvalidRecords(INVALID_RECORD, f"unsupported magic {h.magic}")
    if h.batch_length < MIN_BATCH_LENGTH or len(buf) - pos < h.size:
        raise InvalidRecords(CORRUPT_MESSAGE, "truncated record batch")
    body = decompress(h.compression, memoryview(buf)[pos + BATCH_OVERHEAD : pos + h.size])
    log_append = h.timestamp_type == TIMESTAMP_LOG_APPEND_TIME
    out: list[Record] = []
    p = 0
    try:
        for _ in range(h.records_count):
            length, p = decode_varint(body, p)
            end = p + length
            if length < 0 or end > len(body):
                raise ValueError(f"record length {length} runs past the end of the batch")
            p += 1  # attributes (unused)
            ts_delta, p = decode_varlong(body, p)
            off_delta, p = decode_varint(body, p)
            key, p = _decode_bytes(body, p)
            value, p = _decode_bytes(body, p)
            nh, p = decode_varint(body, p)
            if nh < 0:
                raise ValueError(f"invalid negative header count {nh}")
            hdrs: list[tuple[str, bytes | None]] = []
            for _ in range(nh):
                klen, p = decode_varint(body, p)
                if klen < 0 or p + klen > end:
                    raise ValueError("invalid header key length")
                hkey = body[p : p + klen].decode("utf-8")
                p += klen
                hval, p = _decode_bytes(body, p)
                hdrs.append((hkey, hval))
            if p != end:
                raise ValueError(f"record has {end - p} unread bytes")
            ts = h.max_timestamp if log_append else h.base_timestamp + ts_delta
            out.append(Record(h.base_offset + off_delta, ts, key, value, tuple(hdrs)))
    except (ValueError, UnicodeDecodeError, IndexError) as e:
        raise InvalidRecords(INVALID_RECORD, f"invalid record in batch at offset {h.base_offset}: {e}") from e
    if p != len(body):
        raise InvalidRecords(
            INVALID_RECORD,
            f"batch at offset {h.base_offset} has {len(body) - p} bytes after its {h.records_count} records",
        )
    return out


def _bytes_field(b: bytes | None) -> bytes:
    if b is None:
        return encode_varint(-1)
    return encode_varint(len(b)) + bytes(b)


def encode_record(
    offset_delta: int,
    timestamp_delta: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]] = (),
) -> bytes:
    body = bytearray(b"\x00")  # attributes
    body += encode_varlong(timestamp_delta)
    body += encode_varint(offset_delta)
    body += _bytes_field(key)
    body += _bytes_field(value)
    body += encode_varint(len(headers))
    for hk, hv in headers:
        kb = hk.encode("utf-8")
        body += encode_varint(len(kb)) + kb
        body += _bytes_field(hv)
    return encode_varint(len(body)) + bytes(body)


def build_batch(
    records: Sequence[RecordInput],
    *,
    base_offset: int = 0,
    compression: int = COMPRESSION_NONE,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    transactional: bool = False,
    control: bool = False,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
    timestamp_type: int = TIMESTAMP_CREATE_TIME,
    max_timestamp: int | None = None,
    last_offset_delta: int | None = None,
) -> bytes:
    """Encode one v2 batch with a correct CRC.

    ``records`` are ``(key, value, headers, timestamp)`` tuples (offset
    deltas 0, 1, 2, ...) or :class:`Record` objects (offset delta =
    record.offset - base_offset). baseTimestamp is the first record's
    timestamp and maxTimestamp the largest, as Kafka's producer writes them
    (``max_timestamp`` overrides, e.g. a LogAppendTime batch).
    ``last_offset_delta`` defaults to the last record's offset delta (an
    empty batch, as compaction leaves, needs it given).
    """
    encoded: list[bytes] = []
    items: list[tuple[int, bytes | None, bytes | None, Sequence[tuple[str, bytes | None]], int]] = []
    for i, r in enumerate(records):
        if isinstance(r, Record):
            items.append((r.offset - base_offset, r.key, r.value, r.headers, r.timestamp))
        else:
            key, value, hdrs, ts = r
            items.append((i, key, value, tuple(hdrs or ()), NO_TIMESTAMP if ts is None else ts))
    base_ts = items[0][4] if items else NO_TIMESTAMP
    max_ts = max((it[4] for it in items), default=NO_TIMESTAMP)
    if max_timestamp is not None:
        max_ts = max_timestamp
    for delta, key, value, hdrs, ts in items:
        encoded.append(encode_record(delta, ts - base_ts, key, value, hdrs))
    if last_offset_delta is None:
        if not items:
            raise ValueError("an empty batch needs last_offset_delta")
        last_offset_delta = items[-1][0]
    body = compress(compression, b"".join(encoded))
    attributes = (compression & ATTR_COMPRESSION_MASK) | (ATTR_TIMESTAMP_TYPE if timestamp_type else 0)
    if transactional:
        attributes |= ATTR_TRANSACTIONAL
    if control:
        attributes |= ATTR_CONTROL
    size = BATCH_OVERHEAD + len(body)
    buf = bytearray(size)
    _HEADER.pack_into(
        buf,
        0,
        base_offset,
        size - LOG_OVERHEAD,
        partition_leader_epoch,
        MAGIC_V2,
        0,
        attributes,
        last_offset_delta,
        base_ts,
        max_ts,
        producer_id,
        producer_epoch,
        base_sequence,
        len(items),
    )
    buf[BATCH_OVERHEAD:] = body
    _U32.pack_into(buf, OFF_CRC, batch_crc(buf, 0, size))
    return bytes(buf)


__all__ = [
    "ATTR_CONTROL",
    "ATTR_TIMESTAMP_TYPE",
    "ATTR_TRANSACTIONAL",
    "BATCH_HEADER",
    "BATCH_OVERHEAD",
    "BatchHeader",
    "COMPRESSION_GZIP",
    "COMPRESSION_LZ4",
    "COMPRESSION_NONE",
    "COMPRESSION_SNAPPY",
    "COMPRESSION_ZSTD",
    "CORRUPT_MESSAGE",
    "INVALID_RECORD",
    "INVALID_TIMESTAMP",
    "InvalidRecords",
    "LOG_OVERHEAD",
    "MAGIC_V2",
    "MESSAGE_TOO_LARGE",
    "Record",
    "RECORD_LIST_TOO_LARGE",
    "UNSUPPORTED_FOR_MESSAGE_FORMAT",
    "assign_offsets",
    "batch_crc",
    "build_batch",
    "compress",
    "decode_records",
    "decode_unsigned_varint",
    "decode_varint",
    "decode_varlong",
    "decompress",
    "encode_record",
    "encode_unsigned_varint",
    "encode_varint",
    "encode_varlong",
    "iter_batches",
    "parse_batch_header",
    "validate_batches",
    "zigzag_decode",
    "zigzag_encode",
]
