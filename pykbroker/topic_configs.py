"""Kafka's topic-level configurations: definitions, validation, describe.

The table below is Kafka 4.x's topic config schema (``LogConfig``): name,
type, default, validator, the broker properties that supply the default
("synonyms", in precedence order, with their unit conversion) and a one-line
description. Kafka 4.0 removed message.format.version,
message.timestamp.difference.max.ms and message.downconversion.enable; they
are unknown names here too. segment.bytes has a 1 MiB minimum since 4.0
(KIP-1030); Kafka 4's internal test hook ``internal.segment.bytes`` (no
minimum) is accepted when creating a topic but never described.

What this module offers (used by CreateTopics, DescribeConfigs and, later,
AlterConfigs):

- :func:`topic_name_error` — Kafka's ``Topic.validate`` message, "Topic name
  is invalid: ..." (the rules are storage's ``validate_topic_name``).
- :func:`validate_topic_configs` — Kafka's checks for topic overrides, in
  Kafka's order: null values, unknown names, then each value parsed and
  validated in schema order, then cross-field checks. Returns
  ``(INVALID_CONFIG, message)`` or None. Messages are Kafka's, e.g.
  "Unknown topic config name: foo", "Invalid value abc for configuration
  retention.ms: Not a number of type LONG", "Invalid value 0 for
  configuration segment.ms: Value must be at least 1".
- :func:`normalize` — the typed value a topic will use, as Kafka prints it.
- :func:`effective_topic_configs` — value and source of every topic config
  for a topic (the controller's resolution, returned by CreateTopics v5+):
  topic override (DYNAMIC_TOPIC_CONFIG=1), else the first broker synonym set
  in server.properties/--override (STATIC_BROKER_CONFIG=4, converted, e.g.
  log.retention.hours=24 gives retention.ms=86400000), else the topic
  default (DEFAULT_CONFIG=5).
- :func:`describe_topic_configs` — DescribeConfigs entries for a topic (the
  broker's ConfigHelper resolution, which differs): the value is the
  effective one; the synonyms are the topic override (source 1), then the
  *first* broker synonym at each level where it is set (static 4, Kafka
  default 5). As in Kafka, when the first synonym is unset (retention.ms:
  log.retention.ms is null by default, the value coming from
  log.retention.hours) the synonym list is empty and the source is
  DEFAULT_CONFIG.
- :func:`broker_synonyms` — the same synonym chain for a broker property
  (DescribeConfigs on a BROKER resource).

Changing configs (AlterConfigs, IncrementalAlterConfigs):

- :func:`legacy_topic_overrides` / :func:`incremental_topic_overrides` —
  the new override set of a topic, with Kafka's controller semantics
  (AlterConfigs replaces every override; SET/DELETE/APPEND/SUBTRACT
  operate on the current overrides; APPEND/SUBTRACT start from the
  default for an unset list and are only for LIST configs), then validated
  as a whole by :func:`validate_topic_configs`.
- Dynamic broker configs (KIP-226): :func:`alter_broker_configs` checks a
  change to BROKER ``<node id>`` (per broker, source 2) or ``""`` (cluster
  default, source 3) as Kafka's ConfigAdminManager/DynamicBrokerConfig
  do (only Kafka's dynamically updatable properties; values parsed and
  validated; INVALID_REQUEST otherwise); :func:`apply_dynamic_broker_configs`
  layers them over the static configuration (precedence: per broker,
  cluster default, server.properties/--override, built-in default). Log
  properties among them change the defaults of every topic without an
  override, live.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Iterable

import attrs

from .config import PROPS
from .protocol import errors

if TYPE_CHECKING:
    from .config import BrokerConfig
    from .server.state import BrokerState

# DescribeConfigs ConfigSource ids.
UNKNOWN_SOURCE = 0
DYNAMIC_TOPIC_CONFIG = 1
DYNAMIC_BROKER_CONFIG = 2
DYNAMIC_DEFAULT_BROKER_CONFIG = 3
STATIC_BROKER_CONFIG = 4
DEFAULT_CONFIG = 5
DYNAMIC_BROKER_LOGGER_CONFIG = 6

# DescribeConfigs ConfigType ids (v3+).
CONFIG_TYPE_IDS = {"boolean": 1, "bool": 1, "string": 2, "int": 3, "short": 4, "long": 5,
                   "double": 6, "list": 7, "class": 8, "password": 9}

INT_MAX = 2**31 - 1
LONG_MAX = 2**63 - 1
_RANGES = {"int": (-(2**31), INT_MAX), "short": (-(2**15), 2**15 - 1), "long": (-(2**63), LONG_MAX)}
_JAVA_INT = re.compile(r"[+-]?[0-9]+\Z")
_JAVA_DOUBLE = re.compile(
    r"[+-]?(NaN|Infinity|((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)[fFdD]?)\Z")

MS_PER_MINUTE = 60_000
MS_PER_HOUR = 3_600_000


class ConfigValueError(ValueError):
    """A value Kafka's ConfigDef would reject; ``str()`` is Kafka's message."""


# ---------------------------------------------------------------- Java-isms
def java_str(value: Any, type_: str | None = None) -> str | None:
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


def _java_list_str(items: list[str]) -> str:
    return "[" + ", ".join(items) + "]"


def _invalid(name: str, value: Any, message: str) -> ConfigValueError:
    return ConfigValueError(f"Invalid value {value} for configuration {name}: {message}")


# ---------------------------------------------------------------- validators
Validator = Callable[[str, Any], None]  # raises ConfigValueError


def at_least(n: int) -> Validator:
    def check(name: str, v: Any) -> None:
        if v < n:
            raise _invalid(name, java_str(v), f"Value must be at least {n}")
    check.valid_values = f"[{n},...]"  # type: ignore[attr-defined]
    return check


def between(lo: int, hi: int) -> Validator:
    def check(name: str, v: Any) -> None:
        if v < lo:
            raise _invalid(name, java_str(v), f"Value must be at least {lo}")
        if v > hi:
            raise _invalid(name, java_str(v), f"Value must be no more than {hi}")
    check.valid_values = f"[{lo},...,{hi}]"  # type: ignore[attr-defined]
    return check


def one_of(*opts: str) -> Validator:
    def check(name: str, v: Any) -> None:
        if v not in opts:
            raise _invalid(name, v, "String must be one of: " + ", ".join(opts))
    check.valid_values = "[" + ", ".join(opts) + "]"  # type: ignore[attr-defined]
    return check


def list_of(*opts: str) -> Validator:
    def check(name: str, v: Any) -> None:
        for item in v:
            if item not in opts:
                raise _invalid(name, item, "String must be one of: " + ", ".join(opts))
    check.valid_values = "[" + ", ".join(opts) + "]"  # type: ignore[attr-defined]
    return check


def _gzip_level(name: str, v: Any) -> None:
    if v > 9 or (v < 1 and v != -1):
        raise _invalid(name, v, "Value must be between 1 and 9 or equal to -1")


_gzip_level.valid_values = "[1,...,9] or -1"  # type: ignore[attr-defined]

_REPLICA_ITEM = re.compile(r"([0-9]+:[0-9]+)?\Z")


def _throttled_replicas(name: str, v: Any) -> None:
    items = [s.strip() for s in v]
    if not (all(_REPLICA_ITEM.match(s) for s in items) or "".join(items) == "*"):
        raise _invalid(name, _java_list_str(list(v)),
                       f"{name} must be the literal '*' or a list of replicas in the following "
                       "format: [partitionId]:[brokerId],[partitionId]:[brokerId],...")


_throttled_replicas.valid_values = "[partitionId]:[brokerId],[partitionId]:[brokerId],..."  # type: ignore[attr-defined]


# ---------------------------------------------------------------- schema
@attrs.frozen
class Synonym:
    """A broker property that supplies a topic config's default."""

    name: str
    scale: int = 1  # multiply the broker value by this (hours/minutes -> ms)

    def convert(self, raw: str) -> str:
        if self.scale == 1:
            return raw
        return str(int(raw.strip()) * self.scale)


