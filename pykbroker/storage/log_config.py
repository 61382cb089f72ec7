"""Kafka's topic-config schema, and the effective config the storage layer uses.

This module is the one definition of Kafka 4.x's topic configs (Kafka's
``TopicConfig``/``LogConfig``, broker synonyms from ``ServerLogConfigs``
and ``ServerTopicConfigSynonyms``): for each config its name, type,
default, validator (Kafka's bounds and messages), the broker properties
that supply its default ("synonyms", in precedence order, with their unit
conversion) and a one-line description. Everything else is derived from
it:

- :func:`parse_topic_configs` — Kafka's ``LogConfig.validateNames`` +
  ``ConfigDef.parse``: unknown names first, then each value parsed and
  validated in schema order; raises :class:`InvalidConfigError` with
  Kafka's message ("Invalid value 100000 for configuration segment.bytes:
  Value must be at least 1048576").
- :class:`LogConfig` — the typed effective config of a topic
  (:meth:`LogConfig.from_properties` is that same parse over a base).
- validation of CreateTopics/AlterConfigs/IncrementalAlterConfigs and
  DescribeConfigs (``pykbroker/topic_configs.py``), and the broker
  properties that are topic synonyms (``pykbroker/config.py`` registers
  them from :func:`broker_synonym_defs`).

Kafka 4.0 removed message.format.version, message.timestamp.difference.max.ms
and message.downconversion.enable; they are unknown names here too.
segment.bytes (and log.segment.bytes) have a 1 MiB minimum (KIP-1030;
enforced for topics since Kafka 4.1); Kafka's internal test hook
``internal.segment.bytes`` (an int without minimum) sets the segment size
instead and is never described.

The module depends on nothing above the standard library and attrs, so the
storage layer can import it.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Protocol, TypeAlias

import attrs

from ..util import INT_MAX, LONG_MAX

MS_PER_MINUTE = 60_000
MS_PER_HOUR = 3_600_000

#: A parsed config value (Kafka's BOOLEAN, INT/SHORT/LONG, DOUBLE, STRING/PASSWORD, LIST).
ConfigValue: TypeAlias = bool | int | float | str | tuple[str, ...]

# DescribeConfigs ConfigType ids (v3+).
CONFIG_TYPE_IDS = {"boolean": 1, "bool": 1, "string": 2, "int": 3, "short": 4, "long": 5,
                   "double": 6, "list": 7, "class": 8, "password": 9}

_RANGES = {"int": (-(2**31), INT_MAX), "short": (-(2**15), 2**15 - 1), "long": (-(2**63), LONG_MAX)}
_JAVA_INT = re.compile(r"[+-]?[0-9]+\Z")
_JAVA_DOUBLE = re.compile(r"[+-]?(NaN|Infinity|((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)[fFdD]?)\Z")
_LIST_SEP = re.compile(r"\s*,\s*")


class InvalidConfigError(ValueError):
    """A topic config name or value Kafka rejects (INVALID_CONFIG, 40);
    ``str()`` is Kafka's message, ``reason`` a rejected value's reason
    alone ("Value must be at least 1048576")."""

    error_code = 40

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason if reason is not None else message


# ---------------------------------------------------------------- Java-isms
def java_double(x: float) -> str:
    """``Double.toString``: shortest digits, 'E' notation outside [1e-3, 1e7)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    if 1e-3 <= abs(x) < 1e7:
        r = repr(x)
        return r if ("." in r or "e" in r) else r + ".0"
    sign, digits, exp = Decimal(repr(x)).normalize().as_tuple()
    ds = "".join(map(str, digits))
    e10 = len(ds) - 1 + int(exp)
    mant = ds[0] + "." + (ds[1:] or "0")
    return ("-" if sign else "") + f"{mant}E{e10}"


