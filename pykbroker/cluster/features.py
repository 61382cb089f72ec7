"""Finalized features in ZooKeeper (cluster mode), as Kafka's ZooKeeper mode
keeps them (KIP-584's FeatureZNode).

- ``/feature`` holds ``{"version":2,"status":1,"features":{"transaction.version":
  {"max_version_level":2}}}`` (version 2 of the znode: no min level; status
  1 = enabled); a feature not listed is at level 0. No znode: nobody has
  changed the levels yet, each feature is at the level the advertised
  versions serve (``protocol/features.py``).
- Any broker may write it (Kafka 4.x brokers forward UpdateFeatures to the
  controller): a conditional update on the znode version this broker read
  last, so a concurrent change through another broker fails the update
  (FEATURE_UPDATE_FAILED) instead of being overwritten.
- Every broker watches the znode (through the cluster view's path hooks) and
  bumps its finalized features epoch when the levels change, so ApiVersions
  on every broker lists what UpdateFeatures set on any of them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from kazoo.exceptions import BadVersionError, KazooException, NodeExistsError, NoNodeError

from ..protocol import errors

log = logging.getLogger("pykbroker.cluster")

FEATURE = "/feature"
ZNODE_VERSION = 2
ENABLED = 1


def encode_features(levels: dict[str, int]) -> bytes:
    return json.dumps({"version": ZNODE_VERSION, "status": ENABLED,
                       "features": {k: {"max_version_level": v} for k, v in sorted(levels.items()) if v > 0}},
                      separators=(",", ":")).encode()


def decode_features(data: bytes | None) -> dict[str, int] | None:
    """The finalized levels of a ``/feature`` znode; None when it is disabled
    or malformed (as if absent)."""
    try:
        doc = json.loads(data or b"")
        if doc.get("status") != ENABLED or doc.get("version") not in (1, 2):
            return None
        return {str(k): int(v["max_version_level"]) for k, v in doc["features"].items()
                if int(v["max_version_level"]) > 0}
    except (ValueError, KeyError, TypeError, AttributeError):
        log.warning("ignoring a malformed %s znode: %r", FEATURE, data)
        return None


class ZkFeatures:
    """The finalized levels of ``/feature`` as this broker last read them,
    and their writer (``Replicas.finalized_features`` / ``update_features``
    of a cluster member)."""

    def __init__(self, zk: Any, on_change: Callable[[], None]) -> None:
        self.zk = zk
        self.on_change = on_change
        self.levels: dict[str, int] | None = None
        self.znode_version = -1  # -1: no znode

    def attach(self, view: Any) -> None:
        view.add_path_hook(FEATURE, self.on_path, self.resync)

    async def on_path(self, path: str) -> None:
        if path == FEATURE:
            await self.resync()

    async def resync(self) -> None:
        """Read ``/feature`` and watch it (its creation too)."""
        try:
            data, stat = await self.zk.get(FEATURE, watch=True)
        except NoNodeError:
            if await self.zk.exists(FEATURE, watch=True) is not None:
                return await self.resync()  # created in between
            self._apply(None, -1)
            return
        self._apply(decode_features(data), stat.version)

    def _apply(self, levels: dict[str, int] | None, version: int) -> None:
        changed = levels != self.levels
        self.levels, self.znode_version = levels, max(version, -1)
        if changed:
            log.info("finalized features: %s", levels)
            self.on_change()

    async def save(self, levels: dict[str, int]) -> None:
        data = encode_features(levels)
        try:
            if self.znode_version < 0:
                await self.zk.create(FEATURE, data)
                version = 0
            else:
                stat = await self.zk.set(FEATURE, data, version=self.znode_version)
                version = stat.version
        except (NodeExistsError, BadVersionError) as e:
            await self.resync()
            raise errors.KafkaError(errors.FEATURE_UPDATE_FAILED,
                                    "The finalized features were changed concurrently; retry.") from e
        except (KazooException, RuntimeError) as e:
            raise errors.KafkaError(errors.FEATURE_UPDATE_FAILED,
                                    f"storing the finalized features in ZooKeeper failed: {e!r}") from e
        self._apply(decode_features(data), version)
