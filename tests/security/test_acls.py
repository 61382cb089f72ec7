"""ACLs with real clients over SASL listeners (authorizer.class.name set):
the admin APIs through kafka-python and confluent-kafka, and enforcement
(produce, consume, groups, metadata, prefixes, DENY, super users, restart)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from pykbroker.protocol import errors
from pykbroker.security import acl
from rawclient import RawClient

pytest.importorskip("cryptography")

AUTHZ = {"authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
         "super.users": "User:admin;User:ANONYMOUS"}
USERS = {"alice": "alice-secret", "bob": "bob-secret", "admin": "admin-secret"}


@pytest.fixture(scope="module")
def acl_broker(kafka_tls_ca: Any) -> Any:
    from pykbroker.testing.security import SecureBroker

    with SecureBroker(kafka_tls_ca, users=USERS, config=AUTHZ) as kb:
        yield kb


def _uid(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def _add(kb: Any, *bindings: tuple[int, str, int, str, int, int]) -> None:
    """Create ACLs as the super user on the PLAINTEXT listener (User:ANONYMOUS)."""
    with RawClient(kb.bootstrap_for("PLAINTEXT")) as c:
        r = c.call(30, 3, {"creations": [
            {"resource_type": rt, "resource_name": name, "resource_pattern_type": pt, "principal": principal,
             "host": "*", "operation": op, "permission_type": perm} for rt, name, pt, principal, op, perm in bindings]})
    assert [x["error_code"] for x in r["results"]] == [0] * len(bindings), r


def _plain_login(c: RawClient, user: str, password: str) -> None:
    assert c.call(17, 1, {"mechanism": "PLAIN"})["error_code"] == 0
    assert c.call(36, 2, {"auth_bytes": f"\0{user}\0{password}".encode()})["error_code"] == 0


def _create_topic(kb: Any, name: str, partitions: int = 1) -> None:
    with RawClient(kb.bootstrap_for("PLAINTEXT")) as c:
        r = c.call(19, 5, {"topics": [{"name": name, "num_partitions": partitions, "replication_factor": 1,
                                        "assignments": [], "configs": []}],
                           "timeout_ms": 10000, "validate_only": False})
    assert r["topics"][0]["error_code"] == 0, r


def test_kafka_python_admin_create_describe_delete(acl_broker: Any) -> None:
    from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType,
                             KafkaAdminClient, ResourcePattern, ResourcePatternFilter, ResourceType)

    kb = acl_broker
    topic = _uid("kp-acl-")
    admin = KafkaAdminClient(**kb.kafka_python_config("SASL_PLAINTEXT", "admin", mechanism="PLAIN"))
    try:
        lit = ACL("User:alice", "*", ACLOperation.READ, ACLPermissionType.ALLOW,
                  ResourcePattern(ResourceType.TOPIC, topic))
        pre = ACL("User:bob", "10.0.0.1", ACLOperation.WRITE, ACLPermissionType.DENY,
                  ResourcePattern(ResourceType.TOPIC, topic[:6], ACLResourcePatternType.PREFIXED))
        grp = ACL("User:alice", "*", ACLOperation.READ, ACLPermissionType.ALLOW,
                  ResourcePattern(ResourceType.GROUP, topic))
        res = admin.create_acls([lit, pre, grp])
        assert res["failed"] == [] and len(res["succeeded"]) == 3
        # MATCH: every pattern that applies to the topic (its literal ACL and the prefix)
        got, err = admin.describe_acls(ACLFilter(None, None, ACLOperation.ANY, ACLPermissionType.ANY,
                                                 ResourcePatternFilter(ResourceType.TOPIC, topic,
                                                                       ACLResourcePatternType.MATCH)))
        assert err.errno == 0
        shapes = {(a.principal, a.host, a.operation, a.permission_type, a.resource_pattern.resource_type,
                   a.resource_pattern.resource_name, a.resource_pattern.pattern_type) for a in got}
        assert shapes == {
            ("User:alice", "*", ACLOperation.READ, ACLPermissionType.ALLOW, ResourceType.TOPIC, topic,
             ACLResourcePatternType.LITERAL),
            ("User:bob", "10.0.0.1", ACLOperation.WRITE, ACLPermissionType.DENY, ResourceType.TOPIC, topic[:6],
             ACLResourcePatternType.PREFIXED)}
        # by principal, any resource
        got, _ = admin.describe_acls(ACLFilter("User:alice", None, ACLOperation.ANY, ACLPermissionType.ANY,
                                               ResourcePatternFilter(ResourceType.ANY, None,
                                                                     ACLResourcePatternType.ANY)))
        mine = {(a.resource_pattern.resource_type, a.resource_pattern.resource_name) for a in got}
        assert {(ResourceType.TOPIC, topic), (ResourceType.GROUP, topic)} <= mine
        # delete the literal topic ACL and the group one by filter
        out = admin.delete_acls([
            ACLFilter(None, None, ACLOperation.ANY, ACLPermissionType.ANY,
                      ResourcePatternFilter(ResourceType.TOPIC, topic, ACLResourcePatternType.LITERAL)),
            ACLFilter("User:alice", None, ACLOperation.READ, ACLPermissionType.ALLOW,
                      ResourcePatternFilter(ResourceType.GROUP, topic, ACLResourcePatternType.ANY))])
        assert [len(matching) for _, matching, _ in out] == [1, 1]
        assert [err.errno for _, _, err in out] == [0, 0]
        assert [(a.principal, a.operation, a.resource_pattern.resource_type) for _, (a,), _ in out] == [
            ("User:alice", ACLOperation.READ, ResourceType.TOPIC),
            ("User:alice", ACLOperation.READ, ResourceType.GROUP)]
        got, _ = admin.describe_acls(ACLFilter(None, None, ACLOperation.ANY, ACLPermissionType.ANY,
                                               ResourcePatternFilter(ResourceType.TOPIC, topic,
                                                                     ACLResourcePatternType.MATCH)))
        assert [(a.principal, a.resource_pattern.resource_name) for a in got] == [("User:bob", topic[:6])]
    finally:
        admin.close()


def test_update_features_needs_cluster_alter(acl_broker: Any) -> None:
    """UpdateFeatures without ALTER on the cluster: top-level CLUSTER_AUTHORIZATION_FAILED,
    no results, nothing changed; the super user may."""
    update = {"timeout_ms": 60000, "validate_only": True, "feature_updates": [
        {"feature": "transaction.version", "max_version_level": 1, "upgrade_type": 2}]}
    with RawClient(acl_broker.bootstrap_for("SASL_PLAINTEXT")) as c:
        _plain_login(c, "bob", "bob-secret")
        r = c.call(57, 1, update)
        assert (r["error_code"], r["error_message"], r["results"]) == (errors.CLUSTER_AUTHORIZATION_FAILED, None, [])
    with RawClient(acl_broker.bootstrap_for("PLAINTEXT")) as c:  # User:ANONYMOUS, a super user
        r = c.call(57, 1, update)
        assert (r["error_code"], r["results"][0]["error_code"]) == (0, 0)


def test_acl_admin_needs_cluster_alter(acl_broker: Any) -> None:
    """A non-super user without ALTER on the cluster: CLUSTER_AUTHORIZATION_FAILED."""
    with RawClient(acl_broker.bootstrap_for("SASL_PLAINTEXT")) as c:
        _plain_login(c, "bob", "bob-secret")
        r = c.call(30, 2, {"creations": [{"resource_type": acl.TOPIC, "resource_name": "x",
                                          "resource_pattern_type": acl.LITERAL, "principal": "User:bob",
                                          "host": "*", "operation": acl.ALL, "permission_type": acl.ALLOW}]})
        assert r["results"] == [{"error_code": errors.CLUSTER_AUTHORIZATION_FAILED,
                                 "error_message": "Cluster authorization failed."}]
        d = c.call(29, 2, {"resource_type_filter": acl.R_ANY, "resource_name_filter": None,
                           "pattern_type_filter": acl.P_ANY, "principal_filter": None, "host_filter": None,
                           "operation": acl.O_ANY, "permission_type": acl.PERM_ANY})
        assert d["error_code"] == errors.CLUSTER_AUTHORIZATION_FAILED
    with RawClient(acl_broker.bootstrap_for("PLAINTEXT")) as c:  # invalid bindings: INVALID_REQUEST each
        r = c.call(30, 1, {"creations": [
            {"resource_type": acl.CLUSTER, "resource_name": "other", "resource_pattern_type": acl.LITERAL,
             "principal": "User:bob", "host": "*", "operation": acl.ALTER, "permission_type": acl.ALLOW},
            {"resource_type": acl.TOPIC, "resource_name": "t", "resource_pattern_type": acl.MATCH,
             "principal": "User:bob", "host": "*", "operation": acl.READ, "permission_type": acl.ALLOW}]})
        assert [x["error_code"] for x in r["results"]] == [errors.INVALID_REQUEST] * 2


def test_confluent_admin_acls(acl_broker: Any) -> None:
    from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient,
                                       ResourcePatternType, ResourceType)

    kb = acl_broker
    group = _uid("ck-grp-")
    admin = AdminClient(kb.librdkafka_config("SASL_SSL", "admin"))
    b1 = AclBinding(ResourceType.GROUP, group, ResourcePatternType.LITERAL, "User:alice", "*",
                    AclOperation.READ, AclPermissionType.ALLOW)
    b2 = AclBinding(ResourceType.TOPIC, group, ResourcePatternType.PREFIXED, "User:alice", "*",
                    AclOperation.DESCRIBE, AclPermissionType.DENY)
    for f in admin.create_acls([b1, b2], request_timeout=10).values():
        assert f.result(timeout=10) is None
    flt = AclBindingFilter(ResourceType.ANY, group, ResourcePatternType.ANY, None, None,
                           AclOperation.ANY, AclPermissionType.ANY)
    got = admin.describe_acls(flt, request_timeout=10).result(timeout=10)
    assert sorted(got, key=str) == sorted([b1, b2], key=str)
    deleted = admin.delete_acls([AclBindingFilter(ResourceType.GROUP, group, ResourcePatternType.LITERAL, None,
                                                  None, AclOperation.ANY, AclPermissionType.ANY)],
                                request_timeout=10)
    assert [f.result(timeout=10) for f in deleted.values()] == [[b1]]
    assert admin.describe_acls(flt, request_timeout=10).result(timeout=10) == [b2]


def _produce(conf: dict[str, Any], topic: str, value: bytes) -> Any:
    """One message with confluent-kafka; its delivery error (None on success)."""
    from confluent_kafka import Producer

    p = Producer({**conf, "message.timeout.ms": 5000})
    got: list[Any] = []
    p.produce(topic, value, on_delivery=lambda e, m: got.append(e))
    p.flush(10)
    assert len(got) == 1
    return got[0]


def test_write_on_a_prefix_produces_there_and_nowhere_else(acl_broker: Any) -> None:
    from confluent_kafka import KafkaError

    kb = acl_broker
    prefix = _uid("orders-")
    mine, other = f"{prefix}-eu", _uid("payments-")
    _create_topic(kb, mine)
    _create_topic(kb, other)
    _add(kb, (acl.TOPIC, prefix, acl.PREFIXED, "User:alice", acl.WRITE, acl.ALLOW))
    conf = kb.librdkafka_config("SASL_SSL", "alice")
    assert _produce(conf, mine, b"in") is None
    err = _produce(conf, other, b"out")
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert kb.thread.values(mine) == [b"in"]
    assert kb.thread.values(other) == []


def test_kafka_python_producer_without_write(acl_broker: Any) -> None:
    from kafka import KafkaProducer
    from kafka.errors import TopicAuthorizationFailedError

    kb = acl_broker
    topic = _uid("kp-nowrite-")
    _create_topic(kb, topic)
    _add(kb, (acl.TOPIC, topic, acl.LITERAL, "User:bob", acl.DESCRIBE, acl.ALLOW))
    p = KafkaProducer(**kb.kafka_python_config("SASL_PLAINTEXT", "bob", mechanism="PLAIN"),
                      max_block_ms=5000, retries=0)
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            p.send(topic, b"x").get(timeout=10)
    finally:
        p.close(timeout=2)


def test_deny_beats_allow_and_super_user_bypasses(acl_broker: Any) -> None:
    from confluent_kafka import KafkaError

    kb = acl_broker
    topic = _uid("deny-")
    _create_topic(kb, topic)
    _add(kb, (acl.TOPIC, topic, acl.LITERAL, "User:*", acl.WRITE, acl.ALLOW),
         (acl.TOPIC, topic, acl.LITERAL, "User:alice", acl.WRITE, acl.DENY))
    err = _produce(kb.librdkafka_config("SASL_SSL", "alice"), topic, b"a")
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert _produce(kb.librdkafka_config("SASL_SSL", "bob"), topic, b"b") is None  # the wildcard ALLOW
    # the super user: no ACL of its own, a DENY for everyone does not matter
    _add(kb, (acl.TOPIC, topic, acl.LITERAL, "User:*", acl.ALL, acl.DENY))
    assert _produce(kb.librdkafka_config("SASL_SSL", "admin"), topic, b"c") is None
    assert kb.thread.values(topic) == [b"b", b"c"]


def test_consumer_needs_read_on_the_group(acl_broker: Any) -> None:
    from confluent_kafka import Consumer, KafkaError, KafkaException

    kb = acl_broker
    topic, group = _uid("cons-"), _uid("grp-")
    _create_topic(kb, topic)
    assert _produce(kb.librdkafka_config("SASL_SSL", "admin"), topic, b"v0") is None
    _add(kb, (acl.TOPIC, topic, acl.LITERAL, "User:alice", acl.READ, acl.ALLOW))
    errs: list[Any] = []
    c = Consumer({**kb.librdkafka_config("SASL_SSL", "alice"), "group.id": group,
                  "auto.offset.reset": "earliest", "error_cb": errs.append})
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + 15
        seen = None
        while time.monotonic() < deadline and seen is None:
            try:
                m = c.poll(0.5)
            except KafkaException as e:
                seen = e.args[0]
                break
            if m is not None and m.error() is not None:
                seen = m.error()
            elif m is not None:
                pytest.fail("consumed without READ on the group")
            elif errs:
                seen = errs[0]
        assert seen is not None and seen.code() == KafkaError.GROUP_AUTHORIZATION_FAILED, (seen, errs)
    finally:
        c.close()
    # with READ on the group it consumes
    _add(kb, (acl.GROUP, group, acl.LITERAL, "User:alice", acl.READ, acl.ALLOW))
    c = Consumer({**kb.librdkafka_config("SASL_SSL", "alice"), "group.id": group, "auto.offset.reset": "earliest"})
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + 20
        got = None
        while time.monotonic() < deadline and got is None:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got = (m.value(), m.offset())
        assert got == (b"v0", 0)
    finally:
        c.close()


def test_metadata_hides_topics_and_reports_operations(acl_broker: Any) -> None:
    kb = acl_broker
    seen, hidden = _uid("seen-"), _uid("hidden-")
    _create_topic(kb, seen)
    _create_topic(kb, hidden)
    _add(kb, (acl.TOPIC, seen, acl.LITERAL, "User:bob", acl.READ, acl.ALLOW))
    with RawClient(kb.bootstrap_for("SASL_PLAINTEXT")) as c:
        _plain_login(c, "bob", "bob-secret")
        everything = c.call(3, 12, {"topics": None, "allow_auto_topic_creation": False,
                                    "include_topic_authorized_operations": True})
        names = {t["name"] for t in everything["topics"]}
        assert seen in names and hidden not in names
        ops = {t["name"]: t["topic_authorized_operations"] for t in everything["topics"]}
        assert ops[seen] == (1 << acl.READ) | (1 << acl.DESCRIBE)
        named = c.call(3, 12, {"topics": [{"name": hidden, "topic_id": b"\0" * 16},
                                          {"name": _uid("nosuch-"), "topic_id": b"\0" * 16}],
                               "allow_auto_topic_creation": True, "include_topic_authorized_operations": False})
        # existing or not: the same answer (existence does not leak), and nothing is auto-created
        assert [t["error_code"] for t in named["topics"]] == [errors.TOPIC_AUTHORIZATION_FAILED] * 2
        cl = c.call(60, 1, {"include_cluster_authorized_operations": True, "endpoint_type": 1})
        assert cl["error_code"] == errors.CLUSTER_AUTHORIZATION_FAILED
    with RawClient(kb.bootstrap_for("SASL_PLAINTEXT")) as c:
        _plain_login(c, "admin", "admin-secret")
        cl = c.call(60, 1, {"include_cluster_authorized_operations": True, "endpoint_type": 1})
        assert cl["error_code"] == 0 and cl["cluster_authorized_operations"] == 8096


def test_transactional_id_needs_write(acl_broker: Any) -> None:
    from confluent_kafka import KafkaException, Producer

    kb = acl_broker
    topic = _uid("txn-")
    _create_topic(kb, topic)
    _add(kb, (acl.TOPIC, topic, acl.LITERAL, "User:bob", acl.WRITE, acl.ALLOW))
    p = Producer({**kb.librdkafka_config("SASL_SSL", "bob"), "transactional.id": _uid("tid-")})
    with pytest.raises(KafkaException) as e:
        p.init_transactions(10)
    assert e.value.args[0].code() == errors.TRANSACTIONAL_ID_AUTHORIZATION_FAILED


def test_acls_survive_a_restart(kafka_tls_ca: Any, tmp_path: Any) -> None:
    from confluent_kafka import KafkaError

    from pykbroker.testing.security import SecureBroker

    cfg = {**AUTHZ, "pykbroker.storage": "disk", "log.dirs": str(tmp_path)}
    with SecureBroker(kafka_tls_ca, users=USERS, config=cfg) as kb:
        _create_topic(kb, "kept")
        _add(kb, (acl.TOPIC, "ke", acl.PREFIXED, "User:alice", acl.WRITE, acl.ALLOW))
    assert "User:alice" in (tmp_path / "acls.json").read_text()
    with SecureBroker(kafka_tls_ca, users=USERS, config=cfg) as kb:
        assert _produce(kb.librdkafka_config("SASL_SSL", "alice"), "kept", b"after") is None
        err = _produce(kb.librdkafka_config("SASL_SSL", "bob"), "kept", b"no")
        assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
        assert kb.thread.values("kept") == [b"after"]


def test_without_authorizer_acl_apis_say_security_disabled(kafka_secure_broker: Any) -> None:
    with RawClient(kafka_secure_broker.bootstrap_for("PLAINTEXT")) as c:
        d = c.call(29, 1, {"resource_type_filter": acl.R_ANY, "resource_name_filter": None,
                           "pattern_type_filter": acl.P_ANY, "principal_filter": None, "host_filter": None,
                           "operation": acl.O_ANY, "permission_type": acl.PERM_ANY})
        assert (d["error_code"], d["error_message"]) == (errors.SECURITY_DISABLED, "No Authorizer is configured.")


def test_kafka_python_consumer_without_group_read(acl_broker: Any) -> None:
    from kafka import KafkaConsumer
    from kafka.errors import GroupAuthorizationFailedError

    kb = acl_broker
    topic, group = _uid("kpc-"), _uid("kpgrp-")
    _create_topic(kb, topic)
    _add(kb, (acl.TOPIC, topic, acl.LITERAL, "User:bob", acl.READ, acl.ALLOW))
    c = KafkaConsumer(topic, group_id=group, **kb.kafka_python_config("SASL_PLAINTEXT", "bob", mechanism="PLAIN"),
                      auto_offset_reset="earliest", consumer_timeout_ms=5000)
    try:
        with pytest.raises(GroupAuthorizationFailedError):
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                c.poll(timeout_ms=500)
    finally:
        c.close()
