"""One log segment: ``{base:020d}.log`` + ``.index`` + ``.timeindex``, as Kafka lays them out.

- ``.log``: record batches back to back, exactly as produced (offsets patched).
- ``.index``: sparse offset index, 8-byte big-endian entries
  (int32 offset - base, int32 file position). An entry (O, P) says the batch
  starting at P has last offset O. One entry whenever more than
  index.interval.bytes were appended since the previous entry (so never for
  the first batch).
- ``.timeindex``: sparse time index, 12-byte entries (int64 timestamp, int32
  offset - base), appended together with offset-index entries but only when
  the segment's max timestamp grew; the entry names the last offset of the
  batch holding that max timestamp. On roll/close a final entry with the
  segment's max timestamp is appended (Kafka does the same).

The index contents are kept in memory (``array('q')``) so lookups are bisects;
index files are only appended to (and rewritten on truncation/recovery). A
zero-filled tail (real Kafka preallocates index files of the active segment)
is ignored and trimmed. Indexes of inactive segments are loaded lazily.

Open files are a bounded resource: a segment opens its log file on first use
and :data:`OPEN_SEGMENTS` (an LRU bounded by ``pykbroker.log.max.open.segments``)
lets the least recently used ones go, so 10,000 partitions of several
segments each do not need a descriptor per file. Index files are opened only
to append (and closed once flushed). Every user of a segment's fd holds its
:class:`FileHandle`, so an fd let go while in use stays open until that use ends.

Not thread-safe except :meth:`flush`, which only fsyncs (see PartitionLog).
"""

from __future__ import annotations

import bisect
import errno
import operator
import os
import struct
import threading
import time
import weakref
from collections import OrderedDict
from array import array
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar
from pathlib import Path

import attrs

from ..protocol.records import (
    unpack_header,
    BATCH_OVERHEAD,
    LOG_OVERHEAD,
    MAGIC_V2,
    MIN_BATCH_LENGTH,
    NO_TIMESTAMP,
    BatchHeader,
    batch_crc,
    decode_records,
)
from ..util import INT_MAX as INT32_MAX, fd_soft_limit
from .checkpoints import read_bytes

OFFSET_INDEX_ENTRY_SIZE = 8
TIME_INDEX_ENTRY_SIZE = 12
_IDX = struct.Struct(">ii")
_TIDX = struct.Struct(">qi")
_T = TypeVar("_T")
_SCAN_CHUNK = 16 * 1024  # bytes read at a time when walking batch headers
_RECOVER_CHUNK = 1024 * 1024  # bytes read at a time when checksumming

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIMEINDEX_SUFFIX = ".timeindex"
TXNINDEX_SUFFIX = ".txnindex"
SNAPSHOT_SUFFIX = ".snapshot"


def segment_name(base_offset: int) -> str:
    return f"{base_offset:020d}"


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def pread_exact(fd: int, length: int, offset: int) -> bytes:
    chunks = []
    while length > 0:
        b = os.pread(fd, length, offset)
        if not b:
            break
        chunks.append(b)
        length -= len(b)
        offset += len(b)
    return b"".join(chunks) if len(chunks) != 1 else chunks[0]


class FileHandle:
    """Owns an open file descriptor; closes it when closed explicitly or when the
    last reference goes away. A fetch's file regions hold the handle, so a
    segment deleted by retention, compaction, DeleteRecords or topic deletion
    while a response is being sent keeps its data readable (the fd number can
    never be reused under the response)."""

    __slots__ = ("fd", "_open", "__weakref__")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._open = True

    def close(self) -> None:
        if self._open:
            self._open = False
            os.close(self.fd)

    @property
    def closed(self) -> bool:
        return not self._open

    def __del__(self) -> None:
        try:
            self.close()
        except OSError:
            pass


