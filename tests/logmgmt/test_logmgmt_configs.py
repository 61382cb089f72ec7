"""Config changes (topic_configs.py): incremental operations, validation of
the merged override set, dynamic broker configs layered over static ones."""

from __future__ import annotations

import pytest

from pykbroker import topic_configs as tc
from pykbroker.config import BrokerConfig
from pykbroker.protocol import errors
from pykbroker.storage.log_config import LogConfig


def err(fn, *a):  # type: ignore[no-untyped-def]
    with pytest.raises(tc.AlterError) as e:
        fn(*a)
    return e.value.code, e.value.message


def test_incremental_topic_operations():
    cur = {"retention.ms": "1000", "cleanup.policy": "compact"}
    new = tc.incremental_topic_overrides(cur, [("retention.ms", tc.DELETE, None),
                                               ("cleanup.policy", tc.APPEND, "delete"),
                                               ("segment.ms", tc.SET, "5000")])
    assert new == {"cleanup.policy": "compact,delete", "segment.ms": "5000"}
    # APPEND to an unset list starts from the default ("delete"); duplicates are not added
    assert tc.incremental_topic_overrides({}, [("cleanup.policy", tc.APPEND, "compact,delete")]) == \
        {"cleanup.policy": "delete,compact"}
    assert tc.incremental_topic_overrides({}, [("cleanup.policy", tc.SUBTRACT, "delete")]) == \
        {"cleanup.policy": ""}
    assert err(tc.incremental_topic_overrides, {}, [("retention.ms", tc.APPEND, "5")]) == (
        errors.INVALID_CONFIG, "Can't APPEND to key retention.ms because its type is not LIST.")
    assert err(tc.incremental_topic_overrides, {}, [("nope", tc.SUBTRACT, "5")]) == (
        errors.INVALID_CONFIG, "Can't SUBTRACT to key nope because its type is not LIST.")


def test_merged_overrides_are_validated_like_kafka():
    cfg = BrokerConfig()
    assert tc.finish_topic_overrides({"retention.ms": " 100 ", "cleanup.policy": "compact, delete"}, cfg) == \
        {"retention.ms": "100", "cleanup.policy": "compact,delete"}
    assert err(tc.finish_topic_overrides, {"foo": "1"}, cfg) == (errors.INVALID_CONFIG,
                                                                 "Unknown topic config name: foo")
    assert err(tc.finish_topic_overrides, {"segment.ms": "0"}, cfg) == (
        errors.INVALID_CONFIG, "Invalid value 0 for configuration segment.ms: Value must be at least 1")
    assert err(tc.finish_topic_overrides, {"min.compaction.lag.ms": "10", "max.compaction.lag.ms": "5"}, cfg) == (
        errors.INVALID_CONFIG, "conflict topic config setting min.compaction.lag.ms (10) > max.compaction.lag.ms (5)")
    assert err(tc.finish_topic_overrides, {"cleanup.policy": "bogus"}, cfg)[0] == errors.INVALID_CONFIG


def test_alter_request_checks():
    assert err(tc.check_alter_request, [("a", 0, "1"), ("a", 0, "2")], True) == (
        errors.INVALID_REQUEST, "Error due to duplicate config keys")
    assert err(tc.check_alter_request, [("a", 0, None), ("b", 0, None)], True) == (
        errors.INVALID_REQUEST, "Null value not supported for : a, b")
    tc.check_alter_request([("a", tc.DELETE, None)], True)  # DELETE may carry null
    assert err(tc.check_alter_request, [("a", 9, "x")], True) == (errors.INVALID_REQUEST,
                                                                  "Unknown operations type 9")
    assert err(tc.check_topic_resource, "") == (errors.INVALID_REQUEST, "Default topic resources are not allowed.")
    assert err(tc.check_topic_resource, "a/b")[0] == errors.INVALID_TOPIC_EXCEPTION


