"""The one topic-config schema (storage/log_config.py): every config round-trips
into LogConfig, validation is the same parse everywhere, and the broker
synonyms of topic configs are registered from it."""

from __future__ import annotations

import attrs
import pytest

from pykbroker import topic_configs as tc
from pykbroker.config import PROPS, BrokerConfig, ConfigError
from pykbroker.storage.log_config import (
    INTERNAL_CONFIGS,
    TOPIC_CONFIGS,
    AtLeast,
    Between,
    ConfigValue,
    GzipLevel,
    InvalidConfigError,
    ListOf,
    LogConfig,
    OneOf,
    ThrottledReplicas,
    TopicConfigDef,
    broker_synonym_defs,
    normalize,
    parse_topic_configs,
)


def sample(d: TopicConfigDef) -> ConfigValue:
    """A valid value of ``d`` other than its default."""
    v = d.validator
    if d.type in ("int", "long"):
        if isinstance(v, AtLeast):
            return v.min if v.min != d.default else v.min + 1
        if isinstance(v, Between):
            return v.max
        if isinstance(v, GzipLevel):
            return 9
        return 12345
    if d.type == "double":
        return 0.75
    if d.type == "boolean":
        return not d.default
    if d.type == "string":
        assert isinstance(v, OneOf)
        return next(o for o in v.options if o != d.default)
    if d.type == "list":
        if isinstance(v, ListOf):
            return ("compact",)
        assert isinstance(v, ThrottledReplicas)
        return ("0:1", "1:2")
    raise AssertionError(d.type)


def test_log_config_has_one_attribute_per_schema_config_with_its_default():
    fields = {a.name: a for a in attrs.fields(LogConfig)}
    assert set(fields) == {d.field for d in TOPIC_CONFIGS.values()}
    assert len(TOPIC_CONFIGS) == 33
    for d in TOPIC_CONFIGS.values():
        assert fields[d.field].default == d.default, d.name
    assert LogConfig().to_properties() == {n: d.render(d.default) for n, d in TOPIC_CONFIGS.items()}


@pytest.mark.parametrize("name", sorted(TOPIC_CONFIGS))
def test_every_schema_config_round_trips_into_log_config(name):
    d = TOPIC_CONFIGS[name]
    value = sample(d)
    raw = d.render(value)
    c = LogConfig.from_properties({name: raw})
    assert getattr(c, d.field) == value
    assert type(getattr(c, d.field)) is type(value)
    # only that attribute changed; it prints as Kafka's canonical form
    assert c.overrides() == {name: normalize(name, raw)}
    assert c.to_properties()[name] == raw
    assert LogConfig.from_properties(c.to_properties()) == c
    # the admin APIs' validation accepts it (tiered storage is refused as a
    # whole, as by a Kafka broker without it); DescribeConfigs shows it as stored
    if name == "remote.storage.enable":
        assert tc.validate_topic_configs({name: raw}) == (40, (
            "Tiered Storage functionality is disabled in the broker. "
            "Topic cannot be configured with remote log storage."))
    else:
        assert tc.validate_topic_configs({name: raw}) is None
    entry = tc.describe_topic_config(BrokerConfig(), {name: raw}, name, False, False)
    assert (entry["value"], entry["config_source"]) == (raw, tc.DYNAMIC_TOPIC_CONFIG)


BAD = [
    ("segment.bytes", "100000", "Value must be at least 1048576"),
    ("segment.bytes", "3000000000", "Not a number of type INT"),
    ("segment.index.bytes", "3", "Value must be at least 4"),
    ("retention.ms", "-2", "Value must be at least -1"),
    ("compression.gzip.level", "0", "Value must be between 1 and 9 or equal to -1"),
    ("compression.zstd.level", "23", "Value must be no more than 22"),
    ("cleanup.policy", "compact,,delete", "String must be one of: compact, delete"),
    ("message.timestamp.type", "createtime", "String must be one of: CreateTime, LogAppendTime"),
    ("unclean.leader.election.enable", "1", "Expected value to be either true or false"),
    ("min.cleanable.dirty.ratio", "-0.5", "Value must be at least 0"),
    ("min.cleanable.dirty.ratio", "half", "Not a number of type DOUBLE"),
]


