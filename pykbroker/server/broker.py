"""The broker process: listeners, connection tasks, lifecycle.

``Broker`` can be run as an async context manager inside a trio program
(``async with Broker(config) as b: ...``) or through the CLI.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from ..config import BrokerConfig
from ..handlers import load_all
from . import log_tasks
from .connection import serve_connection
from .state import BrokerState

log = logging.getLogger("pykbroker.broker")


class Broker:
    def __init__(self, config: BrokerConfig | dict[str, Any] | None = None) -> None:
        if not isinstance(config, BrokerConfig):
            config = BrokerConfig(overrides={k: str(v) for k, v in (config or {}).items()})
        self.config = config
        load_all()
        self.state = BrokerState(config)
        # metrics, trace and fault rules around every request (server/metrics.py,
        # testing/faults.py); Kafka release emulation (testing/releases.py)
        from .metrics import Instrumentation

        self.instrumentation = Instrumentation(self.state)
        self.faults = self.instrumentation.faults
        if config["pykbroker.as.version"]:
            from ..testing.releases import apply_release

            apply_release(self.state, config["pykbroker.as.version"])
        self.control_bound: tuple[str, int] | None = None
        self.listeners: list[trio.SocketListener] = []
        self.bound: list[tuple[str, int]] = []
        self._nursery: trio.Nursery | None = None
        self._cancel: trio.CancelScope | None = None

    @property
    def bootstrap(self) -> str:
        host, port = self.bound[0]
        return f"{host}:{port}"

    @property
    def control_url(self) -> str | None:
        """``http://host:port`` of the control endpoint, if enabled."""
        if self.control_bound is None:
            return None
        host, port = self.control_bound
        return f"http://{host}:{port}"

    async def start(self, nursery: trio.Nursery) -> None:
        """Open logs, bind listeners and start serving in ``nursery``."""
        if self.config["zookeeper.connect"]:
            # cluster mode (pykbroker/cluster/): the ZooKeeper session and the
            # cluster id come before the logs
            from ..cluster.node import ClusterNode

            self.state.cluster = ClusterNode(self.state)
            await self.state.cluster.connect()
        await trio.to_thread.run_sync(self.state.open)
        log_tasks.prepare(self.state)  # dynamic broker configs; background file deletion
        from ..group import GroupCoordinator

        # created before any listener accepts, so partitions of __consumer_offsets
        # to load already answer COORDINATOR_LOAD_IN_PROGRESS
        self.state.group_coordinator = GroupCoordinator(self.state)
        from ..txn.coordinator import TransactionCoordinator

        # likewise for __transaction_state (COORDINATOR_LOAD_IN_PROGRESS until loaded)
        self.state.txn_coordinator = TransactionCoordinator(self.state)
        from ..share import ShareCoordinator

        # share groups (KIP-932): __share_group_state is loaded before share requests are served
        self.state.share_coordinator = ShareCoordinator(self.state)
        for lst in self.config.listeners:
            listeners = await trio.open_tcp_listeners(lst.port, host=lst.host or None)
            self.listeners.extend(listeners)
            sockname = listeners[0].socket.getsockname()
            self.bound.append((lst.host if lst.host not in ("", "0.0.0.0", "::") else sockname[0],
                               sockname[1]))
        adv = self.config.advertised
        if adv:
            self.state.advertised_host = adv[0].host
            self.state.advertised_port = adv[0].port or self.bound[0][1]
        else:
            host, port = self.bound[0]
            self.state.advertised_host = host if host not in ("0.0.0.0", "::") else "127.0.0.1"
            self.state.advertised_port = port
        self._nursery = nursery
        self.state.nursery = nursery
        if self.state.cluster is not None:
            # read the cluster state, register /brokers/ids/<id>, run for controller
            await self.state.cluster.start(nursery)
        nursery.start_soon(self.state.checkpointer,
                           max(int(self.config["log.flush.offset.checkpoint.interval.ms"]), 1) / 1000)
        # retention, compaction, flush.ms, delayed file deletion (server/log_tasks.py)
        await nursery.start(log_tasks.run, self.state)
        nursery.start_soon(self.state.group_coordinator.run)  # group timers, offset expiry, loading
        # transaction timeouts, transactional-id and producer-id expiry, loading
        nursery.start_soon(self.state.txn_coordinator.run)
        nursery.start_soon(self.state.share_coordinator.run)  # share-group timers, state loading
        if self.config["pykbroker.control.listener"]:  # HTTP control endpoint (server/control.py)
            from .control import serve_control

            self.control_bound = await nursery.start(serve_control, self)
        for listener in self.listeners:
            nursery.start_soon(self._accept_loop, listener)

    async def _accept_loop(self, listener: trio.SocketListener) -> None:
        async with trio.open_nursery() as conns:
            while True:
                try:
                    stream = await listener.accept()
                except (trio.ClosedResourceError, trio.BrokenResourceError):
                    return
                except OSError as e:  # e.g. EMFILE: keep serving the others
                    log.warning("accept failed: %s", e)
                    await trio.sleep(0.01)
                    continue
                conns.start_soon(serve_connection, self.state, stream)

    async def shutdown_cluster(self) -> None:
        """Cluster mode: controlled shutdown (leaderships move first), stop
        replicating, checkpoint high watermarks, close the ZooKeeper session.
        Runs while connections are still served, as Kafka does."""
        if self.state.cluster is not None:
            await self.state.cluster.shutdown()

    async def aclose(self) -> None:
        for listener in self.listeners:
            await listener.aclose()
        self.listeners = []
        if self.state.cluster is not None:
            await self.state.cluster.shutdown()  # no-op if already done
        await trio.to_thread.run_sync(self.state.close)

    async def __aenter__(self) -> "Broker":
        self._cm = trio.open_nursery()
        nursery = await self._cm.__aenter__()
        try:
            await self.start(nursery)
        except BaseException:
            nursery.cancel_scope.cancel()
            await self._cm.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: Any) -> bool | None:
        assert self._nursery is not None
        if self.state.cluster is not None:
            await self.shutdown_cluster()
        self._nursery.cancel_scope.cancel()
        try:
            return await self._cm.__aexit__(*exc)
        finally:
            with trio.CancelScope(shield=True):
                await self.aclose()
