"""Finalized features in ZooKeeper: UpdateFeatures through one broker is
listed by the others' ApiVersions (Kafka's /feature znode, watched by every
broker), and kept across a broker's restart."""

from __future__ import annotations

import json

from clusterlib import wait_until

from pykbroker.protocol import errors
from rawclient import RawClient


def _api_versions(bootstrap: str) -> tuple[dict[str, int], int]:
    with RawClient(bootstrap) as c:
        r = c.call(18, 4, {"client_software_name": "features-test", "client_software_version": "1.0"})
    assert r["error_code"] == 0
    return {f["name"]: f["max_version_level"] for f in r["finalized_features"]}, r["finalized_features_epoch"]


def _update(bootstrap: str, v: int, updates: list[dict]) -> dict:
    body: dict = {"timeout_ms": 60000, "feature_updates": updates}
    if v >= 1:
        body["validate_only"] = False
    with RawClient(bootstrap) as c:
        return c.call(57, v, body)


def test_update_features_seen_by_every_broker(cluster_factory):
    cl = cluster_factory(3)
    b0, b1, b2 = (b.bootstrap for b in cl.brokers)
    defaults = {"transaction.version": 2, "group.version": 1, "share.version": 1}
    _, epoch1 = _api_versions(b1)
    for b in (b0, b1, b2):
        assert _api_versions(b)[0] == defaults
    assert not cl.zk.exists("/feature")
    # through broker 0 (any broker answers, as Kafka 4.x's forward to the controller)
    r = _update(b0, 2, [{"feature": "transaction.version", "max_version_level": 0, "upgrade_type": 2}])
    assert (r["error_code"], r["error_message"]) == (0, None), r
    assert _api_versions(b0)[0] == {"group.version": 1, "share.version": 1}
    # Kafka's FeatureZNode, version 2
    assert json.loads(cl.zk.get("/feature")[0]) == {
        "version": 2, "status": 1,
        "features": {"group.version": {"max_version_level": 1}, "share.version": {"max_version_level": 1}}}
    want = {"group.version": 1, "share.version": 1}
    wait_until(lambda: _api_versions(b1)[0] == want and _api_versions(b2)[0] == want, 15,
               "the other brokers list the new levels")
    assert _api_versions(b1)[1] > epoch1
    # the epoch is the znode's version (Kafka's ZooKeeper mode): the same on every broker
    zversion = cl.zk.get("/feature")[1].version
    assert [_api_versions(b)[1] for b in (b0, b1, b2)] == [zversion] * 3
    # through broker 1: v0 and v1 (results per feature), seen by broker 0 and 2
    r = _update(b1, 0, [{"feature": "transaction.version", "max_version_level": 1, "allow_downgrade": False}])
    assert r["results"] == [{"feature": "transaction.version", "error_code": 0, "error_message": "NONE"}]
    r = _update(b1, 1, [{"feature": "share.version", "max_version_level": 0, "upgrade_type": 3}])
    assert (r["error_code"], r["results"][0]["error_code"]) == (0, 0)
    want = {"transaction.version": 1, "group.version": 1}
    wait_until(lambda: _api_versions(b0)[0] == want and _api_versions(b2)[0] == want, 15,
               "the other brokers list the new levels")
    # validated against the cluster's levels on any broker
    r = _update(b2, 2, [{"feature": "transaction.version", "max_version_level": 0, "upgrade_type": 1}])
    assert r["error_code"] == errors.INVALID_UPDATE_VERSION
    assert r["error_message"].endswith("Can't downgrade the version of this feature without setting the upgrade "
                                       "type to either safe or unsafe downgrade.")
    # the znode written by someone else (Kafka's format, v1 with min levels too): every broker follows
    cl.zk.set("/feature", json.dumps({"version": 1, "status": 1, "features": {
        "transaction.version": {"min_version_level": 1, "max_version_level": 2},
        "group.version": {"min_version_level": 1, "max_version_level": 1}}}).encode())
    want = {"transaction.version": 2, "group.version": 1}
    wait_until(lambda: all(_api_versions(b)[0] == want for b in (b0, b1, b2)), 15, "every broker follows the znode")
    zversion = cl.zk.get("/feature")[1].version
    assert [_api_versions(b)[1] for b in (b0, b1, b2)] == [zversion] * 3
    # a restarted broker reads them from ZooKeeper
    cl.restart(2)
    wait_until(lambda: _api_versions(cl.brokers[2].bootstrap)[0] == want, 30, "the restarted broker's levels")
