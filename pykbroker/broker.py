"""The broker process: listeners, connection tasks, lifecycle.

``Broker`` can be run as an async context manager inside a trio program
(``async with Broker(config) as b: ...``) or through the CLI.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from typing import Any

import trio

from .config import BrokerConfig
from .handlers import load_all
from .protocol.releases import ranges
from .server import log_tasks
from .security.listeners import ListenerSecurity
from .server.connection import ConnectionLimits, serve_connection
from .server.metrics import Instrumentation
from .server.replicas import LocalReplicas
from .server.state import BrokerState, ReplicasFactory, open_state

log = logging.getLogger("pykbroker.broker")


class Broker:
    def __init__(self, config: BrokerConfig | dict[str, Any] | None = None) -> None:
        if not isinstance(config, BrokerConfig):
            config = BrokerConfig(overrides={k: str(v) for k, v in (config or {}).items()})
        self.config = config
        load_all()
        # metrics, trace and fault rules around every request (server/metrics.py,
        # server/faults.py); Kafka release emulation (protocol/releases.py)
        self.instrumentation = Instrumentation(config)
        self.faults = self.instrumentation.faults
        self._api_ranges: dict[int, tuple[int, int]] | None = None
        if config["pykbroker.as.version"]:
            self._api_ranges = ranges(config["pykbroker.as.version"])
        self._state: BrokerState | None = None
        self.control_bound: tuple[str, int] | None = None
        self.listeners: list[trio.SocketListener] = []
        self.bound: list[tuple[str, int]] = []
        self.bound_by_listener: dict[str, tuple[str, int]] = {}  # listener name -> bound (host, port)
        self._listener_names: list[str] = []  # per entry of self.listeners
        self._nursery: trio.Nursery | None = None
        self._cancel: trio.CancelScope | None = None
        self._limits: ConnectionLimits | None = None
        # a descriptor held in reserve: when accept fails for lack of fds it
        # is given up for a moment to accept and close the waiting connection
        # (refused at once instead of hanging in the backlog)
        self._spare_fd: int | None = None
        self._fd_refusals = 0
        self._fd_refusal_logged = 0.0

    @property
    def connection_limits(self) -> ConnectionLimits:
        """max.connections*, queued.max.request.bytes, idle and receive
        timeouts, shared by every listener (server/connection.py)."""
        if self._limits is None:
            self._limits = ConnectionLimits(self.config)
        return self._limits

    @property
    def state(self) -> BrokerState:
        """The broker state (built by :meth:`start`)."""
        if self._state is None:
            raise RuntimeError("the broker is not started")
        return self._state

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
        scheme = "https" if self.config["pykbroker.control.ssl.enable"] else "http"
        return f"{scheme}://{host}:{port}"

    def bootstrap_for(self, listener: str) -> str:
        """``host:port`` of the named listener (e.g. ``SASL_SSL``)."""
        host, port = self.bound_by_listener[listener]
        return f"{host}:{port}"

    async def _replicas(self) -> tuple[ReplicasFactory, str | None]:
        """The replication variant and, in a cluster, the cluster id."""
        if not self.config["zookeeper.connect"]:
            return LocalReplicas, None
        # cluster mode (pykbroker/cluster/): the ZooKeeper
        # session and the cluster id come before the logs
        from .cluster.node import cluster_replicas

        return await cluster_replicas(self.config)

    async def _bind(self) -> tuple[str, int]:
        """Bind every listener (nothing is accepted yet); the advertised endpoint."""
        for lst in self.config.listeners:
            listeners = await trio.open_tcp_listeners(lst.port, host=lst.host or None)
            self.listeners.extend(listeners)
            self._listener_names.extend(lst.name for _ in listeners)
            sockname = listeners[0].socket.getsockname()
            self.bound.append((lst.host if lst.host not in ("", "0.0.0.0", "::") else sockname[0],
                               sockname[1]))
            self.bound_by_listener[lst.name] = self.bound[-1]
        adv = self.config.advertised
        if adv:
            return adv[0].host, adv[0].port or self.bound[0][1]
        host, port = self.bound[0]
        return host if host not in ("0.0.0.0", "::") else "127.0.0.1", port

    async def start(self, nursery: trio.Nursery) -> None:
        """Open logs, bind listeners, build the state and start serving in ``nursery``."""
        replicas, cluster_id = await self._replicas()
        advertised = await self._bind()
        adv_by_name = {a.name: a for a in self.config.advertised or []}
        advertised_by_listener = {
            name: (a.host, a.port or port) if (a := adv_by_name.get(name)) is not None
            else (host if host not in ("0.0.0.0", "::") else "127.0.0.1", port)
            for name, (host, port) in self.bound_by_listener.items()}
        # the whole state (logs, topics, replication, coordinators) before any accept
        self._state = await open_state(self.config, replicas=replicas, hooks=self.instrumentation,
                                       cluster_id=cluster_id, advertised_endpoint=advertised,
                                       api_version_ranges=self._api_ranges, nursery=nursery,
                                       advertised_by_listener=advertised_by_listener)
        state = self._state
        log_tasks.prepare(state)  # background file deletion
        self._nursery = nursery
        # a cluster: read the cluster state, register /brokers/ids/<id>, run for controller
        await state.replicas.start(nursery)
        nursery.start_soon(state.checkpointer,
                           max(int(self.config["log.flush.offset.checkpoint.interval.ms"]), 1) / 1000)
        # retention, compaction, flush.ms, delayed file deletion (server/log_tasks.py)
        await nursery.start(log_tasks.run, state)
        nursery.start_soon(state.group_coordinator.run)  # group timers, offset expiry, loading
        # transaction timeouts, transactional-id and producer-id expiry, loading
        nursery.start_soon(state.txn_coordinator.run)
        nursery.start_soon(state.share_coordinator.run)  # share-group timers, state loading
        if self.config["pykbroker.control.listener"]:  # HTTP control endpoint (server/control.py)
            from .server.control import serve_control

            self.control_bound = await nursery.start(serve_control, self)
        self._reserve_fd()
        for listener, name in zip(self.listeners, self._listener_names, strict=True):
            nursery.start_soon(self._accept_loop, listener, state.security.listeners[name])

    async def open_console(self, listener: str) -> str | None:
        """Open the control endpoint with the web console on ``listener``
        after start (the ``pykbroker`` command's default for a single node);
        its modules are imported in a worker thread, so serving goes on
        meanwhile. None, with a warning, if the address is taken or the
        modules cannot be loaded."""
        import importlib

        if self._nursery is None:
            raise RuntimeError("the broker is not started")
        try:
            # an optional extra: a failure here (e.g. out of file descriptors) never stops the broker
            await trio.to_thread.run_sync(importlib.import_module, "pykbroker.server.console")
        except (ImportError, OSError) as e:
            log.warning("web console not started: cannot load it (%s)", e)
            return None
        from .server.control import serve_control

        self.config.set("pykbroker.control.listener", listener, "DEFAULT_CONFIG")
        try:
            self.control_bound = await self._nursery.start(serve_control, self)
        except OSError as e:
            log.warning("web console not started: cannot listen on %s (%s); choose another address with "
                        "--control HOST:PORT", listener, e)
            return None
        return self.control_url

    async def _accept_loop(self, listener: trio.SocketListener, security: ListenerSecurity) -> None:
        limits = self.connection_limits
        async with trio.open_nursery() as conns:
            while True:
                # max.connections: stop accepting until a slot is free (Kafka's acceptor waits)
                await limits.wait_for_slot()
                try:
                    stream = await listener.accept()
                except (trio.ClosedResourceError, trio.BrokenResourceError):
                    return
                except OSError as e:  # e.g. EMFILE: keep serving the others
                    if e.errno in (errno.EMFILE, errno.ENFILE):
                        await self._refuse_for_fds(listener, e)
                    else:
                        log.warning("accept failed: %s", e)
                        await trio.sleep(0.01)
                    continue
                try:
                    ip = stream.socket.getpeername()[0]
                except OSError:
                    ip = "?"
                if not limits.admit(ip):
                    # max.connections.per.ip(.overrides): closed at once, as Kafka does
                    log.info("closing connection from %s: max.connections.per.ip reached", ip)
                    await stream.aclose()
                    continue
                conns.start_soon(self._serve, stream, ip, security)

    def _reserve_fd(self) -> None:
        if self._spare_fd is None:
            try:
                self._spare_fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                pass

    async def _refuse_for_fds(self, listener: trio.SocketListener, e: OSError) -> None:
        """Out of file descriptors: close the connection waiting to be accepted
        (with the reserve descriptor) and say so, at most every 10 s; existing
        connections and partitions keep being served."""
        self._fd_refusals += 1
        now = time.monotonic()
        if now - self._fd_refusal_logged >= 10:
            log.error("refusing new connections: out of file descriptors (%s); %d refused so far. "
                      "Raise the fd limit (ulimit -n) or lower pykbroker.log.max.open.segments",
                      e.strerror or e, self._fd_refusals)
            self._fd_refusal_logged = now
        if self._spare_fd is not None:
            os.close(self._spare_fd)
            self._spare_fd = None
            try:
                with trio.move_on_after(0.05):
                    sock, _addr = await listener.socket.accept()
                    sock.close()
            except OSError:
                pass
            finally:
                self._reserve_fd()
        await trio.sleep(0.01)

    async def _serve(self, stream: trio.SocketStream, ip: str, security: ListenerSecurity) -> None:
        try:
            await serve_connection(self.state, stream, self.connection_limits, security)
        except Exception:  # never let one connection take the listener (and the broker) down
            log.exception("connection from %s failed", ip)
        finally:
            self.connection_limits.release(ip)

    async def shutdown_cluster(self) -> None:
        """A cluster: controlled shutdown (leaderships move first), stop
        replicating, checkpoint high watermarks, close the ZooKeeper session.
        Runs while connections are still served, as Kafka does."""
        if self._state is not None:
            await self._state.replicas.shutdown()

    async def aclose(self) -> None:
        for listener in self.listeners:
            await listener.aclose()
        self.listeners = []
        if self._spare_fd is not None:
            os.close(self._spare_fd)
            self._spare_fd = None
        if self._state is not None:
            await self._state.replicas.shutdown()  # no-op if already done
            await trio.to_thread.run_sync(self._state.close)

    async def __aenter__(self) -> "Broker":
        self._cm = trio.open_nursery()
        nursery = await self._cm.__aenter__()
        try:
            await self.start(nursery)
        except BaseException:
            nursery.cancel_scope.cancel()
            await self._cm.__aexit__(None, None, None)
            with trio.CancelScope(shield=True):
                await self.aclose()  # the bound listeners, the logs if they were opened
            raise
        return self

    async def __aexit__(self, *exc: Any) -> bool | None:
        assert self._nursery is not None
        await self.shutdown_cluster()
        self._nursery.cancel_scope.cancel()
        try:
            return await self._cm.__aexit__(*exc)
        finally:
            with trio.CancelScope(shield=True):
                await self.aclose()