@attrs.frozen
class TopicConfigDef:
    name: str
    type: str  # boolean string int short long double list
    default: Any  # typed
    validator: Validator | None
    synonyms: tuple[Synonym, ...]
    doc: str

    @property
    def config_type(self) -> int:
        return CONFIG_TYPE_IDS[self.type]

    @property
    def valid_values(self) -> str:
        return getattr(self.validator, "valid_values", "")

    @property
    def server_default_property(self) -> str | None:
        return self.synonyms[0].name if self.synonyms else None

    @property
    def sensitive(self) -> bool:
        return self.type == "password"


COMPRESSION_TYPES = ("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")

_DEFS: list[TopicConfigDef] = []


def _d(name: str, type_: str, default: Any, validator: Validator | None,
       synonyms: Iterable[str | Synonym], doc: str) -> None:
    syns = tuple(s if isinstance(s, Synonym) else Synonym(s) for s in synonyms)
    _DEFS.append(TopicConfigDef(name, type_, default, validator, syns, doc))


# Kafka 4.x LogConfig, in its definition order (ConfigDef.parse reports the
# first bad value in this order).
_d("segment.bytes", "int", 1073741824, at_least(1024 * 1024), ["log.segment.bytes"],
   "Size of a log segment file; retention and compaction work a whole segment at a time.")
_d("segment.ms", "long", 604800000, at_least(1),
   ["log.roll.ms", Synonym("log.roll.hours", MS_PER_HOUR)],
   "Time after which a segment is rolled even if it is not full.")
_d("segment.jitter.ms", "long", 0, at_least(0),
   ["log.roll.jitter.ms", Synonym("log.roll.jitter.hours", MS_PER_HOUR)],
   "Maximum random jitter subtracted from the scheduled segment roll time.")
_d("segment.index.bytes", "int", 10485760, at_least(4), ["log.index.size.max.bytes"],
   "Size of the offset-to-position index of a segment (preallocated, shrunk on roll).")
