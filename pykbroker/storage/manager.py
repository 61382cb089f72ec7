"""All partition logs of the broker, over one or more log directories.

Per log directory, as Kafka (KRaft) has them:

- ``meta.properties`` (version=1, node.id, cluster.id, directory.id);
- ``<topic>-<partition>/`` partition directories (see log.py);
- ``recovery-point-offset-checkpoint``, ``log-start-offset-checkpoint``;
- ``.kafka_cleanshutdown`` after a clean shutdown (no recovery needed at the
  next start; deleted once the logs are loaded).

Several log directories (``log.dirs``), as Kafka: a new partition goes to
the online directory with the fewest logs (current and future) unless
AlterReplicaLogDirs named one for it first; at start every partition is
opened where it is, and one found in two directories is an error (Kafka's
message: one of the two must be removed by hand).

AlterReplicaLogDirs (Kafka's "future" log): :meth:`LogManager.alter_log_dir`
creates ``<topic>-<p>.<uuid>-future`` in the destination directory, the
server copies the current log into it while the partition keeps serving
(``server/log_dirs.py``), then :meth:`LogManager.replace_current_with_future`
renames the future directory to ``<topic>-<p>`` first and the current one
to ``...-delete`` second (Kafka's order: a crash between the two leaves the
partition in two directories, which the next start refuses). A future log
found at start is reopened and its copy resumes.

A failed directory (an I/O error writing a checkpoint, or found gone or not
a directory after a partition's I/O failed): :meth:`LogManager.mark_dir_offline`
takes every log in it offline (KAFKA_STORAGE_ERROR), no new partition is
placed there, its checkpoints are no longer written; the other directories
keep serving (Kafka's LogDirFailureChannel, without the halt when every
directory failed).

Topic metadata (Kafka keeps it in the KRaft metadata log, which a single
broker does not have) lives in ``__pykbroker_topics.json`` in the first log
directory, written durably (temp file, fsync, rename, fsync directory).
Deleting a topic renames its partition directories to
``<topic>-<p>.<uuid>-delete`` and removes them; directories of unknown topics
(or of another topic id) found at load are renamed ``...-stray`` (kept).

Creating a topic or partitions is all-or-nothing: every partition directory
is created first and the topic metadata written last; a failure on the way
(ENOSPC, EMFILE, ...) removes the partitions already created. A crash in
between leaves directories no topic owns: at the next start those holding no
records are removed (a half-created topic, or partitions of a topic beyond
its registered count), others renamed ``-stray``. Registered partitions
whose directory is missing are created at load.

A creation runs in steps (:class:`PartitionCreation`) so that the file work,
about a millisecond and a half per partition, can run in worker threads
while the broker keeps serving: :meth:`LogManager.begin_create_topic` /
:meth:`LogManager.begin_create_partitions` check the request, reserve the
topic name (a second creation of it is refused with TOPIC_ALREADY_EXISTS;
the topic stays unknown to everything else) and place every partition in a
log directory; :meth:`LogManager.build_partitions` creates the partition
directories and opens their logs (file work only: it changes nothing the
manager shares, so it may run in any thread, range by range);
:meth:`LogManager.complete_creation` registers the logs and writes the topic
metadata; :meth:`LogManager.discard_creation` (any thread) removes what was
built after a failure and :meth:`LogManager.end_creation` drops the
reservation. ``create_topic`` / ``create_partitions`` do all of it at once.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import cast

import attrs

from .checkpoints import (
    CorruptCheckpointError,
    atomic_write,
    fsync_dir,
    kafka_uuid_from_str,
    kafka_uuid_str,
    random_kafka_uuid,
    read_offset_checkpoint,
    read_partition_metadata,
    read_properties,
    sync_filesystem,
    write_offset_checkpoint,
    write_properties,
)
from .api import LogOfflineError, PartitionStore
from .loader import (
    PARTITION_METADATA,
    future_dir_name,
    parse_future_dir_name,
    parse_partition_dir_name,
    partition_dir_name,
)
from .log import PartitionLog
from .log_config import InvalidConfigError, LogConfig

log = logging.getLogger("pykbroker.storage")

#: a clean shutdown syncs the file system once (syncfs) instead of an fsync per file from this many logs
#: in a log directory on
SYNCFS_FROM_LOGS = 256

TOPICS_FILE = "__pykbroker_topics.json"
META_PROPERTIES = "meta.properties"
CLEAN_SHUTDOWN_FILE = ".kafka_cleanshutdown"
RECOVERY_POINT_CHECKPOINT = "recovery-point-offset-checkpoint"
LOG_START_OFFSET_CHECKPOINT = "log-start-offset-checkpoint"

MAX_TOPIC_NAME_LENGTH = 249
_LEGAL_TOPIC = re.compile(r"^[a-zA-Z0-9._-]+$")


def validate_topic_name(name: str) -> str | None:
    """Kafka's ``Topic.validate``: None if legal, else why not (Kafka's wording)."""
    if not name:
        return "the empty string is not allowed"
    if name == ".":
        return "'.' is not allowed"
    if name == "..":
        return "'..' is not allowed"
    if len(name) > MAX_TOPIC_NAME_LENGTH:
        return f"the length of '{name}' is longer than the max allowed length {MAX_TOPIC_NAME_LENGTH}"
    if not _LEGAL_TOPIC.match(name):
        return f"'{name}' contains one or more characters other than ASCII alphanumerics, '.', '_' and '-'"
    return None


def topics_collide(a: str, b: str) -> bool:
    """Kafka's ``Topic.hasCollision``: '.' and '_' collide in metric names."""
    return a.replace(".", "_") == b.replace(".", "_")


class TopicError(Exception):
    error_code = -1


class UnknownTopicError(TopicError):
    error_code = 3  # UNKNOWN_TOPIC_OR_PARTITION


class InvalidTopicError(TopicError):
    error_code = 17  # INVALID_TOPIC_EXCEPTION


class TopicAlreadyExistsError(TopicError):
    error_code = 36  # TOPIC_ALREADY_EXISTS


class InvalidPartitionsError(TopicError):
    error_code = 37  # INVALID_PARTITIONS


