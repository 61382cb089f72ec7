"""A partition's log: ``<log_dir>/<topic>-<partition>/`` with Kafka's files.

Files: ``{base:020d}.log/.index/.timeindex`` per segment (segment.py, the
ordered set in segments.py, the files as a whole in local_log.py),
``leader-epoch-checkpoint`` (epoch_cache.py) and ``partition.metadata``;
opening and recovery are loader.py's. This module combines them (Kafka's
UnifiedLog over LocalLog): offsets and appends, reads, leader epochs,
truncation, the log start offset, the retention and compaction entry
points. The rules shared with the memory engine are in
log_rules.py; the interface both implement is api.py's PartitionStore.

Threading: everything runs on the caller's (trio) thread except
:meth:`PartitionLog.flush`, which may run in a worker thread concurrently
with appends and reads: it fsyncs outside the locks and only touches shared
state inside a short critical section. close/delete/truncate wait for a
running flush to finish.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from ..protocol.records import BatchHeader, assign_offsets
from .api import (
    EMPTY_READ,
    AppendResult,
    EpochEntry,
    InconsistentTopicIdError,
    LogOfflineError,
    OffsetAndTimestamp,
    OffsetOutOfRange,
    ReadResult,
    SegmentsReplacedListener,
    TimestampAndOffset,
)
from .epoch_cache import LEADER_EPOCH_CHECKPOINT, end_offset_for_epoch, epoch_for_offset
from .loader import PARTITION_METADATA, LoadedLog, load_log, parse_partition_dir_name, partition_dir_name
from .log_config import LogConfig
from .log_rules import (
    check_fits_segment,
    check_log_start_advance,
    check_read_range,
    follower_batches,
    iter_log_batches,
    patched_headers,
    validate_append,
    writable_batches,
)
from .segment import LogSegment
from .local_log import LocalLog
from .segments import FileRegion
from ..util import now_ms as _now_ms

log = logging.getLogger("pykbroker.storage")

OFFSET_OUT_OF_RANGE = 1


class PartitionLog:
    """One partition's log. Create with :meth:`open`."""

    def __init__(self, loaded: LoadedLog, config: LogConfig, now_ms: int) -> None:
        self.topic = loaded.topic
        self.partition = loaded.partition
        self._local = LocalLog(loaded.dir, self.name, config, loaded.segments, recovery_point=loaded.recovery_point,
                               dir_dirty=loaded.dir_dirty, flush_pending=loaded.flush_pending, now_ms=now_ms)
        self._segments = loaded.segments
        self._lock = self._local.lock
        self._epochs = loaded.epochs
        self.log_start_offset = loaded.log_start_offset
        self.topic_id = loaded.topic_id
        self.high_watermark = self.log_end_offset
        # bumped by every truncation (the producer state reloads when it sees it change)
        self.truncations = 0
        # called as fn(new_base, old_bases) after a compaction swap (the new
        # segment's .txnindex holds the old ones' entries, in order)
        self.on_segments_replaced: list[SegmentsReplacedListener] = []

    def __repr__(self) -> str:
        return (
            f"PartitionLog({self.topic}-{self.partition}, start={self.log_start_offset}, "
            f"end={self.log_end_offset}, segments={len(self._segments)})"
        )

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
        topic_id_on_disk: bool = False,
    ) -> PartitionLog:
        """Open (or create) the partition directory ``dir``.

        With ``recover`` (unclean shutdown), segments from the one holding
        ``recovery_point`` to the end are recovered (default: only the active
        segment): checksums verified, a torn/corrupt tail truncated, indexes
        rebuilt; if a segment before the active one loses bytes, every later
        segment is deleted (as Kafka does). Segments whose index files are
        missing or inconsistent are rebuilt whenever they are first used.
        ``log_start_offset`` comes from log-start-offset-checkpoint.
        ``topic_id`` (16 bytes) is checked against / written to partition.metadata
        (``topic_id_on_disk``: the caller has just read it there).
        """
        now = _now_ms() if now_ms is None else now_ms
        loaded = load_log(Path(dir), config, recover=recover, recovery_point=recovery_point,
                          log_start_offset=log_start_offset, topic_id=topic_id, now_ms=now,
                          topic_id_on_disk=topic_id_on_disk)
        return cls(loaded, config, now)

    # --- state ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return partition_dir_name(self.topic, self.partition)

    @property
    def dir(self) -> Path:
        return self._local.dir

    @property
    def config(self) -> LogConfig:
        return self._local.config

    @config.setter
    def config(self, config: LogConfig) -> None:
        self._local.config = config

    @property
    def segments(self) -> list[LogSegment]:
        """The segments, oldest first (the list must not be changed)."""
        return self._segments.as_list

    @property
    def active_segment(self) -> LogSegment:
        return self._segments.active

    @property
    def active_segment_base(self) -> int:
        return self._segments.active.base_offset

    def segment_bases(self) -> list[int]:
        return self._segments.bases

    @property
    def log_end_offset(self) -> int:
        """The next offset to assign."""
        return self._segments.active.next_offset

    @property
    def size(self) -> int:
        return self._segments.size

    @property
    def recovery_point(self) -> int:
        """Everything below is fsynced."""
        return self._local.recovery_point

    @property
    def offline(self) -> str | None:
        """Set when an I/O failure may have left the files inconsistent."""
        return self._local.offline

    def take_offline(self, reason: str) -> None:
        """Refuse every later read and append (KAFKA_STORAGE_ERROR): its log
        directory failed."""
        if self._local.offline is None:
            self._local.offline = reason

    @property
    def pending_deletes(self) -> list[tuple[int, list[Path]]]:
        """(due ms, paths) of retired segment files awaiting file.delete.delay.ms."""
        return self._local.pending_deletes

    @property
    def leader_epoch(self) -> int:
        """Latest leader epoch in the epoch cache; -1 if none."""
        return self._epochs.latest_epoch

    @property
    def epoch_entries(self) -> list[EpochEntry]:
        return self._epochs.entries

    @property
    def flush_pending(self) -> bool:
        """Rolled or recovered segments wait for an fsync (Kafka flushes them
        in the background right after a roll); call :meth:`flush` in a thread."""
        return self._local.flush_pending

    @property
    def closed(self) -> bool:
        return self._local.closed

    def _check_open(self) -> None:
        if self._local.closed:
            raise ValueError(f"log {self.name} is closed")

    # --- leader epochs -------------------------------------------------------------------

    def epoch_for_offset(self, offset: int) -> int:
        """Leader epoch of the record at ``offset`` per the epoch cache; -1 if unknown."""
        return self._epochs.epoch_for_offset(offset)

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch: (largest epoch <= ``epoch``, its end offset)."""
        return self._epochs.end_offset_for(epoch, self.log_end_offset)

    def assign_epoch(self, epoch: int, start_offset: int) -> None:
        """Record that leader epoch ``epoch`` starts at ``start_offset`` (a new
        leader does this at its log end offset at once, before any append:
        Kafka's ``maybeAssignEpochStartOffset``)."""
        with self._lock:
            self._check_open()
            self._epochs.assign(epoch, start_offset)

    # --- appends -------------------------------------------------------------------------

    def validate(self, data: bytes | bytearray | memoryview | None, *, now_ms: int | None = None) -> list[BatchHeader]:
        """:func:`~.log_rules.validate_append` with this topic's config."""
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
        """Assign offsets to validated batches (patched into ``data`` in place;
        ``headers`` from :func:`validate_batches` on the same buffer) and write
        them to the active segment, rolling it first when needed
        (:meth:`LocalLog.maybe_roll`).

        - Raises InvalidRecords(RECORD_LIST_TOO_LARGE) when the data is bigger
          than segment.bytes (Kafka's RecordBatchTooLargeException), before
          anything is written.
        - The leader epoch cache gets a new entry when ``leader_epoch`` is new.
        - With ``auto_flush``, fsyncs inline once flush.messages messages are
          unflushed (Kafka's behaviour); otherwise the caller checks
          :meth:`needs_flush` and runs :meth:`flush` in a worker thread.
        """
        if not headers:
            raise ValueError("nothing to append")
        self._local.check_online()
        buf, headers = writable_batches(data, headers, self.config, self.name, now_ms)
        with self._lock:
            self._check_open()
            total = check_fits_segment(headers, self.config, self.name)
            log_append_time = now_ms if self.config.log_append_time else None
            base = self.log_end_offset
            last = assign_offsets(
                buf, headers, base, partition_leader_epoch=leader_epoch, log_append_time=log_append_time
            )
            new_headers = patched_headers(buf, headers)
            max_ts = max(h.max_timestamp for h in new_headers)
            segment = self._local.maybe_roll(total, max_ts, last, now_ms)
            # not written to leader-epoch-checkpoint here (one file write and
            # two fsyncs per partition on the event loop, issue 17): flush()
            # and close() write it before the recovery point passes the entry;
            # after a crash the recovery scan rebuilds it from the batches
            self._epochs.assign(leader_epoch, base, write=False)
            self._local.write(segment, buf, new_headers)
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

    def append_as_follower(self, data: bytes | bytearray | memoryview, now_ms: int | None = None) -> int:
        """Append batches fetched from the leader exactly as they are (their
        offsets, leader epochs, timestamps: the bytes stay identical to the
        leader's); see :func:`~.log_rules.follower_batches` for the checks.
        New leader epochs enter the epoch cache. Returns the number of bytes
        appended."""
        self._local.check_online()
        now = _now_ms() if now_ms is None else now_ms
        with self._lock:
            self._check_open()
            buf, headers = follower_batches(self.name, data, self.log_end_offset)
            if not headers:
                return 0
            max_ts = max(h.max_timestamp for h in headers)
            segment = self._local.maybe_roll(len(buf), max_ts, headers[-1].last_offset, now)
            for h in headers:
                self._epochs.assign_if_newer(h.partition_leader_epoch, h.base_offset)
            self._local.write(segment, buf, headers)
        return len(buf)

    def roll(self, now_ms: int | None = None) -> LogSegment:
        """Start a new active segment at the log end offset (no-op if the
        active segment is empty)."""
        with self._lock:
            self._check_open()
            return self._local.roll(_now_ms() if now_ms is None else now_ms)

    # --- reads ---------------------------------------------------------------------------

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
            self._local.check_online()
            leo = self.log_end_offset
            check_read_range(self.name, offset, self.log_start_offset, leo)
            limit = leo if max_offset is None else min(max_offset, leo)
            return self._segments.read(offset, limit, max_bytes, min_one_message)

    def offset_for_timestamp(self, timestamp: int) -> OffsetAndTimestamp | None:
        """ListOffsets by timestamp: (offset, timestamp) of the first record (in
        offset order, at or after the log start offset) whose timestamp is
        >= ``timestamp``; None if there is none."""
        with self._lock:
            self._check_open()
            return self._segments.offset_for_timestamp(timestamp, self.log_start_offset)

    def max_timestamp(self) -> TimestampAndOffset | None:
        """ListOffsets MAX_TIMESTAMP: (timestamp, offset) of the first record
        holding the largest timestamp in the log; None if no timestamps."""
        with self._lock:
            self._check_open()
            return self._segments.max_timestamp()

    # --- truncation, log start -----------------------------------------------------------

    def truncate_to(self, offset: int, now_ms: int | None = None) -> bool:
        """Remove everything from the batch containing ``offset`` on (replica
        truncation). Below the log start offset the log is emptied and
        restarts at ``offset``. Returns whether anything changed."""
        if offset < 0:
            raise ValueError(f"cannot truncate to negative offset {offset}")
        now = _now_ms() if now_ms is None else now_ms
        with self._local.flush_lock, self._lock:
            self._check_open()
            if offset >= self.log_end_offset:
                # Kafka's UnifiedLog.truncateTo: nothing to remove, but an epoch
                # entry at the log end (this replica led and assigned an epoch,
                # then appended nothing before another leader was elected)
                # conflicts with the leader's history: drop it, or the follower
                # keeps sending that epoch and the leader keeps answering with a
                # diverging epoch: never in sync again.
                self._epochs.truncate_from_end(self.log_end_offset)
                return False
            if offset < self.log_start_offset or offset < self._segments[0].base_offset:
                self._truncate_fully_and_start_at(offset, now)
                return True
            self._local.truncate_to(offset, now)
            self.truncations += 1
            leo = self.log_end_offset
            self._epochs.truncate_from_end(leo)
            self.high_watermark = min(self.high_watermark, leo)
            return True

    def truncate_fully_and_start_at(self, offset: int, now_ms: int | None = None) -> None:
        """Delete every segment and restart the (empty) log at ``offset``."""
        with self._local.flush_lock, self._lock:
            self._check_open()
            self._truncate_fully_and_start_at(offset, _now_ms() if now_ms is None else now_ms)

    def _truncate_fully_and_start_at(self, offset: int, now_ms: int) -> None:
        self.truncations += 1
        self._local.truncate_fully_and_start_at(offset, now_ms)
        self.log_start_offset = offset
        self.high_watermark = offset
        self._epochs.clear()

    def advance_log_start_offset(self, offset: int, now_ms: int | None = None) -> bool:
        """DeleteRecords: move the log start offset forward (not past the high
        watermark) and retire the segments wholly before it (files renamed
        ``.deleted``, removed after file.delete.delay.ms). Raises
        OffsetOutOfRange with Kafka's message past the high watermark."""
        now = _now_ms() if now_ms is None else now_ms
        with self._lock:
            self._check_open()
            if not check_log_start_advance(self, offset):
                return False
            self.log_start_offset = offset
            n = 0
            while n + 1 < len(self._segments) and self._segments[n + 1].base_offset <= offset:
                n += 1
            self._local.retire_first(n, now)
            self._epochs.truncate_from_start(offset)
            return True

    # --- retention (Kafka's UnifiedLog.deleteOldSegments; policies in retention.py) ------

    def deletable_segments(self, predicate: Callable[[LogSegment, LogSegment | None], bool]) -> list[LogSegment]:
        """Kafka's deletableSegments (:meth:`LocalLog.deletable_segments`) below
        the high watermark."""
        with self._lock:
            self._check_open()
            return self._local.deletable_segments(predicate, self.high_watermark)

    def delete_segments(self, deletable: list[LogSegment], now_ms: int | None = None) -> int:
        """Kafka's deleteSegments: remove ``deletable`` (a prefix of the log);
        when that is every segment, roll first so one (empty) segment stays.
        The log start offset moves to the first remaining segment's base."""
        now = _now_ms() if now_ms is None else now_ms
        with self._lock:
            self._check_open()
            if not deletable:
                return 0
            if any(a is not b for a, b in zip(deletable, self._segments)):
                return 0  # the log changed meanwhile
            n = len(deletable)
            if n == len(self._segments):
                self._local.roll(now)
                if self._segments.active is deletable[-1]:  # the last one was empty: keep it
                    n -= 1
            if n == 0:
                return 0
            new_start = self._segments[n].base_offset
            if new_start > self.log_start_offset:
                self.log_start_offset = new_start
                self._epochs.truncate_from_start(new_start)
            self._local.retire_first(n, now)
            return n

    def due_deletes(self, now_ms: int) -> list[Path]:
        """Retired files whose file.delete.delay.ms has passed (taken off the list)."""
        return self._local.due_deletes(now_ms)

    def replace_segments(self, new: LogSegment, old: list[LogSegment], now_ms: int | None = None) -> bool:
        """Swap the cleaned segment ``new`` (files suffixed ``.cleaned``) in for
        ``old`` (consecutive segments of this log), crash-safely
        (:meth:`LocalLog.replace`). False (and nothing changed) if ``old`` is
        no longer exactly in the log (truncated, retired by retention, log
        closed); the caller deletes ``new``. Then the listeners hear of it."""
        now = _now_ms() if now_ms is None else now_ms
        with self._lock:
            if self._local.closed or not old or not self._local.replace(new, old, now):
                return False
        for fn in list(self.on_segments_replaced):
            try:
                fn(new.base_offset, [s.base_offset for s in old])
            except Exception:
                log.exception("%s: a segments-replaced listener failed", self.dir)
        return True

    # --- durability, lifecycle -----------------------------------------------------------

    def needs_flush(self, now_ms: int) -> bool:
        """True when flush.messages messages are unflushed or flush.ms passed
        since the last flush with messages unflushed (Kafka's policy; with the
        defaults, never)."""
        return self._local.needs_flush(now_ms)

    def flush(self, now_ms: int | None = None) -> None:
        """fsync every segment with unflushed writes (and the directory after
        segment creation/deletion); advance the recovery point. May run in a
        worker thread concurrently with append/read. A leader epoch entry the
        append path left unwritten is written first."""
        self._local.flush(now_ms, before_sync=self._epoch_writer)

    def _epoch_writer(self, fsync: bool = True) -> Callable[[], None] | None:
        """Under the lock: a snapshot of unwritten epoch entries, and how to write it."""
        entries = self._epochs.take_unwritten()
        if entries is None:
            return None

        def write() -> None:
            try:
                self._epochs.write_entries(entries, fsync=fsync)
            except BaseException:
                self._epochs.mark_unwritten()
                raise

        return write

    def close(self, *, fsync: bool = True) -> None:
        """Flush everything and close the files (a clean shutdown). Without
        ``fsync`` nothing is fsynced: the caller syncs the file system
        (LogManager.close) before it writes the clean-shutdown marker."""
        try:
            with self._lock:
                write = None if self._local.closed else self._epoch_writer(fsync)
                if write is not None:
                    write()  # a failure still closes the files; the shutdown is then not clean
        finally:
            self._local.close(fsync=fsync)

    def close_files(self) -> None:
        """Stop using the files without flushing (the log is about to be
        deleted); an in-flight fetch keeps reading the (unlinked) files."""
        self._local.close_files()

    def delete(self) -> None:
        """Close the files and remove the partition directory."""
        self._local.delete()


__all__ = [
    "AppendResult",
    "EMPTY_READ",
    "EpochEntry",
    "FileRegion",
    "InconsistentTopicIdError",
    "LEADER_EPOCH_CHECKPOINT",
    "LogOfflineError",
    "OffsetAndTimestamp",
    "OffsetOutOfRange",
    "PARTITION_METADATA",
    "PartitionLog",
    "ReadResult",
    "TimestampAndOffset",
    "end_offset_for_epoch",
    "epoch_for_offset",
    "iter_log_batches",
    "parse_partition_dir_name",
    "partition_dir_name",
]
