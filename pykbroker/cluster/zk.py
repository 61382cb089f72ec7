"""kazoo, bridged into trio.

kazoo runs its own threads (connection, callbacks). Nothing of ours runs in
them: every kazoo callback (a completed request, a fired watch, a session
state change) is handed to the trio thread with
``TrioToken.run_sync_soon``, which is thread-safe and keeps the order in
which kazoo delivered them.

- :meth:`ZkClient.call` issues kazoo's ``*_async`` request and awaits its
  completion without blocking the trio thread.
- Watches: one watcher function for all znodes; fired watches arrive on
  :attr:`ZkClient.events` as ``("watch", WatchedEvent)``, session changes as
  ``("state", KazooState)``.
- **Session lease.** A request that was answered proves that the server
  received something from us at or after the moment we sent it, and a
  ZooKeeper server keeps a session alive for ``session timeout`` after the
  last packet it received. So after a reply to a request sent at ``t`` the
  session is alive until at least ``t + timeout``. :meth:`lease_ok` is true
  while that holds (with a margin); a leader acknowledges writes only then,
  so a broker cut off from ZooKeeper stops acknowledging before its session
  can expire, i.e. before the controller can elect another leader.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import trio

log = logging.getLogger("pykbroker.cluster.zk")


def is_zk_error(e: BaseException) -> bool:
    """A ZooKeeper error (kazoo's), or a group of them only: what concurrent
    ZooKeeper reads raise together when the connection drops (trio's
    nurseries group their failures). Callers that wait for the resync after
    reconnecting treat both alike."""
    from kazoo.exceptions import KazooException

    if isinstance(e, KazooException):
        return True
    if isinstance(e, BaseExceptionGroup):
        return all(is_zk_error(x) for x in e.exceptions)
    return False


def first_leaf(e: BaseException) -> BaseException:
    """The first exception inside nested groups (``e`` itself when it is none):
    one line to log for a group of alike ZooKeeper errors."""
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    return e

# The lease is this fraction of the session timeout after the last answered
# request was sent (the rest is margin).
LEASE_FRACTION = 0.8


def split_connect(connect: str) -> tuple[str, str]:
    """``"h1:2181,h2:2181/chroot"`` -> (``"h1:2181,h2:2181"``, ``"/chroot"`` or ``""``)."""
    hosts, slash, chroot = connect.strip().partition("/")
    chroot = ("/" + chroot).rstrip("/") if slash else ""
    return hosts, chroot


class ZkClient:
    def __init__(self, connect: str, session_timeout_ms: int, connection_timeout_ms: int | None = None) -> None:
        self.hosts, self.chroot = split_connect(connect)
        self.session_timeout = session_timeout_ms / 1000.0
        self.connection_timeout = (connection_timeout_ms or session_timeout_ms) / 1000.0
        self.kz: Any = None
        self._token: trio.lowlevel.TrioToken | None = None
        send, recv = trio.open_memory_channel[tuple[str, Any]](math.inf)
        self._send = send
        self.events = recv
        self._lease_until = -math.inf
        # the lease counts only answers within this session (the one the broker
        # registered with; set by the node)
        self.lease_session: int | None = None
        self.session_id: int | None = None
        self.closed = False

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        from kazoo.client import KazooClient
        from kazoo.retry import KazooRetry

        self._token = trio.lowlevel.current_trio_token()
        if self.chroot:
            await trio.to_thread.run_sync(self._ensure_chroot)
        retry = KazooRetry(max_tries=-1, delay=0.02, backoff=1.5, max_jitter=0.2,
                           max_delay=max(0.05, min(1.0, self.session_timeout / 4)))
        self.kz = KazooClient(hosts=self.hosts + self.chroot, timeout=self.session_timeout,
                              connection_retry=retry, command_retry=None)
        self.kz.add_listener(self._on_state)
        await trio.to_thread.run_sync(self.kz.start, self.connection_timeout)
        self.session_id = self.current_session()

    def _ensure_chroot(self) -> None:
        from kazoo.client import KazooClient

        kz = KazooClient(hosts=self.hosts, timeout=self.session_timeout)
        kz.start(self.connection_timeout)
        try:
            kz.ensure_path(self.chroot)
        finally:
            kz.stop()
            kz.close()

    async def close(self) -> None:
        """Close the session (ephemeral znodes go at once)."""
        if self.kz is None or self.closed:
            return
        self.closed = True
        self._lease_until = -math.inf
        kz = self.kz

        def stop() -> None:
            try:
                kz.stop()
                kz.close()
            except Exception:  # closing anyway
                log.debug("closing the ZooKeeper client failed", exc_info=True)

        await trio.to_thread.run_sync(stop)

    # --- callbacks from kazoo threads -----------------------------------------------------------
    def _post(self, item: tuple[str, Any]) -> None:
        token = self._token
        if token is None:
            return
        try:
            token.run_sync_soon(self._deliver, item)
        except trio.RunFinishedError:
            pass

    def _deliver(self, item: tuple[str, Any]) -> None:
        try:
            self._send.send_nowait(item)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    def connected(self) -> bool:
        """Kazoo holds a connection now."""
        return self.kz is not None and bool(self.kz.connected)

    def post_state(self, state: Any) -> None:
        """Deliver a session state event again (from the event loop's thread):
        the node's retry of a connected state's work that failed."""
        self._deliver(("state", state))

    def _on_state(self, state: Any) -> None:  # kazoo thread
        from kazoo.protocol.states import KazooState

        if state != KazooState.CONNECTED:
            # at once, from kazoo's thread: no acknowledgement after this point
            self._lease_until = -math.inf
        self._post(("state", state))

    def current_session(self) -> int | None:
        cid = self.kz.client_id if self.kz is not None else None
        return cid[0] if cid else None

    def watcher(self, event: Any) -> None:  # kazoo thread; one function for every watch
        self._post(("watch", event))

    # --- the lease ---------------------------------------------------------------------------------
    def _renew(self, sent_at: float) -> None:
        until = sent_at + self.session_timeout * LEASE_FRACTION
        if until > self._lease_until:
            self._lease_until = until

    def drop_lease(self) -> None:
        self._lease_until = -math.inf

    def lease_ok(self) -> bool:
        return trio.current_time() < self._lease_until

    @property
    def lease_remaining(self) -> float:
        return self._lease_until - trio.current_time()

    # --- requests --------------------------------------------------------------------------------------
    async def await_result(self, res: Any) -> Any:
        """Await a kazoo IAsyncResult (renewing the lease when the server answered)."""
        done = trio.Event()
        token = self._token
        assert token is not None

        def cb(_: Any) -> None:
            try:
                token.run_sync_soon(done.set)
            except trio.RunFinishedError:
                pass

        from kazoo.exceptions import ConnectionClosedError, ConnectionLoss, KazooException, SessionExpiredError

        sent_at = trio.current_time()
        sid = self.current_session()
        res.rawlink(cb)
        await done.wait()
        same = sid is not None and sid == self.lease_session == self.current_session()
        try:
            value = res.get_nowait()  # raises the request's exception
        except (ConnectionLoss, SessionExpiredError, ConnectionClosedError):
            raise
        except KazooException:
            if same:
                self._renew(sent_at)  # the server answered (NoNode, BadVersion, ...)
            raise
        if same:
            self._renew(sent_at)
        return value

    async def call(self, method: str, *args: Any, **kw: Any) -> Any:
        """``await zk.call("get", path, watch=zk.watcher)`` = kazoo's ``get_async``."""
        if self.kz is None:
            raise RuntimeError("ZooKeeper client not started")
        return await self.await_result(getattr(self.kz, method + "_async")(*args, **kw))

    async def get(self, path: str, watch: bool = False) -> tuple[bytes, Any]:
        got: tuple[bytes, Any] = await self.call("get", path, watch=self.watcher if watch else None)
        return got

    async def get_children(self, path: str, watch: bool = False) -> list[str]:
        children: list[str] = await self.call("get_children", path, watch=self.watcher if watch else None)
        return children

    async def exists(self, path: str, watch: bool = False) -> Any:
        return await self.call("exists", path, watch=self.watcher if watch else None)

    async def create(self, path: str, value: bytes = b"", *, ephemeral: bool = False,
                     sequence: bool = False, makepath: bool = False) -> str:
        created: str = await self.call("create", path, value, ephemeral=ephemeral, sequence=sequence,
                                       makepath=makepath)
        return created

    async def set(self, path: str, value: bytes, version: int = -1) -> Any:
        return await self.call("set", path, value, version=version)

    async def delete(self, path: str, version: int = -1) -> Any:
        return await self.call("delete", path, version=version)

    async def ensure_path(self, path: str) -> None:
        from kazoo.exceptions import NodeExistsError

        try:
            await self.create(path, b"", makepath=True)
        except NodeExistsError:
            pass

    async def delete_recursive(self, path: str) -> None:
        from kazoo.exceptions import NoNodeError, NotEmptyError

        for _ in range(10):
            try:
                children = await self.get_children(path)
            except NoNodeError:
                return
            for c in children:
                await self.delete_recursive(f"{path}/{c}")
            try:
                await self.delete(path)
                return
            except NoNodeError:
                return
            except NotEmptyError:
                continue

    async def commit(self, ops: list[tuple[str, tuple[Any, ...], dict[str, Any]]]) -> list[Any]:
        """A multi-op transaction:
        ``[("check", (path, version), {}), ("set_data", (path, data), {"version": v}), ...]``.
        Returns kazoo's results; raises the first operation's error if it failed."""
        assert self.kz is not None
        tx = self.kz.transaction()
        for name, args, kw in ops:
            getattr(tx, name)(*args, **kw)
        results: list[Any] = await self.await_result(tx.commit_async())
        from kazoo.exceptions import RolledBackError

        for r in results:
            if isinstance(r, Exception) and not isinstance(r, RolledBackError):
                raise r
        return results