_d("flush.messages", "long", LONG_MAX, at_least(1), ["log.flush.interval.messages"],
   "Number of messages after which the log is fsync'ed.")
_d("flush.ms", "long", LONG_MAX, at_least(0),
   ["log.flush.interval.ms", "log.flush.scheduler.interval.ms"],
   "Time after which the log is fsync'ed.")
_d("retention.bytes", "long", -1, None, ["log.retention.bytes"],
   "Maximum size a partition may grow to before old segments are discarded (delete policy); -1 = no limit.")
_d("retention.ms", "long", 604800000, at_least(-1),
   ["log.retention.ms", Synonym("log.retention.minutes", MS_PER_MINUTE),
    Synonym("log.retention.hours", MS_PER_HOUR)],
   "Maximum time a log segment is kept before it is discarded (delete policy); -1 = no limit.")
_d("max.message.bytes", "int", 1048588, at_least(0), ["message.max.bytes"],
   "Largest record batch size allowed for this topic (after compression).")
_d("index.interval.bytes", "int", 4096, at_least(0), ["log.index.interval.bytes"],
   "How many bytes of records between two offset index entries.")
_d("delete.retention.ms", "long", 86400000, at_least(0), ["log.cleaner.delete.retention.ms"],
   "How long tombstones are kept in compacted topics.")
_d("min.compaction.lag.ms", "long", 0, at_least(0), ["log.cleaner.min.compaction.lag.ms"],
   "Minimum time a record stays uncompacted.")
_d("max.compaction.lag.ms", "long", LONG_MAX, at_least(1), ["log.cleaner.max.compaction.lag.ms"],
   "Maximum time a record may stay ineligible for compaction.")
_d("file.delete.delay.ms", "long", 60000, at_least(0), ["log.segment.delete.delay.ms"],
   "Time to wait before deleting a file from the filesystem.")
_d("min.cleanable.dirty.ratio", "double", 0.5, between(0, 1), ["log.cleaner.min.cleanable.ratio"],
   "Ratio of uncompacted log above which the log cleaner compacts a partition.")
_d("cleanup.policy", "list", ["delete"], list_of("compact", "delete"), ["log.cleanup.policy"],
   "delete (discard old segments), compact (keep the latest value per key) or both.")
_d("unclean.leader.election.enable", "boolean", False, None, ["unclean.leader.election.enable"],
   "Whether an out-of-sync replica may become leader as a last resort (may lose data).")
_d("min.insync.replicas", "int", 1, at_least(1), ["min.insync.replicas"],
   "Minimum number of in-sync replicas for an acks=all write to succeed.")
_d("compression.type", "string", "producer", one_of(*COMPRESSION_TYPES), ["compression.type"],
   "Final compression of the topic's batches; 'producer' keeps the producer's codec.")
_d("compression.gzip.level", "int", -1, _gzip_level, ["compression.gzip.level"],
   "Compression level when compression.type is gzip.")
_d("compression.lz4.level", "int", 9, between(1, 17), ["compression.lz4.level"],
   "Compression level when compression.type is lz4.")
_d("compression.zstd.level", "int", 3, between(-131072, 22), ["compression.zstd.level"],
   "Compression level when compression.type is zstd.")
_d("preallocate", "boolean", False, None, ["log.preallocate"],
   "Whether to preallocate the segment file when creating a segment.")
_d("message.timestamp.type", "string", "CreateTime", one_of("CreateTime", "LogAppendTime"),
   ["log.message.timestamp.type"],
   "CreateTime keeps the producer's timestamps; LogAppendTime stamps batches with the broker's time.")
_d("message.timestamp.before.max.ms", "long", LONG_MAX, at_least(0),
   ["log.message.timestamp.before.max.ms"],
   "How far in the past a CreateTime timestamp may be, relative to the broker's clock.")
_d("message.timestamp.after.max.ms", "long", 3600000, at_least(0),
   ["log.message.timestamp.after.max.ms"],
   "How far in the future a CreateTime timestamp may be, relative to the broker's clock.")
_d("leader.replication.throttled.replicas", "list", [], _throttled_replicas, [],
   "Replicas whose log replication is throttled on the leader side ('*' = all).")
_d("follower.replication.throttled.replicas", "list", [], _throttled_replicas, [],
   "Replicas whose log replication is throttled on the follower side ('*' = all).")
_d("remote.storage.enable", "boolean", False, None, [],
   "Tiered storage for the topic (not supported by this broker).")
_d("local.retention.ms", "long", -2, at_least(-2), ["log.local.retention.ms"],
   "Local retention with tiered storage; -2 = use retention.ms.")
_d("local.retention.bytes", "long", -2, at_least(-2), ["log.local.retention.bytes"],
   "Local retention size with tiered storage; -2 = use retention.bytes.")
_d("remote.log.copy.disable", "boolean", False, None, [],
   "Make tiered data of the topic read-only.")
_d("remote.log.delete.on.disable", "boolean", False, None, [],
   "Delete tiered data when tiered storage is turned off for the topic.")

