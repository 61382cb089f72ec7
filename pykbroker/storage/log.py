"""A partition's log: ``<log_dir>/<topic>-<partition>/`` with Kafka's files.

Files: ``{base:020d}.log/.index/.timeindex`` per segment (see segment.py),
``leader-epoch-checkpoint`` and ``partition.metadata``.

Threading: everything runs on the caller's (trio) thread except
:meth:`PartitionLog.flush`, which may run in a worker thread concurrently
with appends and reads: it fsyncs outside the locks and only touches shared
state inside a short critical section. close/delete/truncate wait for a
running flush to finish.
"""

from __future__ import annotations

import bisect
import logging
import os
import random
import re
import shutil
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import attrs

from ..protocol.records import (
    BATCH_HEADER,
    RECORD_LIST_TOO_LARGE,
    BatchHeader,
    InvalidRecords,
    assign_offsets,
    iter_batches,
    validate_batches,
)
from .checkpoints import (
    CorruptCheckpointError,
    fsync_dir,
    read_epoch_checkpoint,
    read_partition_metadata,
    write_epoch_checkpoint,
    write_partition_metadata,
)
from .convert import convert_batches, needs_conversion, validate_records
from .log_config import LogConfig
from .segment import (
    INDEX_SUFFIX,
    LOG_SUFFIX,
    TIMEINDEX_SUFFIX,
    LogSegment,
    pread_exact,
    segment_name,
)
from ..util import now_ms as _now_ms

log = logging.getLogger("pykbroker.storage")

OFFSET_OUT_OF_RANGE = 1
LEADER_EPOCH_CHECKPOINT = "leader-epoch-checkpoint"
PARTITION_METADATA = "partition.metadata"

_DIR_RE = re.compile(r"^(.+)-(0|[1-9][0-9]*)$")


class OffsetOutOfRange(Exception):
    """Fetch/read offset outside [log_start_offset, log_end_offset]."""

    error_code = OFFSET_OUT_OF_RANGE

    def __init__(self, message: str, log_start_offset: int = -1, log_end_offset: int = -1) -> None:
        super().__init__(message)
        self.log_start_offset = log_start_offset
        self.log_end_offset = log_end_offset


class LogOfflineError(OSError):
    """The partition's log failed an I/O operation in a way that may have left
    its files inconsistent (e.g. a torn write that could not be rolled back):
    every later append and read fails with KAFKA_STORAGE_ERROR until restart,
    when recovery repairs the tail (Kafka takes the log dir offline)."""

    error_code = 56  # KAFKA_STORAGE_ERROR


class InconsistentTopicIdError(Exception):
    """partition.metadata names another topic id (Kafka: INCONSISTENT_TOPIC_ID, 103)."""

    error_code = 103


def partition_dir_name(topic: str, partition: int) -> str:
    return f"{topic}-{partition}"


def parse_partition_dir_name(name: str) -> tuple[str, int] | None:
    """``"my-topic-3"`` → ``("my-topic", 3)``; None for anything else
    (including Kafka's ``-delete``/``-future``/``-stray`` directories)."""
    if name.endswith(("-delete", "-future", "-stray")):
        return None
    m = _DIR_RE.match(name)
    if not m:
        return None
    return m.group(1), int(m.group(2))


@attrs.frozen
class FileRegion:
    """``length`` bytes of the file open as ``fd`` at ``offset`` (for os.sendfile).

    ``owner`` (the segment's :class:`~.segment.FileHandle`) keeps ``fd`` open
    while the region exists, so a segment deleted by retention, compaction,
    DeleteRecords or DeleteTopics under an in-flight fetch stays readable
    (Kafka delays file deletion by file.delete.delay.ms for the same reason).
    Only a clean shutdown closes fds under a region."""

    fd: int
    offset: int
    length: int
    owner: object = attrs.field(default=None, eq=False, repr=False)

    def read_bytes(self) -> bytes:
        data = pread_exact(self.fd, self.length, self.offset)
        if len(data) != self.length:
            raise OSError(f"short read: {len(data)} of {self.length} bytes at {self.offset}")
        return data


@attrs.frozen
class ReadResult:
    chunks: list[FileRegion]
    size: int
    first_offset: int  # base offset of the first batch returned; -1 if nothing

    def read_bytes(self) -> bytes:
        return b"".join(c.read_bytes() for c in self.chunks)


EMPTY_READ = ReadResult([], 0, -1)


@attrs.frozen
class AppendResult:
    base_offset: int
    last_offset: int
    log_append_time: int  # -1 unless the topic uses LogAppendTime
    log_start_offset: int
    max_timestamp: int = -1
    records_count: int = 0


class OffsetAndTimestamp(NamedTuple):
    offset: int
    timestamp: int


class TimestampAndOffset(NamedTuple):
    timestamp: int
    offset: int


@attrs.frozen
class EpochEntry:
    epoch: int
    start_offset: int


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


