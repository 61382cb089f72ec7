"""Helpers shared by the storage tests (imported as a plain module)."""

from __future__ import annotations

from pathlib import Path

from pykbroker.protocol.records import BatchHeader, Record, build_batch, decode_records, iter_batches, validate_batches
from pykbroker.storage.api import AppendResult, PartitionStore
from pykbroker.storage.loader import parse_partition_dir_name
from pykbroker.storage.log import PartitionLog
from pykbroker.storage.log_config import LogConfig
from pykbroker.storage.memory import MemoryPartitionLog

# the storage engines the partition-log suite runs against
ENGINES = ["disk", "memory"]


def make_batch(n: int = 1, *, value_size: int = 10, ts: int | list[int] = 1000, key: bytes | None = b"k",
               codec: int = 0, tag: bytes = b"") -> bytearray:
    stamps = ts if isinstance(ts, list) else [ts] * n
    recs = [(key, tag + (b"%d|" % i) + b"v" * value_size, [], stamps[i]) for i in range(n)]
    return bytearray(build_batch(recs, compression=codec))


def append(log: PartitionStore, n: int = 1, *, value_size: int = 10, ts: int | list[int] = 1000,
           now_ms: int = 10_000, epoch: int = 0, codec: int = 0, tag: bytes = b"") -> AppendResult:
    data = make_batch(n, value_size=value_size, ts=ts, codec=codec, tag=tag)
    headers = validate_batches(bytes(data), max_batch_bytes=None)
    return log.append(data, headers, leader_epoch=epoch, now_ms=now_ms)


def open_log(root: Path, config: LogConfig | None = None, name: str = "topic-0", **kw) -> PartitionLog:
    return PartitionLog.open(root / name, config or LogConfig(), **kw)


def make_log(engine: str, root: Path, config: LogConfig | None = None, name: str = "topic-0",
             **kw) -> PartitionStore:
    """A new partition log of ``engine`` ("disk": ``root/name``; "memory")."""
    if engine == "disk":
        return open_log(root, config, name, **kw)
    parsed = parse_partition_dir_name(name)
    assert parsed is not None
    return MemoryPartitionLog(parsed[0], parsed[1], config or LogConfig(), now_ms=kw.get("now_ms"))


def stored_segments(log: PartitionStore) -> list[tuple[int, bytes]]:
    """What the engine keeps, read without the log's read path: (segment
    base, bytes) per segment file; in memory one notional segment at 0."""
    if isinstance(log, PartitionLog):
        return [(seg.base_offset, seg.log_path.read_bytes()) for seg in log.segments]
    assert isinstance(log, MemoryPartitionLog)
    return [(0, b"".join(log.batches()))]


def scan_batches(log: PartitionStore) -> list[tuple[int, BatchHeader]]:
    """Every stored batch, scanned linearly: (segment base, header)."""
    return [(base, h) for base, data in stored_segments(log) for h in iter_batches(data)]


def scan_records(log: PartitionStore) -> list[Record]:
    out = []
    for _, data in stored_segments(log):
        for h in iter_batches(data):
            out += decode_records(data, h.position)
    return out


def records_of(data: bytes) -> list[Record]:
    out = []
    for h in iter_batches(data):
        out += decode_records(data, h.position)
    return out