TOPIC_CONFIGS: dict[str, TopicConfigDef] = {d.name: d for d in _DEFS}

# Kafka 4's internal (undocumented, never described) test hook: a segment size
# without segment.bytes' 1 MiB minimum. Accepted on create as Kafka does.
INTERNAL_CONFIGS: dict[str, TopicConfigDef] = {
    "internal.segment.bytes": TopicConfigDef(
        "internal.segment.bytes", "int", None, None, (),
        "Segment size without segment.bytes' minimum (testing only)."),
}

# Broker properties that are topic synonyms but not (yet) pykbroker broker
# properties: Kafka's defaults, reported as DEFAULT_CONFIG.
KAFKA_ONLY_BROKER_DEFAULTS: dict[str, Any] = {
    "log.local.retention.ms": -2,
    "log.local.retention.bytes": -2,
}

# Broker properties Kafka can change at runtime (DynamicBrokerConfig.
# AllDynamicConfigs); DescribeConfigs reports the others as read-only.
DYNAMIC_BROKER_CONFIGS: frozenset[str] = frozenset(
    {d.synonyms[0].name for d in _DEFS if d.synonyms} | {
        # log cleaner
        "log.cleaner.threads", "log.cleaner.dedupe.buffer.size", "log.cleaner.io.buffer.load.factor",
        "log.cleaner.io.buffer.size", "log.cleaner.io.max.bytes.per.second", "log.cleaner.backoff.ms",
        "message.max.bytes",
        # thread pools
        "num.io.threads", "num.replica.fetchers", "num.recovery.threads.per.data.dir",
        "background.threads", "num.network.threads",
        # listeners and connections
        "listeners", "advertised.listeners", "listener.security.protocol.map",
        "max.connections", "max.connection.creation.rate", "max.connections.per.ip",
        "max.connections.per.ip.overrides",
        # producer state
        "producer.id.expiration.ms", "transaction.partition.verification.enable",
        "metric.reporters",
    })


# ---------------------------------------------------------------- parsing
def parse_value(d: TopicConfigDef, raw: str) -> Any:
    """``ConfigDef.parseType`` + validator for one topic config string."""
    name = d.name
    s = raw.strip()
    t = d.type
    if t == "boolean":
        if s.lower() == "true":
            v: Any = True
        elif s.lower() == "false":
            v = False
        else:
            raise _invalid(name, raw, "Expected value to be either true or false")
    elif t in ("int", "short", "long"):
        lo, hi = _RANGES[t]
        if not _JAVA_INT.match(s) or not lo <= int(s) <= hi:
            raise _invalid(name, raw, f"Not a number of type {t.upper()}")
        v = int(s)
    elif t == "double":
        if not _JAVA_DOUBLE.match(s):
            raise _invalid(name, raw, "Not a number of type DOUBLE")
        body = s.rstrip("fFdD") if not s.endswith("Infinity") else s
        v = float(body.replace("Infinity", "inf"))
    elif t == "list":
        v = [] if not s else re.split(r"\s*,\s*", s)
    else:  # string, password
        v = s
    if d.validator is not None:
        d.validator(name, v)
    return v


def normalize(name: str, raw: str) -> str | None:
    """The canonical string Kafka would print for a valid override."""
    d = TOPIC_CONFIGS.get(name) or INTERNAL_CONFIGS[name]
    return java_str(parse_value(d, raw), d.type)


# ---------------------------------------------------------------- topic names
def topic_name_error(name: str | None) -> str | None:
    """Kafka's ``Topic.validate``: None if ``name`` is legal, else Kafka's
    message ("Topic name is invalid: ..."; the rules are storage's
    ``validate_topic_name``)."""
    from .storage.manager import validate_topic_name

    if name is None:
        return "Topic name is invalid: null is not allowed"
    reason = validate_topic_name(name)
    return None if reason is None else f"Topic name is invalid: {reason}"


def collision_key(name: str) -> str:
    """'.' and '_' collide in metric names (Kafka's ``Topic.unifyCollisionChars``)."""
    return name.replace(".", "_")


# ---------------------------------------------------------------- broker values
def _broker_value(cfg: "BrokerConfig", prop: str) -> Any:
    """A broker property's current typed value (None = unset)."""
    if prop in PROPS:
        return cfg.values.get(prop)
    return KAFKA_ONLY_BROKER_DEFAULTS.get(prop)


def _static_layer(cfg: "BrokerConfig") -> tuple[dict[str, Any], dict[str, str]]:
    """(values, sources) as server.properties/--override left them, before any
    dynamic broker config (see :func:`apply_dynamic_broker_configs`)."""
    return getattr(cfg, "static_values", cfg.values), getattr(cfg, "static_sources", cfg.sources)


def _broker_static(cfg: "BrokerConfig", prop: str) -> str | None:
    """The value given in server.properties / --override, else None."""
    values, sources = _static_layer(cfg)
    if prop in PROPS and sources.get(prop) == "STATIC_BROKER_CONFIG":
        v = values.get(prop)
        return None if v is None else java_str(v)
    return None


