"""The authorizer's decisions (security/acl.py), as Kafka's AclAuthorizer makes them."""

from __future__ import annotations

from pathlib import Path

from pykbroker.security import acl
from pykbroker.security.acl import AclBinding, AclFilter, AclStore, Authorizer

ALICE, BOB = "User:alice", "User:bob"


def _b(rt: int, name: str, principal: str, op: int, perm: int = acl.ALLOW, pt: int = acl.LITERAL,
       host: str = "*") -> AclBinding:
    return AclBinding(rt, name, pt, principal, host, op, perm)


def _authz(*bindings: AclBinding, supers: str = "", allow_if_none: bool = False) -> Authorizer:
    store = AclStore()
    for b in bindings:
        store.add(b)
    return Authorizer(store, Authorizer.parse_super_users(supers), allow_if_none)


def test_no_acl_means_denied_unless_allow_everyone() -> None:
    assert not _authz().authorize(ALICE, "1.2.3.4", acl.READ, acl.TOPIC, "t")
    assert _authz(allow_if_none=True).authorize(ALICE, "1.2.3.4", acl.READ, acl.TOPIC, "t")
    # an ACL for someone else on the resource: no longer "no ACL found"
    a = _authz(_b(acl.TOPIC, "t", BOB, acl.READ), allow_if_none=True)
    assert not a.authorize(ALICE, "h", acl.READ, acl.TOPIC, "t")
    assert a.authorize(ALICE, "h", acl.READ, acl.TOPIC, "other")


def test_literal_prefixed_wildcard_and_deny_wins() -> None:
    a = _authz(_b(acl.TOPIC, "orders-", ALICE, acl.WRITE, pt=acl.PREFIXED),
               _b(acl.TOPIC, "orders-secret", ALICE, acl.WRITE, perm=acl.DENY),
               _b(acl.TOPIC, "*", acl.WILDCARD_PRINCIPAL, acl.DESCRIBE),
               _b(acl.TOPIC, "audit", ALICE, acl.ALL, perm=acl.DENY))
    assert a.authorize(ALICE, "h", acl.WRITE, acl.TOPIC, "orders-eu")
    assert not a.authorize(ALICE, "h", acl.WRITE, acl.TOPIC, "orders-secret")
    assert not a.authorize(ALICE, "h", acl.WRITE, acl.TOPIC, "payments")
    assert a.authorize(BOB, "h", acl.DESCRIBE, acl.TOPIC, "payments")  # User:* on *
    assert not a.authorize(BOB, "h", acl.WRITE, acl.TOPIC, "payments")
    assert not a.authorize(ALICE, "h", acl.DESCRIBE, acl.TOPIC, "audit")  # DENY ALL beats the wildcard ALLOW
    # other resource types are separate
    assert not a.authorize(ALICE, "h", acl.WRITE, acl.GROUP, "orders-eu")


def test_implied_operations() -> None:
    a = _authz(_b(acl.TOPIC, "t", ALICE, acl.READ), _b(acl.TOPIC, "c", ALICE, acl.ALTER_CONFIGS),
               _b(acl.GROUP, "g", ALICE, acl.DELETE))
    assert a.authorize(ALICE, "h", acl.DESCRIBE, acl.TOPIC, "t")
    assert not a.authorize(ALICE, "h", acl.WRITE, acl.TOPIC, "t")
    assert a.authorize(ALICE, "h", acl.DESCRIBE_CONFIGS, acl.TOPIC, "c")
    assert not a.authorize(ALICE, "h", acl.DESCRIBE, acl.TOPIC, "c")  # ALTER_CONFIGS implies only DESCRIBE_CONFIGS
    assert a.authorize(ALICE, "h", acl.DESCRIBE, acl.GROUP, "g")
    # a DENY of DESCRIBE does not deny READ
    b = _authz(_b(acl.TOPIC, "t", ALICE, acl.READ), _b(acl.TOPIC, "t", ALICE, acl.DESCRIBE, perm=acl.DENY))
    assert b.authorize(ALICE, "h", acl.READ, acl.TOPIC, "t")
    assert not b.authorize(ALICE, "h", acl.DESCRIBE, acl.TOPIC, "t")


