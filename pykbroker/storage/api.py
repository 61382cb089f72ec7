"""The one storage interface: what the broker may ask of a log engine.

Two engines implement it completely: the segment files of
:mod:`~pykbroker.storage.log` / :mod:`~pykbroker.storage.manager` (Kafka's
on-disk layout) and :mod:`~pykbroker.storage.memory`
(``pykbroker.storage=memory``). Code outside ``storage/`` is typed against
:class:`PartitionStore` and :class:`LogStore` and never asks which engine it
holds; what differs between the engines (segment files, fsync, delayed file
deletion) is answered by the engine itself (the memory engine has one
notional segment at offset 0, nothing to flush, no files to delete).

The value types every engine returns live here too: :class:`AppendResult`,
:class:`ReadResult` (chunks are :class:`Chunk`: a file region for
``os.sendfile`` or bytes), the ListOffsets answers, :class:`EpochEntry` and
the errors that carry a Kafka error code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol

import attrs

from ..protocol.records import BatchHeader
from .log_config import LogConfig

if TYPE_CHECKING:  # only for annotations: manager.py imports this module
    from .log import PartitionLog
    from .manager import LogDirInfo, LogReplacedListener, PartitionCreation, TopicMeta

OFFSET_OUT_OF_RANGE = 1


# --- errors ---------------------------------------------------------------------------


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


# --- values ---------------------------------------------------------------------------


class Chunk(Protocol):
    """Whole record batches as returned by a read: a file region (sent with
    ``os.sendfile``) or bytes."""

    @property
    def length(self) -> int: ...

    def read_bytes(self) -> bytes: ...


@attrs.frozen
class ReadResult:
    chunks: Sequence[Chunk]
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


SegmentsReplacedListener = Callable[[int, list[int]], None]


# --- the partition log ----------------------------------------------------------------


class PartitionStore(Protocol):
    """One partition's log, whichever engine keeps it.

    ``high_watermark`` is set by the broker (single broker: at every append;
    cluster mode: by the replication code); the engine only bounds it
    (truncation lowers it). ``config`` is replaced on a config change and read
    on every operation."""

    config: LogConfig
    high_watermark: int

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def topic_id(self) -> bytes | None: ...
    @property
    def dir(self) -> Path | None:
        """The partition directory; None when nothing is kept in files."""
    @property
    def log_start_offset(self) -> int: ...
    @property
    def log_end_offset(self) -> int: ...
    @property
    def recovery_point(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    @property
    def offline(self) -> str | None:
        """Why the log refuses I/O until a restart (KAFKA_STORAGE_ERROR); None if it does not."""
    def take_offline(self, reason: str) -> None:
        """Refuse I/O from now on (its log directory failed)."""
    @property
    def truncations(self) -> int:
        """Bumped by every truncation (dependent state reloads when it changes)."""
    @property
    def flush_pending(self) -> bool: ...

    # -- segments (the memory engine has one notional segment at offset 0) --
    @property
    def active_segment_base(self) -> int: ...
    def segment_bases(self) -> list[int]: ...
    @property
    def on_segments_replaced(self) -> list[SegmentsReplacedListener]:
        """Called as fn(new_base, old_bases) after a compaction swap."""

    # -- leader epochs --
    @property
    def leader_epoch(self) -> int: ...
    @property
    def epoch_entries(self) -> list[EpochEntry]: ...
    def epoch_for_offset(self, offset: int) -> int: ...
    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]: ...
    def assign_epoch(self, epoch: int, start_offset: int) -> None: ...

    # -- appends --
    def validate(self, data: bytes | bytearray | memoryview | None, *,
                 now_ms: int | None = None) -> list[BatchHeader]: ...
    def append(self, data: bytearray | memoryview | bytes, headers: Sequence[BatchHeader], *, leader_epoch: int,
               now_ms: int, auto_flush: bool = False) -> AppendResult: ...
    def append_as_follower(self, data: bytes | bytearray | memoryview, now_ms: int | None = None) -> int: ...
    def roll(self, now_ms: int | None = None) -> object: ...

    # -- reads --
    def read(self, offset: int, max_bytes: int, *, max_offset: int | None = None,
             min_one_message: bool = True) -> ReadResult: ...
    def offset_for_timestamp(self, timestamp: int) -> OffsetAndTimestamp | None: ...
    def max_timestamp(self) -> TimestampAndOffset | None: ...

    # -- truncation, log start --
    def truncate_to(self, offset: int, now_ms: int | None = None) -> bool: ...
    def truncate_fully_and_start_at(self, offset: int, now_ms: int | None = None) -> None: ...
    def advance_log_start_offset(self, offset: int, now_ms: int | None = None) -> bool: ...

    # -- durability, lifecycle --
    def needs_flush(self, now_ms: int) -> bool: ...
    def flush(self, now_ms: int | None = None) -> None: ...
    def due_deletes(self, now_ms: int) -> list[Path]:
        """Retired files whose file.delete.delay.ms has passed (taken off the list)."""
    def close(self) -> None: ...
    def close_files(self) -> None: ...
    def delete(self) -> None: ...


# --- all partition logs of the broker ------------------------------------------------


class LogStore(Protocol):
    """Topic metadata, dynamic broker configs and every partition log."""

    topics: dict[str, TopicMeta]
    dynamic_configs: dict[str, dict[str, str]]
    #: finalized feature levels set by UpdateFeatures (None: never set, the defaults apply)
    finalized_features: dict[str, int] | None
    default_config: LogConfig
    async_delete: bool
    create_missing_partitions: bool

    @property
    def log_dirs(self) -> list[Path]: ...
    @property
    def cluster_id(self) -> str: ...
    @property
    def node_id(self) -> int: ...

    def load(self, now_ms: int | None = None) -> None: ...
    def close(self) -> None: ...
    def checkpoint(self) -> None: ...
    def flush_all(self) -> None: ...

    def config_for(self, configs: Mapping[str, str]) -> LogConfig: ...
    def set_default_config(self, default_config: LogConfig) -> None: ...
    def set_dynamic_configs(self, resource_name: str, configs: Mapping[str, str]) -> None: ...
    def set_finalized_features(self, levels: Mapping[str, int]) -> None:
        """Persist the finalized feature levels (levels above 0; the others are at 0)."""

    def create_topic(self, name: str, partitions: int, configs: Mapping[str, str] | None = None,
                     topic_id: bytes | None = None) -> TopicMeta: ...
    def ensure_partition(self, name: str, topic_id: bytes, partitions: int, configs: Mapping[str, str],
                         partition: int) -> PartitionStore: ...
    def delete_topic(self, name: str) -> TopicMeta: ...
    def delete_partition(self, name: str, p: int) -> None: ...
    def create_partitions(self, name: str, new_total: int) -> TopicMeta: ...
    # the same creations in steps, the file work (build, discard) in worker threads
    # (manager.py's module docstring): begin, build range by range, complete;
    # on failure discard; end in any case
    def begin_create_topic(self, name: str, partitions: int, configs: Mapping[str, str] | None = None,
                           topic_id: bytes | None = None) -> PartitionCreation: ...
    def begin_create_partitions(self, name: str, new_total: int) -> PartitionCreation: ...
    def build_partitions(self, c: PartitionCreation, lo: int, hi: int) -> None: ...
    def complete_creation(self, c: PartitionCreation) -> TopicMeta: ...
    def discard_creation(self, c: PartitionCreation) -> None: ...
    def end_creation(self, c: PartitionCreation) -> None: ...
    def creating(self, name: str) -> bool: ...
    def alter_topic_configs(self, name: str, configs: Mapping[str, str]) -> TopicMeta: ...
    def due_dir_deletes(self, now_ms: int) -> list[Path]: ...

    def get(self, topic: str, partition: int) -> PartitionStore | None: ...
    def topic_by_id(self, topic_id: bytes) -> TopicMeta | None: ...
    def partitions(self, topic: str) -> list[PartitionStore]: ...
    def all_logs(self) -> Iterator[PartitionStore]: ...
    def log_items(self) -> list[tuple[tuple[str, int], PartitionStore]]: ...
    def log_dir_of(self, topic: str, partition: int) -> Path | None: ...
    def segment_logs(self) -> dict[tuple[str, int], PartitionLog]:
        """The partition logs kept in segment files, which retention, the
        cleaner and delayed file deletion work on (none in memory)."""

    # -- several log directories (DescribeLogDirs, AlterReplicaLogDirs, failures) --
    offline_dirs: dict[Path, str]
    log_replaced_listeners: list[LogReplacedListener]
    dir_failed_listeners: list[Callable[[Path], None]]

    def abs_path(self, d: Path) -> str: ...
    def dir_by_path(self, path: str) -> Path: ...
    def describe_log_dirs(self) -> list[LogDirInfo]: ...
    def alter_log_dir(self, topic: str, partition: int, path: str) -> PartitionStore | None: ...
    def future_log(self, topic: str, partition: int) -> PartitionStore | None: ...
    def future_items(self) -> list[tuple[tuple[str, int], PartitionStore]]: ...
    def future_dir_of(self, topic: str, partition: int) -> Path | None: ...
    def abort_future(self, topic: str, partition: int) -> None: ...
    def replace_current_with_future(self, topic: str, partition: int) -> PartitionStore: ...
    def mark_dir_offline(self, d: Path, reason: str) -> None: ...
    def check_log_dir(self, d: Path) -> bool: ...
    def check_partition_dir(self, topic: str, partition: int) -> None: ...


__all__ = [
    "AppendResult",
    "Chunk",
    "EMPTY_READ",
    "EpochEntry",
    "InconsistentTopicIdError",
    "LogOfflineError",
    "LogStore",
    "OffsetAndTimestamp",
    "OffsetOutOfRange",
    "PartitionStore",
    "ReadResult",
    "SegmentsReplacedListener",
    "TimestampAndOffset",
]
