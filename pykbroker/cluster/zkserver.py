"""A local, standalone ZooKeeper from Debian's ``zookeeper`` package, for
tests, ``scripts/cluster`` and the benchmarks.

It writes its own ``zoo.cfg`` (tmp dataDir, loopback, a free port, the admin
server and four-letter-word commands off, a short tick so that short session
timeouts are allowed) and runs ``zkServer.sh start-foreground`` in its own
process group, so :meth:`ZkServer.stop` takes the JVM down too.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ZK_SERVER_SH = "/usr/share/zookeeper/bin/zkServer.sh"


def _die_with_parent() -> None:  # in the child, between fork and exec
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def zookeeper_available() -> bool:
    return Path(ZK_SERVER_SH).exists() and shutil.which("java") is not None


class ZkServer:
    """``with ZkServer() as zk: ... zk.connect ...`` (``127.0.0.1:PORT``)."""

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, *, port: int = 0,
                 tick_ms: int = 100, max_session_timeout_ms: int = 60000) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="pykbroker-zk-")
            data_dir = self._tmp.name
        self.dir = Path(data_dir)
        self.port = port or free_port()
        self.tick_ms = tick_ms
        self.max_session_timeout_ms = max_session_timeout_ms
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def connect(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> "ZkServer":
        if not zookeeper_available():
            raise RuntimeError(f"ZooKeeper not found ({ZK_SERVER_SH} and java are needed: "
                               "apt-get install zookeeper)")
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        cfg = self.dir / "zoo.cfg"
        cfg.write_text(
            f"tickTime={self.tick_ms}\n"
            f"dataDir={data}\n"
            f"clientPort={self.port}\n"
            "clientPortAddress=127.0.0.1\n"
            "maxClientCnxns=0\n"
            "admin.enableServer=false\n"
            "4lw.commands.whitelist=\n"
            f"minSessionTimeout={2 * self.tick_ms}\n"
            f"maxSessionTimeout={self.max_session_timeout_ms}\n"
            "initLimit=10\nsyncLimit=5\n"
            "forceSync=no\n"
        )
        env = dict(os.environ, JMXDISABLE="true", ZOO_LOG_DIR=str(self.dir),
                   SERVER_JVMFLAGS="-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1")
        log = open(self.dir / "zookeeper.out", "ab")
        # own process group (stop() signals the whole group); the JVM (exec'ed by
        # zkServer.sh) dies with its parent (PR_SET_PDEATHSIG) if we are killed
        self.proc = subprocess.Popen([ZK_SERVER_SH, "start-foreground", str(cfg)], stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ZooKeeper exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self._ready():
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"ZooKeeper not ready within {timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(0.1)

    def _ready(self) -> bool:
        # The port must be open and a ZooKeeper session handshake succeed.
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                pass
        except OSError:
            return False
        try:
            from kazoo.client import KazooClient
        except ImportError:  # no kazoo: the open port will do
            return True
        import logging

        quiet = logging.getLogger("pykbroker.zkserver.probe")
        quiet.addHandler(logging.NullHandler())
        quiet.propagate = False
        kz = KazooClient(hosts=self.connect, timeout=2.0, logger=quiet)
        try:
            kz.start(2.0)
            return True
        except Exception:  # not up yet
            return False
        finally:
            try:
                kz.stop()
                kz.close()
            except Exception:
                pass

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = (self.dir / "zookeeper.out").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "ZkServer":
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