def _broker_dynamic(cfg: "BrokerConfig", prop: str, level: str) -> str | None:
    """A dynamic broker config (``level`` "broker" or "default"), as stored."""
    dyn = getattr(cfg, "dynamic_broker" if level == "broker" else "dynamic_default", None) or {}
    return dyn.get(prop)


def _broker_default(prop: str) -> str | None:
    """The built-in default of a broker property, else None."""
    if prop in PROPS:
        return java_str(PROPS[prop].default)
    return java_str(KAFKA_ONLY_BROKER_DEFAULTS.get(prop))


def broker_synonym_names(prop: str) -> list[str]:
    """``DynamicBrokerConfig.brokerConfigSynonyms``: the properties that set the
    same broker value, highest precedence first."""
    if prop == "log.flush.scheduler.interval.ms":  # only a fallback of log.flush.interval.ms
        return [prop]
    for d in _DEFS:
        names = [s.name for s in d.synonyms]
        if len(names) > 1 and prop in names:
            return names
    return [prop]


def broker_synonyms(cfg: "BrokerConfig", prop: str) -> list[dict]:
    """Kafka's ``configSynonyms(prop, brokerSynonyms(prop))``: for each level
    (dynamic broker, dynamic default, static, default) the synonyms set at
    that level, then everything before the first entry named ``prop`` is
    dropped. Entries are DescribeConfigs synonym dicts."""
    names = broker_synonym_names(prop)
    sensitive = prop in PROPS and PROPS[prop].type == "password"
    out: list[dict] = []
    for source, lookup in ((DYNAMIC_BROKER_CONFIG, lambda n: _broker_dynamic(cfg, n, "broker")),
                           (DYNAMIC_DEFAULT_BROKER_CONFIG, lambda n: _broker_dynamic(cfg, n, "default")),
                           (STATIC_BROKER_CONFIG, lambda n: _broker_static(cfg, n)),
                           (DEFAULT_CONFIG, _broker_default)):
        for n in names:
            v = lookup(n)
            if v is not None:
                out.append({"name": n, "value": None if sensitive else v, "source": source})
    while out and out[0]["name"] != prop:
        out.pop(0)
    return out


def broker_effective(cfg: "BrokerConfig", d: TopicConfigDef) -> Any:
    """The typed value ``d`` takes on a topic without an override
    (``KafkaConfig.extractLogConfigMap``: first synonym with a value)."""
    for syn in d.synonyms:
        v = _broker_value(cfg, syn.name)
        if v is None:
            continue
        if syn.scale != 1:
            return int(v) * syn.scale
        if d.type == "list" and isinstance(v, str):
            return [] if not v.strip() else re.split(r"\s*,\s*", v.strip())
        if d.type == "double":
            return float(v)
        return v
    return d.default


# ---------------------------------------------------------------- validation
def validate_topic_configs(configs: dict[str, str | None] | Iterable[tuple[str, str | None]],
                           cfg: "BrokerConfig | None" = None) -> tuple[int, str] | None:
    """Kafka's checks for topic config overrides (create or alter).

    Returns ``(errors.INVALID_CONFIG, message)`` for the first problem, or
    None when every override is acceptable. ``cfg`` supplies the broker
    defaults for the cross-field checks (Kafka's topic defaults otherwise).
    """
    items = list(configs.items() if isinstance(configs, dict) else configs)
    nulls = [k for k, v in items if v is None]
    if nulls:
        return errors.INVALID_CONFIG, "Null value not supported for topic configs: " + ",".join(nulls)
    for k, _ in items:
        if k not in TOPIC_CONFIGS and k not in INTERNAL_CONFIGS:
            return errors.INVALID_CONFIG, f"Unknown topic config name: {k}"
    given = dict(items)
    parsed: dict[str, Any] = {}
    for d in [*_DEFS, *INTERNAL_CONFIGS.values()]:
        if d.name in given:
            try:
                parsed[d.name] = parse_value(d, given[d.name])  # type: ignore[arg-type]
            except ConfigValueError as e:
                return errors.INVALID_CONFIG, str(e)

    def eff(name: str) -> Any:
        if name in parsed:
            return parsed[name]
        d = TOPIC_CONFIGS[name]
        return broker_effective(cfg, d) if cfg is not None else d.default

    lo, hi = eff("min.compaction.lag.ms"), eff("max.compaction.lag.ms")
    if lo > hi:
        return errors.INVALID_CONFIG, ("conflict topic config setting min.compaction.lag.ms "
                                       f"({lo}) > max.compaction.lag.ms ({hi})")
    if eff("remote.storage.enable"):
        return errors.INVALID_CONFIG, ("Tiered Storage functionality is disabled in the broker. "
                                       "Topic cannot be configured with remote log storage.")
    return None


