"""SCRAM credentials in ZooKeeper (cluster mode), as Kafka keeps them.

``/config/users/<user>`` holds ``{"version":1,"config":{"SCRAM-SHA-512":
"salt=...,stored_key=...,server_key=...,iterations=4096"}}``; a change also
writes Kafka's notification ``/config/changes/config_change_<seq>``
(``{"version":2,"entity_path":"users/<user>"}``) for Kafka's own tools.
Every broker watches ``/config/users`` and each user's znode (through the
cluster view's path hooks), so a credential altered on any broker is used by
all of them; in cluster mode the broker's local file is not used.
"""

from __future__ import annotations

import logging
from typing import Any

from kazoo.exceptions import NodeExistsError, NoNodeError

from ..security import scram
from . import zkdata as zd

log = logging.getLogger("pykbroker.security")

CONFIG_USERS = "/config/users"
CHANGES = "/config/changes/config_change_"


def _user_path(user: str) -> str:
    return f"{CONFIG_USERS}/{user}"


class ZkCredentials:
    def __init__(self, store: scram.CredentialStore, zk: Any) -> None:
        self.store = store
        self.zk = zk
        store.path = None  # ZooKeeper is the source of truth
        store.users.clear()

    def attach(self, view: Any) -> None:
        view.add_path_hook(CONFIG_USERS, self.on_path, self.resync)

    async def resync(self) -> None:
        await self.zk.ensure_path(CONFIG_USERS)
        try:
            names = await self.zk.get_children(CONFIG_USERS, watch=True)
        except NoNodeError:
            names = []
        for gone in set(self.store.users) - set(names):
            self.store.users.pop(gone, None)
        for name in names:
            await self.refresh(name)

    async def on_path(self, path: str) -> None:
        if path == CONFIG_USERS:
            await self.resync()
        else:
            await self.refresh(path[len(CONFIG_USERS) + 1:])

    async def refresh(self, user: str) -> None:
        try:
            data, _ = await self.zk.get(_user_path(user), watch=True)
        except NoNodeError:
            self.store.users.pop(user, None)
            return
        mechs = {}
        for mech, text in zd.decode_config(data).items():
            if mech in scram.MECHANISMS:
                try:
                    mechs[mech] = scram.ScramCredential.from_text(text)
                except (KeyError, ValueError):
                    log.warning("ignoring a malformed %s credential of user %s in ZooKeeper", mech, user)
        if mechs:
            self.store.users[user] = mechs
        else:
            self.store.users.pop(user, None)

    async def save(self, users: set[str]) -> None:
        """``scram.CredentialSink``: each user's znode as the store has it now."""
        for user in users:
            await self.write(user)

    async def write(self, user: str) -> None:
        """Store ``user``'s credentials as they are now in the local store."""
        try:  # the znode may also hold the user's quotas (cluster/quotas.py): keep the other keys
            data, _ = await self.zk.get(_user_path(user))
            config = {k: v for k, v in zd.decode_config(data).items() if k not in scram.MECHANISMS}
        except NoNodeError:
            config = {}
        config.update({m: c.to_text() for m, c in self.store.users.get(user, {}).items()})
        value = zd.encode_config(config)
        try:
            await self.zk.create(_user_path(user), value, makepath=True)
        except NodeExistsError:
            await self.zk.set(_user_path(user), value)
        await self.zk.call("create", CHANGES, b'{"version":2,"entity_path":"users/%s"}' % user.encode(),
                           sequence=True, makepath=True)
