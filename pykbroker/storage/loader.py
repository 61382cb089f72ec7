"""Opening a partition directory (Kafka's LogLoader).

Scans ``<topic>-<partition>/``: removes leftovers (``.tmp``, ``.cleaned``,
``.deleted``, orphan indexes), completes a compaction swap a crash
interrupted, recovers the segments after an unclean shutdown (checksums
verified, a torn tail truncated, indexes rebuilt; a segment before the
active one that loses bytes takes every later segment with it), brings
the leader-epoch cache in line with the log and checks ``partition.metadata``.
The result is a :class:`LoadedLog` the partition log is built from.
"""

from __future__ import annotations

import bisect
import logging
import os
import re
from pathlib import Path

import attrs

from ..protocol.records import BatchHeader
from .api import InconsistentTopicIdError
from .checkpoints import read_partition_metadata, write_partition_metadata
from .epoch_cache import LEADER_EPOCH_CHECKPOINT, LeaderEpochCache
from .log_config import LogConfig
from .segment import INDEX_SUFFIX, LOG_SUFFIX, TIMEINDEX_SUFFIX, LogSegment, segment_name
from .segments import LogSegments, new_segment

log = logging.getLogger("pykbroker.storage")

PARTITION_METADATA = "partition.metadata"

_DIR_RE = re.compile(r"^(.+)-(0|[1-9][0-9]*)$")
# Kafka's ``<topic>-<partition>.<uuid without dashes>-future`` (AlterReplicaLogDirs)
_FUTURE_RE = re.compile(r"^(.+)\.[0-9a-f]{32}-future$")
FUTURE_SUFFIX = "-future"


def partition_dir_name(topic: str, partition: int) -> str:
    return f"{topic}-{partition}"


def future_dir_name(topic: str, partition: int, unique: str) -> str:
    """Kafka's name of a future log (``UnifiedLog.logFutureDirName``)."""
    return f"{partition_dir_name(topic, partition)}.{unique}{FUTURE_SUFFIX}"


def parse_future_dir_name(name: str) -> tuple[str, int] | None:
    """``"my-topic-3.<32 hex>-future"`` → ``("my-topic", 3)``; None otherwise."""
    m = _FUTURE_RE.match(name)
    return None if m is None else parse_partition_dir_name(m.group(1))


def parse_partition_dir_name(name: str) -> tuple[str, int] | None:
    """``"my-topic-3"`` → ``("my-topic", 3)``; None for anything else
    (including Kafka's ``-delete``/``-future``/``-stray`` directories)."""
    if name.endswith(("-delete", "-future", "-stray")):
        return None
    m = _DIR_RE.match(name)
    if not m:
        return None
    return m.group(1), int(m.group(2))


@attrs.define
class LoadedLog:
    """What opening a partition directory found."""

    dir: Path
    topic: str
    partition: int
    segments: LogSegments
    epochs: LeaderEpochCache
    log_start_offset: int
    recovery_point: int
    topic_id: bytes | None
    dir_dirty: bool  # segment files were created: the directory needs an fsync
    flush_pending: bool  # segments were recovered or replaced: they need an fsync


