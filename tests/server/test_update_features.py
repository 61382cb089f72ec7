"""UpdateFeatures (key 57) on a lone broker, raw, every version (0-2):
upgrades and downgrades of ``transaction.version``/``group.version``/
``share.version``, validate_only, Kafka 4.x's errors and messages (the
whole request fails on the first bad update; FEATURE_UPDATE_FAILED when the
metadata file cannot be written), group.version 0 turning the consumer
protocol off, ApiVersions listing the new levels with a grown finalized
epoch, the levels kept across a restart (the topics metadata file), and
kafka-python's admin update_features / describe_features. Each test has its own broker: the levels are broker-wide.
"""

from __future__ import annotations

import json

from pykbroker.protocol import errors
from rawclient import RawClient

UPGRADE, SAFE, UNSAFE = 1, 2, 3
ALL_FAILED = "The update failed for all features since the following feature had an error: "


def _api_versions(c: RawClient) -> tuple[dict[str, int], int]:
    r = c.call(18, 4, {"client_software_name": "features-test", "client_software_version": "1.0"})
    assert r["error_code"] == 0
    for f in r["finalized_features"]:
        assert f["min_version_level"] == f["max_version_level"] > 0
    return {f["name"]: f["max_version_level"] for f in r["finalized_features"]}, r["finalized_features_epoch"]


def _update(c: RawClient, v: int, updates: list[tuple[str, int, int]], validate_only: bool = False) -> dict:
    """UpdateFeatures v``v``; updates as (feature, level, upgrade type); v0 sends
    allow_downgrade = (type != UPGRADE)."""
    keys = []
    for name, level, t in updates:
        k = {"feature": name, "max_version_level": level}
        if v == 0:
            k["allow_downgrade"] = t != UPGRADE
        else:
            k["upgrade_type"] = t
        keys.append(k)
    body: dict = {"timeout_ms": 60000, "feature_updates": keys}
    if v >= 1:
        body["validate_only"] = validate_only
    return c.call(57, v, body)


def _ok(r: dict, v: int, names: list[str]) -> None:
    assert (r["error_code"], r["error_message"]) == (0, None), r
    if v <= 1:
        assert r["results"] == [{"feature": n, "error_code": 0, "error_message": "NONE"} for n in names]
    else:
        assert r.get("results", []) == []  # v2 carries no results


def test_advertised_versions(broker):
    with RawClient(broker.bootstrap) as c:
        keys = {k["api_key"]: (k["min_version"], k["max_version"]) for k in c.call(18, 3, {
            "client_software_name": "x", "client_software_version": "1"})["api_keys"]}
    assert keys[57] == (0, 2)


def test_downgrade_and_upgrade_every_version(broker):
    with RawClient(broker.bootstrap) as c:
        levels, epoch = _api_versions(c)
        assert levels == {"transaction.version": 2, "group.version": 1, "share.version": 1}
        # v2: safe downgrade of transaction.version to 0 deletes it
        _ok(_update(c, 2, [("transaction.version", 0, SAFE)]), 2, ["transaction.version"])
        levels, e1 = _api_versions(c)
        assert levels == {"group.version": 1, "share.version": 1} and e1 > epoch
        # v1: upgrade to 1, and group.version to 0 with an unsafe downgrade, in one request
        r = _update(c, 1, [("transaction.version", 1, UPGRADE), ("group.version", 0, UNSAFE)])
        _ok(r, 1, ["transaction.version", "group.version"])
        levels, e2 = _api_versions(c)
        assert levels == {"transaction.version": 1, "share.version": 1} and e2 > e1
        # v0: allow_downgrade false upgrades, true downgrades
        _ok(_update(c, 0, [("transaction.version", 2, UPGRADE), ("group.version", 1, UPGRADE)]), 0,
            ["transaction.version", "group.version"])
        assert _api_versions(c)[0] == {"transaction.version": 2, "group.version": 1, "share.version": 1}
        _ok(_update(c, 0, [("share.version", 0, SAFE)]), 0, ["share.version"])
        levels, e3 = _api_versions(c)
        assert levels == {"transaction.version": 2, "group.version": 1} and e3 > e2
        # asking for the current level changes nothing, the epoch stays
        _ok(_update(c, 2, [("transaction.version", 2, UPGRADE), ("share.version", 0, UPGRADE)]), 2, [])
        assert _api_versions(c) == (levels, e3)


def _heartbeat(c: RawClient, group: str) -> int:
    r = c.call(68, 0, {"group_id": group, "member_id": "m-1", "member_epoch": 0, "instance_id": None,
                       "rack_id": None, "rebalance_timeout_ms": 30000, "subscribed_topic_names": ["t"],
                       "server_assignor": None, "topic_partitions": []})
    return r["error_code"]


def test_group_version_0_turns_the_consumer_protocol_off(broker):
    with RawClient(broker.bootstrap) as c:
        assert _heartbeat(c, "g1") == 0
        _ok(_update(c, 2, [("group.version", 0, SAFE)]), 2, [])
        assert _heartbeat(c, "g2") == errors.UNSUPPORTED_VERSION
        d = c.call(69, 0, {"group_ids": ["g1"], "include_authorized_operations": False})
        assert [(g["group_id"], g["error_code"]) for g in d["groups"]] == [("g1", errors.UNSUPPORTED_VERSION)]
        _ok(_update(c, 2, [("group.version", 1, UPGRADE)]), 2, [])
        assert _heartbeat(c, "g3") == 0
        d = c.call(69, 0, {"group_ids": ["g1"], "include_authorized_operations": False})
        assert d["groups"][0]["error_code"] == 0 and d["groups"][0]["group_state"] != ""


