"""ACLs and the authorizer, with the semantics of Kafka's AclAuthorizer.

An ACL binding is a resource pattern (type, name, pattern type LITERAL or
PREFIXED) and an entry (principal ``User:<name>`` or ``User:*``, host or
``*``, operation, ALLOW/DENY). Filters (DescribeAcls, DeleteAcls) may also
use ANY for every field and MATCH for the pattern type.

Deciding whether ``principal`` at ``host`` may do ``op`` on a resource
(:meth:`Authorizer.authorize`):

1. a principal listed in ``super.users`` may do everything;
2. the ACLs that apply to the resource are the LITERAL ones with its name
   or the wildcard ``*`` and the PREFIXED ones whose name starts it;
3. none at all (for any principal): allowed only with
   ``allow.everyone.if.no.acl.found=true``;
4. a matching DENY (principal or ``User:*``, host or ``*``, the operation or
   ALL) refuses, whatever the ALLOWs say;
5. a matching ALLOW of the operation, ALL, or an operation implying it
   (READ/WRITE/DELETE/ALTER imply DESCRIBE, ALTER_CONFIGS implies
   DESCRIBE_CONFIGS) allows; otherwise refused.

The bindings are kept by an :class:`AclStore` (in memory; persisted by an
:class:`AclSink`: the broker's ``acls.json`` in its first log directory, or
ZooKeeper in a cluster, ``cluster/acls.py``).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Protocol

import attrs
import trio

# org.apache.kafka.common.resource.ResourceType
R_UNKNOWN, R_ANY, TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID, DELEGATION_TOKEN, USER = range(8)
RESOURCE_TYPES = {TOPIC: "Topic", GROUP: "Group", CLUSTER: "Cluster", TRANSACTIONAL_ID: "TransactionalId",
                  DELEGATION_TOKEN: "DelegationToken", USER: "User"}
RESOURCE_BY_NAME = {v: k for k, v in RESOURCE_TYPES.items()}
# org.apache.kafka.common.resource.PatternType
P_UNKNOWN, P_ANY, MATCH, LITERAL, PREFIXED = range(5)
# org.apache.kafka.common.acl.AclOperation
(O_UNKNOWN, O_ANY, ALL, READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS,
 ALTER_CONFIGS, IDEMPOTENT_WRITE, CREATE_TOKENS, DESCRIBE_TOKENS) = range(15)
OPERATIONS = {ALL: "All", READ: "Read", WRITE: "Write", CREATE: "Create", DELETE: "Delete", ALTER: "Alter",
              DESCRIBE: "Describe", CLUSTER_ACTION: "ClusterAction", DESCRIBE_CONFIGS: "DescribeConfigs",
              ALTER_CONFIGS: "AlterConfigs", IDEMPOTENT_WRITE: "IdempotentWrite", CREATE_TOKENS: "CreateTokens",
              DESCRIBE_TOKENS: "DescribeTokens"}
OPERATION_BY_NAME = {v: k for k, v in OPERATIONS.items()}
# org.apache.kafka.common.acl.AclPermissionType
PERM_UNKNOWN, PERM_ANY, DENY, ALLOW = range(4)
PERMISSIONS = {DENY: "Deny", ALLOW: "Allow"}
PERMISSION_BY_NAME = {v: k for k, v in PERMISSIONS.items()}

WILDCARD = "*"
WILDCARD_PRINCIPAL = "User:*"
CLUSTER_NAME = "kafka-cluster"

# operations an ALLOW of a stronger one also grants (Kafka's implied operations)
IMPLIED_BY = {DESCRIBE: (DESCRIBE, READ, WRITE, DELETE, ALTER), DESCRIBE_CONFIGS: (DESCRIBE_CONFIGS, ALTER_CONFIGS)}

# the operations each resource type supports (Kafka's AclEntry.supportedOperations):
# what authorized-operations bit fields are made of
SUPPORTED_OPS = {
    TOPIC: (READ, WRITE, CREATE, DESCRIBE, DELETE, ALTER, DESCRIBE_CONFIGS, ALTER_CONFIGS),
    GROUP: (READ, DESCRIBE, DELETE, DESCRIBE_CONFIGS, ALTER_CONFIGS),
    CLUSTER: (CREATE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE, ALTER, DESCRIBE),
    TRANSACTIONAL_ID: (DESCRIBE, WRITE),
    DELEGATION_TOKEN: (DESCRIBE,),
    USER: (CREATE_TOKENS, DESCRIBE_TOKENS),
}

# authorizer.class.name values that turn the authorizer on
AUTHORIZER_CLASSES = ("kafka.security.authorizer.AclAuthorizer",
                      "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                      "kafka.security.auth.SimpleAclAuthorizer")


# what an authorized-operations bit field is made of (groups: READ, DESCRIBE, DELETE as before)
BITFIELD_OPS: dict[int, tuple[int, ...]] = {**SUPPORTED_OPS, GROUP: (READ, DESCRIBE, DELETE)}


def ops_bits(ops: Any) -> int:
    """An authorized-operations bit field: bit ``op`` set for each operation."""
    return sum(1 << op for op in set(ops))


@attrs.frozen(order=True)
class AclBinding:
    resource_type: int
    name: str
    pattern_type: int
    principal: str
    host: str
    operation: int
    permission: int

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class AclFilter:
    """DescribeAcls / DeleteAcls filter; None matches any name, principal, host."""
    resource_type: int
    name: str | None
    pattern_type: int
    principal: str | None
    host: str | None
    operation: int
    permission: int

    def invalid(self) -> str | None:
        """Why the filter cannot match anything (Kafka's INVALID_REQUEST), or None."""
        if self.resource_type == R_UNKNOWN or self.resource_type not in (R_ANY, *RESOURCE_TYPES):
            return "Filter contain UNKNOWN elements"
        if self.pattern_type not in (P_ANY, MATCH, LITERAL, PREFIXED):
            return "Filter contain UNKNOWN elements"
        if self.operation not in (O_ANY, *OPERATIONS):
            return "Filter contain UNKNOWN elements"
        if self.permission not in (PERM_ANY, DENY, ALLOW):
            return "Filter contain UNKNOWN elements"
        return None

    def _matches_pattern(self, b: AclBinding) -> bool:
        if self.resource_type != R_ANY and self.resource_type != b.resource_type:
            return False
        if self.pattern_type in (LITERAL, PREFIXED):
            return b.pattern_type == self.pattern_type and (self.name is None or self.name == b.name)
        if self.pattern_type == P_ANY:
            return self.name is None or self.name == b.name
        # MATCH: the bindings that would apply to a resource named ``name``
        if self.name is None:
            return True
        if b.pattern_type == LITERAL:
            return b.name == self.name or b.name == WILDCARD
        return self.name.startswith(b.name)

    def matches(self, b: AclBinding) -> bool:
        return (self._matches_pattern(b)
                and (self.principal is None or self.principal == b.principal)
                and (self.host is None or self.host == b.host)
                and (self.operation == O_ANY or self.operation == b.operation)
                and (self.permission == PERM_ANY or self.permission == b.permission))


def binding_error(b: AclBinding) -> str | None:
    """Why a binding cannot be created (CreateAcls: INVALID_REQUEST), or None."""
    if b.resource_type not in RESOURCE_TYPES:
        return "Invalid resource type"
    if b.pattern_type not in (LITERAL, PREFIXED):
        return "Invalid pattern type"
    if b.operation not in OPERATIONS:
        return "Invalid operation"
    if b.permission not in PERMISSIONS:
        return "Invalid permission type"
    if not b.name:
        return "Resource name must not be empty"
    if b.resource_type == CLUSTER and not (b.pattern_type == LITERAL and b.name == CLUSTER_NAME):
        return "The only valid name for the CLUSTER resource is kafka-cluster"
    if ":" not in b.principal:
        return f"Could not parse principal from `{b.principal}`"
    if b.operation not in SUPPORTED_OPS[b.resource_type] and b.operation != ALL:
        return (f"Invalid operation {OPERATIONS[b.operation].upper()} for resource type "
                f"{RESOURCE_TYPES[b.resource_type].upper()}")
    return None


class AclStore:
    """Every ACL binding, indexed by resource (type, name, pattern type)."""

    FILE = "acls.json"

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.by_resource: dict[tuple[int, str, int], set[AclBinding]] = {}
        self._save_lock = threading.Lock()
        self._taken = 0
        self._written = 0
        if path is not None and path.exists():
            for d in json.loads(path.read_text()).get("acls", []):
                self._add(AclBinding(**d))

    def _add(self, b: AclBinding) -> bool:
        s = self.by_resource.setdefault((b.resource_type, b.name, b.pattern_type), set())
        if b in s:
            return False
        s.add(b)
        return True

    def add(self, b: AclBinding) -> bool:
        return self._add(b)

    def remove(self, b: AclBinding) -> bool:
        key = (b.resource_type, b.name, b.pattern_type)
        s = self.by_resource.get(key)
        if not s or b not in s:
            return False
        s.discard(b)
        if not s:
            del self.by_resource[key]
        return True

    def replace_resource(self, key: tuple[int, str, int], bindings: set[AclBinding]) -> None:
        if bindings:
            self.by_resource[key] = set(bindings)
        else:
            self.by_resource.pop(key, None)

    def all(self) -> list[AclBinding]:
        return sorted(b for s in self.by_resource.values() for b in s)

    def matching(self, f: AclFilter) -> list[AclBinding]:
        return [b for b in self.all() if f.matches(b)]

    def applicable(self, resource_type: int, name: str) -> list[AclBinding]:
        """The bindings that apply to one resource: literal name, literal ``*``, prefixes of the name."""
        out: list[AclBinding] = []
        out.extend(self.by_resource.get((resource_type, name, LITERAL), ()))
        if name != WILDCARD:
            out.extend(self.by_resource.get((resource_type, WILDCARD, LITERAL), ()))
        for (rt, prefix, pt), s in self.by_resource.items():
            if rt == resource_type and pt == PREFIXED and name.startswith(prefix):
                out.extend(s)
        return out

    # -- the file (a lone broker) ---------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        self._taken += 1
        return {"version": 1, "seq": self._taken, "acls": [b.to_json() for b in self.all()]}

    def write(self, data: dict[str, Any]) -> None:
        """Replace the file with ``data`` atomically (safe from worker threads)."""
        if self.path is None:
            return
        with self._save_lock:
            if data["seq"] > self._written:
                tmp = self.path.with_name(self.path.name + ".tmp")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as f:
                    json.dump({k: v for k, v in data.items() if k != "seq"}, f, indent=1)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
                self._written = data["seq"]


class AclSink(Protocol):
    """Where ACL changes are kept: the broker's file, or ZooKeeper in a cluster
    (``cluster/acls.py``); called after the store changed."""

    async def save(self, resources: set[tuple[int, str, int]]) -> None:
        """Persist the bindings of ``resources`` as they are now in the store."""


class FileAcls:
    def __init__(self, store: AclStore) -> None:
        self.store = store

    async def save(self, resources: set[tuple[int, str, int]]) -> None:
        if resources:
            await trio.to_thread.run_sync(self.store.write, self.store.snapshot())


def _principal_matches(acl_principal: str, principal: str) -> bool:
    return acl_principal == principal or acl_principal == WILDCARD_PRINCIPAL


def _host_matches(acl_host: str, host: str) -> bool:
    return acl_host == host or acl_host == WILDCARD


class Authorizer:
    """Kafka's AclAuthorizer decisions over an :class:`AclStore`."""

    def __init__(self, store: AclStore, super_users: list[str], allow_if_no_acl: bool) -> None:
        self.store = store
        self.super_users = set(super_users)
        self.allow_if_no_acl = allow_if_no_acl

    @classmethod
    def parse_super_users(cls, text: str | None) -> list[str]:
        return [u.strip() for u in (text or "").split(";") if u.strip()]

    def authorize(self, principal: str, host: str, op: int, resource_type: int, name: str) -> bool:
        if principal in self.super_users:
            return True
        acls = self.store.applicable(resource_type, name)
        if not acls:
            return self.allow_if_no_acl
        mine = [a for a in acls if _principal_matches(a.principal, principal) and _host_matches(a.host, host)]
        if any(a.permission == DENY and a.operation in (op, ALL) for a in mine):
            return False
        granting = (*IMPLIED_BY.get(op, (op,)), ALL)
        return any(a.permission == ALLOW and a.operation in granting for a in mine)

    def authorize_any(self, principal: str, host: str, op: int, resource_type: int) -> bool:
        """Whether ``op`` may be allowed on some resource of the type (Kafka's
        authorizeByResourceType: e.g. an idempotent producer without
        IDEMPOTENT_WRITE on the cluster but with WRITE on some topic)."""
        if principal in self.super_users:
            return True
        mine = [b for s in self.store.by_resource.values() for b in s
                if b.resource_type == resource_type and b.operation in (op, ALL)
                and _principal_matches(b.principal, principal) and _host_matches(b.host, host)]
        deny_lit = {b.name for b in mine if b.permission == DENY and b.pattern_type == LITERAL}
        deny_pre = {b.name for b in mine if b.permission == DENY and b.pattern_type == PREFIXED}
        if WILDCARD in deny_lit:
            return False
        if self.allow_if_no_acl:
            return True
        for b in mine:
            if b.permission != ALLOW:
                continue
            if any(b.name.startswith(d) for d in deny_pre):
                continue
            if b.pattern_type == PREFIXED or b.name == WILDCARD or b.name not in deny_lit:
                return True
        return False

    def authorized_ops(self, principal: str, host: str, resource_type: int, name: str) -> int:
        """The bit field of the supported operations ``principal`` may do on the resource."""
        return ops_bits(op for op in BITFIELD_OPS[resource_type]
                        if self.authorize(principal, host, op, resource_type, name))
