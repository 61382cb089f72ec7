"""A loopback TCP fault proxy (threads, no dependencies).

``FaultProxy(target_port, name)`` listens on a free 127.0.0.1 port and
forwards every connection to ``127.0.0.1:target_port``. Brokers advertise
the proxy's port, so clients and peer brokers all connect through it; each
broker's ``zookeeper.connect`` names a proxy of its own in front of
ZooKeeper, so one broker can be cut from ZooKeeper alone.

Faults are predicates over the *source* of a connection: ``block(pred)``
makes every connection whose source matches a blackhole (open, bytes
swallowed both ways, nothing answered: what a partition looks like to TCP)
and every new one too, until ``heal()``, which closes the blackholed
connections so the peers reconnect. The source is a broker id when the
connecting socket belongs to one of the registered broker processes
(found through ``/proc/net/tcp`` and ``/proc/<pid>/fd``, Linux only), else
``None`` (a client, or an unknown process).
"""

from __future__ import annotations

import os
import select
import socket
import threading
from collections.abc import Callable

Source = int | None
SourceResolver = Callable[[int], Source]  # peer port -> broker id or None


def _socket_inode_of_port(port: int) -> int | None:
    """The inode of the loopback TCP socket whose local port is ``port``."""
    want = f"{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[1].rsplit(":", 1)[1] == want:
                        return int(parts[9])
        except OSError:
            continue
    return None


def _pid_has_inode(pid: int, inode: int) -> bool:
    needle = f"socket:[{inode}]"
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == needle:
                    return True
            except OSError:
                continue
    except OSError:
        return False
    return False


class BrokerPids:
    """Maps a connecting peer port to the broker id owning the socket."""

    def __init__(self) -> None:
        self.pids: dict[int, int] = {}  # broker id -> pid (updated on restart)
        self.lock = threading.Lock()

    def set(self, broker_id: int, pid: int | None) -> None:
        with self.lock:
            if pid is None:
                self.pids.pop(broker_id, None)
            else:
                self.pids[broker_id] = pid

    def __call__(self, peer_port: int) -> Source:
        inode = _socket_inode_of_port(peer_port)
        if inode is None:
            return None
        with self.lock:
            items = list(self.pids.items())
        for bid, pid in items:
            if _pid_has_inode(pid, inode):
                return bid
        return None


class _Conn:
    __slots__ = ("client", "upstream", "source", "blackholed", "closed")

    def __init__(self, client: socket.socket, upstream: socket.socket | None, source: Source) -> None:
        self.client = client
        self.upstream = upstream
        self.source = source
        self.blackholed = upstream is None
        self.closed = False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for s in (self.client, self.upstream):
            if s is None:
                continue
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass


class FaultProxy:
    def __init__(self, target_port: int, name: str, resolver: SourceResolver | None = None,
                 port: int = 0) -> None:
        self.name = name
        self.target_port = target_port
        self.resolver = resolver
        self.lock = threading.Lock()
        self.conns: set[_Conn] = set()
        self._blocked: Callable[[Source], bool] | None = None
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(512)
        self.port = self.listener.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._accept_loop, name=f"proxy-{name}", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # --- faults -----------------------------------------------------------------------------
    def block(self, pred: Callable[[Source], bool] = lambda s: True) -> None:
        """Blackhole every connection (existing and new) whose source matches."""
        with self.lock:
            self._blocked = pred
            for c in self.conns:
                if pred(c.source):
                    c.blackholed = True

    def heal(self) -> None:
        """Lift the block; blackholed connections are closed (peers reconnect)."""
        with self.lock:
            self._blocked = None
            victims = [c for c in self.conns if c.blackholed]
        for c in victims:
            c.close()

    def reset(self, pred: Callable[[Source], bool] = lambda s: True) -> None:
        """Close matching connections now (a connection reset)."""
        with self.lock:
            victims = [c for c in self.conns if pred(c.source)]
        for c in victims:
            c.close()

    def close(self) -> None:
        self._stop = True
        try:
            self.listener.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            c.close()

    # --- plumbing ------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stop:
            try:
                client, addr = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client, addr[1]), daemon=True,
                             name=f"proxy-{self.name}-{addr[1]}").start()

    def _serve(self, client: socket.socket, peer_port: int) -> None:
        source: Source = None
        if self.resolver is not None:
            try:
                source = self.resolver(peer_port)
            except Exception:
                source = None
        with self.lock:
            blocked = self._blocked is not None and self._blocked(source)
        upstream = None
        if not blocked:
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                upstream.settimeout(None)
                upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                client.close()  # target down: connection refused, as without a proxy
                return
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Conn(client, upstream, source)
        with self.lock:
            if self._blocked is not None and self._blocked(source):
                conn.blackholed = True
            self.conns.add(conn)
        try:
            self._pump(conn)
        finally:
            with self.lock:
                self.conns.discard(conn)
            conn.close()

    def _pump(self, conn: _Conn) -> None:
        socks = [conn.client] + ([conn.upstream] if conn.upstream is not None else [])
        while not conn.closed:
            try:
                ready, _, _ = select.select(socks, [], [], 0.5)
            except (OSError, ValueError):
                return
            for s in ready:
                try:
                    data = s.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                if conn.blackholed:
                    continue  # swallowed
                other = conn.upstream if s is conn.client else conn.client
                try:
                    other.sendall(data)
                except OSError:
                    return