def java_str(value: object) -> str | None:
    """``ConfigDef.convertToString``: how Kafka prints a typed config value."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return java_double(value)
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def split_list(s: str) -> tuple[str, ...]:
    """``ConfigDef.parseType`` for LIST: comma-separated, whitespace around
    commas dropped, "" is the empty list (empty items are kept)."""
    s = s.strip()
    return () if not s else tuple(_LIST_SEP.split(s))


def _invalid(name: str, value: object, message: str) -> InvalidConfigError:
    return InvalidConfigError(f"Invalid value {value} for configuration {name}: {message}", message)


# ---------------------------------------------------------------- validators
class Validator(Protocol):
    """A ConfigDef validator: raises :class:`InvalidConfigError` with Kafka's
    message; ``valid_values`` is its DescribeConfigs/documentation text."""

    @property
    def valid_values(self) -> str: ...

    def __call__(self, name: str, value: ConfigValue) -> None: ...


def _number(name: str, v: ConfigValue) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _invalid(name, java_str(v), "Not a number")
    return v


@attrs.frozen
class AtLeast:
    """``ConfigDef.Range.atLeast``."""

    min: int

    @property
    def valid_values(self) -> str:
        return f"[{self.min},...]"

    def __call__(self, name: str, value: ConfigValue) -> None:
        if _number(name, value) < self.min:
            raise _invalid(name, java_str(value), f"Value must be at least {self.min}")


@attrs.frozen
class Between:
    """``ConfigDef.Range.between``."""

    min: int
    max: int

    @property
    def valid_values(self) -> str:
        return f"[{self.min},...,{self.max}]"

    def __call__(self, name: str, value: ConfigValue) -> None:
        v = _number(name, value)
        if v < self.min:
            raise _invalid(name, java_str(value), f"Value must be at least {self.min}")
        if v > self.max:
            raise _invalid(name, java_str(value), f"Value must be no more than {self.max}")


@attrs.frozen
class OneOf:
    """``ConfigDef.ValidString.in``."""

    options: tuple[str, ...]

    @property
    def valid_values(self) -> str:
        return "[" + ", ".join(self.options) + "]"

    def __call__(self, name: str, value: ConfigValue) -> None:
        if value not in self.options:
            raise _invalid(name, value, "String must be one of: " + ", ".join(self.options))


@attrs.frozen
class ListOf:
    """``ConfigDef.ValidList.in``: every item one of ``options``."""

    options: tuple[str, ...]

    @property
    def valid_values(self) -> str:
        return "[" + ", ".join(self.options) + "]"

    def __call__(self, name: str, value: ConfigValue) -> None:
        items = value if isinstance(value, tuple) else split_list(str(value))
        for item in items:
            if item not in self.options:
                raise _invalid(name, item, "String must be one of: " + ", ".join(self.options))


@attrs.frozen
class GzipLevel:
    """``CompressionType.GZIP.levelValidator()``."""

    @property
    def valid_values(self) -> str:
        return "[1,...,9] or -1"

    def __call__(self, name: str, value: ConfigValue) -> None:
        v = _number(name, value)
        if v > 9 or (v < 1 and v != -1):
            raise _invalid(name, value, "Value must be between 1 and 9 or equal to -1")


_REPLICA_ITEM = re.compile(r"([0-9]+:[0-9]+)?\Z")


@attrs.frozen
class ThrottledReplicas:
    """``ThrottledReplicaListValidator``."""

    @property
    def valid_values(self) -> str:
        return "[partitionId]:[brokerId],[partitionId]:[brokerId],..."

    def __call__(self, name: str, value: ConfigValue) -> None:
        raw = value if isinstance(value, tuple) else split_list(str(value))
        items = [s.strip() for s in raw]
        if not (all(_REPLICA_ITEM.match(s) for s in items) or "".join(items) == "*"):
            raise _invalid(name, "[" + ", ".join(raw) + "]",
                           f"{name} must be the literal '*' or a list of replicas in the following "
                           "format: [partitionId]:[brokerId],[partitionId]:[brokerId],...")


# ---------------------------------------------------------------- schema
class _Same(enum.Enum):
    """Marker: a synonym shares this attribute with its topic config."""

    SAME = 0


SAME = _Same.SAME


@attrs.frozen
class Synonym:
    """A broker property that supplies a topic config's default.

    By default it has the topic config's type, validator and default. A
    synonym in another unit (``log.retention.hours``) has its own ``type``,
    ``default`` and ``validator`` and a ``scale`` to milliseconds; Kafka
    defines some with a null default (``default=None``: the next synonym
    supplies the value); ``validator=None`` where Kafka's broker
    definition has none. ``served=False``: a Kafka broker property this
    broker does not accept (its Kafka default is reported)."""

    name: str
    scale: int = 1
    type: str | None = None
    default: ConfigValue | None | _Same = SAME
    validator: Validator | None | _Same = SAME
    served: bool = True

    def convert(self, raw: str) -> str:
        """A broker value (as printed) in the topic config's unit."""
        if self.scale == 1:
            return raw
        return str(int(raw.strip()) * self.scale)