def test_hosts_super_users_and_bitfields() -> None:
    a = _authz(_b(acl.TOPIC, "t", ALICE, acl.READ, host="10.0.0.1"), supers="User:admin; User:ops")
    assert a.authorize(ALICE, "10.0.0.1", acl.READ, acl.TOPIC, "t")
    assert not a.authorize(ALICE, "10.0.0.2", acl.READ, acl.TOPIC, "t")
    assert a.authorize("User:ops", "x", acl.ALTER, acl.CLUSTER, acl.CLUSTER_NAME)
    assert a.authorized_ops(ALICE, "10.0.0.1", acl.TOPIC, "t") == (1 << acl.READ) | (1 << acl.DESCRIBE)
    assert a.authorized_ops("User:admin", "x", acl.CLUSTER, acl.CLUSTER_NAME) == 8096


def test_authorize_by_resource_type() -> None:
    """InitProducerId without a transactional id: WRITE on some topic will do."""
    a = _authz(_b(acl.TOPIC, "t-", ALICE, acl.WRITE, pt=acl.PREFIXED),
               _b(acl.TOPIC, "x", BOB, acl.WRITE), _b(acl.TOPIC, "x", BOB, acl.WRITE, perm=acl.DENY))
    assert a.authorize_any(ALICE, "h", acl.WRITE, acl.TOPIC)
    assert not a.authorize_any(BOB, "h", acl.WRITE, acl.TOPIC)
    assert not a.authorize_any("User:carol", "h", acl.WRITE, acl.TOPIC)


def test_filters() -> None:
    store = AclStore()
    lit, pre, wild = (_b(acl.TOPIC, "orders", ALICE, acl.READ), _b(acl.TOPIC, "ord", BOB, acl.WRITE, pt=acl.PREFIXED),
                      _b(acl.TOPIC, "*", ALICE, acl.DESCRIBE))
    grp = _b(acl.GROUP, "orders", ALICE, acl.READ)
    for b in (lit, pre, wild, grp):
        store.add(b)

    def f(rt: int = acl.R_ANY, name: str | None = None, pt: int = acl.P_ANY, principal: str | None = None,
          op: int = acl.O_ANY, perm: int = acl.PERM_ANY) -> list[AclBinding]:
        return store.matching(AclFilter(rt, name, pt, principal, None, op, perm))

    assert set(f()) == {lit, pre, wild, grp}
    assert set(f(acl.TOPIC, "orders", acl.MATCH)) == {lit, pre, wild}
    assert f(acl.TOPIC, "orders", acl.LITERAL) == [lit]
    assert f(acl.TOPIC, "orders", acl.P_ANY) == [lit]
    assert f(acl.TOPIC, None, acl.PREFIXED) == [pre]
    assert set(f(principal=ALICE)) == {lit, wild, grp}
    assert f(op=acl.WRITE) == [pre]
    assert AclFilter(acl.R_UNKNOWN, None, acl.P_ANY, None, None, acl.O_ANY, acl.PERM_ANY).invalid()


def test_binding_validation() -> None:
    assert acl.binding_error(_b(acl.TOPIC, "t", ALICE, acl.READ)) is None
    assert acl.binding_error(_b(acl.CLUSTER, "other", ALICE, acl.ALTER)) == \
        "The only valid name for the CLUSTER resource is kafka-cluster"
    assert acl.binding_error(_b(acl.TOPIC, "t", ALICE, acl.READ, pt=acl.MATCH)) == "Invalid pattern type"
    assert acl.binding_error(_b(acl.TOPIC, "", ALICE, acl.READ)) is not None
    assert acl.binding_error(_b(acl.TOPIC, "t", "alice", acl.READ)) is not None


def test_store_file_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / AclStore.FILE
    s = AclStore(path)
    s.add(_b(acl.TOPIC, "t", ALICE, acl.READ))
    s.add(_b(acl.GROUP, "g-", BOB, acl.ALL, perm=acl.DENY, pt=acl.PREFIXED))
    s.write(s.snapshot())
    assert AclStore(path).all() == s.all()


def test_authorizer_configuration() -> None:
    import pytest

    from pykbroker.config import BrokerConfig, ConfigError
    from pykbroker.security.listeners import Security

    def sec(**props: str) -> Security:
        return Security(BrokerConfig(overrides={"pykbroker.storage": "memory", **props}))

    assert sec().authorizer is None
    a = sec(**{"authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
               "super.users": "User:admin", "allow.everyone.if.no.acl.found": "true"}).authorizer
    assert a is not None and a.super_users == {"User:admin"} and a.allow_if_no_acl
    assert sec(**{"authorizer.class.name": "kafka.security.authorizer.AclAuthorizer"}).authorizer.allow_if_no_acl \
        is False
    with pytest.raises(ConfigError, match="not supported"):
        sec(**{"authorizer.class.name": "com.example.MyAuthorizer"})
