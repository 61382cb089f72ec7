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
        self.listeners: list[trio.SocketListener] = []
        self.bound: list[tuple[str, int]] = []
        self._nursery: trio.Nursery | None = None
        self._cancel: trio.CancelScope | None = None

    @property
    def bootstrap(self) -> str:
        host, port = self.bound[0]
        return f"{host}:{port}"

    async def start(self, nursery: trio.Nursery) -> None:
        """Open logs, bind listeners and start serving in ``nursery``."""
        await trio.to_thread.run_sync(self.state.open)
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
        nursery.start_soon(self.state.checkpointer)
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

    async def aclose(self) -> None:
        for listener in self.listeners:
            await listener.aclose()
        self.listeners = []
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
        self._nursery.cancel_scope.cancel()
        try:
            return await self._cm.__aexit__(*exc)
        finally:
            with trio.CancelScope(shield=True):
                await self.aclose()