@attrs.frozen
class TopicConfigDef:
    name: str
    type: str  # boolean string int short long double list password
    default: ConfigValue | None  # typed
    validator: Validator | None
    synonyms: tuple[Synonym, ...]
    doc: str
    internal: bool = False  # accepted, never described (internal.segment.bytes)

    @property
    def field(self) -> str:
        """The :class:`LogConfig` attribute this config sets."""
        return "segment_bytes" if self.name == "internal.segment.bytes" else self.name.replace(".", "_")

    @property
    def config_type(self) -> int:
        return CONFIG_TYPE_IDS[self.type]

    @property
    def valid_values(self) -> str:
        return self.validator.valid_values if self.validator is not None else ""

    @property
    def server_default_property(self) -> str | None:
        """Kafka's ``ServerTopicConfigSynonyms.TOPIC_CONFIG_SYNONYMS`` entry."""
        return self.synonyms[0].name if self.synonyms else None

    @property
    def sensitive(self) -> bool:
        return self.type == "password"

    def parse(self, raw: str) -> ConfigValue:
        """``ConfigDef.parseType`` + the validator, for one config string."""
        return parse_value(self, raw)

    def render(self, value: ConfigValue) -> str:
        """The value as Kafka prints it."""
        return java_str(value) or ""


COMPRESSION_TYPES = ("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")
TIMESTAMP_TYPES = ("CreateTime", "LogAppendTime")
CLEANUP_POLICIES = ("compact", "delete")

_DEFS: list[TopicConfigDef] = []


def _d(name: str, type_: str, default: ConfigValue | None, validator: Validator | None,
       synonyms: Iterable[str | Synonym], doc: str) -> None:
    syns = tuple(s if isinstance(s, Synonym) else Synonym(s) for s in synonyms)
    _DEFS.append(TopicConfigDef(name, type_, default, validator, syns, doc))


# Kafka 4.x LogConfig, in its definition order (ConfigDef.parse reports the
# first bad value in this order).
_d("segment.bytes", "int", 1073741824, AtLeast(1024 * 1024), ["log.segment.bytes"],
   "Size of a log segment file; retention and compaction work a whole segment at a time.")
_d("segment.ms", "long", 604800000, AtLeast(1),
   [Synonym("log.roll.ms", default=None, validator=None),
    Synonym("log.roll.hours", MS_PER_HOUR, "int", 168, AtLeast(1))],
   "Time after which a segment is rolled even if it is not full.")
_d("segment.jitter.ms", "long", 0, AtLeast(0),
   [Synonym("log.roll.jitter.ms", default=None, validator=None),
    Synonym("log.roll.jitter.hours", MS_PER_HOUR, "int", 0, AtLeast(0))],
   "Maximum random jitter subtracted from the scheduled segment roll time.")
_d("segment.index.bytes", "int", 10485760, AtLeast(4), ["log.index.size.max.bytes"],
   "Size of the offset-to-position index of a segment (preallocated, shrunk on roll).")
_d("flush.messages", "long", LONG_MAX, AtLeast(1), ["log.flush.interval.messages"],
   "Number of messages after which the log is fsync'ed.")
_d("flush.ms", "long", LONG_MAX, AtLeast(0),
   [Synonym("log.flush.interval.ms", default=None, validator=None),
    Synonym("log.flush.scheduler.interval.ms", validator=None)],
   "Time after which the log is fsync'ed.")
_d("retention.bytes", "long", -1, None, ["log.retention.bytes"],
   "Maximum size a partition may grow to before old segments are discarded (delete policy); -1 = no limit.")
_d("retention.ms", "long", 604800000, AtLeast(-1),
   [Synonym("log.retention.ms", default=None, validator=None),
    Synonym("log.retention.minutes", MS_PER_MINUTE, "int", None, None),
    Synonym("log.retention.hours", MS_PER_HOUR, "int", 168, None)],
   "Maximum time a log segment is kept before it is discarded (delete policy); -1 = no limit.")
_d("max.message.bytes", "int", 1048588, AtLeast(0), ["message.max.bytes"],
   "Largest record batch size allowed for this topic (after compression).")
_d("index.interval.bytes", "int", 4096, AtLeast(0), ["log.index.interval.bytes"],
   "How many bytes of records between two offset index entries.")
