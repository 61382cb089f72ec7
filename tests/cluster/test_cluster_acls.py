"""ACLs in ZooKeeper: created through one broker, enforced by another
(Kafka's /kafka-acl, /kafka-acl-extended and change-notification znodes)."""

from __future__ import annotations

import json
import socket
import time

from pykbroker.protocol import errors
from pykbroker.security import acl
from rawclient import RawClient

JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
        'user_alice="alice-secret" user_admin="admin-secret";')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _metadata_code(bootstrap: str, topic: str) -> int:
    """Metadata for ``topic`` as alice (SASL/PLAIN): the topic's error code."""
    with RawClient(bootstrap, timeout=5) as c:
        assert c.call(17, 1, {"mechanism": "PLAIN"})["error_code"] == 0
        assert c.call(36, 2, {"auth_bytes": b"\0alice\0alice-secret"})["error_code"] == 0
        r = c.call(3, 12, {"topics": [{"name": topic, "topic_id": b"\0" * 16}], "allow_auto_topic_creation": False,
                           "include_topic_authorized_operations": False})
        return int(r["topics"][0]["error_code"])


def _binding(name: str, pt: int, op: int = acl.DESCRIBE) -> dict:
    return {"resource_type": acl.TOPIC, "resource_name": name, "resource_pattern_type": pt,
            "principal": "User:alice", "host": "*", "operation": op, "permission_type": acl.ALLOW}


def test_acl_created_on_one_broker_is_enforced_by_another(cluster_factory):
    ports = {i: _free_port() for i in range(2)}
    # brokers talk to each other on PLAINTEXT as User:ANONYMOUS: a super user, as Kafka would need
    cl = cluster_factory(2, overrides={"sasl.enabled.mechanisms": "PLAIN",
                                       "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS,
                                       "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
                                       "super.users": "User:ANONYMOUS;User:admin"},
                         per_broker={i: {"listeners": f"PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:{p}"}
                                     for i, p in ports.items()})
    sasl = {i: f"127.0.0.1:{p}" for i, p in ports.items()}
    cl.create_topic("zk-acl", 2, rf=2)
    assert _metadata_code(sasl[1], "zk-acl") == errors.TOPIC_AUTHORIZATION_FAILED
    with RawClient(cl.brokers[0].bootstrap) as c:  # created through broker 0 ...
        r = c.call(30, 3, {"creations": [_binding("zk-acl", acl.LITERAL),
                                         _binding("zk-", acl.PREFIXED, acl.WRITE)]})
    assert [x["error_code"] for x in r["results"]] == [0, 0]
    deadline = time.monotonic() + 15
    while _metadata_code(sasl[1], "zk-acl") != 0:  # ... enforced by broker 1
        assert time.monotonic() < deadline, "broker 1 never saw the new ACL"
        time.sleep(0.2)
    with RawClient(cl.brokers[1].bootstrap) as c:
        d = c.call(29, 3, {"resource_type_filter": acl.TOPIC, "resource_name_filter": "zk-acl",
                           "pattern_type_filter": acl.MATCH, "principal_filter": None, "host_filter": None,
                           "operation": acl.O_ANY, "permission_type": acl.PERM_ANY})
    got = [(x["resource_name"], x["pattern_type"], [a["operation"] for a in x["acls"]]) for x in d["resources"]]
    assert got == [("zk-", acl.PREFIXED, [acl.WRITE]), ("zk-acl", acl.LITERAL, [acl.DESCRIBE])]
    # Kafka's znodes and notifications
    lit = json.loads(cl.zk.get("/kafka-acl/Topic/zk-acl")[0])
    assert lit == {"version": 1, "acls": [{"principal": "User:alice", "permissionType": "Allow",
                                           "operation": "Describe", "host": "*"}]}
    pre = json.loads(cl.zk.get("/kafka-acl-extended/prefixed/Topic/zk-")[0])
    assert pre["acls"][0]["operation"] == "Write"
    notes = [cl.zk.get(f"/kafka-acl-changes/{n}")[0] for n in cl.zk.get_children("/kafka-acl-changes")]
    assert b"Topic:zk-acl" in notes
    ext = [json.loads(cl.zk.get(f"/kafka-acl-extended-changes/{n}")[0])
           for n in cl.zk.get_children("/kafka-acl-extended-changes")]
    assert {"version": 1, "resourceType": "Topic", "name": "zk-", "patternType": "Prefixed"} in ext
    # deleted through broker 1: refused again by broker 0
    with RawClient(cl.brokers[1].bootstrap) as c:
        r = c.call(31, 3, {"filters": [{"resource_type_filter": acl.TOPIC, "resource_name_filter": "zk-acl",
                                        "pattern_type_filter": acl.MATCH, "principal_filter": "User:alice",
                                        "host_filter": None, "operation": acl.O_ANY,
                                        "permission_type": acl.PERM_ANY}]})
    assert sorted(m["resource_name"] for m in r["filter_results"][0]["matching_acls"]) == ["zk-", "zk-acl"]
    deadline = time.monotonic() + 15
    while _metadata_code(sasl[0], "zk-acl") != errors.TOPIC_AUTHORIZATION_FAILED:
        assert time.monotonic() < deadline, "broker 0 still allows after the ACL was deleted"
        time.sleep(0.2)
    assert cl.zk.exists("/kafka-acl/Topic/zk-acl") is None
    assert cl.zk.exists("/kafka-acl-extended/prefixed/Topic/zk-") is None
