"""ACLs in ZooKeeper (cluster mode), where Kafka's AclAuthorizer keeps them.

- LITERAL patterns: ``/kafka-acl/<ResourceType>/<name>``; PREFIXED ones:
  ``/kafka-acl-extended/prefixed/<ResourceType>/<name>``; each znode holds
  ``{"version":1,"acls":[{"principal":"User:alice","permissionType":"Allow",
  "operation":"Read","host":"*"}]}`` and is deleted when its last ACL goes.
- Each change writes Kafka's notification: ``/kafka-acl-changes/acl_changes_<seq>``
  holding ``Topic:name`` for a literal pattern,
  ``/kafka-acl-extended-changes/acl_changes_<seq>`` holding
  ``{"version":1,"resourceType":"Topic","name":"x","patternType":"Prefixed"}``
  for a prefixed one.
- Every broker watches both notification folders (through the cluster
  view's path hooks) and re-reads the ACLs when one changes, so an ACL
  created through any broker is enforced by all of them. Concurrent changes
  of one resource's ACLs through two brokers: the last write wins (Kafka
  retries a conditional update instead). Old notifications are not purged.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import trio
from kazoo.exceptions import NodeExistsError, NoNodeError

from ..security import acl

log = logging.getLogger("pykbroker.security")

LITERAL_ROOT = "/kafka-acl"
PREFIXED_ROOT = "/kafka-acl-extended/prefixed"
LITERAL_CHANGES = "/kafka-acl-changes"
EXTENDED_CHANGES = "/kafka-acl-extended-changes"
CHANGE_PREFIX = "acl_changes_"

Key = tuple[int, str, int]


def resource_path(key: Key) -> str:
    rt, name, pt = key
    root = LITERAL_ROOT if pt == acl.LITERAL else PREFIXED_ROOT
    return f"{root}/{acl.RESOURCE_TYPES[rt]}/{name}"


def encode_acls(bindings: set[acl.AclBinding]) -> bytes:
    return json.dumps({"version": 1, "acls": [
        {"principal": b.principal, "permissionType": acl.PERMISSIONS[b.permission],
         "operation": acl.OPERATIONS[b.operation], "host": b.host} for b in sorted(bindings)]},
        separators=(",", ":")).encode()


def decode_acls(key: Key, data: bytes | None) -> set[acl.AclBinding]:
    rt, name, pt = key
    out: set[acl.AclBinding] = set()
    try:
        entries = json.loads(data or b"{}").get("acls", [])
        for e in entries:
            out.add(acl.AclBinding(rt, name, pt, e["principal"], e["host"], acl.OPERATION_BY_NAME[e["operation"]],
                                   acl.PERMISSION_BY_NAME[e["permissionType"]]))
    except (ValueError, KeyError, TypeError, AttributeError):
        log.warning("ignoring malformed ACLs at %s in ZooKeeper", resource_path(key))
    return out


def encode_change(key: Key) -> tuple[str, bytes]:
    """(notification folder, data) of a change of ``key``'s ACLs, as Kafka writes it."""
    rt, name, pt = key
    if pt == acl.LITERAL:
        return LITERAL_CHANGES, f"{acl.RESOURCE_TYPES[rt]}:{name}".encode()
    return EXTENDED_CHANGES, json.dumps({"version": 1, "resourceType": acl.RESOURCE_TYPES[rt], "name": name,
                                         "patternType": "Prefixed"}, separators=(",", ":")).encode()


class ZkAcls:
    """``acl.AclSink`` for a cluster member, and the watcher that keeps its
    ``AclStore`` equal to ZooKeeper's ACLs."""

    def __init__(self, store: acl.AclStore, zk: Any) -> None:
        self.store = store
        self.zk = zk
        store.path = None  # ZooKeeper is the source of truth
        store.by_resource.clear()
        self._lock = trio.Lock()

    def attach(self, view: Any) -> None:
        view.add_path_hook(LITERAL_CHANGES, self.on_path, self.resync)
        view.add_path_hook(EXTENDED_CHANGES, self.on_path, self._watch_only)

    async def on_path(self, path: str) -> None:
        await self.resync()

    async def _watch_only(self) -> None:
        await self.zk.ensure_path(EXTENDED_CHANGES)
        await self.zk.get_children(EXTENDED_CHANGES, watch=True)

    async def resync(self) -> None:
        """Watch both notification folders, then read every ACL znode."""
        async with self._lock:
            for p in (LITERAL_CHANGES, EXTENDED_CHANGES):
                await self.zk.ensure_path(p)
                await self.zk.get_children(p, watch=True)
            found: dict[Key, set[acl.AclBinding]] = {}
            for root, pt in ((LITERAL_ROOT, acl.LITERAL), (PREFIXED_ROOT, acl.PREFIXED)):
                for tname, rt in acl.RESOURCE_BY_NAME.items():
                    try:
                        names = await self.zk.get_children(f"{root}/{tname}")
                    except NoNodeError:
                        continue
                    for name in names:
                        key = (rt, name, pt)
                        try:
                            data, _ = await self.zk.get(resource_path(key))
                        except NoNodeError:
                            continue
                        bindings = decode_acls(key, data)
                        if bindings:
                            found[key] = bindings
            self.store.by_resource = found

    async def save(self, resources: set[Key]) -> None:
        """``acl.AclSink``: each resource's znode as the store has it now, then
        Kafka's change notification."""
        wanted = {key: set(self.store.by_resource.get(key, ())) for key in resources}  # before any await
        for key, bindings in sorted(wanted.items()):
            path = resource_path(key)
            if bindings:
                value = encode_acls(bindings)
                try:
                    await self.zk.create(path, value, makepath=True)
                except NodeExistsError:
                    await self.zk.set(path, value)
            else:
                try:
                    await self.zk.delete(path)
                except NoNodeError:
                    pass
            folder, data = encode_change(key)
            await self.zk.create(f"{folder}/{CHANGE_PREFIX}", data, sequence=True, makepath=True)
