"""The rules every storage engine applies, written once.

Validation of a client append (batch checks, the compacted-topic key
check), its conversion (``compression.type``, keyless records), the size
bound of one append (``segment.bytes``), the checks on batches a follower
copies from its leader, the read range and the log-start-offset rules
(DeleteRecords). The engines differ only in where the bytes go.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ..protocol.records import (
    RECORD_LIST_TOO_LARGE,
    BatchHeader,
    InvalidRecords,
    iter_batches,
    validate_batches,
)
from .api import OffsetOutOfRange, PartitionStore
from .convert import convert_batches, header_of, needs_conversion, validate_records
from .log_config import LogConfig

Buffer = bytes | bytearray | memoryview


def check_fits_segment(headers: Sequence[BatchHeader], config: LogConfig, name: str) -> int:
    """The size of an append; Kafka refuses one larger than segment.bytes
    (RECORD_LIST_TOO_LARGE): it could never fit in a segment."""
    total = headers[-1].position + headers[-1].size - headers[0].position
    if total > config.segment_bytes:
        raise InvalidRecords(
            RECORD_LIST_TOO_LARGE,
            f"message batch size is {total} bytes in append to partition {name}, which "
            f"exceeds the maximum configured segment size of {config.segment_bytes}",
        )
    return total


def validate_append(config: LogConfig, name: str, data: Buffer | None, now_ms: int | None) -> list[BatchHeader]:
    """:func:`validate_batches` with the topic's max.message.bytes and
    timestamp settings (timestamps checked only when ``now_ms`` is given);
    on a compacted topic every record needs a key (Kafka's
    validateKey)."""
    headers = validate_batches(
        data,
        max_batch_bytes=config.max_message_bytes,
        now_ms=now_ms,
        log_append_time=config.log_append_time,
        timestamp_before_max_ms=config.message_timestamp_before_max_ms,
        timestamp_after_max_ms=config.message_timestamp_after_max_ms,
    )
    if config.compact:
        assert data is not None
        validate_records(data, headers, config, name)
    return headers


def writable_batches(data: Buffer, headers: Sequence[BatchHeader], config: LogConfig, name: str,
                     now_ms: int) -> tuple[bytearray | memoryview, Sequence[BatchHeader]]:
    """The buffer an append patches offsets into (a writable copy if needed),
    converted first when the topic asks (``compression.type``)."""
    if not headers:
        raise ValueError("nothing to append")
    buf: bytearray | memoryview
    if isinstance(data, bytes) or (isinstance(data, memoryview) and data.readonly):
        buf = bytearray(data)
    else:
        buf = data
    if needs_conversion(config, headers):
        buf, headers = convert_batches(buf, headers, config, name, now_ms)
    return buf, headers


def patched_headers(data: Buffer, headers: Sequence[BatchHeader]) -> list[BatchHeader]:
    """The headers of ``headers``' batches re-read after offsets were assigned."""
    return [header_of(data, h.position) for h in headers]


def follower_batches(name: str, data: Buffer, log_end_offset: int) -> tuple[bytes, list[BatchHeader]]:
    """The whole batches of a replica fetch, checked for appending as they
    are: checksums verified (InvalidRecords); the first batch must start at
    ``log_end_offset`` and offsets must increase, else ValueError (the
    follower truncates and fetches again). A partial batch at the end is
    left out. ``(b"", [])`` when there is no whole batch."""
    whole = list(iter_batches(data))
    if not whole:
        return b"", []
    end = whole[-1].position + whole[-1].size
    buf = bytes(memoryview(data)[:end])
    headers = validate_batches(buf, max_batch_bytes=None, client=False)
    if headers[0].base_offset != log_end_offset:
        raise ValueError(f"{name}: fetched data starts at offset {headers[0].base_offset}, "
                         f"the log ends at {log_end_offset}")
    prev = log_end_offset - 1
    for h in headers:
        if h.base_offset <= prev or h.last_offset < h.base_offset:
            raise ValueError(f"{name}: fetched batch offsets [{h.base_offset}, {h.last_offset}] "
                             f"do not follow offset {prev}")
        prev = h.last_offset
    return buf, headers


def check_read_range(name: str, offset: int, log_start_offset: int, log_end_offset: int) -> None:
    if offset < log_start_offset or offset > log_end_offset:
        raise OffsetOutOfRange(
            f"offset {offset} is out of range for partition {name}: log start offset "
            f"{log_start_offset}, log end offset {log_end_offset}",
            log_start_offset,
            log_end_offset,
        )


def check_log_start_advance(plog: PartitionStore, offset: int) -> bool:
    """DeleteRecords: whether moving the log start offset to ``offset`` changes
    anything; OffsetOutOfRange (Kafka's message) past the high watermark."""
    if offset > plog.high_watermark:
        raise OffsetOutOfRange(
            f"Cannot increment the log start offset to {offset} of partition {plog.name} "
            f"since it is larger than the high watermark {plog.high_watermark}",
            plog.log_start_offset,
            plog.log_end_offset,
        )
    return offset > plog.log_start_offset


def iter_log_batches(plog: PartitionStore, start: int) -> Iterator[tuple[bytes, BatchHeader]]:
    """Every whole batch of a partition log from ``start`` to its log end, with
    the buffer it lies in (reads files: for worker threads)."""
    pos = max(start, plog.log_start_offset)
    end = plog.log_end_offset
    while pos < end:
        data = plog.read(pos, 1 << 20, min_one_message=True).read_bytes()
        if not data:
            return
        advanced = False
        for h in iter_batches(data):
            if h.next_offset <= pos:
                continue
            advanced = True
            pos = h.next_offset
            yield data, h
        if not advanced:
            return


__all__ = [
    "check_fits_segment",
    "check_log_start_advance",
    "check_read_range",
    "follower_batches",
    "iter_log_batches",
    "patched_headers",
    "validate_append",
    "writable_batches",
]