# ---------------------------------------------------------------- describe
def effective_topic_configs(cfg: "BrokerConfig", overrides: dict[str, str]) -> list[dict]:
    """Every topic config of a topic with ``overrides`` as the controller
    resolves it (CreateTopics v5+ ``configs``), sorted by name: dicts with
    name, value, read_only, config_source, is_sensitive."""
    out = []
    for name in sorted(TOPIC_CONFIGS):
        d = TOPIC_CONFIGS[name]
        if name in overrides:
            value, source = overrides[name], DYNAMIC_TOPIC_CONFIG
        else:
            value, source = java_str(d.default), DEFAULT_CONFIG
            found = False
            for syn in d.synonyms:
                for src, raw in ((DYNAMIC_BROKER_CONFIG, _broker_dynamic(cfg, syn.name, "broker")),
                                 (DYNAMIC_DEFAULT_BROKER_CONFIG, _broker_dynamic(cfg, syn.name, "default")),
                                 (STATIC_BROKER_CONFIG, _broker_static(cfg, syn.name))):
                    if raw is not None:
                        value, source, found = syn.convert(raw), src, True
                        break
                if found:
                    break
        out.append({"name": name, "value": None if d.sensitive else value, "read_only": False,
                    "config_source": source, "is_sensitive": d.sensitive})
    return out


def describe_topic_config(cfg: "BrokerConfig", overrides: dict[str, str], name: str,
                          include_synonyms: bool, include_documentation: bool) -> dict:
    """One DescribeConfigs entry of a topic (Kafka's ``createTopicConfigEntry``)."""
    d = TOPIC_CONFIGS[name]
    if name in overrides:
        try:
            typed = parse_value(d, overrides[name])
        except ConfigValueError:  # stored before a stricter rule: show as stored
            typed = overrides[name]
    else:
        typed = broker_effective(cfg, d)
    value = None if d.sensitive else java_str(typed, d.type)
    syns: list[dict] = []
    if name in overrides:
        syns.append({"name": name, "value": value, "source": DYNAMIC_TOPIC_CONFIG})
    if d.synonyms:
        syns += broker_synonyms(cfg, d.synonyms[0].name)
    source = syns[0]["source"] if syns else DEFAULT_CONFIG
    return {"name": name, "value": value, "read_only": False, "config_source": source,
            "is_sensitive": d.sensitive, "synonyms": syns if include_synonyms else [],
            "config_type": d.config_type,
            "documentation": d.doc if include_documentation else None}


def describe_topic_configs(cfg: "BrokerConfig", overrides: dict[str, str],
                           keys: list[str] | None = None, *, include_synonyms: bool = False,
                           include_documentation: bool = False) -> list[dict]:
    """DescribeConfigs entries for a topic; ``keys`` (None/empty = all) filters
    by name, unknown names are ignored as Kafka does. Sorted by name."""
    names = sorted(TOPIC_CONFIGS)
    if keys:
        wanted = set(keys)
        names = [n for n in names if n in wanted]
    return [describe_topic_config(cfg, overrides, n, include_synonyms, include_documentation)
            for n in names]


def topic_config_values(cfg: "BrokerConfig", overrides: dict[str, str]) -> dict[str, str | None]:
    """name -> effective value string for every topic config (a convenience)."""
    return {n: describe_topic_config(cfg, overrides, n, False, False)["value"] for n in TOPIC_CONFIGS}


# ---------------------------------------------------------------- topic defaults
def broker_topic_defaults(cfg: "BrokerConfig") -> dict[str, str]:
    """Every topic config's broker-supplied default (Kafka's
    ``extractLogConfigMap``: first synonym with a value, unit-converted,
    dynamic broker configs included), as Kafka prints it."""
    out: dict[str, str] = {}
    for d in _DEFS:
        if not d.synonyms:
            continue
        v = broker_effective(cfg, d)
        if v is None:
            continue
        out[d.name] = java_str(v, d.type)  # type: ignore[assignment]
    return out


# ---------------------------------------------------------------- altering topic configs
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3
OP_NAMES = {SET: "SET", DELETE: "DELETE", APPEND: "APPEND", SUBTRACT: "SUBTRACT"}


