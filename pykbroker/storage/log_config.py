"""Topic-level log configuration, with Kafka's names, types, defaults and checks.

:class:`LogConfig` holds every topic config of Kafka 4.x (``TopicConfig`` /
``LogConfig``); the ones the storage layer acts on today are segment.*,
index.interval.bytes, max.message.bytes, flush.*, message.timestamp.*; the
rest are carried so DescribeConfigs/CreateTopics can report and validate them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

LONG_MAX = 2**63 - 1
INT_MAX = 2**31 - 1


class InvalidConfigError(ValueError):
    """A topic config name or value Kafka would reject (INVALID_CONFIG, 40)."""

    error_code = 40


@attrs.frozen
class LogConfig:
    segment_bytes: int = 1073741824
    segment_ms: int = 604800000
    segment_jitter_ms: int = 0
    segment_index_bytes: int = 10485760
    index_interval_bytes: int = 4096
    max_message_bytes: int = 1048588
    flush_messages: int = LONG_MAX
    flush_ms: int = LONG_MAX
    retention_ms: int = 604800000
    retention_bytes: int = -1
    cleanup_policy: tuple[str, ...] = ("delete",)
    compression_type: str = "producer"
    compression_gzip_level: int = -1
    compression_lz4_level: int = 9
    compression_zstd_level: int = 3
    message_timestamp_type: str = "CreateTime"
    message_timestamp_before_max_ms: int = LONG_MAX
    message_timestamp_after_max_ms: int = 3600000
    delete_retention_ms: int = 86400000
    min_compaction_lag_ms: int = 0
    max_compaction_lag_ms: int = LONG_MAX
    min_cleanable_dirty_ratio: float = 0.5
    file_delete_delay_ms: int = 60000
    min_insync_replicas: int = 1
    unclean_leader_election_enable: bool = False
    preallocate: bool = False
    remote_storage_enable: bool = False
    local_retention_ms: int = -2
    local_retention_bytes: int = -2
    remote_log_copy_disable: bool = False
    remote_log_delete_on_disable: bool = False
    leader_replication_throttled_replicas: str = ""
    follower_replication_throttled_replicas: str = ""

    @property
    def log_append_time(self) -> bool:
        return self.message_timestamp_type == "LogAppendTime"

    @property
    def max_segment_ms(self) -> int:
        """Kafka's LogConfig.maxSegmentMs: a compacted topic also rolls after
        max.compaction.lag.ms, so a quiet active segment becomes cleanable."""
        if self.compact and self.max_compaction_lag_ms > 0:
            return min(self.max_compaction_lag_ms, self.segment_ms)
        return self.segment_ms

    @property
    def compact(self) -> bool:
        return "compact" in self.cleanup_policy

    @property
    def delete(self) -> bool:
        return "delete" in self.cleanup_policy

    @classmethod
    def from_properties(cls, props: Mapping[str, str], base: LogConfig | None = None) -> LogConfig:
        """Build from Kafka topic config names (``segment.bytes`` ...), over ``base``
        (the broker defaults; Kafka's own defaults if None). Unknown names and
        invalid values raise :class:`InvalidConfigError` with Kafka's wording.
        ``internal.segment.bytes`` (Kafka 4's test hook) sets segment_bytes
        without the minimum check."""
        changes: dict[str, Any] = {}
        internal_segment_bytes = None
        for name, raw in props.items():
            if name == "internal.segment.bytes":
                if raw is not None:
                    internal_segment_bytes = _parse_int(name, raw, INT_MAX)
                continue
            spec = CONFIGS.get(name)
            if spec is None:
                raise InvalidConfigError(f"Unknown topic config name: {name}")
            if raw is None:
                continue
            changes[spec.field] = spec.parse(name, raw)
        if internal_segment_bytes is not None:
            changes["segment_bytes"] = internal_segment_bytes
        return attrs.evolve(base or cls(), **changes)

    def to_properties(self) -> dict[str, str]:
        """Every topic config, by Kafka name, as Kafka prints it."""
        return {name: spec.render(getattr(self, spec.field)) for name, spec in CONFIGS.items()}

    def overrides(self, base: LogConfig | None = None) -> dict[str, str]:
        """The Kafka-named configs whose value differs from ``base``."""
        base = base or LogConfig()
        return {
            name: spec.render(getattr(self, spec.field))
            for name, spec in CONFIGS.items()
            if getattr(self, spec.field) != getattr(base, spec.field)
        }


# --- config table --------------------------------------------------------------------


def _parse_int(name: str, raw: str, limit: int) -> int:
    try:
        v = int(str(raw).strip())
    except ValueError:
        raise InvalidConfigError(
            f"Invalid value {raw} for configuration {name}: Not a number of type "
            f"{'INT' if limit == INT_MAX else 'LONG'}"
        ) from None
    if not -limit - 1 <= v <= limit:
        raise InvalidConfigError(
            f"Invalid value {raw} for configuration {name}: Not a number of type "
            f"{'INT' if limit == INT_MAX else 'LONG'}"
        )
    return v


@attrs.frozen
class ConfigSpec:
    field: str
    type: str  # int, long, bool, double, string, list
    validator: Callable[[Any], str | None] | None = None

    def parse(self, name: str, raw: str) -> Any:
        s = str(raw).strip()
        t = self.type
        if t == "int":
            v: Any = _parse_int(name, s, INT_MAX)
        elif t == "long":
            v = _parse_int(name, s, LONG_MAX)
        elif t == "bool":
            if s.lower() not in ("true", "false"):
                raise InvalidConfigError(f"Invalid value {raw} for configuration {name}: Expected value to be either true or false")
            v = s.lower() == "true"
        elif t == "double":
            try:
                v = float(s)
            except ValueError:
                raise InvalidConfigError(f"Invalid value {raw} for configuration {name}: Not a number of type DOUBLE") from None
        elif t == "list":
            v = tuple(x.strip() for x in s.split(",") if x.strip())
        else:
            v = s
        if self.validator is not None:
            err = self.validator(v)
            if err:
                raise InvalidConfigError(f"Invalid value {raw} for configuration {name}: {err}")
        return v

    def render(self, v: Any) -> str:
        if self.type == "bool":
            return "true" if v else "false"
        if self.type == "list":
            return ",".join(v)
        return str(v)


def _at_least(n: float) -> Callable[[Any], str | None]:
    return lambda v: None if v >= n else f"Value must be at least {n}"


def _between(lo: float, hi: float) -> Callable[[Any], str | None]:
    return lambda v: None if lo <= v <= hi else f"Value must be no less than {lo} and no more than {hi}"


def _one_of(*opts: str) -> Callable[[Any], str | None]:
    return lambda v: None if v in opts else f"String must be one of: {', '.join(opts)}"


def _list_of(*opts: str) -> Callable[[Any], str | None]:
    def check(v: tuple[str, ...]) -> str | None:
        bad = [x for x in v if x not in opts]
        if bad:
            return f"Invalid value {bad[0]} for configuration: String must be one of: {', '.join(opts)}"
        return None

    return check


def _gzip_level(v: int) -> str | None:
    return None if v == -1 or 1 <= v <= 9 else "Value must be between 1 and 9, or -1 (default level)"


CONFIGS: dict[str, ConfigSpec] = {
    # Kafka 3.x allows segment.bytes >= 14 (LegacyRecord.RECORD_OVERHEAD_V0);
    # Kafka 4.x requires >= 1 MiB (and offers internal.segment.bytes for
    # tests). We keep 14, as the broker config (log.segment.bytes) does.
    "segment.bytes": ConfigSpec("segment_bytes", "int", _at_least(14)),
    "segment.ms": ConfigSpec("segment_ms", "long", _at_least(1)),
    "segment.jitter.ms": ConfigSpec("segment_jitter_ms", "long", _at_least(0)),
    "segment.index.bytes": ConfigSpec("segment_index_bytes", "int", _at_least(4)),
    "flush.messages": ConfigSpec("flush_messages", "long", _at_least(1)),
    "flush.ms": ConfigSpec("flush_ms", "long", _at_least(0)),
    "retention.bytes": ConfigSpec("retention_bytes", "long"),
    "retention.ms": ConfigSpec("retention_ms", "long", _at_least(-1)),
    "max.message.bytes": ConfigSpec("max_message_bytes", "int", _at_least(0)),
    "index.interval.bytes": ConfigSpec("index_interval_bytes", "int", _at_least(0)),
    "delete.retention.ms": ConfigSpec("delete_retention_ms", "long", _at_least(0)),
    "min.compaction.lag.ms": ConfigSpec("min_compaction_lag_ms", "long", _at_least(0)),
    "max.compaction.lag.ms": ConfigSpec("max_compaction_lag_ms", "long", _at_least(1)),
    "file.delete.delay.ms": ConfigSpec("file_delete_delay_ms", "long", _at_least(0)),
    "min.cleanable.dirty.ratio": ConfigSpec("min_cleanable_dirty_ratio", "double", _between(0, 1)),
    "cleanup.policy": ConfigSpec("cleanup_policy", "list", _list_of("compact", "delete")),
    "unclean.leader.election.enable": ConfigSpec("unclean_leader_election_enable", "bool"),
    "min.insync.replicas": ConfigSpec("min_insync_replicas", "int", _at_least(1)),
    "compression.type": ConfigSpec(
        "compression_type", "string", _one_of("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")
    ),
    "compression.gzip.level": ConfigSpec("compression_gzip_level", "int", _gzip_level),
    "compression.lz4.level": ConfigSpec("compression_lz4_level", "int", _between(1, 17)),
    "compression.zstd.level": ConfigSpec("compression_zstd_level", "int", _between(-131072, 22)),
    "preallocate": ConfigSpec("preallocate", "bool"),
    "message.timestamp.type": ConfigSpec("message_timestamp_type", "string", _one_of("CreateTime", "LogAppendTime")),
    "message.timestamp.before.max.ms": ConfigSpec("message_timestamp_before_max_ms", "long", _at_least(0)),
    "message.timestamp.after.max.ms": ConfigSpec("message_timestamp_after_max_ms", "long", _at_least(0)),
    "leader.replication.throttled.replicas": ConfigSpec("leader_replication_throttled_replicas", "string"),
    "follower.replication.throttled.replicas": ConfigSpec("follower_replication_throttled_replicas", "string"),
    "remote.storage.enable": ConfigSpec("remote_storage_enable", "bool"),
    "local.retention.ms": ConfigSpec("local_retention_ms", "long", _at_least(-2)),
    "local.retention.bytes": ConfigSpec("local_retention_bytes", "long", _at_least(-2)),
    "remote.log.copy.disable": ConfigSpec("remote_log_copy_disable", "bool"),
    "remote.log.delete.on.disable": ConfigSpec("remote_log_delete_on_disable", "bool"),
}

TOPIC_CONFIG_NAMES: frozenset[str] = frozenset(CONFIGS)
TOPIC_CONFIG_DEFAULTS: dict[str, str] = LogConfig().to_properties()