def _fsync_path(path: Path) -> None:
    """fsync a file not held open (Linux flushes the inode's dirty pages
    whatever descriptor wrote them)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class OpenSegments:
    """The segments whose log file is open, least recently used first; past
    ``max_open`` (0: half the fd soft limit) the oldest let their fd go (a
    later use reopens it). Thread-safe: reads may run in worker threads."""

    def __init__(self, max_open: int = 0) -> None:
        self._lock = threading.Lock()
        self._lru: OrderedDict[int, weakref.ref[LogSegment]] = OrderedDict()
        self.max_open = max_open
        self.evictions = 0

    @property
    def limit(self) -> int:
        return self.max_open if self.max_open > 0 else max(fd_soft_limit() // 2, 16)

    def __len__(self) -> int:
        return len(self._lru)

    def open(self, seg: LogSegment) -> FileHandle:
        """``seg``'s log file handle, opened (and registered) if needed, marked
        most recently used. On EMFILE/ENFILE half the open segments let go
        and the open is retried once."""
        with self._lock:
            fh = seg._fh
            if fh is None or fh.closed:
                try:
                    fh = seg._open_log_file()
                except OSError as e:
                    if e.errno not in (errno.EMFILE, errno.ENFILE):
                        raise
                    self._evict_locked(max(len(self._lru) // 2, 1), exclude=seg)
                    fh = seg._open_log_file()
                seg._fh = fh
            key = id(seg)
            if key in self._lru:
                self._lru.move_to_end(key)
            else:
                self._lru[key] = weakref.ref(seg)
                over = len(self._lru) - self.limit
                if over > 0:
                    self._evict_locked(over, exclude=seg)
            return fh

    def forget(self, seg: LogSegment) -> None:
        with self._lock:
            self._lru.pop(id(seg), None)

    def shrink(self, n: int) -> int:
        """Let the ``n`` least recently used segments' fds go (fd pressure)."""
        with self._lock:
            return self._evict_locked(n)

    def _evict_locked(self, n: int, exclude: LogSegment | None = None) -> int:
        done = 0
        for key in list(self._lru):
            if done >= n:
                break
            seg = self._lru[key]()
            if seg is exclude and seg is not None:
                continue
            del self._lru[key]
            if seg is not None and seg._fh is not None:
                # dropped, not closed: a reader holding the handle keeps it
                # open until it lets go (FileHandle closes on the last reference)
                seg._fh = None
                self.evictions += 1
            done += 1
        return done


#: every open segment of the process (``pykbroker.log.max.open.segments``)
OPEN_SEGMENTS = OpenSegments()


