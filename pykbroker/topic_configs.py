"""Kafka's topic-level configurations at the admin APIs: validation, describe, alter.

The schema itself (names, types, defaults, bounds, broker synonyms,
documentation) is ``storage/log_config.py``, the one definition that the
storage layer's :class:`~pykbroker.storage.log_config.LogConfig`, the
broker's synonym properties (``config.py``) and this module all derive
from; its names are re-exported here. Overrides are parsed with the same
``parse_topic_configs`` the storage layer uses, so a value accepted here
means the same to the partition logs.

What this module offers (used by CreateTopics, DescribeConfigs,
AlterConfigs and IncrementalAlterConfigs):

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

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .config import PROPS
from .protocol import errors
from .util import INT_MAX, LONG_MAX
from .storage.log_config import (
    COMPRESSION_TYPES,
    CONFIG_TYPE_IDS,
    INTERNAL_CONFIGS,
    MS_PER_HOUR,
    MS_PER_MINUTE,
    TOPIC_CONFIGS,
    ConfigValue,
    InvalidConfigError,
    Synonym,
    TopicConfigDef,
    Validator,
    broker_synonym_defs,
    config_def,
    java_double,
    java_str,
    normalize,
    parse_topic_configs,
    parse_typed,
    parse_value,
    split_list,
)

if TYPE_CHECKING:
    from .config import BrokerConfig
    from .server.state import BrokerState

__all__ = [
    "COMPRESSION_TYPES", "CONFIG_TYPE_IDS", "INT_MAX", "INTERNAL_CONFIGS", "LONG_MAX", "MS_PER_HOUR",
    "MS_PER_MINUTE", "TOPIC_CONFIGS", "ConfigValue", "ConfigValueError", "InvalidConfigError", "Synonym",
    "TopicConfigDef", "Validator", "java_double", "java_str", "normalize", "parse_value",
]

# DescribeConfigs ConfigSource ids.
UNKNOWN_SOURCE = 0
DYNAMIC_TOPIC_CONFIG = 1
DYNAMIC_BROKER_CONFIG = 2
DYNAMIC_DEFAULT_BROKER_CONFIG = 3
STATIC_BROKER_CONFIG = 4
DEFAULT_CONFIG = 5
DYNAMIC_BROKER_LOGGER_CONFIG = 6

#: A DescribeConfigs entry or synonym (messages are dicts).
Entry = dict[str, Any]

#: The schema's error (Kafka's ConfigException); ``str()`` is Kafka's message.
ConfigValueError = InvalidConfigError

# Broker properties that are topic synonyms but not (yet) pykbroker broker
# properties: Kafka's defaults, reported as DEFAULT_CONFIG.
KAFKA_ONLY_BROKER_DEFAULTS: dict[str, ConfigValue | None] = {
    s.name: s.default for s in broker_synonym_defs() if not s.served}

# Broker properties Kafka can change at runtime (DynamicBrokerConfig.
# AllDynamicConfigs); DescribeConfigs reports the others as read-only.
DYNAMIC_BROKER_CONFIGS: frozenset[str] = frozenset(
    {d.synonyms[0].name for d in TOPIC_CONFIGS.values() if d.synonyms} | {
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
        # replication quotas (cluster/throttle.py)
        "leader.replication.throttled.rate", "follower.replication.throttled.rate",
    })



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
    if cfg.static_values is None or cfg.static_sources is None:
        return cfg.values, cfg.sources
    return cfg.static_values, cfg.static_sources


def _broker_static(cfg: "BrokerConfig", prop: str) -> str | None:
    """The value given in server.properties / --override, else None."""
    values, sources = _static_layer(cfg)
    if prop in PROPS and sources.get(prop) == "STATIC_BROKER_CONFIG":
        v = values.get(prop)
        return None if v is None else java_str(v)
    return None


def _broker_dynamic(cfg: "BrokerConfig", prop: str, level: str) -> str | None:
    """A dynamic broker config (``level`` "broker" or "default"), as stored."""
    dyn = cfg.dynamic_broker if level == "broker" else cfg.dynamic_default
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
    for d in TOPIC_CONFIGS.values():
        names = [s.name for s in d.synonyms]
        if len(names) > 1 and prop in names:
            return names
    return [prop]


def broker_synonyms(cfg: "BrokerConfig", prop: str) -> list[Entry]:
    """Kafka's ``configSynonyms(prop, brokerSynonyms(prop))``: for each level
    (dynamic broker, dynamic default, static, default) the synonyms set at
    that level, then everything before the first entry named ``prop`` is
    dropped. Entries are DescribeConfigs synonym dicts."""
    names = broker_synonym_names(prop)
    sensitive = prop in PROPS and PROPS[prop].type == "password"
    out: list[Entry] = []
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


def broker_effective(cfg: "BrokerConfig", d: TopicConfigDef) -> ConfigValue | None:
    """The typed value ``d`` takes on a topic without an override
    (``KafkaConfig.extractLogConfigMap``: first synonym with a value)."""
    for syn in d.synonyms:
        v = _broker_value(cfg, syn.name)
        if v is None:
            continue
        if syn.scale != 1:
            return int(v) * syn.scale
        if d.type == "list" and isinstance(v, str):
            return split_list(v)
        if d.type == "double":
            return float(v)
        typed: ConfigValue = v
        return typed
    return d.default


# ---------------------------------------------------------------- validation
def validate_topic_configs(configs: Mapping[str, str | None] | Iterable[tuple[str, str | None]],
                           cfg: "BrokerConfig | None" = None) -> tuple[int, str] | None:
    """Kafka's checks for topic config overrides (create or alter).

    Returns ``(errors.INVALID_CONFIG, message)`` for the first problem, or
    None when every override is acceptable. ``cfg`` supplies the broker
    defaults for the cross-field checks (Kafka's topic defaults otherwise).
    """
    items = list(configs.items() if isinstance(configs, Mapping) else configs)
    nulls = [k for k, v in items if v is None]
    if nulls:
        return errors.INVALID_CONFIG, "Null value not supported for topic configs: " + ",".join(nulls)
    try:
        parsed = parse_topic_configs(dict(items))
    except InvalidConfigError as e:
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
def effective_topic_configs(cfg: "BrokerConfig", overrides: dict[str, str]) -> list[Entry]:
    """Every topic config of a topic with ``overrides`` as the controller
    resolves it (CreateTopics v5+ ``configs``), sorted by name: dicts with
    name, value, read_only, config_source, is_sensitive."""
    out = []
    for name in sorted(TOPIC_CONFIGS):
        d = TOPIC_CONFIGS[name]
        value: str | None
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
                          include_synonyms: bool, include_documentation: bool) -> Entry:
    """One DescribeConfigs entry of a topic (Kafka's ``createTopicConfigEntry``)."""
    d = TOPIC_CONFIGS[name]
    if name in overrides:
        try:
            typed: ConfigValue | None = parse_value(d, overrides[name])
        except InvalidConfigError:  # stored before a stricter rule: show as stored
            typed = overrides[name]
    else:
        typed = broker_effective(cfg, d)
    value = None if d.sensitive else java_str(typed)
    syns: list[Entry] = []
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
                           include_documentation: bool = False) -> list[Entry]:
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
    for d in TOPIC_CONFIGS.values():
        if not d.synonyms:
            continue
        v = broker_effective(cfg, d)
        if v is not None:
            out[d.name] = d.render(v)
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
        for _n, op, _ in configs:
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
    v = java_str(d.default) or ""
    return [p for p in v.split(",") if p]


def incremental_topic_overrides(current: dict[str, str],
                                ops: list[tuple[str, int, str | None]]) -> dict[str, str]:
    """ConfigurationControlManager.incrementalAlterConfigResource for a topic."""
    new = dict(current)
    for name, op, value in ops:
        if op == SET:
            if value is not None:  # check_alter_request refused null values
                new[name] = value
        elif op == DELETE:
            new.pop(name, None)
        else:
            d = config_def(name)
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

    if cfg.static_values is None or cfg.static_sources is None:
        cfg.static_values = dict(cfg.values)
        cfg.static_sources = dict(cfg.sources)
    cfg.dynamic_default = dict(cluster_default)
    cfg.dynamic_broker = dict(per_broker)
    values = dict(cfg.static_values)
    sources = dict(cfg.static_sources)
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
    assert st.logs is not None, "the broker is closed"
    dyn = st.logs.dynamic_configs
    apply_dynamic_broker_configs(st.config, dyn.get("", {}), dyn.get(str(st.node_id), {}))
    refresh_topic_configs(st)


def parse_broker_value(name: str, raw: str) -> Any:
    """A broker property's typed value (config.py's parser and validator);
    raises config.ConfigError with Kafka's wording."""
    from .config import parse_value as parse_broker_prop

    return parse_broker_prop(PROPS[name], raw)


def _is_java_int(s: str) -> bool:
    try:
        parse_typed("", "int", s)
    except InvalidConfigError:
        return False
    return s == s.strip()


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
        if not _is_java_int(resource_name):
            raise AlterError(errors.INVALID_REQUEST, f"Node id must be an integer, but it is: {resource_name}")
        if int(resource_name) != node_id:
            raise AlterError(errors.INVALID_REQUEST,
                             f"Unexpected broker id, expected {node_id}, but received {resource_name}")
    new = dict(current)
    for name, op, value in ops:
        if op == SET:
            if value is not None:  # check_alter_request refused null values
                new[name] = value
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

    per_broker = new if resource_name else cfg.dynamic_broker
    default = cfg.dynamic_default if resource_name else new
    for layer in (per_broker, default):
        if prop in layer:
            try:
                return parse_broker_value(prop, layer[prop])
            except ConfigError:
                return None
    values, _ = _static_layer(cfg)
    return values.get(prop)


def describe_dynamic_default(cfg: "BrokerConfig", keys: list[str] | None, include_synonyms: bool,
                             include_documentation: bool) -> list[Entry]:
    """DescribeConfigs BROKER "": the cluster-wide dynamic defaults only."""
    dyn = cfg.dynamic_default
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