def epoch_for_offset(epochs: Sequence[EpochEntry], offset: int) -> int:
    """Leader epoch of the record at ``offset`` per an epoch cache; -1 if unknown."""
    previous = -1
    for e in epochs:
        if e.start_offset == offset:
            return e.epoch
        if e.start_offset > offset:
            return previous
        previous = e.epoch
    return previous


def end_offset_for_epoch(epochs: Sequence[EpochEntry], epoch: int, log_end_offset: int) -> tuple[int, int]:
    """OffsetForLeaderEpoch: (largest epoch <= ``epoch``, its end offset), as
    Kafka's LeaderEpochFileCache.endOffsetFor; (-1, -1) if unknown."""
    if epoch < 0 or not epochs:
        return -1, -1
    if epochs[-1].epoch == epoch:
        return epoch, log_end_offset
    higher = next((e for e in epochs if e.epoch > epoch), None)
    if higher is None:
        return -1, -1
    floor = None
    for e in epochs:
        if e.epoch <= epoch:
            floor = e
    if floor is None:
        return epoch, higher.start_offset
    return floor.epoch, higher.start_offset


def iter_log_batches(plog: Any, start: int) -> Iterator[tuple[bytes, BatchHeader]]:
    """Every whole batch of a partition log from ``start`` to its log end, with
    the buffer it lies in (reads files: for worker threads). Works with any
    engine that has ``read``, ``log_start_offset`` and ``log_end_offset``."""
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


