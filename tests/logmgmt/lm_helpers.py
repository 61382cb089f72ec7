"""Helpers of the log-management tests (imported as a plain module)."""

from __future__ import annotations

from pathlib import Path

from pykbroker.protocol.records import Record, build_batch, decode_records, iter_batches, validate_batches
from pykbroker.storage.cleaner import LogCleaner, LogToClean, clean_log, discard_cleaned, log_to_clean, open_cleaned
from pykbroker.storage.log import AppendResult, PartitionLog
from pykbroker.storage.log_config import LogConfig

# small segments: a few records each
SMALL = LogConfig(segment_bytes=600, index_interval_bytes=100, file_delete_delay_ms=0)


def open_log(root: Path, config: LogConfig | None = None, name: str = "topic-0", **kw) -> PartitionLog:  # type: ignore[no-untyped-def]
    return PartitionLog.open(root / name, config or SMALL, **kw)


def put(log: PartitionLog, records: list[tuple[bytes | None, bytes | None]], *, ts: int = 1000,
        now_ms: int = 10_000, codec: int = 0, producer_id: int = -1) -> AppendResult:
    """Append one batch of (key, value) records; value None = tombstone."""
    data = bytearray(build_batch([(k, v, [], ts) for k, v in records], compression=codec,
                                 producer_id=producer_id, producer_epoch=0 if producer_id >= 0 else -1,
                                 base_sequence=0 if producer_id >= 0 else -1))
    headers = validate_batches(bytes(data), max_batch_bytes=None)
    res = log.append(data, headers, leader_epoch=0, now_ms=now_ms)
    log.high_watermark = log.log_end_offset
    return res


def records(log: PartitionLog, start: int | None = None) -> list[Record]:
    """Every record readable from ``start`` (default: the log start offset), via read()."""
    offset = log.log_start_offset if start is None else start
    out: list[Record] = []
    while offset < log.log_end_offset:
        res = log.read(offset, 1 << 20)
        if not res.chunks:
            break
        data = res.read_bytes()
        last = offset
        for h in iter_batches(data):
            out += [r for r in decode_records(data, h.position) if r.offset >= offset]
            last = h.last_offset
        offset = last + 1
    return out


def latest_by_key(recs: list[Record]) -> dict[bytes | None, Record]:
    out: dict[bytes | None, Record] = {}
    for r in recs:
        out[r.key] = r
    return out


def compact(log: PartitionLog, *, now_ms: int = 10_000, checkpoint: int | None = None,
            max_map_entries: int = 1_000_000) -> tuple[bool, int]:
    """One cleaning round, in this thread, swapped in as the broker does.
    Returns (anything cleaned, end offset)."""
    ltc: LogToClean = log_to_clean(("topic", 0), log, checkpoint, now_ms)
    if ltc.cleanable_bytes == 0:
        return False, ltc.first_dirty
    cleaner = LogCleaner([log.dir.parent], isolation="thread")
    cleaner.max_map_entries = max_map_entries
    job, objs = cleaner.make_job(ltc, now_ms)
    result = clean_log(job)
    for g in result.groups:
        new = open_cleaned(job.dir, g, index_interval_bytes=job.index_interval_bytes,
                           segment_index_bytes=job.segment_index_bytes)
        if not log.replace_segments(new, [objs[b] for b in g.sources], now_ms):  # type: ignore[misc]
            new.close()
            discard_cleaned(job.dir, g.base)
            return False, ltc.first_dirty
    return True, result.end_offset