def test_dynamic_broker_config_validation():
    cfg = BrokerConfig({"node.id": "1"})
    assert tc.alter_broker_configs(cfg, 1, "1", {}, [("log.retention.ms", tc.SET, "5000")]) == \
        {"log.retention.ms": "5000"}
    assert err(tc.alter_broker_configs, cfg, 1, "1", {}, [("log.dirs", tc.SET, "/x"),
                                                           ("num.partitions", tc.SET, "3")]) == (
        errors.INVALID_REQUEST, "Cannot update these configs dynamically: Set(log.dirs, num.partitions)")
    assert err(tc.alter_broker_configs, cfg, 1, "1", {}, [("log.retention.ms", tc.SET, "abc")]) == (
        errors.INVALID_REQUEST, "Invalid value abc for configuration log.retention.ms: Not a number of type LONG")
    assert err(tc.alter_broker_configs, cfg, 1, "2", {}, []) == (
        errors.INVALID_REQUEST, "Unexpected broker id, expected 1, but received 2")
    assert err(tc.alter_broker_configs, cfg, 1, "x", {}, []) == (
        errors.INVALID_REQUEST, "Node id must be an integer, but it is: x")
    assert err(tc.alter_broker_configs, cfg, 1, "", {}, [("log.retention.ms", tc.APPEND, "1")]) == (
        errors.INVALID_CONFIG, "Config value append is not allowed for config key: log.retention.ms")
    assert tc.alter_broker_configs(cfg, 1, "", {}, [("log.cleanup.policy", tc.APPEND, "compact")]) == \
        {"log.cleanup.policy": "delete,compact"}
    assert err(tc.alter_broker_configs, cfg, 1, "", {}, [("log.cleaner.min.compaction.lag.ms", tc.SET, "10"),
                                                          ("log.cleaner.max.compaction.lag.ms", tc.SET, "5")])[0] \
        == errors.INVALID_REQUEST


def test_dynamic_layers_and_synonyms():
    cfg = BrokerConfig({"log.retention.hours": "24", "log.segment.bytes": "2097152"})
    assert tc.broker_topic_defaults(cfg)["retention.ms"] == str(24 * 3600 * 1000)
    tc.apply_dynamic_broker_configs(cfg, {"log.retention.ms": "7000", "log.segment.bytes": "3000000"},
                                    {"log.retention.ms": "9000"})
    d = tc.broker_topic_defaults(cfg)
    assert d["retention.ms"] == "9000" and d["segment.bytes"] == "3000000"
    assert LogConfig.from_properties(d).retention_ms == 9000
    syns = tc.broker_synonyms(cfg, "log.retention.ms")
    assert [(s["name"], s["value"], s["source"]) for s in syns] == [
        ("log.retention.ms", "9000", tc.DYNAMIC_BROKER_CONFIG),
        ("log.retention.ms", "7000", tc.DYNAMIC_DEFAULT_BROKER_CONFIG),
        ("log.retention.hours", "24", tc.STATIC_BROKER_CONFIG),
        ("log.retention.hours", "168", tc.DEFAULT_CONFIG)]
    entry = tc.describe_topic_config(cfg, {}, "retention.ms", True, False)
    assert (entry["value"], entry["config_source"]) == ("9000", tc.DYNAMIC_BROKER_CONFIG)
    entry = tc.describe_topic_config(cfg, {}, "segment.bytes", True, False)
    assert (entry["value"], entry["config_source"]) == ("3000000", tc.DYNAMIC_DEFAULT_BROKER_CONFIG)
    [dflt] = tc.describe_dynamic_default(cfg, ["log.segment.bytes"], True, False)
    assert (dflt["value"], dflt["config_source"], [s["source"] for s in dflt["synonyms"]]) == (
        "3000000", tc.DYNAMIC_DEFAULT_BROKER_CONFIG, [tc.DYNAMIC_DEFAULT_BROKER_CONFIG])
    eff = {c["name"]: (c["value"], c["config_source"]) for c in tc.effective_topic_configs(cfg, {})}
    assert eff["retention.ms"] == ("9000", tc.DYNAMIC_BROKER_CONFIG)
    # removing the dynamic layers restores the static values
    tc.apply_dynamic_broker_configs(cfg, {}, {})
    assert tc.broker_topic_defaults(cfg)["retention.ms"] == str(24 * 3600 * 1000)
    assert cfg.sources["log.retention.ms"] == "DEFAULT_CONFIG"
