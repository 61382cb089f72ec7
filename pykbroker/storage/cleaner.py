"""Log compaction (Kafka's LogCleaner, LogCleanerManager and Cleaner).

Choosing a log (:class:`LogCleaner.grab_filthiest`, on the event loop, cheap):
every log whose ``cleanup.policy`` contains ``compact`` gets its cleanable
range: the *first dirty offset* from ``cleaner-offset-checkpoint`` (reset to
the log start offset when missing or out of range), up to the *first
uncleanable offset* = min(high watermark, active segment's base offset, base
of the first dirty inactive segment whose largest timestamp is within
``min.compaction.lag.ms``), rounded down to a segment boundary. The dirty
ratio is cleanable bytes / (clean + cleanable bytes); a log is cleaned when
the ratio exceeds ``min.cleanable.dirty.ratio``, or when it has cleanable
bytes and a dirty segment's first batch is older than
``max.compaction.lag.ms``. The filthiest (highest ratio) goes first. The
active segment is never cleaned.

Cleaning (:func:`clean_log`, a pure function over the segment files, run in
a worker process by default so its Python work never holds the broker's
GIL; ``pykbroker.log.cleaner.isolation=thread`` runs it in a thread):

1. offset map: newest offset of every key in the dirty range (bounded by
   ``log.cleaner.dedupe.buffer.size`` as Kafka sizes its map: 24 bytes a
   slot, ``log.cleaner.io.buffer.load.factor`` full, shared by
   ``log.cleaner.threads``); if it fills, this round ends where it stopped;
2. the segments from the log start up to the end of the mapped range are
   grouped (each group at most ``segment.bytes`` and
   ``segment.index.bytes`` of index), and each group is rewritten into
   ``<base>.log.cleaned`` (+ indexes): a record stays if it is past the
   map, or it is the newest for its key and (has a value, or its batch has
   no delete horizon yet, or the horizon has not passed). Keyless records
   go. Batches whose records all stay are copied byte for byte; otherwise
   the batch is rebuilt with its codec (compressed batches are
   decompressed and recompressed), base offset, last offset (gaps are
   normal), producer fields and flags. A batch keeping a tombstone gets the
   delete horizon (attribute bit 6, base timestamp = now +
   ``delete.retention.ms``, KIP-534), so tombstones vanish in the first
   cleaning after ``delete.retention.ms``. The last batch of the round and
   each producer's last batch stay as an empty batch header when all their
   records go (offsets and producer state preserved). Control batches stay.

Swapping (:meth:`PartitionLog.replace_segments`, on the event loop): the
cleaned segment replaces its group crash-safely (``.cleaned`` → ``.swap``,
old files ``.deleted``, ``.swap`` → live; an interrupted swap is completed
at the next start). A group whose segments changed meanwhile (retention,
DeleteRecords, truncation, topic deletion) is dropped and the round ends
there. The checkpoint then records the end of the round. Segment files a
fetch is reading stay readable (file handles, see segment.py).

Transactions: the cleanable range ends at the last stable offset (open
transactions are never cleaned); records of aborted transactions (from the
``.txnindex`` files) never enter the offset map, so they cannot supersede
committed ones; aborted data and markers are kept (Kafka removes them once
safe), and a cleaned segment carries its group's ``.txnindex`` entries, so
read_committed fetches still skip the aborted data. Listeners on
``PartitionLog.on_segments_replaced`` learn of each swap.

Not modelled: removing aborted data and transaction markers, the I/O
buffer sizes (whole batches are read), ``log.cleaner.backoff.ms`` only
paces the loop (server/log_tasks.py).
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import logging
import os
import signal
import time
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from ..protocol.records import (
    unpack_header,
    ATTR_DELETE_HORIZON,
    BATCH_OVERHEAD,
    LOG_OVERHEAD,
    MIN_BATCH_LENGTH,
    TIMESTAMP_LOG_APPEND_TIME,
    BatchHeader,
)
from .checkpoints import CorruptCheckpointError, read_offset_checkpoint, write_offset_checkpoint
from .convert import build_batch_v2, header_of, reencode_timestamp, split_records
from .segment import INDEX_SUFFIX, TIMEINDEX_SUFFIX, TXNINDEX_SUFFIX, LogSegment, segment_name
from .txn_index import read_file as read_txnindex
from ..util import INT_MAX as INT32_MAX

if TYPE_CHECKING:
    from .log import PartitionLog

log = logging.getLogger("pykbroker.storage.cleaner")

CLEANER_CHECKPOINT = "cleaner-offset-checkpoint"
_READ_CHUNK = 1024 * 1024
_WRITE_CHUNK = 1024 * 1024


# --- the job (picklable: crosses into the worker process) -------------------------------


@attrs.frozen
class SegmentFile:
    base: int
    size: int
    index_bytes: int
    timeindex_bytes: int
    last_modified_ms: int


@attrs.frozen
class CleanJob:
    dir: str
    name: str  # topic-partition, for messages
    segments: tuple[SegmentFile, ...]  # every segment below first_uncleanable, oldest first
    first_dirty: int
    first_uncleanable: int  # a segment base offset
    now_ms: int
    delete_retention_ms: int
    segment_bytes: int
    segment_index_bytes: int
    index_interval_bytes: int
    max_map_entries: int
    io_max_bytes_per_second: float = float("inf")


@attrs.frozen
class CleanedGroup:
    sources: tuple[int, ...]  # base offsets of the replaced segments
    base: int
    size: int


@attrs.define
class CleanerStats:
    bytes_read: int = 0
    bytes_written: int = 0
    records_read: int = 0
    records_written: int = 0
    map_records: int = 0
    invalid_records: int = 0
    seconds: float = 0.0


@attrs.frozen
class CleanResult:
    end_offset: int
    groups: tuple[CleanedGroup, ...]
    stats: CleanerStats


class CleaningAborted(Exception):
    """The broker is shutting down (Kafka's LogCleaningAbortedException)."""


class _Throttle:
    """log.cleaner.io.max.bytes.per.second, and the abort check (per batch)."""

    def __init__(self, rate: float, should_abort: Callable[[], bool] | None = None) -> None:
        self.rate = rate
        self.start = time.monotonic()
        self.bytes = 0
        self.should_abort = should_abort

    def add(self, n: int) -> None:
        if self.should_abort is not None and self.should_abort():
            raise CleaningAborted()
        if self.rate == float("inf") or self.rate <= 0:
            return
        self.bytes += n
        ahead = self.bytes / self.rate - (time.monotonic() - self.start)
        if ahead > 0.01:
            time.sleep(ahead)


def _iter_batches(path: Path, end: int | None = None) -> Iterator[tuple[BatchHeader, memoryview]]:
    """Whole batches of a segment file, read ~1 MiB at a time; stops at a
    partial or malformed tail."""
    with open(path, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size if end is None else end
        pos = 0
        buf = b""
        buf_pos = 0
        while size - pos >= BATCH_OVERHEAD:
            off = pos - buf_pos
            if off + LOG_OVERHEAD > len(buf):
                f.seek(pos)
                buf = f.read(min(_READ_CHUNK, size - pos))
                buf_pos, off = pos, 0
            length = int.from_bytes(buf[off + 8 : off + 12], "big", signed=True)
            bsize = length + LOG_OVERHEAD
            if length < MIN_BATCH_LENGTH or pos + bsize > size:
                return
            if off + bsize > len(buf):
                f.seek(pos)
                buf = f.read(max(min(_READ_CHUNK, size - pos), bsize))
                buf_pos, off = pos, 0
                if len(buf) < bsize:
                    return
            view = memoryview(buf)[off : off + bsize]
            yield unpack_header(view, 0, 0), view
            pos += bsize


def _seg_path(job: CleanJob, base: int) -> Path:
    return Path(job.dir) / (segment_name(base) + ".log")


# --- phase 1: the offset map ---------------------------------------------------------------


def read_aborted(dir: str | Path) -> dict[int, list[tuple[int, int]]]:
    """Aborted transactions of the partition, from every ``.txnindex`` file:
    {producer id: [(first offset, marker offset)]}."""
    out: dict[int, list[tuple[int, int]]] = {}
    for f in Path(dir).glob("*" + TXNINDEX_SUFFIX):
        stem = f.name[: -len(TXNINDEX_SUFFIX)]
        if len(stem) != 20 or not stem.isdigit():
            continue
        for e in read_txnindex(f):
            out.setdefault(e.producer_id, []).append((e.first_offset, e.last_offset))
    return out


def _is_aborted(h: BatchHeader, aborted: dict[int, list[tuple[int, int]]]) -> bool:
    if not h.is_transactional:
        return False
    return any(first <= h.base_offset <= last for first, last in aborted.get(h.producer_id, ()))


def build_offset_map(job: CleanJob, stats: CleanerStats, throttle: _Throttle,
                     aborted: dict[int, list[tuple[int, int]]] | None = None) -> tuple[dict[bytes, int], int]:
    """{key: newest offset} over [first_dirty, first_uncleanable) and the last
    offset covered (Kafka's buildOffsetMap). Records of aborted transactions
    are not mapped (they must never supersede committed ones)."""
    aborted = aborted or {}
    omap: dict[bytes, int] = {}
    latest = job.first_dirty - 1
    segs = list(job.segments)
    for i, s in enumerate(segs):
        nxt = segs[i + 1].base if i + 1 < len(segs) else job.first_uncleanable
        if nxt <= job.first_dirty:
            continue
        for h, batch in _iter_batches(_seg_path(job, s.base)):
            throttle.add(h.size)
            if not h.is_control and h.last_offset >= job.first_dirty and not _is_aborted(h, aborted):
                for r in split_records(batch, h):
                    off = h.base_offset + r.offset_delta
                    stats.map_records += 1
                    if r.key is None or off < job.first_dirty:
                        continue
                    key = bytes(r.key)
                    if len(omap) >= job.max_map_entries and key not in omap:
                        return omap, latest  # full: this round ends before this batch
                    omap[key] = off
            if h.last_offset >= job.first_dirty:
                latest = max(latest, h.last_offset)
        latest = max(latest, nxt - 1)  # offset gaps: the whole segment is covered
    return omap, latest


# --- phase 2: grouping ---------------------------------------------------------------------------


def group_segments_by_size(segments: list[SegmentFile], max_size: int, max_index_size: int,
                           first_uncleanable: int) -> list[list[SegmentFile]]:
    """Kafka's groupSegmentsBySize."""
    groups: list[list[SegmentFile]] = []
    rest = list(segments)
    while rest:
        group = [rest.pop(0)]
        log_size, idx_size, ti_size = group[0].size, group[0].index_bytes, group[0].timeindex_bytes
        while rest:
            nxt = rest[0]
            last_of_first = rest[1].base - 1 if len(rest) > 1 else first_uncleanable - 1
            if not (log_size + nxt.size <= max_size
                    and idx_size + nxt.index_bytes <= max_index_size
                    and ti_size + nxt.timeindex_bytes <= max_index_size
                    and (nxt.size == 0 or last_of_first - group[-1].base <= INT32_MAX)):
                break
            group.append(rest.pop(0))
            log_size += nxt.size
            idx_size += nxt.index_bytes
            ti_size += nxt.timeindex_bytes
        groups.append(group)
    return groups


# --- phase 3: cleaning a group into a new segment -----------------------------------------------


def _empty_batch(h: BatchHeader) -> bytearray:
    """Kafka's writeEmptyHeader: the batch's offsets and producer fields, no records."""
    return build_batch_v2(
        [], base_offset=h.base_offset, last_offset_delta=h.last_offset_delta,
        base_timestamp=h.max_timestamp, max_timestamp=h.max_timestamp, producer_id=h.producer_id,
        producer_epoch=h.producer_epoch, base_sequence=h.base_sequence,
        partition_leader_epoch=h.partition_leader_epoch,
        log_append_time=h.timestamp_type == TIMESTAMP_LOG_APPEND_TIME,
        transactional=h.is_transactional, control=h.is_control,
    )


def _filter_batch(job: CleanJob, h: BatchHeader, batch: memoryview, omap: dict[bytes, int], latest: int,
                  producer_last: dict[int, int], stats: CleanerStats) -> bytes | bytearray | memoryview | None:
    """The bytes to keep for one batch (the original, a rebuilt one, an empty
    header) or None to drop it."""
    if h.is_control:
        return batch
    recs = split_records(batch, h)
    stats.records_read += len(recs)
    horizon = h.base_timestamp if h.attributes & ATTR_DELETE_HORIZON else None
    now = job.now_ms
    kept = []
    tombstones = False
    for r in recs:
        off = h.base_offset + r.offset_delta
        if off > latest:
            keep = True
        elif r.key is None:
            stats.invalid_records += 1
            keep = False
        else:
            keep = off >= omap.get(bytes(r.key), -1) and (r.has_value or horizon is None or now < horizon)
        if keep:
            kept.append(r)
            if not r.has_value:
                tombstones = True
    retain_empty = (h.next_offset == job.first_uncleanable
                    or (h.producer_id >= 0 and producer_last.get(h.producer_id) == h.last_offset))
    if not kept:
        return _empty_batch(h) if retain_empty else None
    stats.records_written += len(kept)
    set_horizon = tombstones and horizon is None
    if len(kept) == len(recs) and not set_horizon:
        return batch
    log_append = h.timestamp_type == TIMESTAMP_LOG_APPEND_TIME
    if set_horizon:
        new_base = now + job.delete_retention_ms
        encoded: list[bytes | memoryview] = [
            reencode_timestamp(r, h.base_timestamp + r.timestamp_delta - new_base) for r in kept]
    else:
        new_base = h.base_timestamp
        encoded = [r.raw for r in kept]
    if log_append:
        max_ts = h.max_timestamp
    else:
        max_ts = max(h.base_timestamp + r.timestamp_delta for r in kept)
    return build_batch_v2(
        encoded, base_offset=h.base_offset, last_offset_delta=h.last_offset_delta,
        base_timestamp=new_base, max_timestamp=max_ts, codec=h.compression,
        producer_id=h.producer_id, producer_epoch=h.producer_epoch, base_sequence=h.base_sequence,
        partition_leader_epoch=h.partition_leader_epoch, log_append_time=log_append,
        transactional=h.is_transactional, control=False,
        delete_horizon=horizon is not None or set_horizon,
    )


def clean_group(job: CleanJob, group: list[SegmentFile], omap: dict[bytes, int], latest: int,
                producer_last: dict[int, int], stats: CleanerStats, throttle: _Throttle) -> CleanedGroup:
    base = group[0].base
    d = Path(job.dir)
    for suffix in (".log", INDEX_SUFFIX, TIMEINDEX_SUFFIX, TXNINDEX_SUFFIX):
        try:
            (d / (segment_name(base) + suffix + ".cleaned")).unlink()
        except FileNotFoundError:
            pass
    out = LogSegment(d, base, index_interval_bytes=job.index_interval_bytes,
                     max_index_bytes=job.segment_index_bytes, created_ms=job.now_ms, create=True,
                     suffix=".cleaned")
    ok = False
    try:
        buf = bytearray()
        hdrs: list[BatchHeader] = []

        def spill() -> None:
            if hdrs:
                out.append(buf, hdrs)
                throttle.add(len(buf))
                stats.bytes_written += len(buf)
                buf.clear()
                hdrs.clear()

        for s in group:
            for h, batch in _iter_batches(_seg_path(job, s.base)):
                stats.bytes_read += h.size
                throttle.add(h.size)
                keep = _filter_batch(job, h, batch, omap, latest, producer_last, stats)
                if keep is None:
                    continue
                pos = len(buf)
                buf += keep
                hdrs.append(header_of(buf, pos))
                if len(buf) >= _WRITE_CHUNK:
                    spill()
        spill()
        # the aborted-transaction entries of the group travel with it (the
        # cleaner keeps aborted data and markers, so they stay true)
        txn = b"".join(_read_or_empty(d / (segment_name(s.base) + TXNINDEX_SUFFIX)) for s in group)
        if txn:
            path = d / (segment_name(base) + TXNINDEX_SUFFIX + ".cleaned")
            path.write_bytes(txn)
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        out.on_become_inactive()
        out.flush()
        out.set_last_modified(group[-1].last_modified_ms)
        size = out.size
        ok = True
    finally:
        out.close()
        if not ok:
            for suffix in (".log", INDEX_SUFFIX, TIMEINDEX_SUFFIX, TXNINDEX_SUFFIX):
                try:
                    (d / (segment_name(base) + suffix + ".cleaned")).unlink()
                except FileNotFoundError:
                    pass
    return CleanedGroup(tuple(s.base for s in group), base, size)


def _read_or_empty(p: Path) -> bytes:
    try:
        return p.read_bytes()
    except FileNotFoundError:
        return b""


def _producer_last_offsets(job: CleanJob, segs: list[SegmentFile]) -> dict[int, int]:
    last: dict[int, int] = {}
    for s in segs:
        for h, _ in _iter_batches(_seg_path(job, s.base)):
            if h.producer_id >= 0:
                last[h.producer_id] = h.last_offset
    return last


def clean_log(job: CleanJob, should_abort: Callable[[], bool] | None = None) -> CleanResult:
    """Clean one log's segments (files only; no broker state). Cleaned groups
    are left as ``<base>.log.cleaned`` files for the caller to swap in.
    ``should_abort`` is polled per batch (raises CleaningAborted)."""
    t0 = time.monotonic()
    stats = CleanerStats()
    throttle = _Throttle(job.io_max_bytes_per_second, should_abort)
    omap, latest = build_offset_map(job, stats, throttle, read_aborted(job.dir))
    end_offset = latest + 1
    segs = [s for s in job.segments if s.base < end_offset]
    producer_last = _producer_last_offsets(job, segs)
    groups = group_segments_by_size(segs, job.segment_bytes, job.segment_index_bytes, job.first_uncleanable)
    done: list[CleanedGroup] = []
    try:
        for g in groups:
            done.append(clean_group(job, g, omap, latest, producer_last, stats, throttle))
    except BaseException:
        for cg in done:
            discard_cleaned(job.dir, cg.base)
        raise
    stats.seconds = time.monotonic() - t0
    return CleanResult(end_offset, tuple(done), stats)


def discard_cleaned(dir: str | Path, base: int) -> None:
    for suffix in (".log", INDEX_SUFFIX, TIMEINDEX_SUFFIX, TXNINDEX_SUFFIX):
        try:
            (Path(dir) / (segment_name(base) + suffix + ".cleaned")).unlink()
        except FileNotFoundError:
            pass


# --- the worker pool -----------------------------------------------------------------------------


def _worker_init() -> None:
    """In each cleaner process: die with the broker, yield the CPU to it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    try:
        os.nice(5)
    except OSError:
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class CleanerPool:
    """Runs :func:`clean_log` in worker processes (default) or threads."""

    def __init__(self, workers: int, isolation: str = "process") -> None:
        self.workers = max(1, workers)
        self.isolation = isolation
        self._executor: concurrent.futures.Executor | None = None
        self._abort = threading.Event()

    def _get(self) -> concurrent.futures.Executor:
        if self._executor is None:
            if self.isolation == "process":
                import multiprocessing  # only a process-isolated cleaner needs it

                self._executor = concurrent.futures.ProcessPoolExecutor(
                    max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_worker_init)
            else:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self.workers, thread_name_prefix="log-cleaner")
        return self._executor

    def submit(self, job: CleanJob) -> concurrent.futures.Future[CleanResult]:
        if self.isolation == "process":
            return self._get().submit(clean_log, job)
        return self._get().submit(clean_log, job, self._abort.is_set)

    def shutdown(self) -> None:
        """Stop at once: a thread's cleaning aborts at its next batch, worker
        processes are terminated (so interpreter exit never waits for a
        cleaning to finish; the ``.cleaned`` files are removed at the next
        start)."""
        self._abort.set()
        ex, self._executor = self._executor, None
        if ex is None:
            return
        if isinstance(ex, concurrent.futures.ProcessPoolExecutor):
            for proc in list((getattr(ex, "_processes", None) or {}).values()):
                try:
                    proc.terminate()
                except (OSError, AttributeError):
                    pass
        ex.shutdown(wait=False, cancel_futures=True)


# --- choosing what to clean (event loop side) ----------------------------------------------


@attrs.frozen
class LogToClean:
    key: tuple[str, int]
    log: "PartitionLog"
    first_dirty: int
    first_uncleanable: int
    clean_bytes: int
    cleanable_bytes: int
    need_compaction_now: bool
    force_checkpoint: bool

    @property
    def total_bytes(self) -> int:
        return self.clean_bytes + self.cleanable_bytes

    @property
    def cleanable_ratio(self) -> float:
        return self.cleanable_bytes / self.total_bytes if self.total_bytes else 0.0


def _segment_index_of(plog: "PartitionLog", offset: int) -> int:
    segs = plog.segments
    i = 0
    for k, s in enumerate(segs):
        if s.base_offset <= offset:
            i = k
        else:
            break
    return i


def log_to_clean(key: tuple[str, int], plog: "PartitionLog", checkpoint: int | None, now_ms: int,
                 last_stable_offset: int | None = None) -> LogToClean:
    """Kafka's cleanableOffsets + calculateCleanableBytes + maxCompactionDelay.
    ``last_stable_offset`` (open transactions) bounds the range; default the
    high watermark."""
    cfg = plog.config
    segs = plog.segments
    lso, leo = plog.log_start_offset, plog.log_end_offset
    force = False
    first_dirty = lso if checkpoint is None else checkpoint
    if first_dirty < lso or first_dirty > leo:
        force = checkpoint is not None
        first_dirty = lso
    active = segs[-1]
    lso = plog.high_watermark if last_stable_offset is None else min(last_stable_offset, plog.high_watermark)
    candidates = [lso, active.base_offset]
    min_lag = max(cfg.min_compaction_lag_ms, 0)
    start_i = _segment_index_of(plog, first_dirty)
    if min_lag > 0:
        for s in segs[start_i:-1]:
            if s.largest_timestamp > now_ms - min_lag:
                candidates.append(s.base_offset)
                break
    uncleanable = max(first_dirty, min(candidates))
    ui = _segment_index_of(plog, uncleanable)
    first_uncleanable = segs[ui].base_offset
    cleanable = _bytes_between(segs, min(first_dirty, first_uncleanable), first_uncleanable)
    clean = _bytes_between(segs, -1, first_dirty)
    # max.compaction.lag.ms: the earliest first-batch timestamp of the dirty inactive segments
    need_now = False
    max_lag = max(cfg.max_compaction_lag_ms, 0)
    if max_lag < 2**63 - 1:
        firsts = [t for s in segs[start_i:-1] if (t := s.rolling_timestamp) is not None and t > 0]
        if firsts and min(firsts) < now_ms - max_lag:
            need_now = True
    return LogToClean(key, plog, first_dirty, first_uncleanable, clean, cleanable, need_now, force)


def _bytes_between(segs: list[LogSegment], lo: int, hi: int) -> int:
    """Kafka's logSegments(lo, hi) sizes: segments overlapping [lo, hi)."""
    total = 0
    for i, s in enumerate(segs):
        if s.base_offset >= hi:
            break
        nxt = segs[i + 1].base_offset if i + 1 < len(segs) else 2**63 - 1
        if nxt > lo:
            total += s.size
    return total


class LogCleaner:
    """Cleaner state of the broker: checkpoints, what is in progress, what
    failed. Everything here runs on the event loop except file writes,
    which the caller runs in a thread."""

    def __init__(self, log_dirs: list[Path], *, threads: int = 1, dedupe_buffer_size: int = 134217728,
                 load_factor: float = 0.9, io_max_bytes_per_second: float = float("inf"),
                 isolation: str = "process") -> None:
        self.log_dirs = list(log_dirs)
        self.checkpoints: dict[tuple[str, int], int] = {}
        self.checkpoint_dirs: dict[tuple[str, int], Path] = {}
        self.in_progress: set[tuple[str, int]] = set()
        self.uncleanable: set[tuple[str, int]] = set()
        self.threads = max(1, threads)
        self.max_map_entries = max(1, int(dedupe_buffer_size / self.threads / 24 * load_factor))
        self.io_max_bytes_per_second = io_max_bytes_per_second
        self.pool = CleanerPool(self.threads, isolation)
        self.last_stats: CleanerStats | None = None
        self.cleanings = 0
        for d in self.log_dirs:
            try:
                for k, v in read_offset_checkpoint(d / CLEANER_CHECKPOINT).items():
                    self.checkpoints[k] = v
                    self.checkpoint_dirs[k] = d
            except CorruptCheckpointError as e:
                log.warning("ignoring corrupt %s: %s", d / CLEANER_CHECKPOINT, e)

    def grab_filthiest(self, logs: dict[tuple[str, int], "PartitionLog"], now_ms: int,
                       lso_of: Callable[[tuple[str, int]], int | None] | None = None) -> LogToClean | None:
        best: LogToClean | None = None
        for key, plog in logs.items():
            if plog.closed or not plog.config.compact or key in self.in_progress or key in self.uncleanable:
                continue
            if plog.offline is not None:
                continue
            lso = lso_of(key) if lso_of is not None else None
            ltc = log_to_clean(key, plog, self.checkpoints.get(key), now_ms, lso)
            if ltc.force_checkpoint:
                self.checkpoints[key] = ltc.first_dirty
            if ltc.total_bytes <= 0:
                continue
            if not ((ltc.need_compaction_now and ltc.cleanable_bytes > 0)
                    or ltc.cleanable_ratio > plog.config.min_cleanable_dirty_ratio):
                continue
            if best is None or ltc.cleanable_ratio > best.cleanable_ratio:
                best = ltc
        return best

    def make_job(self, ltc: LogToClean, now_ms: int) -> tuple[CleanJob, dict[int, LogSegment]]:
        """The job for ``ltc`` and the segment objects it covers (by base
        offset), to recognise them at swap time."""
        plog = ltc.log
        cfg = plog.config
        files = []
        objs: dict[int, LogSegment] = {}
        for s in plog.segments:
            if s.base_offset >= ltc.first_uncleanable:
                break
            files.append(SegmentFile(s.base_offset, s.size, _file_size(s.index_path),
                                     _file_size(s.timeindex_path), s.last_modified_ms))
            objs[s.base_offset] = s
        job = CleanJob(
            dir=str(plog.dir), name=plog.name, segments=tuple(files), first_dirty=ltc.first_dirty,
            first_uncleanable=ltc.first_uncleanable, now_ms=now_ms,
            delete_retention_ms=cfg.delete_retention_ms, segment_bytes=cfg.segment_bytes,
            segment_index_bytes=cfg.segment_index_bytes, index_interval_bytes=cfg.index_interval_bytes,
            max_map_entries=self.max_map_entries, io_max_bytes_per_second=self.io_max_bytes_per_second,
        )
        return job, objs

    def checkpoint_entries(self, d: Path, live: dict[tuple[str, int], Path]) -> dict[tuple[str, int], int]:
        """This log dir's checkpoint contents (only partitions that still exist)."""
        return {k: v for k, v in self.checkpoints.items() if live.get(k) == d}

    def write_checkpoint(self, d: Path, live: dict[tuple[str, int], Path]) -> None:
        write_offset_checkpoint(d / CLEANER_CHECKPOINT, self.checkpoint_entries(d, live))

    def shutdown(self) -> None:
        self.pool.shutdown()


def _file_size(p: Path) -> int:
    try:
        return os.stat(p).st_size
    except OSError:
        return 0


def open_cleaned(dir: str | Path, group: CleanedGroup, *, index_interval_bytes: int,
                 segment_index_bytes: int) -> LogSegment:
    """Open a cleaned segment (``.cleaned`` files) and load its indexes (run
    in a thread: nobody else sees it yet)."""
    seg = LogSegment(Path(dir), group.base, index_interval_bytes=index_interval_bytes,
                     max_index_bytes=segment_index_bytes, suffix=".cleaned")
    try:
        seg.load_indexes()
    except BaseException:
        seg.close()
        raise
    return seg


__all__ = [
    "CLEANER_CHECKPOINT",
    "CleaningAborted",
    "CleanJob",
    "CleanResult",
    "CleanedGroup",
    "CleanerPool",
    "LogCleaner",
    "LogToClean",
    "SegmentFile",
    "build_offset_map",
    "clean_log",
    "discard_cleaned",
    "group_segments_by_size",
    "log_to_clean",
    "open_cleaned",
]