def with_fd_relief(fn: Callable[..., _T], *args: Any) -> _T:
    """``fn(*args)``; on EMFILE/ENFILE half the open segments let their fd go
    and it is called once more (a segment's open, and file work done on first
    use, such as loading a partition's producer state during a fetch holding
    many segments)."""
    try:
        return fn(*args)
    except OSError as e:
        if e.errno not in (errno.EMFILE, errno.ENFILE):
            raise
    OPEN_SEGMENTS.shrink(max(len(OPEN_SEGMENTS) // 2, 1))
    return fn(*args)


def _open_with_relief(path: Path, flags: int) -> int:
    """os.open, retried once after half the open segments let their fd go."""
    return with_fd_relief(os.open, path, flags, 0o644)


def set_max_open_segments(n: int) -> None:
    """Bound the open segment log files (0: half the fd soft limit)."""
    OPEN_SEGMENTS.max_open = n
    over = len(OPEN_SEGMENTS) - OPEN_SEGMENTS.limit
    if over > 0:
        OPEN_SEGMENTS.shrink(over)


@attrs.frozen
class TimestampAndOffset:
    timestamp: int
    offset: int
    leader_epoch: int = -1


class LogSegment:
    """A segment of a partition log starting at ``base_offset``."""

    def __init__(
        self,
        dir: Path,
        base_offset: int,
        *,
        index_interval_bytes: int,
        max_index_bytes: int,
        created_ms: int | None = None,
        roll_jitter_ms: int = 0,
        create: bool = False,
        suffix: str = "",
    ) -> None:
        self.dir = Path(dir)
        self.base_offset = base_offset
        self.index_interval_bytes = index_interval_bytes
        self.max_index_bytes = max_index_bytes
        self.created_ms = int(time.time() * 1000) if created_ms is None else created_ms
        self.roll_jitter_ms = roll_jitter_ms
        self.suffix = suffix  # "" normally; ".cleaned"/".swap" while the cleaner builds it
        self._set_paths(suffix)
        self._fh: FileHandle | None = None
        self._closed = False
        if create:
            fd = _open_with_relief(self.log_path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC | os.O_CREAT | os.O_EXCL)
            self._fh = FileHandle(fd)
            self._size = 0
            OPEN_SEGMENTS.open(self)
        else:
            # the log file is opened on first use (OPEN_SEGMENTS), not here: a
            # broker with many partitions would open (and, past the bound,
            # close again) every segment at start (issue 17)
            self._size = os.stat(self.log_path).st_size
        # in-memory indexes (absolute offsets)
        self._idx_off = array("q")
        self._idx_pos = array("q")
        self._ti_ts = array("q")
        self._ti_off = array("q")
        self._idx_fd: int | None = None
        self._ti_fd: int | None = None
        self._idx_fh: FileHandle | None = None
        self._ti_fh: FileHandle | None = None
        self._loaded = False
        self._bytes_since_index = 0
        self._next_offset = base_offset
        self._max_ts = NO_TIMESTAMP
        self._max_ts_offset = base_offset
        self._rolling_ts: int | None = None
        self.dirty = False  # unflushed writes (log or index files)
        if create:
            self._write_index_files(b"", b"")
            # empty files: the directory's fsync makes them durable
            self.dirty = False
            self._loaded = True

    def __repr__(self) -> str:
        return f"LogSegment(base_offset={self.base_offset}, size={self._size}, dir={str(self.dir)!r})"

    def _set_paths(self, suffix: str) -> None:
        name = segment_name(self.base_offset)
        self.log_path = self.dir / (name + LOG_SUFFIX + suffix)
        self.index_path = self.dir / (name + INDEX_SUFFIX + suffix)
        self.timeindex_path = self.dir / (name + TIMEINDEX_SUFFIX + suffix)

    # --- basic properties -------------------------------------------------------

    def _open_log_file(self) -> FileHandle:
        if self._closed:
            raise OSError(errno.EBADF, f"segment {self.base_offset} of {self.dir} is closed")
        return FileHandle(os.open(self.log_path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC))

    def _handle(self) -> FileHandle:
        """The log file's handle, (re)opened if it was let go; hold it (not
        just its fd) for as long as the fd is used."""
        return OPEN_SEGMENTS.open(self)

    @property
    def fd(self) -> int:
        """The log file's fd (only while :attr:`file_handle` is held)."""
        return self._handle().fd

    @property
    def file_handle(self) -> FileHandle:
        """The handle owning the log file's fd (file regions keep it alive)."""
        return self._handle()

    @property
    def is_open(self) -> bool:
        """Whether the log file's fd is open now (tests, metrics)."""
        fh = self._fh
        return fh is not None and not fh.closed

    @property
    def last_modified_ms(self) -> int:
        """The log file's mtime in ms (Kafka's LogSegment.lastModified)."""
        fh = self._fh
        if fh is not None and not fh.closed:
            return int(os.fstat(fh.fd).st_mtime * 1000)
        return int(os.stat(self.log_path).st_mtime * 1000)

    def set_last_modified(self, ms: int) -> None:
        os.utime(self.log_path, (ms / 1000, ms / 1000))

    @property
    def largest_timestamp(self) -> int:
        """Kafka's LogSegment.largestTimestamp: the largest record timestamp, or
        the file's mtime when the segment has none. Cheap for a segment whose
        indexes are not loaded: the last time-index entry of an inactive
        segment holds its max timestamp (written on roll and close)."""
        if not self._loaded:
            ts = self._peek_last_time_entry()
            if ts is not None:
                return ts
            self.load_indexes()
        return self._max_ts if self._max_ts >= 0 else self.last_modified_ms

    @property
    def max_timestamp_hint(self) -> int:
        """:attr:`max_timestamp` without loading the indexes of an inactive
        segment (its time index ends with its max timestamp)."""
        if not self._loaded:
            ts = self._peek_last_time_entry()
            if ts is not None:
                return ts
        return self.max_timestamp

    def _peek_last_time_entry(self) -> int | None:
        try:
            n = os.stat(self.timeindex_path).st_size
        except OSError:
            return None
        n -= n % TIME_INDEX_ENTRY_SIZE
        if n <= 0:
            return None
        try:
            with open(self.timeindex_path, "rb") as f:
                f.seek(n - TIME_INDEX_ENTRY_SIZE)
                raw = f.read(TIME_INDEX_ENTRY_SIZE)
        except OSError:
            return None
        if len(raw) != TIME_INDEX_ENTRY_SIZE or raw == bytes(TIME_INDEX_ENTRY_SIZE):
            return None  # zero-filled (preallocated) tail: load properly
        ts, rel = _TIDX.unpack(raw)
        return ts if ts >= 0 and rel >= 0 else None

    @property
    def size(self) -> int:
        return self._size

    @property
    def next_offset(self) -> int:
        """Offset after the last batch (base_offset when empty)."""
        self.load_indexes()
        return self._next_offset

    @property
    def max_timestamp(self) -> int:
        self.load_indexes()
        return self._max_ts

    @property
    def max_timestamp_and_offset(self) -> tuple[int, int]:
        """(largest batch max timestamp, last offset of the batch holding it)."""
        self.load_indexes()
        return self._max_ts, self._max_ts_offset

    @property
    def rolling_timestamp(self) -> int | None:
        """The first batch's max timestamp (Kafka's rollingBasedTimestamp), None if empty."""
        if self._rolling_ts is None and self._size >= BATCH_OVERHEAD:
            fh = self._handle()
            h = unpack_header(pread_exact(fh.fd, BATCH_OVERHEAD, 0), 0, 0)
            self._rolling_ts = h.max_timestamp
        return self._rolling_ts

    @property
    def index_entries(self) -> int:
        self.load_indexes()
        return len(self._idx_off)

    @property
    def time_index_entries(self) -> int:
        self.load_indexes()
        return len(self._ti_ts)

    def offset_index(self) -> list[tuple[int, int]]:
        """(absolute offset, position) entries, for tests and tools."""
        self.load_indexes()
        return list(zip(self._idx_off, self._idx_pos))

    def time_index(self) -> list[tuple[int, int]]:
        """(timestamp, absolute offset) entries, for tests and tools."""
        self.load_indexes()
        return list(zip(self._ti_ts, self._ti_off))

    def is_index_full(self) -> bool:
        self.load_indexes()
        return (
            len(self._idx_off) >= self.max_index_bytes // OFFSET_INDEX_ENTRY_SIZE
            or len(self._ti_ts) >= self.max_index_bytes // TIME_INDEX_ENTRY_SIZE
        )

    def can_hold_offset(self, offset: int) -> bool:
        return 0 <= offset - self.base_offset <= INT32_MAX

    # --- reading batch headers ---------------------------------------------------

    def iter_headers(self, start: int = 0, end: int | None = None) -> Iterator[BatchHeader]:
        """Headers of the batches from file position ``start`` (a batch boundary)
        up to ``end`` (default: the segment size); stops at a partial or
        malformed batch. Positions are file positions. Reads only headers
        (16 KiB at a time)."""
        end = self._size if end is None else min(end, self._size)
        pos = start
        buf = b""
        buf_start = pos
        fh = self._handle()  # held while the generator runs
        fd = fh.fd
        while end - pos >= BATCH_OVERHEAD:
            off = pos - buf_start
            if off + BATCH_OVERHEAD > len(buf):
                buf = os.pread(fd, min(_SCAN_CHUNK, end - pos), pos)
                buf_start = pos
                off = 0
                if len(buf) < BATCH_OVERHEAD:
                    return
            h = unpack_header(buf, off, pos)
            if h.batch_length < MIN_BATCH_LENGTH or pos + h.batch_length + LOG_OVERHEAD > end:
                return
            yield h
            pos += h.batch_length + LOG_OVERHEAD

    def header_at(self, position: int) -> BatchHeader | None:
        for h in self.iter_headers(position):
            return h
        return None

    def read_bytes(self, position: int, length: int) -> bytes:
        fh = self._handle()
        return pread_exact(fh.fd, length, position)

    def _lookup_position(self, offset: int) -> int:
        """Offset index lookup: position of the indexed batch with the largest
        last offset <= ``offset`` (0 if none)."""
        i = bisect.bisect_right(self._idx_off, offset) - 1
        return self._idx_pos[i] if i >= 0 else 0

    def translate_offset(self, offset: int, start_position: int = 0) -> BatchHeader | None:
        """The first batch whose last offset is >= ``offset`` (index bisect,
        then a forward scan of at most about index.interval.bytes)."""
        self.load_indexes()
        pos = max(self._lookup_position(offset), start_position)
        for h in self.iter_headers(pos):
            if h.last_offset >= offset:
                return h
        return None

    def batch_boundary_before(self, start: int, limit: int) -> tuple[int, BatchHeader | None]:
        """End position of the last whole batch that starts at or after ``start``
        and ends at or before ``limit``, with its header; (start, None) if the
        first batch at ``start`` already ends after ``limit``. Bisects the
        offset index on positions, then scans at most about
        index.interval.bytes."""
        self.load_indexes()
        j = bisect.bisect_right(self._idx_pos, limit) - 1
        pos = start
        if j >= 0 and self._idx_pos[j] > start:
            pos = self._idx_pos[j]
        end = pos
        last = None
        for h in self.iter_headers(pos):
            if h.position + h.size > limit:
                break
            end = h.position + h.size
            last = h
        if last is None and pos != start:
            # the indexed batch at pos itself ends past the limit: the batch
            # before it ends exactly at pos; find it (bounded scan)
            k = j - 1
            scan_from = start if k < 0 or self._idx_pos[k] < start else self._idx_pos[k]
            for h in self.iter_headers(scan_from, pos):
                last = h
            end = pos if last is not None else start
        return end, last

    def read(self, start_position: int, max_bytes: int, *, min_one_message: bool = False) -> tuple[int, int]:
        """(position, length) of the whole batches from ``start_position`` (a
        batch boundary) fitting in ``max_bytes``; with ``min_one_message`` the
        first batch even if larger. Bounded cost (see batch_boundary_before)."""
        end, _ = self.batch_boundary_before(start_position, start_position + max(max_bytes, 0))
        if end == start_position and min_one_message:
            h = self.header_at(start_position)
            if h is not None:
                end = h.position + h.size
        return start_position, end - start_position

    def find_offset_by_timestamp(self, timestamp: int, starting_offset: int) -> TimestampAndOffset | None:
        """The first record (in offset order) with timestamp >= ``timestamp`` and
        offset >= ``starting_offset`` (Kafka's LogSegment.findOffsetByTimestamp):
        time index bisect, offset index bisect, header scan to the first batch
        whose max timestamp is >= the target, then that batch's records."""
        self.load_indexes()
        i = bisect.bisect_right(self._ti_ts, timestamp) - 1
        ti_offset = self._ti_off[i] if i >= 0 else self.base_offset
        pos = self._lookup_position(max(ti_offset, starting_offset))
        for h in self.iter_headers(pos):
            if h.max_timestamp >= timestamp and h.last_offset >= starting_offset:
                for r in decode_records(self.read_bytes(h.position, h.size)):
                    if r.timestamp >= timestamp and r.offset >= starting_offset:
                        return TimestampAndOffset(r.timestamp, r.offset, h.partition_leader_epoch)
        return None

    def offset_of_max_timestamp(self) -> TimestampAndOffset | None:
        """The first record holding the segment's max timestamp (ListOffsets
        MAX_TIMESTAMP, KIP-734)."""
        ts, off = self.max_timestamp_and_offset
        if ts < 0:
            return None
        for h in self.iter_headers(self._lookup_position(off)):
            if h.max_timestamp == ts:
                for r in decode_records(self.read_bytes(h.position, h.size)):
                    if r.timestamp == ts:
                        return TimestampAndOffset(ts, r.offset, h.partition_leader_epoch)
                return None
        return None

    # --- appending ------------------------------------------------------------------

    def append(self, data: bytes | bytearray | memoryview, headers: Sequence[BatchHeader]) -> None:
        """Append whole batches (``headers`` describe ``data``; their positions are
        relative to ``data`` and the batches contiguous) and update the indexes."""
        if not headers:
            return
        self.load_indexes()
        first, last = headers[0], headers[-1]
        if first.base_offset < self._next_offset and self._size > 0:
            raise ValueError(
                f"append at offset {first.base_offset} below the segment's next offset {self._next_offset}"
            )
        if not self.can_hold_offset(first.base_offset) or not self.can_hold_offset(last.last_offset):
            raise ValueError(f"offsets {first.base_offset}..{last.last_offset} do not fit segment {self.base_offset}")
        view = memoryview(data)[first.position : last.position + last.size]
        if len(view) != last.position + last.size - first.position:
            raise ValueError("headers describe more bytes than data holds")
        if self._size == 0:
            self._rolling_ts = max(h.max_timestamp for h in headers)
        start = self._size
        fh = self._handle()
        if self._bytes_since_index + len(view) - last.size > self.index_interval_bytes:
            # an index entry follows: its files open before the data goes in,
            # so a lack of fds fails the append cleanly rather than half-way
            self._open_index_fds()
        try:
            write_all(fh.fd, view)
        except BaseException:
            # never leave a torn batch behind a later append
            os.ftruncate(fh.fd, start)
            raise
        self.dirty = True
        pos = start
        for h in headers:
            if h.max_timestamp > self._max_ts:
                self._max_ts = h.max_timestamp
                self._max_ts_offset = h.last_offset
            if self._bytes_since_index > self.index_interval_bytes:
                self._append_index_entry(h.last_offset, pos)
                self._maybe_append_time_entry(self._max_ts, self._max_ts_offset)
                self._bytes_since_index = 0
            self._bytes_since_index += h.size
            pos += h.size
        self._size = pos
        self._next_offset = last.next_offset

    def _open_index_fds(self) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        if self._idx_fd is None:
            self._idx_fd = _open_with_relief(self.index_path, flags)
            self._idx_fh = FileHandle(self._idx_fd)
        if self._ti_fd is None:
            self._ti_fd = _open_with_relief(self.timeindex_path, flags)
            self._ti_fh = FileHandle(self._ti_fd)

    def _append_index_entry(self, offset: int, position: int) -> None:
        if len(self._idx_off) >= self.max_index_bytes // OFFSET_INDEX_ENTRY_SIZE:
            return  # full (the log rolls before this happens); sparse index stays correct
        self._open_index_fds()
        assert self._idx_fd is not None
        write_all(self._idx_fd, _IDX.pack(offset - self.base_offset, position))
        self._idx_off.append(offset)
        self._idx_pos.append(position)
        self.dirty = True

    def _maybe_append_time_entry(self, timestamp: int, offset: int, skip_full_check: bool = False) -> None:
        last_ts = self._ti_ts[-1] if self._ti_ts else NO_TIMESTAMP
        if timestamp <= last_ts:
            return
        if self._ti_off and offset < self._ti_off[-1]:
            return
        if not skip_full_check and len(self._ti_ts) >= self.max_index_bytes // TIME_INDEX_ENTRY_SIZE:
            return
        self._open_index_fds()
        assert self._ti_fd is not None
        write_all(self._ti_fd, _TIDX.pack(timestamp, offset - self.base_offset))
        self._ti_ts.append(timestamp)
        self._ti_off.append(offset)
        self.dirty = True

    def on_become_inactive(self) -> None:
        """Called when the log rolls past this segment: the time index gets a
        final entry with the segment's max timestamp (as Kafka)."""
        if self._loaded:
            self._maybe_append_time_entry(self._max_ts, self._max_ts_offset, skip_full_check=True)

    # --- loading, recovery --------------------------------------------------------------

    def load_indexes(self) -> None:
        """Load the index files into memory (once); rebuild them by recovering
        the segment if they are missing or inconsistent with the log."""
        if self._loaded:
            return
        if not self._try_load_indexes():
            self.recover()

    def _try_load_indexes(self) -> bool:
        try:
            idx_raw = read_bytes(self.index_path)
            ti_raw = read_bytes(self.timeindex_path)
        except FileNotFoundError:
            if self._size == 0:
                self._write_index_files(b"", b"")
                self._reset_memory_indexes()
                self._loaded = True
                self._refresh_tail_state()
                return True
            return False
        base = self.base_offset
        # offset index: strictly increasing offsets and positions (> 0)
        n = len(idx_raw) // OFFSET_INDEX_ENTRY_SIZE
        nz = len(idx_raw.rstrip(b"\x00"))
        used = -(-nz // OFFSET_INDEX_ENTRY_SIZE)  # entries up to the last non-zero byte
        if used > n:
            return False  # garbage partial entry
        # decoded and checked in C loops (struct, map, all): a clean start-up
        # loads every active segment's index, so this is start-up time
        flat = struct.unpack(f">{2 * used}i", idx_raw[: used * OFFSET_INDEX_ENTRY_SIZE])
        rels, poss = flat[0::2], flat[1::2]
        if used and not (rels[0] > 0 and poss[0] > 0 and poss[-1] < self._size
                         and all(map(operator.lt, rels, rels[1:]))
                         and all(map(operator.lt, poss, poss[1:]))):
            return False
        idx_off = array("q", map(base.__add__, rels))
        idx_pos = array("q", poss)
        # time index: strictly increasing timestamps, non-decreasing offsets
        m = len(ti_raw) // TIME_INDEX_ENTRY_SIZE
        nz = len(ti_raw.rstrip(b"\x00"))
        tused = -(-nz // TIME_INDEX_ENTRY_SIZE)
        if tused > m:
            return False
        pairs = list(_TIDX.iter_unpack(ti_raw[: tused * TIME_INDEX_ENTRY_SIZE]))
        tss = [t for t, _ in pairs]
        trels = [r for _, r in pairs]
        if tused and not (tss[0] > NO_TIMESTAMP and trels[0] >= 0
                          and all(map(operator.lt, tss, tss[1:]))
                          and all(map(operator.le, trels, trels[1:]))):
            return False
        ti_ts = array("q", tss)
        ti_off = array("q", map(base.__add__, trels))
        # the last offset-index entry must point at a batch ending at that offset
        if idx_off:
            pos = idx_pos[-1]
            if self._size - pos < BATCH_OVERHEAD:
                return False
            fh = self._handle()
            h = unpack_header(pread_exact(fh.fd, BATCH_OVERHEAD, pos), 0, pos)
            if h.magic != MAGIC_V2 or h.batch_length < MIN_BATCH_LENGTH or h.last_offset != idx_off[-1]:
                return False
        self._idx_off, self._idx_pos, self._ti_ts, self._ti_off = idx_off, idx_pos, ti_ts, ti_off
        if not self._refresh_tail_state():
            self._reset_memory_indexes()
            return False
        if ti_off and ti_off[-1] >= self._next_offset:
            self._reset_memory_indexes()
            return False
        # drop a zero-filled (preallocated) tail so appends land right after the entries
        if len(idx_raw) != used * OFFSET_INDEX_ENTRY_SIZE:
            os.truncate(self.index_path, used * OFFSET_INDEX_ENTRY_SIZE)
        if len(ti_raw) != tused * TIME_INDEX_ENTRY_SIZE:
            os.truncate(self.timeindex_path, tused * TIME_INDEX_ENTRY_SIZE)
        self._loaded = True
        return True

    def _reset_memory_indexes(self) -> None:
        self._idx_off = array("q")
        self._idx_pos = array("q")
        self._ti_ts = array("q")
        self._ti_off = array("q")

    def _refresh_tail_state(self) -> bool:
        """Recompute next offset, max timestamp and bytes since the last index
        entry from the indexes plus a scan of the batches after the last
        offset-index entry. False if that scan does not end exactly at the
        end of the file (torn or corrupt tail)."""
        start = self._idx_pos[-1] if self._idx_pos else 0
        if self._ti_ts:
            self._max_ts, self._max_ts_offset = self._ti_ts[-1], self._ti_off[-1]
        else:
            self._max_ts, self._max_ts_offset = NO_TIMESTAMP, self.base_offset
        next_offset = self.base_offset
        end = start
        for h in self.iter_headers(start):
            if h.max_timestamp > self._max_ts:
                self._max_ts, self._max_ts_offset = h.max_timestamp, h.last_offset
            next_offset = h.next_offset
            end = h.position + h.size
        self._next_offset = next_offset
        self._bytes_since_index = self._size - start
        return end == self._size

    def recover(self, on_batch: Callable[[BatchHeader], None] | None = None) -> int:
        """Validate every batch (framing, magic, CRC-32C, offsets), truncate the
        log at the first invalid one, rebuild both indexes. Returns the number
        of bytes truncated (Kafka's LogSegment.recover)."""
        self._reset_memory_indexes()
        self._max_ts, self._max_ts_offset = NO_TIMESTAMP, self.base_offset
        self._rolling_ts = None
        idx_out = bytearray()
        ti_out = bytearray()
        fh = self._handle()
        fd = fh.fd
        size = os.fstat(fd).st_size
        valid = 0
        last_index_entry = 0
        next_offset = self.base_offset
        buf = b""
        buf_start = 0
        pos = 0
        while size - pos >= BATCH_OVERHEAD:
            off = pos - buf_start
            if off < 0 or off + BATCH_OVERHEAD > len(buf):
                buf = pread_exact(fd, min(_RECOVER_CHUNK, size - pos), pos)
                buf_start, off = pos, 0
            h = unpack_header(buf, off, pos)
            if h.batch_length < MIN_BATCH_LENGTH or h.magic != MAGIC_V2 or pos + h.size > size:
                break
            if off + h.size > len(buf):
                buf = pread_exact(fd, max(min(_RECOVER_CHUNK, size - pos), h.size), pos)
                buf_start, off = pos, 0
                if len(buf) < h.size:
                    break
            if batch_crc(buf, off, h.size) != h.crc:
                break
            if h.base_offset < next_offset or h.last_offset_delta < 0 or not self.can_hold_offset(h.last_offset):
                break
            if h.max_timestamp > self._max_ts:
                self._max_ts, self._max_ts_offset = h.max_timestamp, h.last_offset
            if valid - last_index_entry > self.index_interval_bytes:
                if len(self._idx_off) < self.max_index_bytes // OFFSET_INDEX_ENTRY_SIZE:
                    idx_out += _IDX.pack(h.last_offset - self.base_offset, valid)
                    self._idx_off.append(h.last_offset)
                    self._idx_pos.append(valid)
                last_ts = self._ti_ts[-1] if self._ti_ts else NO_TIMESTAMP
                if self._max_ts > last_ts and len(self._ti_ts) < self.max_index_bytes // TIME_INDEX_ENTRY_SIZE:
                    ti_out += _TIDX.pack(self._max_ts, self._max_ts_offset - self.base_offset)
                    self._ti_ts.append(self._max_ts)
                    self._ti_off.append(self._max_ts_offset)
                last_index_entry = valid
            if valid == 0:
                self._rolling_ts = h.max_timestamp
            if on_batch is not None:
                on_batch(h)
            valid += h.size
            next_offset = h.next_offset
            pos += h.size
        truncated = size - valid
        if truncated:
            os.ftruncate(fd, valid)
        self._size = valid
        self._next_offset = next_offset
        self._bytes_since_index = valid - last_index_entry
        # a normally closed segment ends its time index with its max timestamp
        last_ts = self._ti_ts[-1] if self._ti_ts else NO_TIMESTAMP
        if self._max_ts > last_ts:
            ti_out += _TIDX.pack(self._max_ts, self._max_ts_offset - self.base_offset)
            self._ti_ts.append(self._max_ts)
            self._ti_off.append(self._max_ts_offset)
        self._write_index_files(bytes(idx_out), bytes(ti_out))
        self._loaded = True
        self.dirty = True
        return truncated

    def _write_index_files(self, idx: bytes, ti: bytes) -> None:
        """Replace both index files' contents (the append fds stay valid)."""
        self._open_index_fds()
        assert self._idx_fd is not None and self._ti_fd is not None
        os.ftruncate(self._idx_fd, 0)
        os.ftruncate(self._ti_fd, 0)
        write_all(self._idx_fd, idx)
        write_all(self._ti_fd, ti)
        self.dirty = True
        # kept open only to append entries (flush fsyncs them by path)
        self.close_index_files()

    # --- truncation ------------------------------------------------------------------------

    def truncate_to(self, offset: int, now_ms: int | None = None) -> int:
        """Remove every batch whose last offset is >= ``offset`` (so the batch
        containing ``offset`` goes too) and the index entries pointing at them.
        Returns the bytes removed."""
        self.load_indexes()
        h = self.translate_offset(offset)
        k = bisect.bisect_left(self._idx_off, offset)
        del self._idx_off[k:]
        del self._idx_pos[k:]
        k2 = bisect.bisect_left(self._ti_off, offset)
        del self._ti_ts[k2:]
        del self._ti_off[k2:]
        self._open_index_fds()
        assert self._idx_fd is not None and self._ti_fd is not None
        os.ftruncate(self._idx_fd, len(self._idx_off) * OFFSET_INDEX_ENTRY_SIZE)
        os.ftruncate(self._ti_fd, len(self._ti_ts) * TIME_INDEX_ENTRY_SIZE)
        truncated = 0
        if h is not None:
            truncated = self._size - h.position
            os.ftruncate(self._handle().fd, h.position)
            self._size = h.position
        if self._size == 0:
            self.created_ms = int(time.time() * 1000) if now_ms is None else now_ms
            self._rolling_ts = None
        self._refresh_tail_state()
        self.dirty = True
        return truncated

    # --- durability, lifecycle ---------------------------------------------------------------

    def flush(self) -> None:
        """fsync the log and index files. Safe to call from a worker thread
        while the owner appends (only fsyncs; a racing append stays dirty) and
        on a segment released meanwhile (its handles stay open while used)."""
        if self._closed:
            return
        fh, idx_fh, ti_fh = self._fh, self._idx_fh, self._ti_fh
        paths = (self.log_path, self.index_path, self.timeindex_path)
        self.dirty = False
        try:
            for h, path in zip((fh, idx_fh, ti_fh), paths):
                if h is not None and not h.closed:
                    os.fsync(h.fd)
                else:  # let go (or never opened): the data is in the inode's pages
                    try:
                        _fsync_path(path)
                    except FileNotFoundError:
                        if self._closed:  # retired or deleted meanwhile
                            return
                        if path is not paths[0]:
                            continue  # no index file (yet): nothing to sync
                        raise
        except BaseException:
            self.dirty = True
            raise

    def close_index_files(self, *, now: bool = False) -> None:
        """Let the index append fds go (reopened by the next entry). Dropped,
        not closed, unless ``now``: a flush in a worker thread may still hold
        them (they close with the last reference)."""
        for fh in (self._idx_fh, self._ti_fh):
            if fh is not None and now:
                fh.close()
        self._idx_fh = self._ti_fh = None
        self._idx_fd = self._ti_fd = None

    def close(self) -> None:
        if self._closed:
            return
        try:
            if self._loaded:
                self._maybe_append_time_entry(self._max_ts, self._max_ts_offset, skip_full_check=True)
        finally:
            self._closed = True
            self.close_index_files(now=True)
            OPEN_SEGMENTS.forget(self)
            if self._fh is not None:
                self._fh.close()

    def release(self) -> None:
        """Stop using the files without closing them under anyone: the fds are
        closed once the last file region (an in-flight fetch) lets go."""
        self._closed = True
        self._idx_fh = self._ti_fh = None
        self._idx_fd = self._ti_fd = None
        self._fh = None
        OPEN_SEGMENTS.forget(self)

    def change_file_suffixes(self, old: str, new: str) -> None:
        """Rename the segment's files from ``<name><old>`` to ``<name><new>``
        (Kafka's changeFileSuffixes); open fds stay valid."""
        if self.suffix != old:
            raise ValueError(f"segment {self.base_offset} has suffix {self.suffix!r}, not {old!r}")
        name = segment_name(self.base_offset)
        olds = (self.log_path, self.index_path, self.timeindex_path, self.dir / (name + TXNINDEX_SUFFIX + old))
        self._set_paths(new)
        news = (self.log_path, self.index_path, self.timeindex_path, self.dir / (name + TXNINDEX_SUFFIX + new))
        for i, (src, dst) in enumerate(zip(olds, news)):
            try:
                os.rename(src, dst)
            except FileNotFoundError:
                if i == 0:
                    raise
        self.suffix = new

    def retire(self) -> list[Path]:
        """Take the segment out of service (retention, compaction, DeleteRecords):
        its files are renamed ``*.deleted`` (Kafka's asynchronous deletion) and
        the fds released. Returns the renamed paths, to unlink after
        file.delete.delay.ms."""
        name = segment_name(self.base_offset)
        out = []
        for suffix in (LOG_SUFFIX, INDEX_SUFFIX, TIMEINDEX_SUFFIX, TXNINDEX_SUFFIX):
            src = self.dir / (name + suffix + self.suffix)
            dst = self.dir / (name + suffix + ".deleted")
            try:
                os.rename(src, dst)
            except FileNotFoundError:
                continue
            out.append(dst)
        self.release()
        return out

    @property
    def closed(self) -> bool:
        return self._closed

    def delete(self) -> None:
        """Remove the files now (truncation); fds are released, not closed, so
        an in-flight fetch of this segment stays valid."""
        self.release()
        name = segment_name(self.base_offset)
        for suffix in (LOG_SUFFIX, INDEX_SUFFIX, TIMEINDEX_SUFFIX, TXNINDEX_SUFFIX):
            try:
                (self.dir / (name + suffix + self.suffix)).unlink()
            except FileNotFoundError:
                pass


__all__ = [
    "OPEN_SEGMENTS",
    "FileHandle",
    "OpenSegments",
    "set_max_open_segments",
    "INDEX_SUFFIX",
    "LOG_SUFFIX",
    "LogSegment",
    "TIMEINDEX_SUFFIX",
    "TimestampAndOffset",
    "pread_exact",
    "segment_name",
]