_d("delete.retention.ms", "long", 86400000, AtLeast(0), ["log.cleaner.delete.retention.ms"],
   "How long tombstones are kept in compacted topics.")
_d("min.compaction.lag.ms", "long", 0, AtLeast(0), ["log.cleaner.min.compaction.lag.ms"],
   "Minimum time a record stays uncompacted.")
_d("max.compaction.lag.ms", "long", LONG_MAX, AtLeast(1), ["log.cleaner.max.compaction.lag.ms"],
   "Maximum time a record may stay ineligible for compaction.")
_d("file.delete.delay.ms", "long", 60000, AtLeast(0), ["log.segment.delete.delay.ms"],
   "Time to wait before deleting a file from the filesystem.")
_d("min.cleanable.dirty.ratio", "double", 0.5, Between(0, 1), ["log.cleaner.min.cleanable.ratio"],
   "Ratio of uncompacted log above which the log cleaner compacts a partition.")
_d("cleanup.policy", "list", ("delete",), ListOf(CLEANUP_POLICIES), ["log.cleanup.policy"],
   "delete (discard old segments), compact (keep the latest value per key) or both.")
_d("unclean.leader.election.enable", "boolean", False, None, ["unclean.leader.election.enable"],
   "Whether an out-of-sync replica may become leader as a last resort (may lose data).")
_d("min.insync.replicas", "int", 1, AtLeast(1), ["min.insync.replicas"],
   "Minimum number of in-sync replicas for an acks=all write to succeed.")
_d("compression.type", "string", "producer", OneOf(COMPRESSION_TYPES), ["compression.type"],
   "Final compression of the topic's batches; 'producer' keeps the producer's codec.")
_d("compression.gzip.level", "int", -1, GzipLevel(), ["compression.gzip.level"],
   "Compression level when compression.type is gzip.")
_d("compression.lz4.level", "int", 9, Between(1, 17), ["compression.lz4.level"],
   "Compression level when compression.type is lz4.")
_d("compression.zstd.level", "int", 3, Between(-131072, 22), ["compression.zstd.level"],
   "Compression level when compression.type is zstd.")
_d("preallocate", "boolean", False, None, ["log.preallocate"],
   "Whether to preallocate the segment file when creating a segment.")
_d("message.timestamp.type", "string", "CreateTime", OneOf(TIMESTAMP_TYPES),
   ["log.message.timestamp.type"],
   "CreateTime keeps the producer's timestamps; LogAppendTime stamps batches with the broker's time.")
_d("message.timestamp.before.max.ms", "long", LONG_MAX, AtLeast(0),
   ["log.message.timestamp.before.max.ms"],
   "How far in the past a CreateTime timestamp may be, relative to the broker's clock.")
_d("message.timestamp.after.max.ms", "long", 3600000, AtLeast(0),
   ["log.message.timestamp.after.max.ms"],
   "How far in the future a CreateTime timestamp may be, relative to the broker's clock.")
_d("leader.replication.throttled.replicas", "list", (), ThrottledReplicas(), [],
   "Replicas whose log replication is throttled on the leader side ('*' = all).")
_d("follower.replication.throttled.replicas", "list", (), ThrottledReplicas(), [],
   "Replicas whose log replication is throttled on the follower side ('*' = all).")
_d("remote.storage.enable", "boolean", False, None, [],
   "Tiered storage for the topic (not supported by this broker).")
_d("local.retention.ms", "long", -2, AtLeast(-2), [Synonym("log.local.retention.ms", served=False)],
   "Local retention with tiered storage; -2 = use retention.ms.")
_d("local.retention.bytes", "long", -2, AtLeast(-2), [Synonym("log.local.retention.bytes", served=False)],
   "Local retention size with tiered storage; -2 = use retention.bytes.")
_d("remote.log.copy.disable", "boolean", False, None, [],
   "Make tiered data of the topic read-only.")
_d("remote.log.delete.on.disable", "boolean", False, None, [],
   "Delete tiered data when tiered storage is turned off for the topic.")

#: Every (documented) topic config, in Kafka's definition order.
TOPIC_CONFIGS: dict[str, TopicConfigDef] = {d.name: d for d in _DEFS}