def load_log(
    dir: Path,
    config: LogConfig,
    *,
    recover: bool,
    recovery_point: int | None,
    log_start_offset: int | None,
    topic_id: bytes | None,
    now_ms: int,
    topic_id_on_disk: bool = False,
) -> LoadedLog:
    """Open (or create) the partition directory ``dir`` (see PartitionLog.open).
    ``topic_id_on_disk``: the caller has just read partition.metadata and it
    holds ``topic_id`` (LogManager.load: not read a second time)."""
    parsed = parse_partition_dir_name(dir.name) or parse_future_dir_name(dir.name)
    if parsed is None:
        raise ValueError(f"not a partition directory name: {dir.name!r}")
    topic, partition = parsed
    if not topic_id_on_disk:  # else the directory exists: its file was read
        dir.mkdir(parents=True, exist_ok=True)
    bases = _scan(dir, config, now_ms)
    created = not bases
    if created:
        bases = [log_start_offset or 0]
    segments = LogSegments([new_segment(dir, config, b, now_ms, create=created) for b in bases])
    epochs = LeaderEpochCache.load(dir / LEADER_EPOCH_CHECKPOINT)
    epochs_before = epochs.entries
    recovered = recover and not created
    first_recovered = _recover(dir, segments, epochs, recovery_point) if recovered else None
    leo = segments.active.next_offset  # loads the active segment's indexes
    point = leo if first_recovered is None else first_recovered
    epochs.truncate_from_end(leo, write=False)
    start = max(log_start_offset or 0, segments[0].base_offset)
    if start > leo:  # the log start checkpoint is ahead of every segment: start over there
        for s in segments:
            s.delete()
        segments.reset([new_segment(dir, config, start, now_ms, create=True)])
        epochs.clear()
        point, created, recovered = start, True, True
    else:
        epochs.truncate_from_start(start, write=False)
    if epochs.entries != epochs_before:
        epochs.write()
    leo = segments.active.next_offset
    try:
        stored_id = topic_id if topic_id_on_disk and topic_id is not None else _check_topic_id(dir, topic_id)
    except InconsistentTopicIdError:
        for s in segments:
            s.close()
        raise
    return LoadedLog(dir, topic, partition, segments, epochs, start, min(point, leo), stored_id,
                     dir_dirty=created, flush_pending=recovered)


def _scan(dir: Path, config: LogConfig, now_ms: int) -> list[int]:
    """The base offsets of the segments in ``dir``, sorted, after removing
    leftovers and completing interrupted swaps."""
    bases: list[int] = []
    index_files: list[tuple[int, str]] = []
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
            index_files.append((int(stem), entry.path))  # a str: no pathlib work per partition
    for sb in sorted(swaps):
        _complete_swap(dir, config, sb, bases, now_ms)
    base_set = set(bases)
    for b, p in index_files:
        if b not in base_set:  # orphan index (Kafka deletes these too)
            os.unlink(p)
    return sorted(bases)


def _complete_swap(dir: Path, config: LogConfig, base: int, bases: list[int], now_ms: int) -> None:
    """Finish a compaction swap interrupted by a crash: ``<base>.log.swap``
    holds the cleaned data of every segment whose base offset lies in
    [base, its next offset); those segments go, the swap file takes their
    place."""
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


def _recover(dir: Path, segments: LogSegments, epochs: LeaderEpochCache, recovery_point: int | None) -> int:
    """Recover the segments from the one holding ``recovery_point`` (default:
    the active one) to the end; returns the first recovered segment's base.
    New leader epochs met in the batches enter ``epochs`` (not written)."""
    if recovery_point is None:
        first = len(segments) - 1
    else:
        first = max(bisect.bisect_right(segments.bases, recovery_point) - 1, 0)
    first_base = segments[first].base_offset

    def on_batch(h: BatchHeader) -> None:
        epochs.assign_if_newer(h.partition_leader_epoch, h.base_offset, write=False)

    for i in range(first, len(segments)):
        truncated = segments[i].recover(on_batch=on_batch)
        if truncated:
            log.warning("%s: recovery truncated %d bytes of segment %d", dir, truncated, segments[i].base_offset)
        if truncated and i < len(segments) - 1:
            later = segments.as_list[i + 1 :]
            for s in later:
                log.warning("%s: deleting segment %d after a truncated one", dir, s.base_offset)
                s.delete()
            segments.reset(segments.as_list[: i + 1])
            break
    return first_base


def _check_topic_id(dir: Path, topic_id: bytes | None) -> bytes | None:
    """The topic id of the partition: ``topic_id`` checked against (or written
    to) partition.metadata; without one, the stored id."""
    meta_path = dir / PARTITION_METADATA
    stored = read_partition_metadata(meta_path)
    if topic_id is None:
        return stored
    if stored is not None and stored != topic_id:
        raise InconsistentTopicIdError(
            f"{dir}: partition.metadata has topic id {stored.hex()}, expected {topic_id.hex()}"
        )
    if stored is None:
        # not fsynced: the topic metadata is the source of truth and a
        # lost/torn file is rewritten at the next open
        write_partition_metadata(meta_path, topic_id, fsync=False)
    return topic_id


__all__ = ["FUTURE_SUFFIX", "LoadedLog", "PARTITION_METADATA", "future_dir_name", "load_log", "parse_future_dir_name",
           "parse_partition_dir_name", "partition_dir_name"]