class AlterError(Exception):
    def __init__(self, code: int, message: str | None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def check_alter_request(configs: list[tuple[str, int, str | None]], incremental: bool) -> None:
    """ConfigAdminManager.preprocess: duplicate keys and null values
    (INVALID_REQUEST). ``configs`` are (name, op, value)."""
    names = [n for n, _, _ in configs]
    if len(names) != len(set(names)):
        raise AlterError(errors.INVALID_REQUEST, "Error due to duplicate config keys")
    nulls = [n for n, op, v in configs if v is None and not (incremental and op == DELETE)]
    if nulls:
        raise AlterError(errors.INVALID_REQUEST, "Null value not supported for : " + ", ".join(nulls))
    if incremental:
        for n, op, _ in configs:
            if op not in OP_NAMES:
                raise AlterError(errors.INVALID_REQUEST, f"Unknown operations type {op}")


def check_topic_resource(name: str) -> None:
    """ControllerConfigurationValidator.validateTopicName."""
    if not name:
        raise AlterError(errors.INVALID_REQUEST, "Default topic resources are not allowed.")
    bad = topic_name_error(name)
    if bad is not None:
        raise AlterError(errors.INVALID_TOPIC_EXCEPTION, bad)


def _default_parts(name: str) -> list[str]:
    d = TOPIC_CONFIGS.get(name)
    if d is None or d.default is None:
        return []
    v = java_str(d.default, d.type) or ""
    return [p for p in v.split(",") if p]


def incremental_topic_overrides(current: dict[str, str],
                                ops: list[tuple[str, int, str | None]]) -> dict[str, str]:
    """ConfigurationControlManager.incrementalAlterConfigResource for a topic."""
    new = dict(current)
    for name, op, value in ops:
        if op == SET:
            new[name] = value  # type: ignore[assignment]
        elif op == DELETE:
            new.pop(name, None)
        else:
            d = TOPIC_CONFIGS.get(name) or INTERNAL_CONFIGS.get(name)
            if d is None or d.type != "list":
                raise AlterError(errors.INVALID_CONFIG,
                                 f"Can't {OP_NAMES[op]} to key {name} because its type is not LIST.")
            old = new.get(name)
            parts = [p for p in old.split(",") if p] if old is not None else _default_parts(name)
            for v in (value or "").split(","):
                if op == APPEND:
                    if v not in parts:
                        parts.append(v)
                elif v in parts:
                    parts.remove(v)
            new[name] = ",".join(parts)
    return new


def finish_topic_overrides(new: dict[str, str], cfg: "BrokerConfig") -> dict[str, str]:
    """Validate a topic's complete new override set (Kafka's LogConfig.validate
    on the merged configs: INVALID_CONFIG with Kafka's message) and return it
    normalised the way CreateTopics stores overrides."""
    bad = validate_topic_configs(new, cfg)
    if bad is not None:
        raise AlterError(*bad)
    return {k: normalize(k, v) or "" for k, v in new.items()}


# ---------------------------------------------------------------- dynamic broker configs
def apply_dynamic_broker_configs(cfg: "BrokerConfig", cluster_default: dict[str, str],
                                 per_broker: dict[str, str]) -> None:
    """Layer dynamic broker configs over the static ones in ``cfg`` (values
    and sources; the static layer is kept in ``cfg.static_values`` /
    ``cfg.static_sources`` for synonyms). Unknown or unparsable stored
    values are skipped (Kafka logs and ignores them too)."""
    from .config import ConfigError

    if not hasattr(cfg, "static_values"):
        cfg.static_values = dict(cfg.values)  # type: ignore[attr-defined]
        cfg.static_sources = dict(cfg.sources)  # type: ignore[attr-defined]
    cfg.dynamic_default = dict(cluster_default)  # type: ignore[attr-defined]
    cfg.dynamic_broker = dict(per_broker)  # type: ignore[attr-defined]
    values = dict(cfg.static_values)  # type: ignore[attr-defined]
    sources = dict(cfg.static_sources)  # type: ignore[attr-defined]
    for layer, source in ((cluster_default, "DYNAMIC_DEFAULT_BROKER_CONFIG"),
                          (per_broker, "DYNAMIC_BROKER_CONFIG")):
        for name, raw in layer.items():
            if name not in PROPS:
                continue
            try:
                values[name] = parse_broker_value(name, raw)
            except ConfigError:
                continue
            sources[name] = source
    cfg.values = values
    cfg.sources = sources


def refresh_topic_configs(st: "BrokerState") -> None:
    """After a change of broker-level defaults: every topic's effective config."""
    if st.logs is None:
        return
    st.logs.set_default_config(st.default_log_config())
    for ts in st.topics.values():
        ts.log_config = st.topic_config(ts.configs)


def apply_dynamic_state(st: "BrokerState") -> None:
    """(Re)apply the stored dynamic broker configs to the broker config and
    every topic (at start-up and after a change)."""
    dyn = st.logs.dynamic_configs
    apply_dynamic_broker_configs(st.config, dyn.get("", {}), dyn.get(str(st.node_id), {}))
    refresh_topic_configs(st)


def parse_broker_value(name: str, raw: str) -> Any:
    """A broker property's typed value (config.py's parser and validator);
    raises config.ConfigError with Kafka's wording."""
    from .config import ConfigError

    prop = PROPS[name]
    s = raw.strip()
    t = prop.type
    try:
        if t in ("int", "long", "short"):
            lo, hi = _RANGES[t]
            if not _JAVA_INT.match(s) or not lo <= int(s) <= hi:
                raise ValueError
            v: Any = int(s)
        elif t == "double":
            if not _JAVA_DOUBLE.match(s):
                raise ValueError
            v = float(s.rstrip("fFdD").replace("Infinity", "inf"))
        elif t == "bool":
            if s.lower() not in ("true", "false"):
                raise ConfigError(f"Invalid value {raw} for configuration {name}: "
                                  "Expected value to be either true or false")
            v = s.lower() == "true"
        else:
            v = s
    except ValueError:
        raise ConfigError(f"Invalid value {raw} for configuration {name}: "
                          f"Not a number of type {t.upper()}") from None
    if prop.validator is not None:
        err = prop.validator(v)
        if err:
            raise ConfigError(f"Invalid value {raw} for configuration {name}: {err}")
    return v


def _scala_set(names: Iterable[str]) -> str:
    return "Set(" + ", ".join(names) + ")"


def alter_broker_configs(cfg: "BrokerConfig", node_id: int, resource_name: str,
                         current: dict[str, str], ops: list[tuple[str, int, str | None]]) -> dict[str, str]:
    """The new dynamic config set of BROKER ``resource_name`` ("" = cluster
    default) after ``ops`` (legacy AlterConfigs: all SET, replacing
    everything), validated as Kafka's broker does before forwarding to the
    controller; raises AlterError (INVALID_REQUEST / INVALID_CONFIG)."""
    from .config import ConfigError

    if resource_name:
        if not _JAVA_INT.match(resource_name) or not -(2**31) <= int(resource_name) < 2**31:
            raise AlterError(errors.INVALID_REQUEST, f"Node id must be an integer, but it is: {resource_name}")
        if int(resource_name) != node_id:
            raise AlterError(errors.INVALID_REQUEST,
                             f"Unexpected broker id, expected {node_id}, but received {resource_name}")
    new = dict(current)
    for name, op, value in ops:
        if op == SET:
            new[name] = value  # type: ignore[assignment]
        elif op == DELETE:
            new.pop(name, None)
        else:
            prop = PROPS.get(name)
            if prop is None:
                raise AlterError(errors.INVALID_CONFIG, f"Unknown config name: {name}")
            if prop.type != "list":
                verb = "append" if op == APPEND else "subtract"
                raise AlterError(errors.INVALID_CONFIG,
                                 f"Config value {verb} is not allowed for config key: {name}")
            old = new.get(name)
            if old is None:
                d = prop.default
                old = "" if d is None else str(d)
            parts = [p for p in old.split(",") if p]
            for v in (value or "").split(","):
                if op == APPEND:
                    if v not in parts:
                        parts.append(v)
                elif v in parts:
                    parts.remove(v)
            new[name] = ",".join(parts)
    non_dynamic = sorted(n for n in new if n in PROPS and n not in DYNAMIC_BROKER_CONFIGS)
    if non_dynamic:
        raise AlterError(errors.INVALID_REQUEST,
                         f"Cannot update these configs dynamically: {_scala_set(non_dynamic)}")
    for name, raw in new.items():
        if name in PROPS:
            try:
                parse_broker_value(name, raw)
            except ConfigError as e:
                raise AlterError(errors.INVALID_REQUEST, str(e)) from None
    # the log configs the new values imply must still be valid together
    lo = _layered(cfg, resource_name, new, "log.cleaner.min.compaction.lag.ms")
    hi = _layered(cfg, resource_name, new, "log.cleaner.max.compaction.lag.ms")
    if lo is not None and hi is not None and lo > hi:
        raise AlterError(errors.INVALID_REQUEST, "conflict topic config setting min.compaction.lag.ms "
                         f"({lo}) > max.compaction.lag.ms ({hi})")
    return new


def _layered(cfg: "BrokerConfig", resource_name: str, new: dict[str, str], prop: str) -> Any:
    """``prop``'s value once ``new`` replaces the dynamic layer being altered."""
    from .config import ConfigError

    per_broker = new if resource_name else (getattr(cfg, "dynamic_broker", None) or {})
    default = (getattr(cfg, "dynamic_default", None) or {}) if resource_name else new
    for layer in (per_broker, default):
        if prop in layer:
            try:
                return parse_broker_value(prop, layer[prop])
            except ConfigError:
                return None
    values, _ = _static_layer(cfg)
    return values.get(prop)


def describe_dynamic_default(cfg: "BrokerConfig", keys: list[str] | None, include_synonyms: bool,
                             include_documentation: bool) -> list[dict]:
    """DescribeConfigs BROKER "": the cluster-wide dynamic defaults only."""
    dyn = getattr(cfg, "dynamic_default", None) or {}
    out = []
    for name in sorted(dyn):
        if keys and name not in keys:
            continue
        prop = PROPS.get(name)
        sensitive = prop is not None and prop.type == "password"
        syns = [s for s in broker_synonyms(cfg, name) if s["source"] == DYNAMIC_DEFAULT_BROKER_CONFIG] \
            if prop is not None else [{"name": name, "value": dyn[name], "source": DYNAMIC_DEFAULT_BROKER_CONFIG}]
        doc = None
        if include_documentation and prop is not None:
            doc = prop.doc or (TOPIC_CONFIGS[prop.topic_name].doc if prop.topic_name in TOPIC_CONFIGS else None)
        out.append({"name": name, "value": None if sensitive else dyn[name],
                    "read_only": name not in DYNAMIC_BROKER_CONFIGS,
                    "config_source": syns[0]["source"] if syns else DEFAULT_CONFIG,
                    "is_sensitive": sensitive, "synonyms": syns if include_synonyms else [],
                    "config_type": CONFIG_TYPE_IDS.get(prop.type, 0) if prop is not None else 0,
                    "documentation": doc})
    return out
