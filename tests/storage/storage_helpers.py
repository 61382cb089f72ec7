"""Helpers shared by the storage tests (imported as a plain module)."""

from __future__ import annotations

from pathlib import Path

from pykbroker.protocol.records import BatchHeader, Record, build_batch, decode_records, iter_batches, validate_batches
from pykbroker.storage.log import AppendResult, PartitionLog
from pykbroker.storage.log_config import LogConfig


def make_batch(n: int = 1, *, value_size: int = 10, ts: int | list[int] = 1000, key: bytes | None = b"k",
               codec: int = 0, tag: bytes = b"") -> bytearray:
    stamps = ts if isinstance(ts, list) else [ts] * n
    recs = [(key, tag + (b"%d|" % i) + b"v" * value_size, [], stamps[i]) for i in range(n)]
    return bytearray(build_batch(recs, compression=codec))


def append(log: PartitionLog, n: int = 1, *, value_size: int = 10, ts: int | list[int] = 1000,
           now_ms: int = 10_000, epoch: int = 0, codec: int = 0, tag: bytes = b"") -> AppendResult:
    data = make_batch(n, value_size=value_size, ts=ts, codec=codec, tag=tag)
    headers = validate_batches(bytes(data), max_batch_bytes=None)
    return log.append(data, headers, leader_epoch=epoch, now_ms=now_ms)


def open_log(root: Path, config: LogConfig | None = None, name: str = "topic-0", **kw) -> PartitionLog:
    return PartitionLog.open(root / name, config or LogConfig(), **kw)


def scan_batches(log: PartitionLog) -> list[tuple[int, BatchHeader]]:
    """Every batch of every segment by reading the files linearly: (segment base, header)."""
    out = []
    for seg in log.segments:
        data = seg.log_path.read_bytes()
        out += [(seg.base_offset, h) for h in iter_batches(data)]
    return out


def scan_records(log: PartitionLog) -> list[Record]:
    out = []
    for seg in log.segments:
        data = seg.log_path.read_bytes()
        for h in iter_batches(data):
            out += decode_records(data, h.position)
    return out


def records_of(data: bytes) -> list[Record]:
    out = []
    for h in iter_batches(data):
        out += decode_records(data, h.position)
    return out