def test_validate_only_changes_nothing(broker):
    with RawClient(broker.bootstrap) as c:
        before = _api_versions(c)
        for v in (1, 2):
            _ok(_update(c, v, [("transaction.version", 0, SAFE), ("group.version", 0, SAFE)], True), v,
                ["transaction.version", "group.version"])
            r = _update(c, v, [("transaction.version", 3, UPGRADE)], True)
            assert r["error_code"] == errors.INVALID_UPDATE_VERSION
        assert _api_versions(c) == before


def test_errors_fail_the_whole_request(broker):
    cases = [
        (("transaction.version", 1, 4), "The controller does not support the given upgrade type."),
        (("transaction.version", 1, 0), "The controller does not support the given upgrade type."),
        (("transaction.version", -1, SAFE), "A feature version cannot be less than 0."),
        (("transaction.version", 3, UPGRADE), "Local controller 0 only supports versions 0-2"),
        (("group.version", 2, UPGRADE), "Local controller 0 only supports versions 0-1"),
        (("metadata.version", 20, UPGRADE), "Local controller 0 does not support this feature."),
        (("transaction.version", 1, UPGRADE),
         "Can't downgrade the version of this feature without setting the upgrade type to either safe or "
         "unsafe downgrade."),
    ]
    with RawClient(broker.bootstrap) as c:
        before = _api_versions(c)
        for (name, level, t), reason in cases:
            for v in (1, 2):
                # a good update first: it is not applied either
                r = _update(c, v, [("share.version", 0, SAFE), (name, level, t)])
                assert r["error_code"] == errors.INVALID_UPDATE_VERSION, (v, name, r)
                assert r["error_message"] == f"{ALL_FAILED}Invalid update version {level} for feature {name}. {reason}"
                assert r.get("results", []) == []
        # v0: allow_downgrade true with a higher level
        _ok(_update(c, 0, [("group.version", 0, SAFE)]), 0, ["group.version"])
        r = _update(c, 0, [("group.version", 1, SAFE)])
        assert (r["error_code"], r["error_message"]) == (
            errors.INVALID_UPDATE_VERSION,
            f"{ALL_FAILED}Invalid update version 1 for feature group.version. Can't downgrade to a newer version.")
        assert r["results"] == []
        levels, _ = _api_versions(c)
        assert levels == {k: lv for k, lv in before[0].items() if k != "group.version"}
        # an unknown feature at level 0 is accepted and changes nothing
        _ok(_update(c, 1, [("no.such.feature", 0, UPGRADE)]), 1, ["no.such.feature"])
        assert _api_versions(c)[0] == levels


def test_levels_survive_a_restart(broker):
    with RawClient(broker.bootstrap) as c:
        _ok(_update(c, 2, [("transaction.version", 1, SAFE), ("share.version", 0, SAFE)]), 2, [])
    meta = json.loads((broker.log_dir / "__pykbroker_topics.json").read_text())
    assert meta["finalized_features"] == {"group.version": 1, "transaction.version": 1}
    broker.restart()
    with RawClient(broker.bootstrap) as c:
        assert _api_versions(c)[0] == {"transaction.version": 1, "group.version": 1}
        # and can be raised again
        _ok(_update(c, 2, [("transaction.version", 2, UPGRADE)]), 2, [])
        assert _api_versions(c)[0] == {"transaction.version": 2, "group.version": 1}


def test_release_emulation_caps_the_levels(broker_factory):
    """--as-version 3.9 advertises no EndTxn v5: transaction.version 2 cannot be finalized."""
    b = broker_factory({"pykbroker.as.version": "3.9"})
    with RawClient(b.bootstrap) as c:
        assert "transaction.version" not in _api_versions(c)[0]
        r = _update(c, 1, [("transaction.version", 2, UPGRADE)])
        assert r["error_message"] == (f"{ALL_FAILED}Invalid update version 2 for feature transaction.version. "
                                      "Local controller 0 does not support this feature.")


def test_kafka_python_admin(broker):
    from kafka import KafkaAdminClient
    from kafka.errors import InvalidUpdateVersionError

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        assert admin.describe_features()["transaction.version"]["finalized"] == (2, 2)
        assert admin.update_features({"transaction.version": ("SAFE_DOWNGRADE", 1)}) == {"transaction.version": "OK"}
        f = admin.describe_features()
        assert f["transaction.version"]["finalized"] == (1, 1)
        assert f["transaction.version"]["supported"] == (0, 2)
        assert admin.update_features({"group.version": ("SAFE_DOWNGRADE", 0)}, validate_only=True) == \
            {"group.version": "OK"}
        assert admin.describe_features()["group.version"]["finalized"] == (1, 1)
        try:
            admin.update_features({"transaction.version": 3})
        except InvalidUpdateVersionError as e:
            assert "only supports versions 0-2" in str(e)
        else:
            raise AssertionError("an update above the supported range was accepted")
    finally:
        admin.close()


def test_a_failed_write_is_feature_update_failed(broker):
    """The metadata file cannot be written (a directory where its temp file goes):
    top-level FEATURE_UPDATE_FAILED with the reason, nothing changed; then it works."""
    blocker = broker.log_dir / "__pykbroker_topics.json.tmp"
    blocker.mkdir()
    with RawClient(broker.bootstrap) as c:
        before = _api_versions(c)
        for v in (0, 1, 2):
            r = _update(c, v, [("transaction.version", 1, SAFE)])
            assert r["error_code"] == errors.FEATURE_UPDATE_FAILED, r
            assert "__pykbroker_topics.json.tmp" in r["error_message"] and r.get("results", []) == []
        assert _api_versions(c) == before
        blocker.rmdir()
        _ok(_update(c, 2, [("transaction.version", 1, SAFE)]), 2, [])
        assert _api_versions(c)[0]["transaction.version"] == 1
