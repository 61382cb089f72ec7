"""SCRAM credentials in ZooKeeper: altered on one broker, used on every broker
(Kafka's /config/users/<user> format and change notification)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import time

from pykbroker.protocol import errors
from pykbroker.security import scram
from rawclient import RawClient


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scram_login(bootstrap: str, user: str, password: str, mech: str = "SCRAM-SHA-512") -> int:
    """A SCRAM exchange over SaslHandshake v1 + SaslAuthenticate; the final error code."""
    h = scram.MECHANISMS[mech][0]
    with RawClient(bootstrap, timeout=5) as c:
        assert c.call(17, 1, {"mechanism": mech})["error_code"] == 0
        first_bare = f"n={user},r={base64.b64encode(os.urandom(12)).decode()}"
        r = c.call(36, 2, {"auth_bytes": f"n,,{first_bare}".encode()})
        if r["error_code"]:
            return r["error_code"]
        server_first = r["auth_bytes"].decode()
        kv = dict(p.split("=", 1) for p in server_first.split(","))
        salted = scram.salted_password(mech, password, base64.b64decode(kv["s"]), int(kv["i"]))
        client_key = scram.hmac_(h, salted, b"Client Key")
        final_wo = f"c=biws,r={kv['r']}"
        sig = scram.hmac_(h, hashlib.new(h, client_key).digest(), f"{first_bare},{server_first},{final_wo}".encode())
        proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, sig))).decode()
        r = c.call(36, 2, {"auth_bytes": f"{final_wo},p={proof}".encode()})
        return r["error_code"]


def test_scram_credentials_shared_through_zookeeper(cluster_factory):
    ports = {i: _free_port() for i in range(2)}
    cl = cluster_factory(2, overrides={"sasl.enabled.mechanisms": "SCRAM-SHA-512"},
                         per_broker={i: {"listeners": f"PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:{p}"}
                                     for i, p in ports.items()})
    sasl = {i: f"127.0.0.1:{p}" for i, p in ports.items()}
    assert scram_login(sasl[1], "dana", "dana-pw") == errors.SASL_AUTHENTICATION_FAILED
    salt = os.urandom(16)
    up = {"name": "dana", "mechanism": 2, "iterations": 4096, "salt": salt,
          "salted_password": scram.salted_password("SCRAM-SHA-512", "dana-pw", salt, 4096)}
    with RawClient(cl.brokers[0].bootstrap) as c:  # altered on broker 0 ...
        r = c.call(51, 0, {"deletions": [], "upsertions": [up]})
    assert r["results"] == [{"user": "dana", "error_code": 0, "error_message": None}]
    deadline = time.monotonic() + 15
    while scram_login(sasl[1], "dana", "dana-pw") != 0:  # ... used on broker 1
        assert time.monotonic() < deadline, "broker 1 never saw the new credential"
        time.sleep(0.2)
    assert scram_login(sasl[1], "dana", "wrong") == errors.SASL_AUTHENTICATION_FAILED
    with RawClient(cl.brokers[1].bootstrap) as c:
        d = c.call(50, 0, {"users": [{"name": "dana"}]})
    assert d["results"][0]["credential_infos"] == [{"mechanism": 2, "iterations": 4096}]
    # Kafka's znode format and change notification
    data, _ = cl.zk.get("/config/users/dana")
    cfg = json.loads(data)
    assert cfg["version"] == 1 and cfg["config"]["SCRAM-SHA-512"].startswith("salt=")
    assert "dana-pw" not in data.decode()
    changes = [json.loads(cl.zk.get(f"/config/changes/{n}")[0]) for n in cl.zk.get_children("/config/changes")]
    assert {"version": 2, "entity_path": "users/dana"} in changes
    # deleted on broker 1: refused on broker 0
    with RawClient(cl.brokers[1].bootstrap) as c:
        c.call(51, 0, {"deletions": [{"name": "dana", "mechanism": 2}], "upsertions": []})
    deadline = time.monotonic() + 15
    while scram_login(sasl[0], "dana", "dana-pw") == 0:
        assert time.monotonic() < deadline, "broker 0 still accepts the deleted credential"
        time.sleep(0.2)
