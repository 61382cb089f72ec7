"""In-memory storage engine (``pykbroker.storage=memory``) for the fastest tests.

Same public interface as the segment log (:class:`~pykbroker.storage.log.PartitionLog`)
and the log manager (:class:`~pykbroker.storage.manager.LogManager`), so the
broker state and the handlers cannot tell them apart:

- :class:`MemoryPartitionLog` keeps each record batch as the bytes that would
  have gone to disk (offsets and leader epoch patched in, exactly as the
  segment log does), in offset order, with bisectable base offsets.
  ``read`` returns whole batches as :class:`MemoryChunk` (a ``bytes``
  subclass, so the codec copies it into the response like any other bytes).
- :class:`MemoryLogManager` is a :class:`LogManager` whose topic metadata
  and partitions never touch the disk: nothing survives a restart, there is
  no fsync, ``log.dirs`` is not created.

Both implement :mod:`~pykbroker.storage.api` completely, cluster mode
included (a follower replicates into memory: ``assign_epoch``,
``append_as_follower``, truncation), and share the segment log's rules
(:mod:`~pykbroker.storage.log_rules`: validation with the compacted-topic
key check, ``compression.type`` conversion, follower batch checks, the
log-start-offset rules) and its leader-epoch cache
(:mod:`~pykbroker.storage.epoch_cache`, without the checkpoint file).

What is not modelled: segments (``segment.bytes``/``segment.ms`` rolling,
indexes; the log is one notional segment at offset 0, so retention and
compaction, which work on whole segments, do nothing) and anything that
needs files; ``segment.bytes`` still bounds a single append
(RECORD_LIST_TOO_LARGE), as Kafka does.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Collection, Sequence
from pathlib import Path

from ..protocol.records import BatchHeader, assign_offsets, decode_records
from .api import (
    EMPTY_READ,
    AppendResult,
    EpochEntry,
    OffsetAndTimestamp,
    ReadResult,
    SegmentsReplacedListener,
    TimestampAndOffset,
)
from .checkpoints import kafka_uuid_str, random_kafka_uuid
from .epoch_cache import LeaderEpochCache
from .loader import partition_dir_name
from .log import PartitionLog
from .log_config import LogConfig
from .log_rules import (
    check_fits_segment,
    check_log_start_advance,
    check_read_range,
    follower_batches,
    patched_headers,
    validate_append,
    writable_batches,
)
from .manager import ReplicaNotAvailableError, LogManager, TopicMeta
from ..util import now_ms as _now_ms


class MemoryChunk(bytes):
    """One or more whole record batches, as bytes (the in-memory counterpart
    of :class:`~pykbroker.storage.log.FileRegion`: ``length`` and
    ``read_bytes()`` work on both)."""

    @property
    def length(self) -> int:
        return len(self)

    def read_bytes(self) -> bytes:
        return self




class MemoryPartitionLog:
    """One partition's log, in memory."""

    def __init__(
        self,
        topic: str,
        partition: int,
        config: LogConfig,
        *,
        topic_id: bytes | None = None,
        log_start_offset: int = 0,
        now_ms: int | None = None,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.config = config
        self.topic_id = topic_id
        self.log_start_offset = log_start_offset
        self.high_watermark = log_start_offset
        self.recovery_point = log_start_offset
        self._batches: list[MemoryChunk] = []
        self._bases: list[int] = []
        self._lasts: list[int] = []
        self._max_ts: list[int] = []
        self._next_offset = log_start_offset
        self._size = 0
        self._epochs = LeaderEpochCache()
        self._lock = threading.RLock()
        self._closed = False
        self.truncations = 0  # bumped by every truncation (the producer state reloads)
        self.offline: str | None = None  # nothing here fails like a disk
        self.on_segments_replaced: list[SegmentsReplacedListener] = []  # never called: no compaction
        self._last_flush_ms = _now_ms() if now_ms is None else now_ms

    def __repr__(self) -> str:
        return (
            f"MemoryPartitionLog({self.topic}-{self.partition}, start={self.log_start_offset}, "
            f"end={self.log_end_offset}, batches={len(self._batches)})"
        )

    def take_offline(self, reason: str) -> None:
        """Never called by this engine (a memory "directory" does not fail)."""
        self.offline = reason

    # --- state -----------------------------------------------------------------------

    @property
    def dir(self) -> Path | None:
        return None

    @property
    def name(self) -> str:
        return partition_dir_name(self.topic, self.partition)

    @property
    def log_end_offset(self) -> int:
        return self._next_offset

    @property
    def size(self) -> int:
        return self._size

    @property
    def batch_count(self) -> int:
        return len(self._batches)

    @property
    def active_segment_base(self) -> int:
        return 0

    def segment_bases(self) -> list[int]:
        """One notional segment at offset 0."""
        return [0]

    @property
    def flush_pending(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"log {self.name} is closed")

    # --- leader epochs (the segment log's cache, without its file) -----------------------

    @property
    def leader_epoch(self) -> int:
        return self._epochs.latest_epoch

    @property
    def epoch_entries(self) -> list[EpochEntry]:
        return self._epochs.entries

    def epoch_for_offset(self, offset: int) -> int:
        return self._epochs.epoch_for_offset(offset)

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        return self._epochs.end_offset_for(epoch, self.log_end_offset)

    def assign_epoch(self, epoch: int, start_offset: int) -> None:
        with self._lock:
            self._check_open()
            self._epochs.assign(epoch, start_offset)

    # --- appends ------------------------------------------------------------------------

    def validate(self, data: bytes | bytearray | memoryview | None, *, now_ms: int | None = None) -> list[BatchHeader]:
        return validate_append(self.config, self.name, data, now_ms)

    def append(
        self,
        data: bytearray | memoryview | bytes,
        headers: Sequence[BatchHeader],
        *,
        leader_epoch: int,
        now_ms: int,
        auto_flush: bool = False,
    ) -> AppendResult:
        """As :meth:`PartitionLog.append`: offsets (and leader epoch) patched
        into ``data`` in place, then each batch kept as its own bytes."""
        buf, headers = writable_batches(data, headers, self.config, self.name, now_ms)
        with self._lock:
            self._check_open()
            check_fits_segment(headers, self.config, self.name)
            log_append_time = now_ms if self.config.log_append_time else None
            base = self._next_offset
            last = assign_offsets(
                buf, headers, base, partition_leader_epoch=leader_epoch, log_append_time=log_append_time
            )
            self._epochs.assign(leader_epoch, base)
            new_headers = patched_headers(buf, headers)
            self._keep(buf, new_headers)
            return AppendResult(
                base,
                last,
                -1 if log_append_time is None else log_append_time,
                self.log_start_offset,
                max(h.max_timestamp for h in new_headers),
                sum(h.records_count for h in new_headers),
            )

    def append_as_follower(self, data: bytes | bytearray | memoryview, now_ms: int | None = None) -> int:
        """As :meth:`PartitionLog.append_as_follower`: the leader's batches kept
        as they are, new leader epochs entered; returns the bytes appended."""
        with self._lock:
            self._check_open()
            buf, headers = follower_batches(self.name, data, self._next_offset)
            if not headers:
                return 0
            for h in headers:
                self._epochs.assign_if_newer(h.partition_leader_epoch, h.base_offset)
            self._keep(buf, headers)
            return len(buf)

    def _keep(self, buf: bytes | bytearray | memoryview, headers: Sequence[BatchHeader]) -> None:
        """Store each batch (offsets already final) as its own bytes."""
        for h in headers:
            chunk = MemoryChunk(buf[h.position : h.position + h.size])
            self._batches.append(chunk)
            self._bases.append(h.base_offset)
            self._lasts.append(h.last_offset)
            self._max_ts.append(h.max_timestamp)
            self._size += len(chunk)
        self._next_offset = headers[-1].last_offset + 1
        self.recovery_point = self._next_offset  # nothing to flush

    def roll(self, now_ms: int | None = None) -> None:
        """No segments in memory: nothing to roll."""
        return None

    # --- reads ----------------------------------------------------------------------------

    def _index_of(self, offset: int) -> int:
        """Index of the first batch whose last offset is >= ``offset``."""
        return bisect.bisect_left(self._lasts, offset)

    def read(
        self,
        offset: int,
        max_bytes: int,
        *,
        max_offset: int | None = None,
        min_one_message: bool = True,
    ) -> ReadResult:
        """As :meth:`PartitionLog.read`: whole batches from the one containing
        ``offset``, at most ``max_bytes`` (the first whole even if larger when
        ``min_one_message``), none whose base offset is >= ``max_offset``."""
        with self._lock:
            self._check_open()
            leo = self._next_offset
            check_read_range(self.name, offset, self.log_start_offset, leo)
            limit = leo if max_offset is None else min(max_offset, leo)
            if offset >= limit:
                return EMPTY_READ
            i = self._index_of(offset)
            chunks: list[MemoryChunk] = []
            total = 0
            n = len(self._batches)
            while i < n and self._bases[i] < limit:
                b = self._batches[i]
                if total + len(b) > max_bytes and not (min_one_message and total == 0):
                    break
                chunks.append(b)
                total += len(b)
                i += 1
                if total >= max_bytes:
                    break
            if not chunks:
                return EMPTY_READ
            return ReadResult(chunks, total, self._bases[i - len(chunks)])

    def batches(self, start_offset: int | None = None) -> list[MemoryChunk]:
        """Every stored batch from the one holding ``start_offset`` (testing helper)."""
        with self._lock:
            i = 0 if start_offset is None else self._index_of(start_offset)
            return list(self._batches[i:])

    def offset_for_timestamp(self, timestamp: int) -> OffsetAndTimestamp | None:
        with self._lock:
            self._check_open()
            start = self.log_start_offset
            for i in range(self._index_of(start), len(self._batches)):
                if self._max_ts[i] < timestamp:
                    continue
                for r in decode_records(self._batches[i]):
                    if r.timestamp >= timestamp and r.offset >= start:
                        return OffsetAndTimestamp(r.offset, r.timestamp)
            return None

    def max_timestamp(self) -> TimestampAndOffset | None:
        with self._lock:
            self._check_open()
            if not self._max_ts:
                return None
            best = max(self._max_ts)
            if best < 0:
                return None
            i = self._max_ts.index(best)
            for r in decode_records(self._batches[i]):
                if r.timestamp == best:
                    return TimestampAndOffset(best, r.offset)
            return None

    # --- truncation, log start -----------------------------------------------------------

    def truncate_to(self, offset: int, now_ms: int | None = None) -> bool:
        if offset < 0:
            raise ValueError(f"cannot truncate to negative offset {offset}")
        with self._lock:
            self._check_open()
            if offset >= self._next_offset:
                # as the disk engine (storage/log.py): an empty epoch at the end goes
                self._epochs.truncate_from_end(self._next_offset)
                return False
            if offset < self.log_start_offset or (self._bases and offset < self._bases[0]):
                self._truncate_fully_and_start_at(offset)
                return True
            # drop the batch containing ``offset`` and everything after it
            i = self._index_of(offset)
            new_end = self._bases[i] if i < len(self._bases) else offset
            self._drop(i, len(self._batches))
            self._next_offset = new_end
            self.truncations += 1
            self._epochs.truncate_from_end(new_end)
            self.high_watermark = min(self.high_watermark, new_end)
            self.recovery_point = min(self.recovery_point, new_end)
            return True

    def _drop(self, lo: int, hi: int) -> None:
        """Forget batches [lo, hi) of the lists."""
        for b in self._batches[lo:hi]:
            self._size -= len(b)
        del self._batches[lo:hi], self._bases[lo:hi], self._lasts[lo:hi], self._max_ts[lo:hi]

    def truncate_fully_and_start_at(self, offset: int, now_ms: int | None = None) -> None:
        with self._lock:
            self._check_open()
            self._truncate_fully_and_start_at(offset)

    def _truncate_fully_and_start_at(self, offset: int) -> None:
        self.truncations += 1
        self._drop(0, len(self._batches))
        self._next_offset = offset
        self.log_start_offset = offset
        self.high_watermark = offset
        self.recovery_point = offset
        self._epochs.clear()

    def advance_log_start_offset(self, offset: int, now_ms: int | None = None) -> bool:
        with self._lock:
            self._check_open()
            if not check_log_start_advance(self, offset):
                return False
            self.log_start_offset = offset
            self._drop(0, self._index_of(offset))  # batches wholly before ``offset`` go
            self._epochs.truncate_from_start(offset)
            return True

    # --- durability, lifecycle ---------------------------------------------------------------

    def needs_flush(self, now_ms: int) -> bool:
        return False

    def flush(self, now_ms: int | None = None) -> None:
        self._last_flush_ms = _now_ms() if now_ms is None else now_ms

    def due_deletes(self, now_ms: int) -> list[Path]:
        return []

    def close(self) -> None:
        self._closed = True

    def close_files(self) -> None:
        self._closed = True

    def delete(self) -> None:
        with self._lock:
            self._closed = True
            self._drop(0, len(self._batches))


class MemoryLogManager(LogManager):
    """A :class:`LogManager` that keeps topics and partitions in memory."""

    def __init__(
        self,
        log_dirs: Sequence[Path | str],
        default_config: LogConfig,
        *,
        node_id: int = 1,
        cluster_id: str | None = None,
    ) -> None:
        super().__init__(log_dirs or [Path("memory")], default_config, node_id=node_id, cluster_id=cluster_id)

    def load(self, now_ms: int | None = None) -> None:
        self.cluster_id = self._requested_cluster_id or kafka_uuid_str(random_kafka_uuid())
        for d in self.log_dirs:
            self.directory_ids[d] = random_kafka_uuid()
        self._loaded = True

    def _write_topics(self) -> None:  # nothing to persist
        return None

    def _new_log(self, d: Path, meta: TopicMeta, p: int, config: LogConfig) -> MemoryPartitionLog:
        return MemoryPartitionLog(meta.name, p, config, topic_id=meta.topic_id)

    def alter_log_dir(self, topic: str, partition: int, path: str) -> None:
        """Nothing to copy: the partition is in the named (notional) directory at once."""
        d = self.dir_by_path(path)
        key = (topic, partition)
        if key not in self._logs:
            self.preferred_dirs[key] = d
            raise ReplicaNotAvailableError(
                f"Replica {self.node_id} is not available for partition {topic}-{partition}")
        self._dir_of[key] = d
        return None

    def check_log_dir(self, d: Path) -> bool:
        return True  # a notional directory does not fail

    def segment_logs(self) -> dict[tuple[str, int], PartitionLog]:
        """No segment files: nothing for retention, the cleaner or file deletion."""
        return {}

    def checkpoint(self, skip: Collection[Path] = ()) -> None:
        return None

    def flush_all(self) -> None:
        return None

    def close(self) -> None:
        for plog in list(self._logs.values()):
            plog.close()
        self._loaded = False


__all__ = ["MemoryChunk", "MemoryLogManager", "MemoryPartitionLog"]
