"""Client quotas in ZooKeeper (cluster mode), as Kafka keeps them.

- ``/config/users/<user>``, ``/config/users/<user>/clients/<client-id>``,
  ``/config/clients/<client-id>`` and ``/config/ips/<ip>`` hold
  ``{"version":1,"config":{"producer_byte_rate":"1048576"}}``; a default
  entity's name is ``<default>``; names are URL-encoded. A user's znode is
  shared with its SCRAM credentials (cluster/scram_credentials.py): each
  side rewrites only its own keys.
- Each change writes Kafka's notification ``/config/changes/config_change_<seq>``
  (``{"version":2,"entity_path":"users/<user>/clients/<client-id>"}``).
- Every broker watches ``/config/changes`` and re-reads the quotas when a
  notification comes, so quotas altered through any broker are enforced by
  all of them (each broker measures its own traffic, as Kafka).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote, unquote

import trio
from kazoo.exceptions import NodeExistsError, NoNodeError

from ..security import quotas
from . import zkdata as zd

log = logging.getLogger("pykbroker.security")

DEFAULT = "<default>"
ROOTS = {quotas.USER: "users", quotas.CLIENT_ID: "clients", quotas.IP: "ips"}
QUOTA_KEYS = (*quotas.CLIENT_KEYS, *quotas.IP_KEYS)


def _name(n: str | None) -> str:
    return DEFAULT if n is None else quote(n, safe="")


def _unname(n: str) -> str | None:
    return None if n == DEFAULT else unquote(n)


def entity_path(entity: quotas.Entity) -> str:
    """Kafka's entity path: ``users/<u>``, ``clients/<c>``, ``users/<u>/clients/<c>``, ``ips/<ip>``."""
    names = dict(entity)
    if quotas.USER in names and quotas.CLIENT_ID in names:
        return f"users/{_name(names[quotas.USER])}/clients/{_name(names[quotas.CLIENT_ID])}"
    (etype, n), = entity
    return f"{ROOTS[etype]}/{_name(n)}"


def _values(data: bytes | None) -> dict[str, float]:
    out = {}
    for k, v in zd.decode_config(data).items():
        if k in QUOTA_KEYS:
            try:
                out[k] = float(v)
            except ValueError:
                log.warning("ignoring a malformed quota %s=%r in ZooKeeper", k, v)
    return out


def _fmt(v: float) -> str:
    return str(int(v)) if v == int(v) else repr(v)


class ZkQuotas:
    """``quotas.QuotaSink`` for a cluster member, and the reader that keeps its
    ``QuotaStore`` equal to ZooKeeper's quotas."""

    def __init__(self, store: quotas.QuotaStore, zk: Any) -> None:
        self.store = store
        self.zk = zk
        store.path = None  # ZooKeeper is the source of truth
        store.quotas.clear()
        self._lock = trio.Lock()

    def attach(self, view: Any) -> None:
        view.add_path_hook(zd.CONFIG_CHANGES, self.on_path, self.resync)

    async def on_path(self, path: str) -> None:
        if path == zd.CONFIG_CHANGES:
            await self.resync()

    async def _children(self, path: str, watch: bool = False) -> list[str]:
        try:
            return list(await self.zk.get_children(path, watch=watch))
        except NoNodeError:
            return []

    async def _read(self, path: str) -> dict[str, float]:
        try:
            data, _ = await self.zk.get(path)
        except NoNodeError:
            return {}
        return _values(data)

    async def resync(self) -> None:
        """Watch the change notifications, then read every quota znode."""
        async with self._lock:
            await self.zk.ensure_path(zd.CONFIG_CHANGES)
            await self.zk.get_children(zd.CONFIG_CHANGES, watch=True)
            found: dict[quotas.Entity, dict[str, float]] = {}
            for u in await self._children("/config/users"):
                v = await self._read(f"/config/users/{u}")
                if v:
                    found[((quotas.USER, _unname(u)),)] = v
                for c in await self._children(f"/config/users/{u}/clients"):
                    v = await self._read(f"/config/users/{u}/clients/{c}")
                    if v:
                        found[quotas.entity_of([(quotas.USER, _unname(u)), (quotas.CLIENT_ID, _unname(c))])] = v
            for etype in (quotas.CLIENT_ID, quotas.IP):
                for c in await self._children(f"/config/{ROOTS[etype]}"):
                    v = await self._read(f"/config/{ROOTS[etype]}/{c}")
                    if v:
                        found[((etype, _unname(c)),)] = v
            self.store.quotas = found

    async def save(self, entities: set[quotas.Entity]) -> None:
        """``quotas.QuotaSink``: each entity's quota keys as the store has them
        now (other keys of the znode, e.g. SCRAM credentials, are kept)."""
        wanted = {e: dict(self.store.quotas.get(e, {})) for e in entities}  # before any await
        for entity, values in wanted.items():
            epath = entity_path(entity)
            path = f"/config/{epath}"
            try:
                data, _ = await self.zk.get(path)
                config = {k: v for k, v in zd.decode_config(data).items() if k not in QUOTA_KEYS}
            except NoNodeError:
                config = {}
            config.update({k: _fmt(v) for k, v in values.items()})
            value = zd.encode_config(config)
            try:
                await self.zk.create(path, value, makepath=True)
            except NodeExistsError:
                await self.zk.set(path, value)
            await self.zk.create(f"{zd.CONFIG_CHANGES}/{zd.CONFIG_CHANGE_PREFIX}",
                                 zd.encode_config_change(epath), sequence=True, makepath=True)