#: Kafka 4's internal (undocumented, never described) test hook: a segment
#: size without segment.bytes' 1 MiB minimum; it wins over segment.bytes.
INTERNAL_CONFIGS: dict[str, TopicConfigDef] = {
    "internal.segment.bytes": TopicConfigDef(
        "internal.segment.bytes", "int", None, None, (),
        "Segment size without segment.bytes' minimum (testing only).", internal=True),
}

TOPIC_CONFIG_NAMES: frozenset[str] = frozenset(TOPIC_CONFIGS)


def config_def(name: str) -> TopicConfigDef | None:
    """The definition of a topic config name (internal ones included)."""
    return TOPIC_CONFIGS.get(name) or INTERNAL_CONFIGS.get(name)


# ---------------------------------------------------------------- parsing
def parse_typed(name: str, type_: str, raw: str) -> ConfigValue:
    """``ConfigDef.parseType``: a config string as a ``type_`` value (no validator)."""
    s = raw.strip()
    if type_ in ("boolean", "bool"):
        if s.lower() == "true":
            return True
        if s.lower() == "false":
            return False
        raise _invalid(name, raw, "Expected value to be either true or false")
    if type_ in ("int", "short", "long"):
        lo, hi = _RANGES[type_]
        if not _JAVA_INT.match(s) or not lo <= int(s) <= hi:
            raise _invalid(name, raw, f"Not a number of type {type_.upper()}")
        return int(s)
    if type_ == "double":
        if not _JAVA_DOUBLE.match(s):
            raise _invalid(name, raw, "Not a number of type DOUBLE")
        body = s.rstrip("fFdD") if not s.endswith("Infinity") else s
        return float(body.replace("Infinity", "inf"))
    if type_ == "list":
        return split_list(s)
    return s  # string, password


def parse_value(d: TopicConfigDef, raw: str) -> ConfigValue:
    """``ConfigDef.parseType`` + validator for one topic config string."""
    v = parse_typed(d.name, d.type, raw)
    if d.validator is not None:
        d.validator(d.name, v)
    return v


def normalize(name: str, raw: str) -> str:
    """The canonical string Kafka would print for a valid config value."""
    d = config_def(name)
    if d is None:
        raise InvalidConfigError(f"Unknown topic config name: {name}")
    return d.render(parse_value(d, raw))


def parse_topic_configs(props: Mapping[str, str | None]) -> dict[str, ConfigValue]:
    """Kafka's ``LogConfig.validateNames`` then ``ConfigDef.parse``: every
    name must be a topic config (else "Unknown topic config name: x"), then
    the given values are parsed and validated in definition order (the
    first bad one raises, with Kafka's message). None values are skipped.
    Returns name -> typed value."""
    for name in props:
        if config_def(name) is None:
            raise InvalidConfigError(f"Unknown topic config name: {name}")
    out: dict[str, ConfigValue] = {}
    for d in (*_DEFS, *INTERNAL_CONFIGS.values()):
        raw = props.get(d.name)
        if raw is not None:
            out[d.name] = parse_value(d, raw)
    return out


# ---------------------------------------------------------------- broker synonyms
@attrs.frozen
class BrokerSynonymDef:
    """A broker property that is a topic config's synonym, as the broker
    configuration defines it (type, default, validator)."""

    name: str
    type: str  # the broker config's type names: bool int long double string list
    default: ConfigValue | None  # as BrokerConfig stores it (lists as strings)
    validator: Validator | None
    topic_name: str
    primary: bool  # Kafka's TOPIC_CONFIG_SYNONYMS: the first synonym
    served: bool


def broker_synonym_defs() -> list[BrokerSynonymDef]:
    """Every broker synonym of a topic config, in schema order."""
    out = []
    for d in _DEFS:
        for i, syn in enumerate(d.synonyms):
            type_ = syn.type or d.type
            if syn.default is SAME:
                default: ConfigValue | None = d.default
                if type_ == "list" and d.default is not None:
                    default = java_str(d.default)
            else:
                default = syn.default
            validator = d.validator if syn.validator is SAME else syn.validator
            out.append(BrokerSynonymDef(syn.name, "bool" if type_ == "boolean" else type_, default,
                                        validator, d.name, i == 0, syn.served))
    return out


# ---------------------------------------------------------------- LogConfig
def _int(name: str) -> int:
    v = TOPIC_CONFIGS[name].default
    assert isinstance(v, int) and not isinstance(v, bool)
    return v


def _bool(name: str) -> bool:
    v = TOPIC_CONFIGS[name].default
    assert isinstance(v, bool)
    return v