class StorageFailureError(TopicError):
    """Creating partition logs failed (disk full, no file descriptors, ...);
    nothing of the request was kept."""
    error_code = 56  # KAFKA_STORAGE_ERROR


class CreationInProgressError(TopicError):
    """Partitions of this topic are being created already (the broker waits
    for one creation of a topic's partitions to end before the next)."""


class LogDirNotFoundError(Exception):
    """AlterReplicaLogDirs to a path that is not one of log.dirs."""

    error_code = 57  # LOG_DIR_NOT_FOUND


class ReplicaNotAvailableError(Exception):
    """AlterReplicaLogDirs for a partition of which this broker has no log."""

    error_code = 9  # REPLICA_NOT_AVAILABLE


@attrs.frozen
class ReplicaDirInfo:
    """One partition log in a log directory (DescribeLogDirs)."""

    topic: str
    partition: int
    size: int
    log_end_offset: int
    is_future: bool


@attrs.frozen
class LogDirInfo:
    """One log directory (DescribeLogDirs): its absolute path, why it is
    offline (None when online), the volume's total and usable bytes (-1
    when offline) and its partition logs."""

    path: str
    error: str | None
    total_bytes: int
    usable_bytes: int
    replicas: list[ReplicaDirInfo]


LogReplacedListener = Callable[[str, int, PartitionStore], None]


@attrs.frozen
class TopicMeta:
    name: str
    topic_id: bytes  # 16 bytes
    partitions: int
    configs: dict[str, str] = attrs.field(factory=dict)  # overrides, Kafka names

    @property
    def topic_id_str(self) -> str:
        return kafka_uuid_str(self.topic_id)


@attrs.define(eq=False)
class PartitionCreation:
    """A creation of partitions ``first``..``meta.partitions - 1`` under way
    (a new topic when ``old`` is None, else more partitions of ``old``); see
    the module docstring for its steps. ``dirs[i]`` is the log directory of
    partition ``first + i``; ``built`` the logs opened so far (registered
    nowhere until :meth:`LogManager.complete_creation`); ``started`` every
    partition whose directory may exist (a half-made one is removed too)."""

    meta: TopicMeta
    old: TopicMeta | None
    config: LogConfig
    dirs: list[Path]
    built: dict[int, PartitionStore] = attrs.field(factory=dict)
    started: list[int] = attrs.field(factory=list)
    completed: bool = False

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def first(self) -> int:
        return 0 if self.old is None else self.old.partitions

    @property
    def total(self) -> int:
        return self.meta.partitions


