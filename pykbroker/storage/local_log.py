"""The segment files of one partition directory (Kafka's LocalLog).

Owns the ordered segments (segments.py) and what is purely about files:
writing and rolling, cutting the tail (truncation), retiring whole segments
(retention, DeleteRecords, compaction swaps) with delayed file deletion,
fsync and the recovery point, closing. Offsets, leader epochs, validation
and the log start offset are the partition log's (log.py), which holds
``lock`` around every call here except :meth:`LocalLog.flush`, which may run
in a worker thread: it fsyncs outside the locks and only touches shared
state inside a short critical section.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from ..util import now_ms as _now_ms
from ..protocol.records import BatchHeader
from .api import LogOfflineError
from .checkpoints import fsync_dir
from .disk_faults import disk_delay
from .log_config import LogConfig
from .segment import LogSegment
from .segments import LogSegments, new_segment

log = logging.getLogger("pykbroker.storage")


class LocalLog:
    """Segment files, the recovery point and pending file deletions."""

    def __init__(self, dir: Path, name: str, config: LogConfig, segments: LogSegments, *, recovery_point: int,
                 dir_dirty: bool, flush_pending: bool, now_ms: int) -> None:
        self.dir = dir
        self.name = name
        self.config = config
        self.segments = segments
        self.recovery_point = recovery_point
        self.lock = threading.RLock()
        self.flush_lock = threading.Lock()
        self.dir_dirty = dir_dirty
        self.flush_pending = flush_pending
        self.last_flush_ms = now_ms
        self.closed = False
        # set when an I/O failure may have left the files inconsistent
        self.offline: str | None = None
        # (due ms, paths) of retired segment files awaiting file.delete.delay.ms
        self.pending_deletes: list[tuple[int, list[Path]]] = []

    @property
    def log_end_offset(self) -> int:
        return self.segments.active.next_offset

    def check_online(self) -> None:
        if self.offline is not None:
            raise LogOfflineError(self.offline)

    # --- writing, rolling ------------------------------------------------------------------

    def write(self, segment: LogSegment, buf: bytes | bytearray | memoryview, headers: list[BatchHeader]) -> None:
        """Write to ``segment``; after a failed write, if the file does not end
        where the segment thinks it does (the rollback failed too), take the
        log offline rather than append after garbage."""
        disk_delay()  # the slow-disk fault of the fault tests (off unless asked for)
        try:
            segment.append(buf, headers)
        except OSError as e:
            try:
                fh = segment.file_handle
                actual = os.fstat(fh.fd).st_size
            except OSError:
                actual = -1
            if actual != segment.size:
                self.offline = f"log {self.name} is offline after a failed write: {e}"
                log.error("%s", self.offline)
            raise

    def maybe_roll(self, messages_size: int, max_timestamp: int, last_offset: int, now_ms: int) -> LogSegment:
        """The segment to write to: a new one when the active one would exceed
        segment.bytes, when the incoming max timestamp is more than segment.ms
        (minus jitter) after its first batch's (without timestamps: after its
        creation), when an index is full, or when offsets would overflow the
        index's relative int32."""
        seg = self.segments.active
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
            return self.roll(now_ms)
        return seg

    def roll(self, now_ms: int) -> LogSegment:
        """A new active segment at the log end offset (none if the active one is empty)."""
        old = self.segments.active
        if old.size == 0:
            return old
        old.on_become_inactive()
        new = new_segment(self.dir, self.config, old.next_offset, now_ms, create=True)
        self.segments.add(new)
        self.flush_pending = True
        self.dir_dirty = True
        return new

    # --- cutting ---------------------------------------------------------------------------

    def truncate_to(self, offset: int, now_ms: int) -> None:
        """Remove everything from the batch containing ``offset`` on (``offset``
        at or above the first segment's base)."""
        while len(self.segments) > 1 and self.segments.active.base_offset > offset:
            self.segments.pop_last().delete()
        self.segments.active.truncate_to(offset, now_ms)
        self.recovery_point = min(self.recovery_point, self.log_end_offset)
        self.flush_pending = True
        self.dir_dirty = True

    def truncate_fully_and_start_at(self, offset: int, now_ms: int) -> None:
        """Delete every segment; one new empty segment at ``offset``."""
        for s in self.segments:
            s.delete()
        self.segments.reset([new_segment(self.dir, self.config, offset, now_ms, create=True)])
        self.recovery_point = offset
        self.dir_dirty = True
        self.flush_pending = True

    def retire_first(self, n: int, now_ms: int) -> None:
        """Retire the ``n`` oldest segments (files renamed ``.deleted``, removed
        after file.delete.delay.ms)."""
        self.retire(self.segments.remove_first(n), now_ms)

    def retire(self, segments: list[LogSegment], now_ms: int) -> None:
        paths: list[Path] = []
        for s in segments:
            try:
                paths += s.retire()
            except OSError as e:
                log.warning("%s: renaming segment %d for deletion failed: %s", self.dir, s.base_offset, e)
                s.release()
        if paths:
            self.pending_deletes.append((now_ms + self.config.file_delete_delay_ms, paths))
            self.dir_dirty = True
            self.flush_pending = True

    def due_deletes(self, now_ms: int) -> list[Path]:
        """Retired files whose file.delete.delay.ms has passed (taken off the list)."""
        due = [x for x in self.pending_deletes if x[0] <= now_ms]
        if not due:
            return []
        self.pending_deletes = [x for x in self.pending_deletes if x[0] > now_ms]
        return [p for _, paths in due for p in paths]

    def deletable_segments(self, predicate: Callable[[LogSegment, LogSegment | None], bool],
                           high_watermark: int) -> list[LogSegment]:
        """Kafka's deletableSegments: from the oldest segment on, while
        ``predicate(segment, next_segment_or_None)`` holds and the segment
        ends at or below the high watermark; an empty last segment never."""
        out: list[LogSegment] = []
        segs = self.segments
        for i, seg in enumerate(segs):
            nxt = segs[i + 1] if i + 1 < len(segs) else None
            upper = nxt.base_offset if nxt is not None else self.log_end_offset
            if nxt is None and seg.size == 0:
                break
            if not (high_watermark >= upper and predicate(seg, nxt)):
                break
            out.append(seg)
        return out

    def replace(self, new: LogSegment, old: list[LogSegment], now_ms: int) -> bool:
        """The compaction swap: cleaned → ``.swap``, ``old`` retired, ``.swap``
        → live (a crash in between is completed at the next open). False if
        ``old`` is no longer exactly in the log, before the active segment."""
        i = self.segments.position_of(old)
        if i is None:
            return False
        new.change_file_suffixes(".cleaned", ".swap")
        self.segments.replace(i, len(old), new)
        self.retire(old, now_ms)
        try:
            new.change_file_suffixes(".swap", "")
        except OSError as e:  # the next open completes the swap
            log.warning("%s: renaming the swapped-in segment %d failed: %s", self.dir, new.base_offset, e)
        self.dir_dirty = True
        self.flush_pending = True
        return True

    # --- durability, lifecycle -------------------------------------------------------------

    def needs_flush(self, now_ms: int) -> bool:
        """flush.messages messages unflushed, or flush.ms passed since the last
        flush with messages unflushed (Kafka's policy; with the defaults, never)."""
        unflushed = self.log_end_offset - self.recovery_point
        if unflushed <= 0:
            return False
        return unflushed >= self.config.flush_messages or now_ms - self.last_flush_ms >= self.config.flush_ms

    def flush(self, now_ms: int | None = None, *,
              before_sync: Callable[[], Callable[[], None] | None] | None = None) -> None:
        """fsync every segment with unflushed writes (and the directory after
        segment creation/deletion); advance the recovery point. May run in a
        worker thread concurrently with writes and reads.

        ``before_sync`` is called under the lock, with the log end offset the
        recovery point will advance to; the callable it may return runs first,
        outside the lock (the partition writes its leader epoch checkpoint
        that way, before the recovery point passes the entries)."""
        disk_delay()
        with self.flush_lock:
            with self.lock:
                if self.closed:
                    return
                target = self.log_end_offset
                dirty = [s for s in self.segments if s.dirty]
                dir_dirty = self.dir_dirty
                self.dir_dirty = False
                self.flush_pending = False
                first = before_sync() if before_sync is not None else None
            try:
                if first is not None:
                    first()
                for s in dirty:
                    s.flush()
                if dir_dirty:
                    fsync_dir(self.dir)
            except BaseException:
                with self.lock:
                    self.dir_dirty = self.dir_dirty or dir_dirty
                    self.flush_pending = True
                raise
            with self.lock:
                if target > self.recovery_point:
                    self.recovery_point = target
                self.last_flush_ms = now_ms if now_ms is not None else _now_ms()
                # index fds are reopened by the next index entry
                for s in dirty:
                    if not s.dirty and not s.closed:
                        s.close_index_files()

    def close(self, *, fsync: bool = True) -> None:
        """Flush everything and close the files (a clean shutdown). Without
        ``fsync`` the caller makes the writes durable itself (LogManager.close:
        one syncfs for the whole directory) before relying on them."""
        with self.flush_lock, self.lock:
            if self.closed:
                return
            try:
                for s in self.segments:
                    s.on_become_inactive()
                if fsync:
                    for s in self.segments:
                        if s.dirty:
                            s.flush()
                    if self.dir_dirty:
                        fsync_dir(self.dir)
                self.recovery_point = self.log_end_offset
            finally:
                self.closed = True
                for s in self.segments:
                    s.close()

    def close_files(self) -> None:
        """Stop using the files without flushing (the log is about to be
        deleted). The fds are released, not closed: an in-flight fetch keeps
        reading the (unlinked) files."""
        with self.lock:
            self.closed = True
            for s in self.segments:
                s.release()

    def delete(self) -> None:
        """Close the files and remove the partition directory."""
        self.close_files()
        shutil.rmtree(self.dir, ignore_errors=True)


__all__ = ["LocalLog"]
