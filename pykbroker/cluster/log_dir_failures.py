"""A failed log directory in a cluster: leadership moves off its replicas.

Kafka (ZooKeeper mode): the broker writes the sequential znode
``/log_dir_event_notification/log_dir_event_<seq>``
(``{"version":1,"broker":<id>,"event":1}``); the controller then learns from
LeaderAndIsr responses which replicas are offline and treats them as
failed: they leave the ISR and a leader among them is replaced. We have no
controller-to-broker requests (brokers watch ZooKeeper), so, as for
controlled shutdown, the broker names its offline replicas itself instead
(Kafka's notification znode, which only Kafka's controller reads, is not
written):

- ``/pykbroker/offline_replicas/<id>``, ephemeral:
  ``{"version":1,"broker_epoch":<czxid of its registration>,
  "partitions":[["topic",p],...]}``, written whenever one of its log
  directories fails and again after a new ZooKeeper session.
- Every broker watches those znodes (the view's path hooks); the controller
  reconciles (``Controller._decide`` treats a replica named there as not
  live, for its partition only) and Metadata lists it in
  ``offline_replicas``. An entry whose broker epoch is not the broker's
  current one is ignored: a restarted broker (its directory repaired) is
  back with every replica.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import trio
from kazoo.exceptions import NodeExistsError, NoNodeError

if TYPE_CHECKING:
    from .node import ClusterNode

log = logging.getLogger("pykbroker.cluster")

OFFLINE_REPLICAS = "/pykbroker/offline_replicas"


def encode(broker_epoch: int, partitions: Iterable[tuple[str, int]]) -> bytes:
    return json.dumps({"version": 1, "broker_epoch": broker_epoch,
                       "partitions": [[t, p] for t, p in sorted(partitions)]}, separators=(",", ":")).encode()


def decode(data: bytes) -> tuple[int, frozenset[tuple[str, int]]]:
    obj = json.loads(data)
    return int(obj["broker_epoch"]), frozenset((str(t), int(p)) for t, p in obj.get("partitions", []))


class LogDirFailures:
    """This broker's reports and every broker's offline replicas."""

    def __init__(self, node: "ClusterNode") -> None:
        self.node = node
        self.zk = node.zk
        # broker id -> (broker epoch, its offline replicas), as ZooKeeper has them
        self.offline: dict[int, tuple[int, frozenset[tuple[str, int]]]] = {}
        self._wake = trio.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._reported: tuple[int, frozenset[tuple[str, int]]] | None = None

    def attach(self, view: Any) -> None:
        view.add_path_hook(OFFLINE_REPLICAS, self.on_path, self.resync)

    # --- every broker: the watched picture ------------------------------------------------------------
    def offline_brokers(self, topic: str, partition: int) -> set[int]:
        """The brokers whose replica of the partition is offline (current broker epochs only)."""
        brokers = self.node.view.brokers
        return {b for b, (epoch, parts) in self.offline.items()
                if (topic, partition) in parts and b in brokers and brokers[b].epoch == epoch}

    async def resync(self) -> None:
        await self.zk.ensure_path(OFFLINE_REPLICAS)
        try:
            ids = await self.zk.get_children(OFFLINE_REPLICAS, watch=True)
        except NoNodeError:
            ids = []
        for gone in [b for b in self.offline if str(b) not in ids]:
            del self.offline[gone]
            self._changed()
        for s in ids:
            if s.isdigit():
                await self.refresh(int(s))

    async def on_path(self, path: str) -> None:
        if path == OFFLINE_REPLICAS:
            await self.resync()
        else:
            name = path[len(OFFLINE_REPLICAS) + 1:]
            if name.isdigit():
                await self.refresh(int(name))

    async def refresh(self, broker: int) -> None:
        try:
            data, _ = await self.zk.get(f"{OFFLINE_REPLICAS}/{broker}", watch=True)
            entry = decode(data)
        except NoNodeError:
            if self.offline.pop(broker, None) is not None:
                self._changed()
            return
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed %s/%d", OFFLINE_REPLICAS, broker)
            return
        if self.offline.get(broker) != entry:
            self.offline[broker] = entry
            self._changed()

    def _changed(self) -> None:
        self.node.controller.notify("offline_replicas")

    # --- this broker: reporting its failed directories ------------------------------------------------
    def start(self, nursery: trio.Nursery) -> None:
        logs = self.node.state.logs
        if logs is None:
            return
        self._token = trio.lowlevel.current_trio_token()
        logs.dir_failed_listeners.append(self._on_dir_failed)
        nursery.start_soon(self._report_loop)

    def _on_dir_failed(self, d: Path) -> None:
        """From any thread (the checkpoint writer runs in a worker thread)."""
        if self._token is not None:
            try:
                self._token.run_sync_soon(self._wake.set)
            except trio.RunFinishedError:
                pass

    def session_renewed(self) -> None:
        """A new session dropped the ephemeral znode: write it again."""
        self._reported = None
        self._wake.set()

    async def _report_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            try:
                await self._report()
            except Exception as e:  # ZooKeeper trouble: the next session writes it again
                log.warning("reporting offline replicas failed: %r", e)
                await trio.sleep(0.5)
                self._wake.set()

    async def _report(self) -> None:
        logs = self.node.state.logs
        if logs is None or not logs.offline_dirs or not self.node.registered:
            return
        offline = frozenset(key for key, _ in logs.log_items() if logs.log_dir_of(*key) in logs.offline_dirs)
        entry = (self.node.broker_epoch, offline)
        if entry == self._reported:
            return
        path = f"{OFFLINE_REPLICAS}/{self.node.node_id}"
        data = encode(*entry)
        try:
            await self.zk.create(path, data, ephemeral=True, makepath=True)
        except NodeExistsError:
            await self.zk.set(path, data)
        self._reported = entry
        log.error("log directories %s failed: replicas %s reported offline to the controller",
                  sorted(logs.abs_path(d) for d in logs.offline_dirs), sorted(offline))


__all__ = ["LogDirFailures", "OFFLINE_REPLICAS", "decode", "encode"]