class LogManager:
    def __init__(
        self,
        log_dirs: Sequence[Path | str],
        default_config: LogConfig,
        *,
        node_id: int = 1,
        cluster_id: str | None = None,
    ) -> None:
        if not log_dirs:
            raise ValueError("at least one log directory is needed")
        self.log_dirs = [Path(d) for d in log_dirs]
        self.default_config = default_config
        self.node_id = node_id
        self._requested_cluster_id = cluster_id
        self.cluster_id: str = cluster_id or ""
        self.directory_ids: dict[Path, bytes] = {}
        self.topics: dict[str, TopicMeta] = {}
        self._by_id: dict[bytes, TopicMeta] = {}
        self._logs: dict[tuple[str, int], PartitionStore] = {}
        self._dir_of: dict[tuple[str, int], Path] = {}
        self._loaded = False
        # dynamic broker configs (AlterConfigs on BROKER resources), by resource
        # name: "" = cluster-wide default, "<node id>" = this broker
        self.dynamic_configs: dict[str, dict[str, str]] = {}
        # finalized feature levels (UpdateFeatures); None until an admin set them
        self.finalized_features: dict[str, int] | None = None
        # deleted topics' directories: removed by the caller's background task
        # (remove_pending_dirs) when async_delete is set, else at once
        self.async_delete = False
        self.pending_dir_deletes: list[tuple[int, Path]] = []
        # cluster mode turns this off: only partitions this broker replicates get a log
        self.create_missing_partitions = True
        # AlterReplicaLogDirs: future logs being filled, and where they are
        self._futures: dict[tuple[str, int], PartitionStore] = {}
        self._future_dir_of: dict[tuple[str, int], Path] = {}
        # the directory named for a partition this broker has no log of yet
        self.preferred_dirs: dict[tuple[str, int], Path] = {}
        # failed log directories: why (Kafka's offline log dirs)
        self.offline_dirs: dict[Path, str] = {}
        # called as fn(topic, partition, new log) after a future log replaced the current one
        self.log_replaced_listeners: list[LogReplacedListener] = []
        # called as fn(log dir) when a directory goes offline, possibly from a worker thread
        self.dir_failed_listeners: list[Callable[[Path], None]] = []
        # topics whose partitions are being created (PartitionCreation), by name
        self._creations: dict[str, PartitionCreation] = {}

    # --- config ------------------------------------------------------------------------

    def config_for(self, configs: Mapping[str, str]) -> LogConfig:
        """The effective LogConfig of a topic with these overrides (raises
        InvalidConfigError for unknown names / bad values)."""
        return LogConfig.from_properties(configs, base=self.default_config)

    def set_default_config(self, default_config: LogConfig) -> None:
        """New broker-level topic defaults (dynamic broker configs): every open
        log switches to its recomputed effective config."""
        self.default_config = default_config
        for meta in self.topics.values():
            config = self.config_for(meta.configs)
            for p in range(meta.partitions):
                plog = self._logs.get((meta.name, p))
                if plog is not None:
                    plog.config = config

    def set_dynamic_configs(self, resource_name: str, configs: Mapping[str, str]) -> None:
        """Persist the dynamic configs of BROKER ``resource_name`` (replacing them)."""
        old = self.dynamic_configs.get(resource_name)
        if configs:
            self.dynamic_configs[resource_name] = dict(configs)
        else:
            self.dynamic_configs.pop(resource_name, None)
        try:
            self._write_topics()
        except BaseException:
            if old is None:
                self.dynamic_configs.pop(resource_name, None)
            else:
                self.dynamic_configs[resource_name] = old
            raise

    def set_finalized_features(self, levels: Mapping[str, int]) -> None:
        """Persist the finalized feature levels (UpdateFeatures): only levels
        above 0 are kept, a feature not listed is at level 0."""
        old = self.finalized_features
        self.finalized_features = {k: int(v) for k, v in sorted(levels.items()) if int(v) > 0}
        try:
            self._write_topics()
        except BaseException:
            self.finalized_features = old
            raise

    # --- loading ----------------------------------------------------------------------------

    def load(self, now_ms: int | None = None) -> None:
        """Create/check meta.properties, read the topic metadata, open every
        partition (recovering after an unclean shutdown) and every future log,
        create partitions whose directory is missing. Every directory must be
        usable at start (unlike Kafka, which starts with the others)."""
        for d in self.log_dirs:
            d.mkdir(parents=True, exist_ok=True)
        self._init_meta_properties()
        self._read_topics()
        futures: list[tuple[Path, Path, str, int]] = []
        checkpoints: dict[Path, tuple[dict[tuple[str, int], int], dict[tuple[str, int], int], bool]] = {}
        configs: dict[str, LogConfig] = {}  # per topic, not parsed again for each of its partitions
        for d in self.log_dirs:
            clean_marker = d / CLEAN_SHUTDOWN_FILE
            clean = clean_marker.exists()
            rps = self._read_checkpoint(d / RECOVERY_POINT_CHECKPOINT)
            lsos = self._read_checkpoint(d / LOG_START_OFFSET_CHECKPOINT)
            checkpoints[d] = (rps, lsos, clean)
            for entry in sorted(os.scandir(d), key=lambda e: e.name):
                if not entry.is_dir():
                    continue
                name = entry.name
                path = Path(entry.path)
                if name.endswith("-delete"):
                    shutil.rmtree(path, ignore_errors=True)
                    continue
                future = parse_future_dir_name(name)
                if future is not None:
                    futures.append((d, path, *future))
                    continue
                parsed = parse_partition_dir_name(name)
                if parsed is None:
                    continue
                topic, p = parsed
                meta = self.topics.get(topic)
                stored = read_partition_metadata(path / PARTITION_METADATA)
                if meta is None or p >= meta.partitions or (stored is not None and stored != meta.topic_id):
                    self._discard_unowned(path, stored, meta is None or p >= meta.partitions, meta)
                    continue
                if (topic, p) in self._logs:
                    # Kafka's LogManager.loadLog: a crash between the two renames of
                    # replace_current_with_future leaves this; an operator decides
                    raise RuntimeError(
                        f"Duplicate log directories for {name} are found in both {self._dir_of[(topic, p)]} "
                        f"and {d}. It is likely because log directory failure happened while broker was "
                        "replacing current replica with future replica. Recover broker from this failure by "
                        "manually deleting one of the two directories for this partition. It is recommended "
                        "to delete the partition in the log directory that is known to have failed recently."
                    )
                config = configs.get(topic)
                if config is None:
                    config = configs[topic] = self.config_for(meta.configs)
                plog = PartitionLog.open(
                    path,
                    config,
                    recover=not clean,
                    # not checkpointed yet (no file, or a partition created
                    # since): everything is unflushed, recover from 0 as Kafka
                    recovery_point=rps.get((topic, p), 0),
                    log_start_offset=lsos.get((topic, p)),
                    topic_id=meta.topic_id,
                    now_ms=now_ms,
                    topic_id_on_disk=stored is not None,  # read above, equal to meta's
                )
                self._logs[(topic, p)] = plog
                self._dir_of[(topic, p)] = d
        for d, path, topic, p in futures:
            # a move a restart interrupted: reopen the future log, the copy resumes
            meta = self.topics.get(topic)
            stored = read_partition_metadata(path / PARTITION_METADATA)
            key = (topic, p)
            if (meta is None or p >= meta.partitions or key in self._futures or self._dir_of.get(key) in (None, d)
                    or (stored is not None and stored != meta.topic_id)):
                self._make_stray(path)
                continue
            rps, lsos, clean = checkpoints[d]
            self._futures[key] = PartitionLog.open(
                path, self.config_for(meta.configs), recover=not clean,
                recovery_point=rps.get(key, 0), log_start_offset=lsos.get(key),
                topic_id=meta.topic_id, now_ms=now_ms)
            self._future_dir_of[key] = d
        for d, (_, _, clean) in checkpoints.items():
            if clean:
                (d / CLEAN_SHUTDOWN_FILE).unlink()
        if self.create_missing_partitions:
            for meta in self.topics.values():
                for p in range(meta.partitions):
                    if (meta.name, p) not in self._logs:
                        self._create_partition(meta, p, self.config_for(meta.configs))
        self._loaded = True

    @staticmethod
    def _read_checkpoint(path: Path) -> dict[tuple[str, int], int]:
        try:
            return read_offset_checkpoint(path)
        except CorruptCheckpointError as e:
            log.warning("ignoring corrupt checkpoint %s: %s", path, e)
            return {}

    def _init_meta_properties(self) -> None:
        stored_cluster: str | None = None
        props_by_dir: dict[Path, dict[str, str] | None] = {}
        for d in self.log_dirs:
            props = read_properties(d / META_PROPERTIES)
            props_by_dir[d] = props
            if not props:
                continue
            nid = props.get("node.id", props.get("broker.id"))
            if nid is not None and int(nid) != self.node_id:
                raise RuntimeError(
                    f"Stored node id {nid} doesn't match previous node id {self.node_id} in {d / META_PROPERTIES}"
                )
            cid = props.get("cluster.id")
            if cid:
                if stored_cluster is not None and cid != stored_cluster:
                    raise RuntimeError(f"Inconsistent cluster ids in log directories: {stored_cluster} and {cid}")
                stored_cluster = cid
        if self._requested_cluster_id and stored_cluster and self._requested_cluster_id != stored_cluster:
            raise RuntimeError(
                f"The cluster id {self._requested_cluster_id} doesn't match the stored cluster id "
                f"{stored_cluster} in meta.properties"
            )
        self.cluster_id = stored_cluster or self._requested_cluster_id or kafka_uuid_str(random_kafka_uuid())
        for d in self.log_dirs:
            props = props_by_dir[d] or {}
            dir_id_s = props.get("directory.id")
            try:
                dir_id = kafka_uuid_from_str(dir_id_s) if dir_id_s else None
            except ValueError:
                dir_id = None
            if dir_id is None:
                dir_id = random_kafka_uuid()
            self.directory_ids[d] = dir_id
            want = {
                "version": "1",
                "node.id": str(self.node_id),
                "cluster.id": self.cluster_id,
                "directory.id": kafka_uuid_str(dir_id),
            }
            if any(props.get(k) != v for k, v in want.items()):
                merged = dict(props)
                merged.pop("broker.id", None)
                merged.update(want)
                write_properties(d / META_PROPERTIES, merged)

    def _read_topics(self) -> None:
        path = self.log_dirs[0] / TOPICS_FILE
        self.topics = {}
        self._by_id = {}
        try:
            raw = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            return
        self.dynamic_configs = {str(k): {str(a): str(b) for a, b in v.items()}
                                for k, v in raw.get("broker_configs", {}).items()}
        features = raw.get("finalized_features")
        self.finalized_features = None if features is None else {str(k): int(v) for k, v in features.items()}
        for t in raw.get("topics", []):
            meta = TopicMeta(
                t["name"], kafka_uuid_from_str(t["topic_id"]), int(t["partitions"]), dict(t.get("configs", {}))
            )
            self.topics[meta.name] = meta
            self._by_id[meta.topic_id] = meta

    def _write_topics(self) -> None:
        doc = {
            "version": 1,
            "topics": [
                {
                    "name": m.name,
                    "topic_id": kafka_uuid_str(m.topic_id),
                    "partitions": m.partitions,
                    "configs": dict(m.configs),
                }
                for m in sorted(self.topics.values(), key=lambda m: m.name)
            ],
        }
        if self.dynamic_configs:
            doc["broker_configs"] = {k: dict(v) for k, v in sorted(self.dynamic_configs.items())}
        if self.finalized_features is not None:
            doc["finalized_features"] = dict(sorted(self.finalized_features.items()))
        atomic_write(self.log_dirs[0] / TOPICS_FILE, (json.dumps(doc, indent=1) + "\n").encode("utf-8"))

    def _discard_unowned(self, path: Path, stored_id: bytes | None, unregistered: bool,
                         meta: TopicMeta | None = None) -> None:
        """A partition directory no registered topic partition owns. One a
        creation made (its partition.metadata names a topic id not
        registered, or the id of its topic ``meta`` while its index is
        beyond the registered count) but holding no records was left by a
        creation a crash interrupted (the topic metadata is written last):
        removed. Any other is kept aside as ``-stray``."""
        ours = stored_id is not None and (stored_id not in self._by_id
                                          or (meta is not None and stored_id == meta.topic_id))
        if unregistered and ours and not _holds_records(path):
            log.warning("removing %s: a partition directory without records of no registered topic partition "
                        "(a topic or partition creation interrupted by a crash)", path)
            shutil.rmtree(path, ignore_errors=True)
            return
        self._make_stray(path)

    @staticmethod
    def _make_stray(path: Path) -> None:
        target = path.with_name(f"{path.name}.{uuid.uuid4().hex}-stray")
        log.warning("log directory %s belongs to no known topic partition; renamed to %s", path, target.name)
        os.rename(path, target)

    def _dir_counts(self) -> dict[Path, int]:
        """Logs (current, future and being created) per online log directory,
        in log.dirs order (LogOfflineError when none is online)."""
        online = [d for d in self.log_dirs if d not in self.offline_dirs]
        if not online:
            raise LogOfflineError("No log directory is online")
        counts = {d: 0 for d in online}
        if len(online) > 1:  # the common case (one directory) needs no count over every partition
            pending = [d for c in self._creations.values() for d in c.dirs]
            for d in [*self._dir_of.values(), *self._future_dir_of.values(), *pending]:
                if d in counts:
                    counts[d] += 1
        return counts

    def _pick_dir(self) -> Path:
        """The online log directory with the fewest logs, current and future
        (Kafka's LogManager.nextLogDirs)."""
        counts = self._dir_counts()
        return min(counts, key=lambda d: counts[d])

    def _place(self, name: str, first: int, total: int) -> list[Path]:
        """Log directories for new partitions ``first``..``total - 1``: the one
        AlterReplicaLogDirs named, else the one with the fewest logs."""
        counts: dict[Path, int] | None = None
        out = []
        for p in range(first, total):
            d = self.preferred_dirs.pop((name, p), None)
            if d is None or d in self.offline_dirs:
                if counts is None:
                    counts = self._dir_counts()
                d = min(counts, key=lambda x: counts[x])
            if counts is not None and d in counts:
                counts[d] += 1
            out.append(d)
        return out

    def _new_log(self, d: Path, meta: TopicMeta, p: int, config: LogConfig) -> PartitionStore:
        """Create partition ``p``'s log in log directory ``d`` (file work only:
        nothing of the manager changes, so any thread may call it)."""
        path = d / partition_dir_name(meta.name, p)
        if path.exists():
            self._make_stray(path)
        return PartitionLog.open(path, config, recover=False, topic_id=meta.topic_id)

    def _create_partition(self, meta: TopicMeta, p: int, config: LogConfig) -> PartitionStore:
        d = self.preferred_dirs.pop((meta.name, p), None)
        if d is None or d in self.offline_dirs:
            d = self._pick_dir()
        plog = self._new_log(d, meta, p, config)
        self._logs[(meta.name, p)] = plog
        self._dir_of[(meta.name, p)] = d
        return plog

    # --- topics -------------------------------------------------------------------------------

    def create_topic(
        self,
        name: str,
        partitions: int,
        configs: Mapping[str, str] | None = None,
        topic_id: bytes | None = None,
    ) -> TopicMeta:
        """Create a topic and its partition logs. Raises InvalidTopicError,
        TopicAlreadyExistsError, InvalidPartitionsError or InvalidConfigError
        (each with ``error_code``), StorageFailureError (rolled back)."""
        return self._run_creation(self.begin_create_topic(name, partitions, configs, topic_id))

    def create_partitions(self, name: str, new_total: int) -> TopicMeta:
        """Grow a topic to ``new_total`` partitions (all or nothing)."""
        return self._run_creation(self.begin_create_partitions(name, new_total))

    def _run_creation(self, c: PartitionCreation) -> TopicMeta:
        try:
            self.build_partitions(c, c.first, c.total)
            return self.complete_creation(c)
        except BaseException:
            self.discard_creation(c)
            raise
        finally:
            self.end_creation(c)

    def begin_create_topic(
        self,
        name: str,
        partitions: int,
        configs: Mapping[str, str] | None = None,
        topic_id: bytes | None = None,
    ) -> PartitionCreation:
        """Check a new topic and reserve its name (the first step of a
        creation); raises as :meth:`create_topic`. A name being created is
        taken already (TopicAlreadyExistsError)."""
        err = validate_topic_name(name)
        if err is not None:
            raise InvalidTopicError(f"Topic name is invalid: {err}")
        if name in self.topics or name in self._creations:
            raise TopicAlreadyExistsError(f"Topic '{name}' already exists.")
        for other in [*self.topics, *self._creations]:
            if topics_collide(name, other):
                raise InvalidTopicError(f"Topic '{name}' collides with existing topic: {other}")
        if partitions < 1:
            raise InvalidPartitionsError("Number of partitions was set to an invalid non-positive value.")
        configs = dict(configs or {})
        config = self.config_for(configs)
        if topic_id is None:
            topic_id = random_kafka_uuid()
        if len(topic_id) != 16:
            raise ValueError("topic id must be 16 bytes")
        if topic_id in self._by_id or any(c.meta.topic_id == topic_id and c.old is None
                                          for c in self._creations.values()):
            raise TopicAlreadyExistsError(f"Topic id {kafka_uuid_str(topic_id)} is already in use.")
        meta = TopicMeta(name, topic_id, partitions, configs)
        return self._begin(PartitionCreation(meta, None, config, self._place(name, 0, partitions)))

    def begin_create_partitions(self, name: str, new_total: int) -> PartitionCreation:
        """Check growing a topic to ``new_total`` partitions and reserve it
        (the first step of a creation): UnknownTopicError,
        InvalidPartitionsError, CreationInProgressError."""
        meta = self.topics.get(name)
        if meta is None:
            raise UnknownTopicError(f"This server does not host this topic: {name}")
        if name in self._creations:
            raise CreationInProgressError(f"Partitions of topic '{name}' are being created.")
        if new_total == meta.partitions:
            raise InvalidPartitionsError(f"Topic already has {meta.partitions} partition(s).")
        if new_total < meta.partitions:
            raise InvalidPartitionsError(f"The topic {name} currently has {meta.partitions} partition(s); "
                                         f"{new_total} would not be an increase.")
        new = attrs.evolve(meta, partitions=new_total)
        return self._begin(PartitionCreation(new, meta, self.config_for(new.configs),
                                             self._place(name, meta.partitions, new_total)))

    def _begin(self, c: PartitionCreation) -> PartitionCreation:
        self._creations[c.name] = c
        return c

    def creating(self, name: str) -> bool:
        """Whether partitions of ``name`` are being created."""
        return name in self._creations

    def build_partitions(self, c: PartitionCreation, lo: int, hi: int) -> None:
        """Create the directories and open the logs of partitions ``lo``..``hi - 1``
        of creation ``c`` (file work only, any thread; one range at a time).
        StorageFailureError for an OSError (the caller then discards ``c``)."""
        p = lo
        try:
            for p in range(lo, hi):
                c.started.append(p)  # before: a half-made directory goes too
                c.built[p] = self._new_log(c.dirs[p - c.first], c.meta, p, c.config)
        except OSError as e:
            what = "topic" if c.old is None else "partitions of topic"
            log.error("creating the %s %s failed after %d of %d partitions, rolled back: %s",
                      what, c.name, p - c.first, c.total - c.first, e)
            raise StorageFailureError(
                f"Creating {c.total - c.first} partitions of '{c.name}' failed and was rolled "
                f"back: {e.strerror or e}") from e

    def complete_creation(self, c: PartitionCreation) -> TopicMeta:
        """Register the logs ``c`` built and record the topic durably (the
        topic metadata written last). On failure nothing is registered and
        the previous metadata is back (StorageFailureError for an OSError;
        UnknownTopicError when the topic grown was deleted meanwhile); the
        caller then discards ``c``."""
        name = c.name
        missing = [p for p in range(c.first, c.total) if p not in c.built]
        if missing:
            raise RuntimeError(f"partitions {missing[:5]}... of {name} were not built")
        old = c.old
        if old is None:
            meta = c.meta
        else:
            cur = self.topics.get(name)
            if cur is None or cur.topic_id != old.topic_id:
                raise UnknownTopicError(f"This server does not host this topic: {name}")
            meta = attrs.evolve(cur, partitions=c.total)  # config overrides may have changed meanwhile
        gone = sorted({str(d) for d in c.dirs if d in self.offline_dirs})
        if gone:
            raise StorageFailureError(f"Creating partitions of '{name}' failed: log directory "
                                      f"{', '.join(gone)} went offline")
        config = self.config_for(meta.configs)
        for p, plog in c.built.items():
            plog.config = config
            self._logs[(name, p)] = plog
            self._dir_of[(name, p)] = c.dirs[p - c.first]
        prev = self.topics.get(name)
        self.topics[name] = meta
        self._by_id[meta.topic_id] = meta
        try:
            self._write_topics()
        except BaseException as e:
            if prev is None:
                self.topics.pop(name, None)
                self._by_id.pop(meta.topic_id, None)
            else:
                self.topics[name] = prev
                self._by_id[prev.topic_id] = prev
            for p in c.built:
                self._logs.pop((name, p), None)
                self._dir_of.pop((name, p), None)
            if isinstance(e, OSError):
                log.error("recording %s failed, its %d new partitions are rolled back: %s",
                          name, c.total - c.first, e)
                raise StorageFailureError(
                    f"Creating {c.total - c.first} partitions of '{name}' failed and was rolled "
                    f"back: {e.strerror or e}") from e
            raise
        c.meta = meta
        c.completed = True
        return meta

    def discard_creation(self, c: PartitionCreation) -> None:
        """Roll back a creation that did not complete: close and remove the
        logs it built (file work only, any thread)."""
        if c.completed:
            return
        for p in c.started:
            plog = c.built.pop(p, None)
            d = c.dirs[p - c.first]
            try:
                if plog is not None:
                    plog.delete()
                    continue
                path = d / partition_dir_name(c.name, p)
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
            except Exception as e:  # keep removing the others; a leftover is discarded at load
                log.warning("rolling back partition %s-%d: %s", c.name, p, e)
        c.started.clear()

    def end_creation(self, c: PartitionCreation) -> None:
        """The creation is over (completed, or discarded): its reservation goes."""
        if self._creations.get(c.name) is c:
            del self._creations[c.name]

    def ensure_partition(self, name: str, topic_id: bytes, partitions: int, configs: Mapping[str, str],
                         partition: int) -> PartitionStore:
        """Cluster mode (pykbroker/cluster/): ZooKeeper owns the topic list and
        a broker keeps only the partitions it replicates. Record the topic as
        ZooKeeper describes it (id, partition count, config overrides) without
        creating the logs of its other partitions, and open or create the log
        of ``partition``. A topic known here under another id must be deleted
        first (TopicAlreadyExistsError)."""
        meta = self.topics.get(name)
        if meta is not None and meta.topic_id != topic_id:
            raise TopicAlreadyExistsError(f"Topic '{name}' exists here with id {meta.topic_id_str}")
        want = TopicMeta(name, topic_id, max(partitions, meta.partitions if meta else 0), dict(configs))
        if meta != want:
            self.topics[name] = want
            self._by_id[topic_id] = want
            self._write_topics()
        plog = self._logs.get((name, partition))
        if plog is None:
            plog = self._create_partition(want, partition, self.config_for(want.configs))
        return plog

    def delete_topic(self, name: str) -> TopicMeta:
        """Forget the topic (durably) and remove its partition directories."""
        meta = self.topics.get(name)
        if meta is None:
            raise UnknownTopicError(f"This server does not host this topic: {name}")
        del self.topics[name]
        self._by_id.pop(meta.topic_id, None)
        self._write_topics()
        for p in range(meta.partitions):
            self.delete_partition(name, p)
        return meta

    def delete_partition(self, name: str, p: int) -> None:
        """Close one partition's log and remove its directory (renamed to
        ``<dir>.<uuid>-delete`` first, as Kafka); the topic stays known. A
        deleted topic's partitions, or a replica moved to other brokers."""
        self.preferred_dirs.pop((name, p), None)
        if (name, p) in self._futures:
            self.abort_future(name, p)
        plog = self._logs.pop((name, p), None)
        self._dir_of.pop((name, p), None)
        if plog is None:
            return
        d = plog.dir
        if d is None:  # nothing kept in files
            plog.delete()
            return
        self._retire_dir(plog, d)

    def _retire_dir(self, plog: PartitionStore, d: Path) -> None:
        """Close ``plog``'s files and rename its directory ``...-delete``;
        removed now or (async_delete) after file.delete.delay.ms."""
        plog.close_files()
        target = d.with_name(f"{partition_dir_name(plog.topic, plog.partition)}.{uuid.uuid4().hex}-delete")
        try:
            os.rename(d, target)
        except FileNotFoundError:
            return
        if self.async_delete:
            # Kafka removes "-delete" directories after file.delete.delay.ms
            # in the background; fetches in flight keep their fds meanwhile
            due = int(time.time() * 1000) + plog.config.file_delete_delay_ms
            self.pending_dir_deletes.append((due, target))
        else:
            shutil.rmtree(target, ignore_errors=True)

    def due_dir_deletes(self, now_ms: int) -> list[Path]:
        """Deleted topics' directories whose delay has passed (taken off the list)."""
        due = [p for t, p in self.pending_dir_deletes if t <= now_ms]
        if due:
            self.pending_dir_deletes = [(t, p) for t, p in self.pending_dir_deletes if t > now_ms]
        return due

    def alter_topic_configs(self, name: str, configs: Mapping[str, str]) -> TopicMeta:
        """Replace the topic's config overrides (validated first); the open
        partition logs switch to the new effective config."""
        meta = self.topics.get(name)
        if meta is None:
            raise UnknownTopicError(f"This server does not host this topic: {name}")
        config = self.config_for(configs)
        new = attrs.evolve(meta, configs=dict(configs))
        self.topics[name] = new
        self._by_id[new.topic_id] = new
        try:
            self._write_topics()
        except BaseException:
            self.topics[name] = meta
            self._by_id[meta.topic_id] = meta
            raise
        for p in range(new.partitions):
            plog = self._logs.get((name, p))
            if plog is not None:
                plog.config = config
        return new

    # --- lookups ---------------------------------------------------------------------------------

    def get(self, topic: str, partition: int) -> PartitionStore | None:
        return self._logs.get((topic, partition))

    def topic_by_id(self, topic_id: bytes) -> TopicMeta | None:
        return self._by_id.get(topic_id)

    def partitions(self, topic: str) -> list[PartitionStore]:
        meta = self.topics.get(topic)
        if meta is None:
            return []
        return [self._logs[(topic, p)] for p in range(meta.partitions) if (topic, p) in self._logs]

    def all_logs(self) -> Iterator[PartitionStore]:
        return iter(list(self._logs.values()))

    def log_items(self) -> list[tuple[tuple[str, int], PartitionStore]]:
        """((topic, partition), log) pairs, a snapshot."""
        return list(self._logs.items())

    def segment_logs(self) -> dict[tuple[str, int], PartitionLog]:
        """The partition logs kept in segment files (retention, the cleaner and
        delayed file deletion work on these), a snapshot."""
        # this engine's logs are all PartitionLogs (MemoryLogManager overrides this with {})
        return {key: cast(PartitionLog, plog) for key, plog in self._logs.items()}

    def log_dir_of(self, topic: str, partition: int) -> Path | None:
        return self._dir_of.get((topic, partition))

    # --- log directories (DescribeLogDirs, AlterReplicaLogDirs, failures) -------------------------

    @staticmethod
    def abs_path(d: Path) -> str:
        """A log directory as Kafka names it in the admin APIs (File.getAbsolutePath)."""
        return os.path.abspath(d)

    def dir_by_path(self, path: str) -> Path:
        """The log directory whose absolute path is ``path`` (LogDirNotFoundError)."""
        for d in self.log_dirs:
            if self.abs_path(d) == path:
                return d
        raise LogDirNotFoundError(f"Failed to find the log directory {path}")

    def future_log(self, topic: str, partition: int) -> PartitionStore | None:
        return self._futures.get((topic, partition))

    def future_items(self) -> list[tuple[tuple[str, int], PartitionStore]]:
        """((topic, partition), future log) pairs, a snapshot."""
        return list(self._futures.items())

    def future_dir_of(self, topic: str, partition: int) -> Path | None:
        return self._future_dir_of.get((topic, partition))

    def describe_log_dirs(self) -> list[LogDirInfo]:
        """Every configured log directory with its logs (DescribeLogDirs).
        Each online directory is checked first (gone, or no longer a
        directory: it goes offline)."""
        out = []
        for d in self.log_dirs:
            self.check_log_dir(d)
            reason = self.offline_dirs.get(d)
            if reason is not None:
                out.append(LogDirInfo(self.abs_path(d), reason, -1, -1, []))
                continue
            try:
                st = os.statvfs(d)
                total, usable = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
            except OSError:
                total = usable = -1
            reps = [ReplicaDirInfo(t, p, plog.size, plog.log_end_offset, False)
                    for (t, p), plog in sorted(self._logs.items()) if self._dir_of.get((t, p)) == d]
            reps += [ReplicaDirInfo(t, p, plog.size, plog.log_end_offset, True)
                     for (t, p), plog in sorted(self._futures.items()) if self._future_dir_of.get((t, p)) == d]
            out.append(LogDirInfo(self.abs_path(d), None, total, usable, reps))
        return out

    def alter_log_dir(self, topic: str, partition: int, path: str) -> PartitionStore | None:
        """AlterReplicaLogDirs for one partition (Kafka's
        ReplicaManager.alterReplicaLogDirs): the future log created in the
        directory ``path`` names (the one already there if the move is under
        way), or None when there is nothing to copy (the log is there
        already). A move to another directory is abandoned. Raises
        LogDirNotFoundError, LogOfflineError (the directory or the
        partition's log is offline), ReplicaNotAvailableError (no log
        here; the directory is remembered for when one is created)."""
        d = self.dir_by_path(path)
        if d in self.offline_dirs:
            raise LogOfflineError(f"Log directory {path} is offline")
        key = (topic, partition)
        plog = self._logs.get(key)
        if plog is not None and (plog.offline is not None or self._dir_of.get(key) in self.offline_dirs):
            raise LogOfflineError(f"Partition {topic}-{partition} is offline")
        if key in self._futures and self._future_dir_of.get(key) != d:
            self.abort_future(topic, partition)
        if self._dir_of.get(key) != d and self._future_dir_of.get(key) != d:
            self.preferred_dirs[key] = d
        if plog is None:
            raise ReplicaNotAvailableError(f"Replica {self.node_id} is not available for partition {topic}-{partition}")
        self.preferred_dirs.pop(key, None)
        if self._dir_of.get(key) == d:
            return None
        fut = self._futures.get(key)
        if fut is None:
            fut = self._create_future(topic, partition, d)
        return fut

    def _create_future(self, topic: str, partition: int, d: Path) -> PartitionStore:
        meta = self.topics[topic]
        path = d / future_dir_name(topic, partition, uuid.uuid4().hex)
        fut = PartitionLog.open(path, self.config_for(meta.configs), recover=False, topic_id=meta.topic_id)
        self._futures[(topic, partition)] = fut
        self._future_dir_of[(topic, partition)] = d
        log.info("created future log %s for %s-%d", path, topic, partition)
        return fut

    def abort_future(self, topic: str, partition: int) -> None:
        """Abandon the move of a partition: its future log is deleted."""
        key = (topic, partition)
        fut = self._futures.pop(key, None)
        d = self._future_dir_of.pop(key, None)
        if fut is None:
            return
        log.info("abandoning the future log of %s-%d", topic, partition)
        if fut.dir is None or d in self.offline_dirs:
            fut.close_files()
            return
        self._retire_dir(fut, fut.dir)

    def replace_current_with_future(self, topic: str, partition: int) -> PartitionStore:
        """Swap in a caught-up future log (the caller checked it ends where the
        current one ends, and nothing appends until this returns): the future
        directory is renamed ``<topic>-<p>`` first, then the current one
        ``...-delete`` (Kafka's order), the new log opened there with the
        current log's log start offset, high watermark and leader epochs.
        The listeners learn about the new log."""
        key = (topic, partition)
        cur = self._logs[key]
        fut = self._futures.pop(key)
        fd = self._future_dir_of.pop(key)
        meta = self.topics[topic]
        fut.close()  # flushes what is left: the recovery point is the log end
        recovery_point = fut.recovery_point
        old_path, new_path = fut.dir, fd / partition_dir_name(topic, partition)
        assert old_path is not None
        os.rename(old_path, new_path)
        fsync_dir(fd)
        new = PartitionLog.open(new_path, self.config_for(meta.configs), recover=False,
                                recovery_point=recovery_point, log_start_offset=cur.log_start_offset,
                                topic_id=meta.topic_id)
        for e in cur.epoch_entries:
            if e.epoch > new.leader_epoch:
                new.assign_epoch(e.epoch, e.start_offset)
        new.high_watermark = max(new.log_start_offset, min(cur.high_watermark, new.log_end_offset))
        old_dir = self._dir_of.get(key)
        self._logs[key] = new
        self._dir_of[key] = fd
        if cur.dir is not None:
            self._retire_dir(cur, cur.dir)
            if old_dir is not None:
                fsync_dir(old_dir)
        log.info("%s-%d moved from %s to %s", topic, partition, old_dir, fd)
        for fn in list(self.log_replaced_listeners):
            fn(topic, partition, new)
        return new

    def mark_dir_offline(self, d: Path, reason: str) -> None:
        """Log directory ``d`` failed: every log in it refuses I/O from now on
        (KAFKA_STORAGE_ERROR), moves into it are abandoned, nothing new is
        placed there, its files are left as they are. May run in a worker
        thread (the checkpoint writer)."""
        if d in self.offline_dirs:
            return
        self.offline_dirs[d] = reason
        log.error("log directory %s is offline: %s", self.abs_path(d), reason)
        for key, plog_dir in list(self._dir_of.items()):
            plog = self._logs.get(key)
            if plog_dir == d and plog is not None:
                plog.take_offline(reason)
        for key, fut_dir in list(self._future_dir_of.items()):
            fut = self._futures.get(key)
            if fut_dir == d and fut is not None:
                fut.take_offline(reason)
                self.abort_future(*key)
        for fn in list(self.dir_failed_listeners):
            try:
                fn(d)
            except Exception:
                log.exception("a log dir failure listener failed")

    def check_log_dir(self, d: Path) -> bool:
        """Is log directory ``d`` still usable (a directory with its
        meta.properties)? If not it goes offline. Cheap (two stats)."""
        if d in self.offline_dirs:
            return False
        try:
            ok = d.is_dir() and (d / META_PROPERTIES).is_file()
        except OSError:
            ok = False
        if not ok:
            self.mark_dir_offline(d, f"Log directory {self.abs_path(d)} is no longer a usable directory")
        return ok

    def check_partition_dir(self, topic: str, partition: int) -> None:
        """After an I/O error on a partition: take its log directory offline
        if the directory (or the partition's own) is gone or not a directory
        any more (an error that leaves them intact fails only the request)."""
        d = self._dir_of.get((topic, partition))
        if d is None or not self.check_log_dir(d):
            return
        try:
            ok = (d / partition_dir_name(topic, partition)).is_dir()
        except OSError:
            ok = False
        if not ok:
            self.mark_dir_offline(d, f"The directory of {topic}-{partition} in {self.abs_path(d)} is gone")

    # --- durability -------------------------------------------------------------------------------

    def checkpoint(self, skip: Collection[Path] = ()) -> None:
        """Write recovery-point and log-start-offset checkpoints of every log
        dir but those in ``skip`` (fsyncs: run in a worker thread)."""
        for d in self.log_dirs:
            if d in self.offline_dirs or d in skip:
                continue
            rps: dict[tuple[str, int], int] = {}
            lsos: dict[tuple[str, int], int] = {}
            for where, logs in ((self._dir_of, self._logs), (self._future_dir_of, self._futures)):
                for key, plog in list(logs.items()):
                    if where.get(key) != d:
                        continue
                    rps[key] = plog.recovery_point
                    lsos[key] = plog.log_start_offset
            try:
                write_offset_checkpoint(d / RECOVERY_POINT_CHECKPOINT, rps)
                write_offset_checkpoint(d / LOG_START_OFFSET_CHECKPOINT, lsos)
            except OSError as e:  # Kafka: the log dir failure channel takes the directory offline
                self.mark_dir_offline(d, f"Error while writing checkpoints to {self.abs_path(d)}: {e}")

    def flush_all(self) -> None:
        for plog in list(self._logs.values()):
            plog.flush()

    def close(self) -> None:
        """Clean shutdown: flush and close every log, write the checkpoints and
        the clean-shutdown marker."""
        errors: list[BaseException] = []
        per_dir: dict[Path | None, int] = {}
        for where, logs in ((self._dir_of, self._logs), (self._future_dir_of, self._futures)):
            for key in logs:
                per_dir[where.get(key)] = per_dir.get(where.get(key), 0) + 1
        for where, logs in ((self._dir_of, self._logs), (self._future_dir_of, self._futures)):
            for key, plog in list(logs.items()):
                if where.get(key) in self.offline_dirs:
                    plog.close_files()  # nothing more is written to a failed directory
                    continue
                try:
                    # many logs: no fsync per file, one syncfs for the directory
                    # below makes everything durable before the checkpoints and
                    # the clean-shutdown marker (with thousands of partitions, an
                    # fsync per file took tens of seconds, issue 17). A few: an
                    # fsync each, as syncfs also waits for every other process's
                    # dirty data on that file system (seconds on a busy disk)
                    many = per_dir.get(where.get(key), 0) >= SYNCFS_FROM_LOGS
                    cast(PartitionLog, plog).close(fsync=not many)
                except Exception as e:  # keep closing the others; no marker then
                    errors.append(e)
        unsynced: set[Path] = set()
        for d in self.log_dirs:
            if d in self.offline_dirs or per_dir.get(d, 0) < SYNCFS_FROM_LOGS:
                continue
            try:
                sync_filesystem(d)
            except OSError as e:
                errors.append(e)
                unsynced.add(d)
        if not self._loaded:
            return
        try:
            # not for a directory whose sync failed: its recovery points
            # would claim data durable that may not be (recovery scans it)
            self.checkpoint(skip=unsynced)
            if not errors:
                marker = json.dumps({"version": 0, "BrokerEpoch": -1}).encode()
                for d in self.log_dirs:
                    if d not in self.offline_dirs:
                        atomic_write(d / CLEAN_SHUTDOWN_FILE, marker)
        finally:
            self._loaded = False
        if errors:
            raise errors[0]


def _holds_records(path: Path) -> bool:
    """Whether a partition directory has a non-empty segment, or no segment
    at all, or anything unreadable (to be safe: kept aside, not removed)."""
    segments = 0
    try:
        for entry in os.scandir(path):
            if entry.name.endswith(".log"):
                segments += 1
                if entry.stat().st_size > 0:
                    return True
    except OSError:
        return True
    return segments == 0


__all__ = [
    "CLEAN_SHUTDOWN_FILE",
    "CreationInProgressError",
    "InvalidConfigError",
    "InvalidPartitionsError",
    "InvalidTopicError",
    "LogDirInfo",
    "LogDirNotFoundError",
    "LogManager",
    "PartitionCreation",
    "StorageFailureError",
    "LogReplacedListener",
    "ReplicaDirInfo",
    "ReplicaNotAvailableError",
    "TOPICS_FILE",
    "TopicAlreadyExistsError",
    "TopicError",
    "TopicMeta",
    "UnknownTopicError",
    "topics_collide",
    "validate_topic_name",
]