class PartitionLog:
    """One partition's log. Create with :meth:`open`."""

    def __init__(
        self,
        dir: Path,
        config: LogConfig,
        segments: list[LogSegment],
        *,
        topic: str,
        partition: int,
        log_start_offset: int,
        epochs: list[EpochEntry],
        topic_id: bytes | None,
        now_ms: int,
    ) -> None:
        self.dir = dir
        self.topic = topic
        self.partition = partition
        self.config = config
        self.segments = segments
        self._bases = [s.base_offset for s in segments]
        self.log_start_offset = log_start_offset
        self.topic_id = topic_id
        self._epochs = epochs
        self.recovery_point = 0
        self.high_watermark = 0
        self._lock = threading.RLock()
        self._flush_lock = threading.Lock()
        self._last_flush_ms = now_ms
        self._flush_pending = False
        self._dir_dirty = False
        self._closed = False
        # set when an I/O failure may have left the files inconsistent
        self.offline: str | None = None
        # bumped by every truncation (the producer state reloads when it sees it change)
        self.truncations = 0
        # (due ms, paths) of retired segment files awaiting file.delete.delay.ms
        self.pending_deletes: list[tuple[int, list[Path]]] = []
        # called as fn(new_base, old_bases) after a compaction swap (the new
        # segment's .txnindex holds the old ones' entries, in order)
        self.on_segments_replaced: list = []

    def __repr__(self) -> str:
        return (
            f"PartitionLog({self.topic}-{self.partition}, start={self.log_start_offset}, "
            f"end={self.log_end_offset}, segments={len(self.segments)})"
        )

    # --- opening ----------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        dir: Path | str,
        config: LogConfig,
        *,
        recover: bool = True,
        recovery_point: int | None = None,
        log_start_offset: int | None = None,
        topic_id: bytes | None = None,
        now_ms: int | None = None,
    ) -> PartitionLog:
        """Open (or create) the partition directory ``dir``.

        With ``recover`` (unclean shutdown), segments from the one holding
        ``recovery_point`` to the end are recovered (default: only the active
        segment): checksums verified, a torn/corrupt tail truncated, indexes
        rebuilt; if a segment before the active one loses bytes, every later
        segment is deleted (as Kafka does). Segments whose index files are
        missing or inconsistent are rebuilt whenever they are first used.
        ``log_start_offset`` comes from log-start-offset-checkpoint.
        ``topic_id`` (16 bytes) is checked against / written to partition.metadata.
        """
        dir = Path(dir)
        parsed = parse_partition_dir_name(dir.name)
        if parsed is None:
            raise ValueError(f"not a partition directory name: {dir.name!r}")
        topic, partition = parsed
        now = _now_ms() if now_ms is None else now_ms
        dir.mkdir(parents=True, exist_ok=True)
        bases: list[int] = []
        index_files: list[tuple[int, Path]] = []
        swaps: list[int] = []
        for entry in os.scandir(dir):
            name = entry.name
            if name.endswith((".tmp", ".cleaned", ".deleted")):
                os.unlink(entry.path)
                continue
            if name.endswith(LOG_SUFFIX + ".swap"):
                stem = name.partition(".")[0]
                if len(stem) == 20 and stem.isdigit():
                    swaps.append(int(stem))
                continue
            stem, dot, suffix = name.partition(".")
            if not dot or len(stem) != 20 or not stem.isdigit():
                continue
            if suffix == "log":
                bases.append(int(stem))
            elif suffix in ("index", "timeindex"):
                index_files.append((int(stem), Path(entry.path)))
        for sb in sorted(swaps):
            cls._complete_swap(dir, config, sb, bases, now)
        base_set = set(bases)
        for b, p in index_files:
            if b not in base_set:  # orphan index (Kafka deletes these too)
                p.unlink()
        bases.sort()
        segments = [cls._segment(dir, config, b, now, create=False) for b in bases]
        created = False
        if not segments:
            segments = [cls._segment(dir, config, log_start_offset or 0, now, create=True)]
            created = True
        epochs: list[EpochEntry] = []
        try:
            raw_epochs = read_epoch_checkpoint(dir / LEADER_EPOCH_CHECKPOINT)
        except CorruptCheckpointError as e:
            log.warning("%s: ignoring corrupt leader epoch checkpoint: %s", dir, e)
            raw_epochs = None
        if raw_epochs:
            epochs = [EpochEntry(e, o) for e, o in raw_epochs]
        self = cls(
            dir, config, segments, topic=topic, partition=partition,
            log_start_offset=0, epochs=epochs, topic_id=None, now_ms=now,
        )
        epochs_before = list(self._epochs)
        if recover and not created:
            if recovery_point is None:
                first = len(segments) - 1
            else:
                first = max(bisect.bisect_right(self._bases, recovery_point) - 1, 0)
            for i in range(first, len(segments)):
                truncated = segments[i].recover(on_batch=self._epoch_from_recovery)
                if truncated:
                    log.warning("%s: recovery truncated %d bytes of segment %d", dir, truncated, segments[i].base_offset)
                if truncated and i < len(segments) - 1:
                    for s in segments[i + 1 :]:
                        log.warning("%s: deleting segment %d after a truncated one", dir, s.base_offset)
                        s.delete()
                    del segments[i + 1 :]
                    break
            self._bases = [s.base_offset for s in segments]
            self.recovery_point = segments[first].base_offset
            self._flush_pending = True
        leo = self.log_end_offset  # loads the active segment's indexes
        if not (recover and not created):
            self.recovery_point = leo
        self._truncate_epochs_from_end(leo, write=False)
        start = max(log_start_offset or 0, segments[0].base_offset)
        if start > leo:
            self._truncate_fully_and_start_at(start, now)
        else:
            self.log_start_offset = start
            self._truncate_epochs_from_start(start, write=False)
        if self._epochs != epochs_before:
            self._write_epochs()
        self.high_watermark = self.log_end_offset
        self.recovery_point = min(self.recovery_point, self.log_end_offset)
        # topic id
        meta_path = dir / PARTITION_METADATA
        stored = read_partition_metadata(meta_path)
        if topic_id is not None:
            if stored is not None and stored != topic_id:
                for s in segments:
                    s.close()
                raise InconsistentTopicIdError(
                    f"{dir}: partition.metadata has topic id {stored.hex()}, expected {topic_id.hex()}"
                )
            if stored is None:
                # not fsynced: the topic metadata is the source of truth and a
                # lost/torn file is rewritten at the next open
                write_partition_metadata(meta_path, topic_id, fsync=False)
            self.topic_id = topic_id
        else:
            self.topic_id = stored
        if created:
            self._dir_dirty = True
        return self

    @classmethod
    def _complete_swap(cls, dir: Path, config: LogConfig, base: int, bases: list[int], now_ms: int) -> None:
        """Finish a compaction swap interrupted by a crash (Kafka's LogLoader):
        ``<base>.log.swap`` holds the cleaned data of every segment whose base
        offset lies in [base, its next offset); those segments go, the swap
        file takes their place."""
        seg = LogSegment(
            dir, base, index_interval_bytes=config.index_interval_bytes,
            max_index_bytes=config.segment_index_bytes, created_ms=now_ms, suffix=".swap",
        )
        try:
            seg.recover()
            end = max(seg.next_offset, base + 1)
            for b in [b for b in bases if base <= b < end]:
                name = segment_name(b)
                for suffix in (LOG_SUFFIX, INDEX_SUFFIX, TIMEINDEX_SUFFIX, ".txnindex"):
                    try:
                        (dir / (name + suffix)).unlink()
                    except FileNotFoundError:
                        pass
                bases.remove(b)
            seg.change_file_suffixes(".swap", "")
            bases.append(base)
            log.warning("%s: completed an interrupted compaction swap at offset %d", dir, base)
        finally:
            seg.close()

    @staticmethod
    def _segment(dir: Path, config: LogConfig, base: int, now_ms: int, *, create: bool) -> LogSegment:
        jitter = 0
        if config.segment_jitter_ms > 0:
            jitter = random.randrange(min(config.segment_jitter_ms, config.segment_ms))
        if create:
            name = segment_name(base)
            for suffix in (LOG_SUFFIX, INDEX_SUFFIX, TIMEINDEX_SUFFIX):
                try:
                    (dir / (name + suffix)).unlink()
                except FileNotFoundError:
                    pass
        return LogSegment(
            dir,
            base,
            index_interval_bytes=config.index_interval_bytes,
            max_index_bytes=config.segment_index_bytes,
            created_ms=now_ms,
            roll_jitter_ms=jitter,
            create=create,
        )

    # --- state ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return partition_dir_name(self.topic, self.partition)

    @property
    def active_segment(self) -> LogSegment:
        return self.segments[-1]

    @property
    def log_end_offset(self) -> int:
        """The next offset to assign."""
        return self.segments[-1].next_offset

    @property
    def size(self) -> int:
        return sum(s.size for s in self.segments)

    @property
    def leader_epoch(self) -> int:
        """Latest leader epoch in the epoch cache; -1 if none."""
        return self._epochs[-1].epoch if self._epochs else -1

    @property
    def epoch_entries(self) -> list[EpochEntry]:
        return list(self._epochs)

    @property
    def flush_pending(self) -> bool:
        """Rolled or recovered segments wait for an fsync (Kafka flushes them
        in the background right after a roll); call :meth:`flush` in a thread."""
        return self._flush_pending

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"log {self.name} is closed")

    # --- leader epoch cache ------------------------------------------------------------

    def _write_epochs(self) -> None:
        write_epoch_checkpoint(self.dir / LEADER_EPOCH_CHECKPOINT, [(e.epoch, e.start_offset) for e in self._epochs])

    def _assign_epoch(self, epoch: int, start_offset: int, *, write: bool = True) -> bool:
        """Kafka's LeaderEpochFileCache.assign: a new latest entry when the epoch
        changes (or the same epoch starts earlier); later/conflicting entries go."""
        if epoch < 0 or start_offset < 0:
            return False
        if self._epochs:
            latest = self._epochs[-1]
            if latest.epoch == epoch and start_offset >= latest.start_offset:
                return False
        while self._epochs and (self._epochs[-1].epoch >= epoch or self._epochs[-1].start_offset >= start_offset):
            self._epochs.pop()
        self._epochs.append(EpochEntry(epoch, start_offset))
        if write:
            self._write_epochs()
        return True

    def _epoch_from_recovery(self, h: BatchHeader) -> None:
        e = h.partition_leader_epoch
        if e >= 0 and (not self._epochs or e > self._epochs[-1].epoch):
            self._assign_epoch(e, h.base_offset, write=False)

    def _truncate_epochs_from_end(self, end_offset: int, *, write: bool = True) -> None:
        before = len(self._epochs)
        while self._epochs and self._epochs[-1].start_offset >= end_offset:
            self._epochs.pop()
        if write and len(self._epochs) != before:
            self._write_epochs()

    def _truncate_epochs_from_start(self, start_offset: int, *, write: bool = True) -> None:
        """Kafka's truncateFromStart: drop entries before ``start_offset`` but keep
        the one covering it, moved to start there."""
        changed = False
        while len(self._epochs) > 1 and self._epochs[1].start_offset <= start_offset:
            self._epochs.pop(0)
            changed = True
        if self._epochs and self._epochs[0].start_offset < start_offset:
            self._epochs[0] = EpochEntry(self._epochs[0].epoch, start_offset)
            changed = True
        if write and changed:
            self._write_epochs()

    def epoch_for_offset(self, offset: int) -> int:
        """Leader epoch of the record at ``offset`` per the epoch cache; -1 if unknown."""
        return epoch_for_offset(self._epochs, offset)

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch: (largest epoch <= ``epoch``, its end offset)."""
        return end_offset_for_epoch(self._epochs, epoch, self.log_end_offset)

    # --- produce ------------------------------------------------------------------------------

    def validate(self, data: bytes | bytearray | memoryview | None, *, now_ms: int | None = None) -> list[BatchHeader]:
        """:func:`validate_batches` with this topic's max.message.bytes and
        timestamp settings (timestamps checked only when ``now_ms`` is given)."""
        c = self.config
        headers = validate_batches(
            data,
            max_batch_bytes=c.max_message_bytes,
            now_ms=now_ms,
            log_append_time=c.log_append_time,
            timestamp_before_max_ms=c.message_timestamp_before_max_ms,
            timestamp_after_max_ms=c.message_timestamp_after_max_ms,
        )
        if c.compact:
            assert data is not None
            validate_records(data, headers, c, self.name)
        return headers

    def append(
        self,
        data: bytearray | memoryview | bytes,
        headers: Sequence[BatchHeader],
        *,
        leader_epoch: int,
        now_ms: int,
        auto_flush: bool = False,
    ) -> AppendResult:
        """Assign offsets to validated batches (patched into ``data`` in place;
        ``headers`` from :func:`validate_batches` on the same buffer) and write
        them to the active segment, rolling it first when needed.

        - Raises InvalidRecords(RECORD_LIST_TOO_LARGE) when the data is bigger
          than segment.bytes (Kafka's RecordBatchTooLargeException), before
          anything is written.
        - Rolls when the segment would exceed segment.bytes, when the
          incoming max timestamp is more than segment.ms (minus jitter) after
          the segment's first batch's max timestamp (or, with no timestamps,
          segment.ms after the segment's creation), when an index is full, or
          when offsets would overflow the index's relative int32.
        - The leader epoch cache gets a new entry when ``leader_epoch`` is new.
        - With ``auto_flush``, fsyncs inline once flush.messages messages are
          unflushed (Kafka's behaviour); otherwise the caller checks
          :meth:`needs_flush` and runs :meth:`flush` in a worker thread.
        """
        if not headers:
            raise ValueError("nothing to append")
        if self.offline is not None:
            raise LogOfflineError(self.offline)
        if isinstance(data, bytes) or (isinstance(data, memoryview) and data.readonly):
            data = bytearray(data)
        if needs_conversion(self.config, headers):
            data, headers = convert_batches(data, headers, self.config, self.name, now_ms)
        with self._lock:
            self._check_open()
            total = check_fits_segment(headers, self.config, self.name)
            log_append_time = now_ms if self.config.log_append_time else None
            base = self.log_end_offset
            last = assign_offsets(
                data, headers, base, partition_leader_epoch=leader_epoch, log_append_time=log_append_time
            )
            new_headers = [BatchHeader(*BATCH_HEADER.unpack_from(data, h.position), position=h.position) for h in headers]
            max_ts = max(h.max_timestamp for h in new_headers)
            segment = self._maybe_roll(total, max_ts, last, now_ms)
            if leader_epoch >= 0:
                self._assign_epoch(leader_epoch, base)
            try:
                segment.append(data, new_headers)
            except OSError as e:
                self._check_torn(segment, e)
                raise
            result = AppendResult(
                base,
                last,
                -1 if log_append_time is None else log_append_time,
                self.log_start_offset,
                max_ts,
                sum(h.records_count for h in new_headers),
            )
        if auto_flush and self.log_end_offset - self.recovery_point >= self.config.flush_messages:
            self.flush(now_ms)
        return result

    # --- replication (cluster mode, pykbroker/cluster/) ---------------------------------------

    def assign_epoch(self, epoch: int, start_offset: int) -> None:
        """Record that leader epoch ``epoch`` starts at ``start_offset`` (a new
        leader does this at its log end offset at once, before any append:
        Kafka's ``maybeAssignEpochStartOffset``)."""
        with self._lock:
            self._check_open()
            self._assign_epoch(epoch, start_offset)

    def append_as_follower(self, data: bytes | bytearray | memoryview, now_ms: int | None = None) -> int:
        """Append batches fetched from the leader exactly as they are (their
        offsets, leader epochs, timestamps: the bytes stay identical to the
        leader's). A partial batch at the end is ignored; the first batch must
        start at the log end offset and offsets must increase, else ValueError
        (the follower truncates and fetches again); checksums are verified
        (InvalidRecords). New leader epochs enter the epoch cache. Returns the
        number of bytes appended."""
        if self.offline is not None:
            raise LogOfflineError(self.offline)
        whole = list(iter_batches(data))
        if not whole:
            return 0
        end = whole[-1].position + whole[-1].size
        buf = bytes(memoryview(data)[:end])
        headers = validate_batches(buf, max_batch_bytes=None, client=False)
        now = _now_ms() if now_ms is None else now_ms
        with self._lock:
            self._check_open()
            expected = self.log_end_offset
            if headers[0].base_offset != expected:
                raise ValueError(f"{self.name}: fetched data starts at offset {headers[0].base_offset}, "
                                 f"the log ends at {expected}")
            prev = expected - 1
            for h in headers:
                if h.base_offset <= prev or h.last_offset < h.base_offset:
                    raise ValueError(f"{self.name}: fetched batch offsets [{h.base_offset}, {h.last_offset}] "
                                     f"do not follow offset {prev}")
                prev = h.last_offset
            max_ts = max(h.max_timestamp for h in headers)
            segment = self._maybe_roll(len(buf), max_ts, headers[-1].last_offset, now)
            for h in headers:
                if h.partition_leader_epoch >= 0 and h.partition_leader_epoch > self.leader_epoch:
                    self._assign_epoch(h.partition_leader_epoch, h.base_offset)
            try:
                segment.append(buf, headers)
            except OSError as e:
                self._check_torn(segment, e)
                raise
        return len(buf)

    def _check_torn(self, segment: LogSegment, e: OSError) -> None:
        """After a failed segment write: if the file does not end where the
        segment thinks it does (the rollback failed too), take the log
        offline rather than append after garbage."""
        try:
            actual = os.fstat(segment.fd).st_size
        except OSError:
            actual = -1
        if actual != segment.size:
            self.offline = f"log {self.name} is offline after a failed write: {e}"
            log.error("%s", self.offline)

    def _maybe_roll(self, messages_size: int, max_timestamp: int, last_offset: int, now_ms: int) -> LogSegment:
        seg = self.segments[-1]
        if seg.size == 0:
            return seg
        rolling_ts = seg.rolling_timestamp
        if rolling_ts is not None and rolling_ts >= 0:
            waited = max_timestamp - rolling_ts
        else:
            waited = now_ms - seg.created_ms
        if (
            seg.size > self.config.segment_bytes - messages_size
            or waited > self.config.max_segment_ms - seg.roll_jitter_ms
            or seg.is_index_full()
            or not seg.can_hold_offset(last_offset)
        ):
            return self._roll(now_ms)
        return seg

    def roll(self, now_ms: int | None = None) -> LogSegment:
        """Start a new active segment at the log end offset (no-op if the
        active segment is empty)."""
        with self._lock:
            self._check_open()
            return self._roll(_now_ms() if now_ms is None else now_ms)

    def _roll(self, now_ms: int) -> LogSegment:
        old = self.segments[-1]
        if old.size == 0:
            return old
        base = old.next_offset
        old.on_become_inactive()
        new = self._segment(self.dir, self.config, base, now_ms, create=True)
        self.segments.append(new)
        self._bases.append(base)
        self._flush_pending = True
        self._dir_dirty = True
        return new

    # --- reads ---------------------------------------------------------------------------------

    def _segment_index(self, offset: int) -> int:
        return max(bisect.bisect_right(self._bases, offset) - 1, 0)

    def read(
        self,
        offset: int,
        max_bytes: int,
        *,
        max_offset: int | None = None,
        min_one_message: bool = True,
    ) -> ReadResult:
        """Whole batches from the one containing ``offset``, at most ``max_bytes``
        (unless ``min_one_message``: then the first batch comes whole even if
        larger), excluding batches whose base offset is >= ``max_offset``
        (the high watermark / last stable offset). May span segments.

        Raises OffsetOutOfRange if ``offset`` is outside [log_start_offset,
        log_end_offset]; ``offset`` == log end offset (or >= max_offset) gives
        an empty result. Cost: a bisect over segments, index bisects and
        header scans bounded by index.interval.bytes; no full scans.
        """
        with self._lock:
            self._check_open()
            if self.offline is not None:
                raise LogOfflineError(self.offline)
            leo = self.log_end_offset
            if offset < self.log_start_offset or offset > leo:
                raise OffsetOutOfRange(
                    f"offset {offset} is out of range for partition {self.name}: log start offset "
                    f"{self.log_start_offset}, log end offset {leo}",
                    self.log_start_offset,
                    leo,
                )
            limit = leo if max_offset is None else min(max_offset, leo)
            if offset >= limit:
                return EMPTY_READ
            segments = self.segments
            i = self._segment_index(offset)
            chunks: list[FileRegion] = []
            total = 0
            first_offset = -1
            target = offset
            while i < len(segments):
                seg = segments[i]
                if seg.base_offset >= limit:
                    break
                h = seg.translate_offset(target)
                if h is None:
                    i += 1
                    continue
                if h.base_offset >= limit:
                    break
                start = h.position
                next_base = self._bases[i + 1] if i + 1 < len(segments) else None
                if next_base is not None and next_base <= limit:
                    end_limit = seg.size
                else:
                    hl = seg.translate_offset(limit, start)
                    if hl is None:
                        end_limit = seg.size
                    elif hl.base_offset >= limit:
                        end_limit = hl.position
                    else:
                        end_limit = hl.position + hl.size
                budget = max_bytes - total
                if end_limit - start <= budget:
                    end = end_limit
                else:
                    end, _ = seg.batch_boundary_before(start, start + max(budget, 0))
                    if end == start and min_one_message and total == 0:
                        end = start + h.size
                if end > start:
                    chunks.append(FileRegion(seg.fd, start, end - start, seg.file_handle))
                    total += end - start
                    if first_offset < 0:
                        first_offset = h.base_offset
                if end < seg.size or total >= max_bytes:
                    break
                i += 1
                if i < len(segments):
                    target = max(target, segments[i].base_offset)
            if not chunks:
                return EMPTY_READ
            return ReadResult(chunks, total, first_offset)

    def offset_for_timestamp(self, timestamp: int) -> OffsetAndTimestamp | None:
        """ListOffsets by timestamp: (offset, timestamp) of the first record (in
        offset order, at or after the log start offset) whose timestamp is
        >= ``timestamp``; None if there is none. Segments whose max timestamp
        is below the target are skipped; inside a segment the time index and
        offset index are bisected and only the first matching batch decoded."""
        with self._lock:
            self._check_open()
            start = self.log_start_offset
            for i, seg in enumerate(self.segments):
                if i + 1 < len(self.segments) and self._bases[i + 1] <= start:
                    continue  # wholly before the log start offset
                if seg.max_timestamp_hint < timestamp:
                    continue
                r = seg.find_offset_by_timestamp(timestamp, start)
                if r is not None:
                    return OffsetAndTimestamp(r.offset, r.timestamp)
            return None

    def max_timestamp(self) -> TimestampAndOffset | None:
        """ListOffsets MAX_TIMESTAMP: (timestamp, offset) of the first record
        holding the largest timestamp in the log; None if no timestamps."""
        with self._lock:
            self._check_open()
            best: LogSegment | None = None
            best_ts = -1
            for seg in self.segments:
                ts = seg.max_timestamp_hint
                if best is None or ts > best_ts:
                    best, best_ts = seg, ts
            if best is None or best.max_timestamp < 0:
                return None
            r = best.offset_of_max_timestamp()
            return None if r is None else TimestampAndOffset(r.timestamp, r.offset)

    # --- truncation, log start -------------------------------------------------------------------

    def truncate_to(self, offset: int, now_ms: int | None = None) -> bool:
        """Remove everything from the batch containing ``offset`` on (replica
        truncation). Below the log start offset the log is emptied and
        restarts at ``offset``. Returns whether anything changed."""
        if offset < 0:
            raise ValueError(f"cannot truncate to negative offset {offset}")
        now = _now_ms() if now_ms is None else now_ms
        with self._flush_lock, self._lock:
            self._check_open()
            if offset >= self.log_end_offset:
                return False
            if offset < self.log_start_offset or offset < self.segments[0].base_offset:
                self._truncate_fully_and_start_at(offset, now)
                return True
            while len(self.segments) > 1 and self.segments[-1].base_offset > offset:
                self.segments.pop().delete()
                self._bases.pop()
            self.segments[-1].truncate_to(offset, now)
            self.truncations += 1
            leo = self.log_end_offset
            self._truncate_epochs_from_end(leo)
            self.high_watermark = min(self.high_watermark, leo)
            self.recovery_point = min(self.recovery_point, leo)
            self._flush_pending = True
            self._dir_dirty = True
            return True

    def truncate_fully_and_start_at(self, offset: int, now_ms: int | None = None) -> None:
        """Delete every segment and restart the (empty) log at ``offset``."""
        with self._flush_lock, self._lock:
            self._check_open()
            self._truncate_fully_and_start_at(offset, _now_ms() if now_ms is None else now_ms)

    def _truncate_fully_and_start_at(self, offset: int, now_ms: int) -> None:
        self.truncations += 1
        for s in self.segments:
            s.delete()
        self.segments = [self._segment(self.dir, self.config, offset, now_ms, create=True)]
        self._bases = [offset]
        self.log_start_offset = offset
        self.high_watermark = offset
        self.recovery_point = offset
        self._epochs = []
        self._write_epochs()
        self._dir_dirty = True
        self._flush_pending = True

    def advance_log_start_offset(self, offset: int, now_ms: int | None = None) -> bool:
        """DeleteRecords: move the log start offset forward (not past the high
        watermark) and retire the segments wholly before it (files renamed
        ``.deleted``, removed after file.delete.delay.ms). Raises
        OffsetOutOfRange with Kafka's message past the high watermark."""
        now = _now_ms() if now_ms is None else now_ms
        with self._lock:
            self._check_open()
            if offset > self.high_watermark:
                raise OffsetOutOfRange(
                    f"Cannot increment the log start offset to {offset} of partition {self.name} "
                    f"since it is larger than the high watermark {self.high_watermark}",
                    self.log_start_offset,
                    self.log_end_offset,
                )
            if offset <= self.log_start_offset:
                return False
            self.log_start_offset = offset
            doomed = []
            while len(self.segments) > 1 and self._bases[1] <= offset:
                doomed.append(self.segments.pop(0))
                self._bases.pop(0)
            self._retire(doomed, now)
            self._truncate_epochs_from_start(offset)
            return True

    # --- retention (Kafka's UnifiedLog.deleteOldSegments; policies in retention.py) -------------

    def deletable_segments(self, predicate) -> list[LogSegment]:  # type: ignore[no-untyped-def]
        """Kafka's deletableSegments: from the oldest segment on, while
        ``predicate(segment, next_segment_or_None)`` holds and the segment
        ends at or below the high watermark; an empty last segment never."""
        with self._lock:
            self._check_open()
            out: list[LogSegment] = []
            segs = self.segments
            for i, seg in enumerate(segs):
                nxt = segs[i + 1] if i + 1 < len(segs) else None
                upper = nxt.base_offset if nxt is not None else self.log_end_offset
                if nxt is None and seg.size == 0:
                    break
                if not (self.high_watermark >= upper and predicate(seg, nxt)):
                    break
                out.append(seg)
            return out

    def delete_segments(self, deletable: list[LogSegment], now_ms: int | None = None) -> int:
        """Kafka's deleteSegments: remove ``deletable`` (a prefix of the log);
        when that is every segment, roll first so one (empty) segment stays.
        The log start offset moves to the first remaining segment's base."""
        now = _now_ms() if now_ms is None else now_ms
        with self._lock:
            self._check_open()
            if not deletable:
                return 0
            if any(a is not b for a, b in zip(deletable, self.segments)):
                return 0  # the log changed meanwhile
            n = len(deletable)
            if n == len(self.segments):
                self._roll(now)
                if self.segments[-1] is deletable[-1]:  # the last one was empty: keep it
                    deletable = deletable[:-1]
                    n -= 1
            if n == 0:
                return 0
            new_start = self.segments[n].base_offset
            if new_start > self.log_start_offset:
                self.log_start_offset = new_start
                self._truncate_epochs_from_start(new_start)
            del self.segments[:n]
            del self._bases[:n]
            self._retire(deletable, now)
            return n

    def _retire(self, segments: list[LogSegment], now_ms: int) -> None:
        paths: list[Path] = []
        for s in segments:
            try:
                paths += s.retire()
            except OSError as e:
                log.warning("%s: renaming segment %d for deletion failed: %s", self.dir, s.base_offset, e)
                s.release()
        if paths:
            self.pending_deletes.append((now_ms + self.config.file_delete_delay_ms, paths))
            self._dir_dirty = True
            self._flush_pending = True

    def due_deletes(self, now_ms: int) -> list[Path]:
        """Retired files whose file.delete.delay.ms has passed (taken off the list)."""
        due = [x for x in self.pending_deletes if x[0] <= now_ms]
        if not due:
            return []
        self.pending_deletes = [x for x in self.pending_deletes if x[0] > now_ms]
        return [p for _, paths in due for p in paths]

    # --- compaction swap (Kafka's replaceSegments) -----------------------------------------------

    def replace_segments(self, new: LogSegment, old: list[LogSegment], now_ms: int | None = None) -> bool:
        """Swap the cleaned segment ``new`` (files suffixed ``.cleaned``) in for
        ``old`` (consecutive segments of this log), crash-safely: cleaned →
        ``.swap``, old segments retired (``.deleted``), ``.swap`` → live. A
        crash in between is completed at the next open. False (and nothing
        changed) if ``old`` is no longer exactly in the log (truncated,
        retired by retention, log closed); the caller deletes ``new``."""
        now = _now_ms() if now_ms is None else now_ms
        with self._lock:
            if self._closed or not old:
                return False
            try:
                i = next(k for k, s in enumerate(self.segments) if s is old[0])
            except StopIteration:
                return False
            if self.segments[i : i + len(old)] != old or i + len(old) >= len(self.segments):
                return False  # changed, or would touch the active segment
            new.change_file_suffixes(".cleaned", ".swap")
            self.segments[i : i + len(old)] = [new]
            self._bases[i : i + len(old)] = [new.base_offset]
            self._retire(old, now)
            try:
                new.change_file_suffixes(".swap", "")
            except OSError as e:  # the next open completes the swap
                log.warning("%s: renaming the swapped-in segment %d failed: %s", self.dir, new.base_offset, e)
            self._dir_dirty = True
            self._flush_pending = True
        for fn in list(self.on_segments_replaced):
            try:
                fn(new.base_offset, [s.base_offset for s in old])
            except Exception:
                log.exception("%s: a segments-replaced listener failed", self.dir)
        return True

    # --- durability, lifecycle ------------------------------------------------------------------

    def needs_flush(self, now_ms: int) -> bool:
        """True when flush.messages messages are unflushed or flush.ms passed
        since the last flush with messages unflushed (Kafka's policy; with the
        defaults, never)."""
        unflushed = self.log_end_offset - self.recovery_point
        if unflushed <= 0:
            return False
        return unflushed >= self.config.flush_messages or now_ms - self._last_flush_ms >= self.config.flush_ms

    def flush(self, now_ms: int | None = None) -> None:
        """fsync every segment with unflushed writes (and the directory after
        segment creation/deletion); advance the recovery point. May run in a
        worker thread concurrently with append/read."""
        with self._flush_lock:
            with self._lock:
                if self._closed:
                    return
                target = self.log_end_offset
                dirty = [s for s in self.segments if s.dirty]
                dir_dirty = self._dir_dirty
                self._dir_dirty = False
                self._flush_pending = False
            try:
                for s in dirty:
                    s.flush()
                if dir_dirty:
                    fsync_dir(self.dir)
            except BaseException:
                with self._lock:
                    self._dir_dirty = self._dir_dirty or dir_dirty
                    self._flush_pending = True
                raise
            with self._lock:
                if target > self.recovery_point:
                    self.recovery_point = target
                self._last_flush_ms = _now_ms() if now_ms is None else now_ms
                active = self.segments[-1]
                for s in dirty:
                    if s is not active and not s.dirty and not s.closed:
                        s.close_index_files()

    def close(self) -> None:
        """Flush everything and close the files (a clean shutdown)."""
        with self._flush_lock, self._lock:
            if self._closed:
                return
            try:
                for s in self.segments:
                    s.on_become_inactive()
                for s in self.segments:
                    if s.dirty:
                        s.flush()
                if self._dir_dirty:
                    fsync_dir(self.dir)
                self.recovery_point = self.log_end_offset
            finally:
                self._closed = True
                for s in self.segments:
                    s.close()

    def close_files(self) -> None:
        """Stop using the files without flushing (the log is about to be
        deleted). The fds are released, not closed: an in-flight fetch keeps
        reading the (unlinked) files."""
        with self._lock:
            self._closed = True
            for s in self.segments:
                s.release()

    def delete(self) -> None:
        """Close the files and remove the partition directory."""
        self.close_files()
        shutil.rmtree(self.dir, ignore_errors=True)


__all__ = [
    "AppendResult",
    "EpochEntry",
    "FileRegion",
    "InconsistentTopicIdError",
    "LogOfflineError",
    "OffsetAndTimestamp",
    "OffsetOutOfRange",
    "PartitionLog",
    "ReadResult",
    "TimestampAndOffset",
    "parse_partition_dir_name",
    "partition_dir_name",
]
