"""Client quotas in ZooKeeper: altered through one broker, in force on
another (Kafka's /config/users, /config/clients znodes and notifications),
sharing a user's znode with its SCRAM credentials."""

from __future__ import annotations

import json
import os
import time

from pykbroker.security import scram
from rawclient import RawClient


def _entity(pairs):
    return [{"entity_type": t, "entity_name": n} for t, n in pairs]


def _described(bootstrap: str) -> dict:
    with RawClient(bootstrap) as c:
        d = c.call(48, 1, {"components": [], "strict": False})
    assert d["error_code"] == 0
    return {tuple((x["entity_type"], x["entity_name"]) for x in e["entity"]):
            {v["key"]: v["value"] for v in e["values"]} for e in d["entries"]}


def test_quotas_shared_through_zookeeper(cluster_factory):
    cl = cluster_factory(2)
    salt = os.urandom(16)
    up = {"name": "dana", "mechanism": 2, "iterations": 4096, "salt": salt,
          "salted_password": scram.salted_password("SCRAM-SHA-512", "dana-pw", salt, 4096)}
    with RawClient(cl.brokers[0].bootstrap) as c:  # a SCRAM user first: its znode gets a quota too
        assert c.call(51, 0, {"deletions": [], "upsertions": [up]})["results"][0]["error_code"] == 0
        r = c.call(49, 1, {"validate_only": False, "entries": [
            {"entity": _entity([("user", "dana")]), "ops": [{"key": "producer_byte_rate", "value": 1048576.0,
                                                               "remove": False}]},
            {"entity": _entity([("user", "dana"), ("client-id", None)]),
             "ops": [{"key": "consumer_byte_rate", "value": 2048.0, "remove": False}]},
            {"entity": _entity([("client-id", "app")]), "ops": [{"key": "request_percentage", "value": 50.0,
                                                                   "remove": False}]}]})
        assert [e["error_code"] for e in r["entries"]] == [0, 0, 0]
    want = {(("user", "dana"),): {"producer_byte_rate": 1048576.0},
            (("client-id", None), ("user", "dana")): {"consumer_byte_rate": 2048.0},
            (("client-id", "app"),): {"request_percentage": 50.0}}
    deadline = time.monotonic() + 15
    while _described(cl.brokers[1].bootstrap) != want:
        assert time.monotonic() < deadline, "broker 1 never saw the quotas"
        time.sleep(0.2)
    # Kafka's znodes: the user's quota beside its SCRAM credential
    user = json.loads(cl.zk.get("/config/users/dana")[0])
    assert user["config"]["producer_byte_rate"] == "1048576" and user["config"]["SCRAM-SHA-512"].startswith("salt=")
    assert json.loads(cl.zk.get("/config/users/dana/clients/<default>")[0])["config"] == \
        {"consumer_byte_rate": "2048"}
    assert json.loads(cl.zk.get("/config/clients/app")[0])["config"] == {"request_percentage": "50"}
    changes = [json.loads(cl.zk.get(f"/config/changes/{n}")[0]) for n in cl.zk.get_children("/config/changes")]
    assert {"version": 2, "entity_path": "users/dana/clients/<default>"} in changes
    # altering the SCRAM credential keeps the quota, and removing the quota keeps the credential
    with RawClient(cl.brokers[1].bootstrap) as c:
        assert c.call(51, 0, {"deletions": [], "upsertions": [dict(up, iterations=8192)]})["results"][0][
            "error_code"] == 0
        c.call(49, 0, {"validate_only": False, "entries": [
            {"entity": _entity([("client-id", "app")]), "ops": [{"key": "request_percentage", "value": 0.0,
                                                                   "remove": True}]}]})
    user = json.loads(cl.zk.get("/config/users/dana")[0])
    assert user["config"]["producer_byte_rate"] == "1048576" and "iterations=8192" in user["config"]["SCRAM-SHA-512"]
    deadline = time.monotonic() + 15
    while (("client-id", "app"),) in _described(cl.brokers[0].bootstrap):
        assert time.monotonic() < deadline, "broker 0 still has the removed quota"
        time.sleep(0.2)
