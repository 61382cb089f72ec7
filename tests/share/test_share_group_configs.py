"""Share-group configs (GROUP resources of DescribeConfigs and
IncrementalAlterConfigs): share.auto.offset.reset, the record lock
duration, kept across a restart."""

from __future__ import annotations

import time

from pykbroker.protocol import errors
from rawclient import RawClient
from share_helpers import acquired, create_topic, join, produce, share_fetch

GROUP = 32


def _alter(c: RawClient, group: str, configs: list[tuple[str, int, str | None]], validate_only: bool = False) -> dict:
    return c.call(44, 1, {"resources": [{"resource_type": GROUP, "resource_name": group, "configs": [
        {"name": n, "config_operation": op, "value": v} for n, op, v in configs]}], "validate_only": validate_only})[
        "responses"][0]


def _describe(c: RawClient, group: str, keys: list[str] | None = None) -> dict[str, dict]:
    r = c.call(32, 4, {"resources": [{"resource_type": GROUP, "resource_name": group, "configuration_keys": keys}],
                       "include_synonyms": False, "include_documentation": True})["results"][0]
    assert r["error_code"] == 0, r
    return {e["name"]: e for e in r["configs"]}


def test_group_configs_describe_alter_and_use(broker_factory):
    b = broker_factory({"share.coordinator.state.topic.num.partitions": 3, "offsets.topic.num.partitions": 3,
                        "group.share.min.record.lock.duration.ms": 1000})
    with RawClient(b.bootstrap) as c:
        tid = create_topic(c, "q", 1)
        produce(c, "q", [b"a", b"b", b"c"])
        d = _describe(c, "grp")
        assert d["share.auto.offset.reset"]["value"] == "latest" and d["share.auto.offset.reset"]["config_source"] == 5
        assert d["share.record.lock.duration.ms"]["value"] == "30000"
        assert d["share.session.timeout.ms"]["value"] == "45000"
        assert d["share.heartbeat.interval.ms"]["value"] == "5000"
        # errors
        r = _alter(c, "grp", [("no.such.config", 0, "1")])
        assert (r["error_code"], r["error_message"]) == (
            errors.INVALID_CONFIG, "Unknown group config name: no.such.config")
        assert _alter(c, "grp", [("share.auto.offset.reset", 0, "sometimes")])["error_code"] == errors.INVALID_CONFIG
        r = _alter(c, "grp", [("share.record.lock.duration.ms", 0, "500")])
        assert (r["error_code"] == errors.INVALID_CONFIG
                and "group.share.min.record.lock.duration.ms" in r["error_message"])
        assert _alter(c, "grp", [("share.auto.offset.reset", 2, "x")])["error_code"] == errors.INVALID_CONFIG
        # validate_only changes nothing
        assert _alter(c, "grp", [("share.auto.offset.reset", 0, "earliest")], validate_only=True)["error_code"] == 0
        assert _describe(c, "grp", ["share.auto.offset.reset"])["share.auto.offset.reset"]["value"] == "latest"
        r = _alter(c, "grp", [("share.auto.offset.reset", 0, "earliest"), ("share.record.lock.duration.ms", 0, "1000")])
        assert r["error_code"] == 0, r
        d = _describe(c, "grp", ["share.auto.offset.reset", "share.record.lock.duration.ms"])
        assert set(d) == {"share.auto.offset.reset", "share.record.lock.duration.ms"}
        reset = d["share.auto.offset.reset"]
        assert reset["value"] == "earliest" and reset["config_source"] == 8
        # earliest: the group starts at the log start; the lock is the group's
        m, _ = join(c, "grp", ["q"])
        r = share_fetch(c, "grp", m, 0, tid)
        assert acquired(r) == [(0, 2, 1)] and r["acquisition_lock_timeout_ms"] == 1000
        # latest (the default) for another group; by_duration for a third
        m2, _ = join(c, "other", ["q"])
        assert acquired(share_fetch(c, "other", m2, 0, tid, max_wait_ms=0)) == []
        assert _alter(c, "recent", [("share.auto.offset.reset", 0, "by_duration:PT1H")])["error_code"] == 0
        m3, _ = join(c, "recent", ["q"])
        assert acquired(share_fetch(c, "recent", m3, 0, tid)) == [(0, 2, 1)]
    b.restart()
    with RawClient(b.bootstrap) as c:
        d = _describe(c, "grp")
        assert d["share.auto.offset.reset"]["value"] == "earliest"
        assert _alter(c, "grp", [("share.auto.offset.reset", 1, None)])["error_code"] == 0
        assert _describe(c, "grp")["share.auto.offset.reset"]["value"] == "latest"


def test_by_duration_skips_older_records(broker_factory):
    b = broker_factory({"share.coordinator.state.topic.num.partitions": 3, "offsets.topic.num.partitions": 3})
    with RawClient(b.bootstrap) as c:
        tid = create_topic(c, "q", 1)
        produce(c, "q", [b"old"])
        time.sleep(1.5)
        produce(c, "q", [b"new"])
        assert _alter(c, "g", [("share.auto.offset.reset", 0, "by_duration:PT1S")])["error_code"] == 0
        m, _ = join(c, "g", ["q"])
        assert acquired(share_fetch(c, "g", m, 0, tid)) == [(1, 1, 1)]