@pytest.mark.parametrize("name,raw,reason", BAD)
def test_storage_and_admin_validation_are_one_parse(name, raw, reason):
    with pytest.raises(InvalidConfigError) as e:
        LogConfig.from_properties({name: raw})
    assert e.value.reason == reason
    assert str(e.value).endswith(f" for configuration {name}: {reason}")
    assert tc.validate_topic_configs({name: raw}) == (40, str(e.value))
    with pytest.raises(tc.AlterError) as ae:
        tc.finish_topic_overrides({name: raw}, BrokerConfig())
    assert (ae.value.code, ae.value.message) == (40, str(e.value))


def test_parse_order_is_kafkas():
    # unknown names first, then the first bad value in definition order
    with pytest.raises(InvalidConfigError, match="Unknown topic config name: nope"):
        parse_topic_configs({"segment.bytes": "1", "nope": "1"})
    with pytest.raises(InvalidConfigError, match="segment.bytes"):
        parse_topic_configs({"retention.ms": "x", "segment.bytes": "1"})


def test_internal_segment_bytes_sets_the_segment_size_without_the_minimum():
    assert set(INTERNAL_CONFIGS) == {"internal.segment.bytes"}
    c = LogConfig.from_properties({"segment.bytes": "2097152", "internal.segment.bytes": "500"})
    assert c.segment_bytes == 500
    assert tc.validate_topic_configs({"internal.segment.bytes": "500"}) is None


def test_broker_synonyms_are_registered_from_the_schema():
    syns = broker_synonym_defs()
    served = [s for s in syns if s.served]
    assert {s.name for s in syns if not s.served} == set(tc.KAFKA_ONLY_BROKER_DEFAULTS)
    for s in served:
        p = PROPS[s.name]
        assert (p.type, p.default) == (s.type, s.default), s.name
        assert p.topic_name == (s.topic_name if s.primary else None), s.name
    for d in TOPIC_CONFIGS.values():
        assert d.server_default_property == (d.synonyms[0].name if d.synonyms else None)
    # Kafka's broker defaults give Kafka's topic defaults
    assert LogConfig.from_properties(BrokerConfig().topic_defaults()) == LogConfig()
    # and the broker synonym takes the topic config's bounds (log.segment.bytes >= 1 MiB)
    with pytest.raises(ConfigError, match="log.segment.bytes: Value must be at least 1048576"):
        BrokerConfig({"log.segment.bytes": "100000"})
    with pytest.raises(ConfigError, match="log.cleanup.policy: String must be one of: compact, delete"):
        BrokerConfig({"log.cleanup.policy": "keep"})
    cfg = BrokerConfig({"log.segment.bytes": "2097152", "log.roll.hours": "2", "log.cleanup.policy": "compact"})
    c = LogConfig.from_properties(cfg.topic_defaults())
    assert (c.segment_bytes, c.segment_ms, c.cleanup_policy) == (2097152, 7200000, ("compact",))


def test_broker_properties_parse_as_kafka_does():
    # one parser for server.properties/--override and dynamic broker configs
    with pytest.raises(ConfigError) as e:
        BrokerConfig({"log.segment.bytes": "1_000_000_000"})
    assert str(e.value) == ("Invalid value 1_000_000_000 for configuration log.segment.bytes: "
                            "Not a number of type INT")
    assert tc.parse_broker_value("log.retention.hours", " 24 ") == 24
    assert tc.parse_broker_value("log.cleaner.min.cleanable.ratio", "0.25") == 0.25
    with pytest.raises(ConfigError, match="Value must be no more than 1"):
        tc.parse_broker_value("log.cleaner.min.cleanable.ratio", "2")
    assert BrokerConfig({"log.preallocate": "TRUE", "num.partitions": 3})["log.preallocate"] is True
