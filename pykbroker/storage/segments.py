"""The ordered segments of a partition log (Kafka's LogSegments).

One :class:`~pykbroker.storage.segment.LogSegment` per ``{base:020d}.log``
(plus its indexes), in base-offset order with bisectable bases; the last
one is the active segment. The reads that span segments (fetch, timestamp
lookups) work on this set. Not thread-safe: the partition log holds its
lock around every call.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterator
from pathlib import Path

import attrs

from .api import EMPTY_READ, OffsetAndTimestamp, ReadResult, TimestampAndOffset
from .log_config import LogConfig
from .segment import INDEX_SUFFIX, LOG_SUFFIX, TIMEINDEX_SUFFIX, FileHandle, LogSegment, pread_exact, segment_name


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
    owner: FileHandle | None = attrs.field(default=None, eq=False, repr=False)

    def read_bytes(self) -> bytes:
        data = pread_exact(self.fd, self.length, self.offset)
        if len(data) != self.length:
            raise OSError(f"short read: {len(data)} of {self.length} bytes at {self.offset}")
        return data


def new_segment(dir: Path, config: LogConfig, base: int, now_ms: int, *, create: bool) -> LogSegment:
    """Open segment ``base`` of ``dir`` (``create``: a new empty one, replacing
    any stale files of that name), with a random roll jitter."""
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


class LogSegments:
    """The segments of one log, oldest first (never empty once opened)."""

    def __init__(self, segments: list[LogSegment]) -> None:
        self._segments = segments
        self._bases = [s.base_offset for s in segments]

    # --- the set ---------------------------------------------------------------------

    @property
    def as_list(self) -> list[LogSegment]:
        """The segments themselves (callers must not change the list)."""
        return self._segments

    @property
    def bases(self) -> list[int]:
        return list(self._bases)

    def __len__(self) -> int:
        return len(self._segments)

    def __iter__(self) -> Iterator[LogSegment]:
        return iter(self._segments)

    def __getitem__(self, i: int) -> LogSegment:
        return self._segments[i]

    @property
    def active(self) -> LogSegment:
        return self._segments[-1]

    @property
    def size(self) -> int:
        return sum(s.size for s in self._segments)

    def index_of(self, offset: int) -> int:
        """Index of the segment that would hold ``offset`` (0 below the first)."""
        return max(bisect.bisect_right(self._bases, offset) - 1, 0)

    def base_after(self, i: int) -> int | None:
        """Base offset of the segment after index ``i``; None after the active one."""
        return self._bases[i + 1] if i + 1 < len(self._bases) else None

    def add(self, segment: LogSegment) -> None:
        self._segments.append(segment)
        self._bases.append(segment.base_offset)

    def pop_last(self) -> LogSegment:
        self._bases.pop()
        return self._segments.pop()

    def remove_first(self, n: int) -> list[LogSegment]:
        gone = self._segments[:n]
        del self._segments[:n], self._bases[:n]
        return gone

    def reset(self, segments: list[LogSegment]) -> None:
        self._segments = segments
        self._bases = [s.base_offset for s in segments]

    def position_of(self, segments: list[LogSegment]) -> int | None:
        """Where ``segments`` (consecutive, by identity) start in the set; None
        if they are not all there, in order, before the active segment."""
        if not segments:
            return None
        i = next((k for k, s in enumerate(self._segments) if s is segments[0]), None)
        if i is None or i + len(segments) >= len(self._segments):
            return None
        if any(a is not b for a, b in zip(self._segments[i : i + len(segments)], segments)):
            return None
        return i

    def replace(self, i: int, n: int, new: LogSegment) -> None:
        self._segments[i : i + n] = [new]
        self._bases[i : i + n] = [new.base_offset]

    # --- reads -------------------------------------------------------------------------

    def read(self, offset: int, limit: int, max_bytes: int, min_one_message: bool) -> ReadResult:
        """Whole batches from the one containing ``offset`` (at least the log
        start offset) up to, not including, base offset ``limit``; at most
        ``max_bytes`` unless ``min_one_message`` and nothing was taken yet."""
        if offset >= limit:
            return EMPTY_READ
        segments = self._segments
        i = self.index_of(offset)
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
            end = self._read_end(i, start, limit, max_bytes - total, min_one_message and total == 0, h.size)
            if end > start:
                fh = seg.file_handle
                chunks.append(FileRegion(fh.fd, start, end - start, fh))
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

    def _read_end(self, i: int, start: int, limit: int, budget: int, min_one: bool, first_size: int) -> int:
        """The file position where a read of segment ``i`` from ``start`` stops:
        before the batch at ``limit``, within ``budget`` bytes on a batch
        boundary (the first batch whole when ``min_one``)."""
        seg = self._segments[i]
        next_base = self.base_after(i)
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
        if end_limit - start <= budget:
            return end_limit
        end, _ = seg.batch_boundary_before(start, start + max(budget, 0))
        if end == start and min_one:
            end = start + first_size
        return end

    def offset_for_timestamp(self, timestamp: int, start: int) -> OffsetAndTimestamp | None:
        """The first record at or after offset ``start`` whose timestamp is >=
        ``timestamp``: segments whose max timestamp is below it are skipped,
        inside a segment the indexes are bisected."""
        for i, seg in enumerate(self._segments):
            nxt = self.base_after(i)
            if nxt is not None and nxt <= start:
                continue  # wholly before the log start offset
            if seg.max_timestamp_hint < timestamp:
                continue
            r = seg.find_offset_by_timestamp(timestamp, start)
            if r is not None:
                return OffsetAndTimestamp(r.offset, r.timestamp)
        return None

    def max_timestamp(self) -> TimestampAndOffset | None:
        """(timestamp, offset) of the first record holding the largest timestamp."""
        best: LogSegment | None = None
        best_ts = -1
        for seg in self._segments:
            ts = seg.max_timestamp_hint
            if best is None or ts > best_ts:
                best, best_ts = seg, ts
        if best is None or best.max_timestamp < 0:
            return None
        r = best.offset_of_max_timestamp()
        return None if r is None else TimestampAndOffset(r.timestamp, r.offset)


__all__ = ["FileRegion", "LogSegments", "new_segment"]
