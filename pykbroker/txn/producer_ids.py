"""Producer id allocation: ids are never handed out twice, across restarts.

Kafka takes blocks of 1000 ids from the controller (ZooKeeper's
``/latest_producer_id_block`` or KRaft's ProducerIdsRecord). A lone broker
keeps the same JSON in ``<first log dir>/latest_producer_id_block`` (written
with fsync before the block's first id is used), so a crash can skip ids
but never repeat them. With the in-memory engine nothing is written (and
nothing survives a restart anyway). In cluster mode each broker allocates
from its own file and the node id is interleaved into the low bits, so two
brokers never hand out the same id (a ZooKeeper-backed block is not done).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ..storage.checkpoints import atomic_write

if TYPE_CHECKING:
    from ..server.state import BrokerState

log = logging.getLogger("pykbroker.txn")

BLOCK_SIZE = 1000
FILE_NAME = "latest_producer_id_block"
NODE_BITS = 10  # cluster mode: id = counter << NODE_BITS | node id


class ProducerIdManager:
    def __init__(self, path: Path | None, *, node_id: int = 0, interleave: bool = False) -> None:
        self.path = path
        self.node_id = node_id
        self.interleave = interleave
        self._next = 0
        self._end = -1  # last id of the current block (inclusive)
        self._persisted_end = -1
        if path is not None:
            try:
                data = json.loads(path.read_text())
                self._persisted_end = int(data["block_end"])
                self._next = self._persisted_end + 1
                self._end = self._persisted_end  # the next allocation takes a new block
            except FileNotFoundError:
                pass
            except (ValueError, KeyError, OSError) as e:
                raise RuntimeError(f"{path}: unreadable producer id block: {e}") from e

    def _new_block(self) -> None:
        start = max(self._next, self._persisted_end + 1)
        end = start + BLOCK_SIZE - 1
        if self.path is not None:
            atomic_write(self.path, json.dumps({"version": 1, "broker": self.node_id, "block_start": str(start),
                                                "block_end": str(end)}).encode())
        self._persisted_end = end
        self._next, self._end = start, end

    def next_id(self) -> int:
        """A fresh producer id (may write the block file: a few ms every 1000 ids)."""
        if self._next > self._end:
            self._new_block()
        n = self._next
        self._next += 1
        if self.interleave:
            return (n << NODE_BITS) | (self.node_id & ((1 << NODE_BITS) - 1))
        return n


def manager_for(state: BrokerState) -> ProducerIdManager:
    cfg = state.config
    path = None
    if cfg["pykbroker.storage"] != "memory":
        path = Path(cfg.log_dirs[0]) / FILE_NAME
    return ProducerIdManager(path, node_id=int(cfg["node.id"]),
                             interleave=bool(cfg["zookeeper.connect"]))