def _float(name: str) -> float:
    v = TOPIC_CONFIGS[name].default
    assert isinstance(v, float)
    return v


def _str(name: str) -> str:
    v = TOPIC_CONFIGS[name].default
    assert isinstance(v, str)
    return v


def _list(name: str) -> tuple[str, ...]:
    v = TOPIC_CONFIGS[name].default
    assert isinstance(v, tuple)
    return v


@attrs.frozen
class LogConfig:
    """A topic's effective config, one typed attribute per topic config
    (the name with '.' → '_'); the defaults are the schema's. The storage
    layer reads it on every operation. Build it from Kafka names with
    :meth:`from_properties` (the same parse as the admin APIs' validation)."""

    segment_bytes: int = _int("segment.bytes")
    segment_ms: int = _int("segment.ms")
    segment_jitter_ms: int = _int("segment.jitter.ms")
    segment_index_bytes: int = _int("segment.index.bytes")
    index_interval_bytes: int = _int("index.interval.bytes")
    max_message_bytes: int = _int("max.message.bytes")
    flush_messages: int = _int("flush.messages")
    flush_ms: int = _int("flush.ms")
    retention_ms: int = _int("retention.ms")
    retention_bytes: int = _int("retention.bytes")
    cleanup_policy: tuple[str, ...] = _list("cleanup.policy")
    compression_type: str = _str("compression.type")
    compression_gzip_level: int = _int("compression.gzip.level")
    compression_lz4_level: int = _int("compression.lz4.level")
    compression_zstd_level: int = _int("compression.zstd.level")
    message_timestamp_type: str = _str("message.timestamp.type")
    message_timestamp_before_max_ms: int = _int("message.timestamp.before.max.ms")
    message_timestamp_after_max_ms: int = _int("message.timestamp.after.max.ms")
    delete_retention_ms: int = _int("delete.retention.ms")
    min_compaction_lag_ms: int = _int("min.compaction.lag.ms")
    max_compaction_lag_ms: int = _int("max.compaction.lag.ms")
    min_cleanable_dirty_ratio: float = _float("min.cleanable.dirty.ratio")
    file_delete_delay_ms: int = _int("file.delete.delay.ms")
    min_insync_replicas: int = _int("min.insync.replicas")
    unclean_leader_election_enable: bool = _bool("unclean.leader.election.enable")
    preallocate: bool = _bool("preallocate")
    remote_storage_enable: bool = _bool("remote.storage.enable")
    local_retention_ms: int = _int("local.retention.ms")
    local_retention_bytes: int = _int("local.retention.bytes")
    remote_log_copy_disable: bool = _bool("remote.log.copy.disable")
    remote_log_delete_on_disable: bool = _bool("remote.log.delete.on.disable")
    leader_replication_throttled_replicas: tuple[str, ...] = _list("leader.replication.throttled.replicas")
    follower_replication_throttled_replicas: tuple[str, ...] = _list("follower.replication.throttled.replicas")

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
    def from_properties(cls, props: Mapping[str, str | None], base: LogConfig | None = None) -> LogConfig:
        """Build from Kafka topic config names (``segment.bytes`` ...), over
        ``base`` (the broker defaults; the schema's if None), with
        :func:`parse_topic_configs` (unknown names and invalid values raise
        :class:`InvalidConfigError` with Kafka's message).
        ``internal.segment.bytes`` sets segment_bytes without the minimum."""
        changes: dict[str, Any] = {}  # attribute -> value (each attribute has its own type)
        for name, value in parse_topic_configs(props).items():
            d = config_def(name)
            assert d is not None
            changes[d.field] = value
        return attrs.evolve(base or cls(), **changes)

    def to_properties(self) -> dict[str, str]:
        """Every topic config, by Kafka name, as Kafka prints it."""
        return {name: d.render(getattr(self, d.field)) for name, d in TOPIC_CONFIGS.items()}

    def overrides(self, base: LogConfig | None = None) -> dict[str, str]:
        """The Kafka-named configs whose value differs from ``base``."""
        base = base or LogConfig()
        return {
            name: d.render(getattr(self, d.field))
            for name, d in TOPIC_CONFIGS.items()
            if getattr(self, d.field) != getattr(base, d.field)
        }


TOPIC_CONFIG_DEFAULTS: dict[str, str] = LogConfig().to_properties()
