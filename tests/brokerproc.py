"""Run a real pykbroker process for tests.

The broker CLI contract this relies on::

    python -m pykbroker [server.properties] [--override key=value ...]

* Kafka property names (``listeners=PLAINTEXT://127.0.0.1:0``, ``log.dirs=DIR``, ...).
* When ready it prints one stdout line matching ``listening on (\\S+):(\\d+)``;
  with port 0 the printed port is the real one.
* It exits cleanly on SIGTERM / SIGINT.

:class:`BrokerProcess` spawns it with stdout/stderr piped, waits for the ready
line, and keeps draining both pipes into an in-memory log (so the broker can
never block on a full pipe) that failure messages can show.

Every process started here is registered, and :func:`kill_all` (called at
pytest session end and at interpreter exit) kills whatever is still running.
"""

from __future__ import annotations

import atexit
import collections
import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from collections.abc import Iterable, Mapping, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent

READY_RE = re.compile(r"listening on (\S+):(\d+)")

DEFAULT_READY_TIMEOUT = 20.0
DEFAULT_STOP_TIMEOUT = 10.0

_LOG_MAX_LINES = 20_000  # per broker; older lines are dropped (and counted)

_live: "weakref.WeakSet[BrokerProcess]" = weakref.WeakSet()
_live_lock = threading.Lock()


class BrokerError(RuntimeError):
    """The broker process did not behave (failed to start, died, ...)."""


try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved once, in the parent
except (OSError, AttributeError):
    _prctl = None
_PR_SET_PDEATHSIG = 1
_SIGKILL = int(signal.SIGKILL)


def _set_pdeathsig() -> None:  # runs in the child between fork and exec
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, _SIGKILL)


def _port_is_free(host: str, port: int) -> bool:
    """True if a listener could bind host:port now (with SO_REUSEADDR, as trio does)."""
    fam = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host.strip("[]"), port))
        except OSError:
            return False
    return True


def wait_port_free(host: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not _port_is_free(host, port):
        if time.monotonic() > deadline:
            raise BrokerError(f"port {host}:{port} still in use after {timeout:.0f}s")
        time.sleep(0.05)


class BrokerProcess:
    """One real broker process.

    Typical use::

        b = BrokerProcess()
        b.start({"num.partitions": 3}, log_dir=tmp_path / "data")
        ... b.bootstrap ...           # "127.0.0.1:PORT"
        b.restart()                   # same port, same log dir
        b.stop()                      # SIGTERM, then SIGKILL after a timeout

    ``overrides`` are Kafka property names; ``listeners`` defaults to
    ``PLAINTEXT://127.0.0.1:0`` (a free port chosen by the OS) and ``log.dirs``
    to ``log_dir``. Values are passed as ``--override key=value`` arguments
    (booleans as ``true``/``false``).

    ``command`` replaces ``[sys.executable, "-m", "pykbroker"]`` (used by the
    helper's own tests with a fake broker).
    """

    def __init__(
        self,
        *,
        name: str = "broker",
        command: Sequence[str] | None = None,
        config_file: str | os.PathLike | None = None,
        extra_args: Iterable[str] = (),
        env: Mapping[str, str] | None = None,
        ready_timeout: float = DEFAULT_READY_TIMEOUT,
    ) -> None:
        self.name = name
        self.command = list(command) if command else [sys.executable, "-m", "pykbroker"]
        # the real broker's command opens the web console by default; test
        # brokers of ours (any command running pykbroker) do without it (an override can turn it on)
        self._default_command = not command or any("pykbroker" in str(a) for a in command)
        self.config_file = config_file
        self.extra_args = list(extra_args)
        self.extra_env = dict(env or {})
        self.ready_timeout = ready_timeout

        self.overrides: dict[str, str] = {}
        self.log_dir: Path | None = None
        self.host: str | None = None
        self.port: int | None = None
        self.ready_line: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0  # how many times start() succeeded

        self._lines: collections.deque[str] = collections.deque(maxlen=_LOG_MAX_LINES)
        self._dropped = 0
        self._log_lock = threading.Lock()
        self._ready = threading.Event()
        self._threads: list[threading.Thread] = []
        self._own_tmp: tempfile.TemporaryDirectory | None = None

    # ------------------------------------------------------------------ info
    @property
    def bootstrap(self) -> str:
        """``host:port`` for clients' bootstrap.servers."""
        if self.port is None:
            raise BrokerError(f"{self.name} has not been started")
        host = self.host or "127.0.0.1"
        if host in ("0.0.0.0", "::", "[::]", ""):
            host = "127.0.0.1"
        return f"{host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def log(self) -> str:
        """Everything captured so far (all starts), stdout and stderr interleaved."""
        with self._log_lock:
            head = f"[... {self._dropped} earlier lines dropped ...]\n" if self._dropped else ""
            return head + "".join(self._lines)

    def log_tail(self, n: int = 200) -> str:
        with self._log_lock:
            lines = list(self._lines)[-n:]
        return "".join(lines)

    def describe(self) -> str:
        state = "running" if self.is_running() else f"exited rc={self.returncode}"
        return f"{self.name} pid={self.pid} {self.bootstrap if self.port else '?'} ({state})"

    def argv(self) -> list[str]:
        args = list(self.command)
        if self.config_file is not None:
            args.append(str(self.config_file))
        for k, v in self.overrides.items():
            args += ["--override", f"{k}={v}"]
        if self._default_command and "pykbroker.console.enable" not in self.overrides:
            args += ["--override", "pykbroker.console.enable=false"]
        args += self.extra_args
        return args

    # ------------------------------------------------------------- lifecycle
    def start(
        self,
        overrides: Mapping[str, object] | None = None,
        log_dir: str | os.PathLike | None = None,
    ) -> "BrokerProcess":
        """Spawn the broker and wait until it prints its ready line."""
        if self.is_running():
            raise BrokerError(f"{self.name} is already running")
        if log_dir is None and self.log_dir is None:
            self._own_tmp = tempfile.TemporaryDirectory(prefix="pykbroker-test-")
            log_dir = self._own_tmp.name
        if log_dir is not None:
            self.log_dir = Path(log_dir)
        assert self.log_dir is not None
        self.log_dir.mkdir(parents=True, exist_ok=True)

        ov = {"listeners": "PLAINTEXT://127.0.0.1:0", "log.dirs": str(self.log_dir)}
        for k, v in (overrides or {}).items():
            ov[k] = _prop(v)
        self.overrides = ov
        self._spawn()
        return self

    def restart(self, *, kill: bool = False, port_free_timeout: float = 15.0) -> "BrokerProcess":
        """Stop (or SIGKILL with ``kill=True``) and start again on the same port and log dir."""
        if self.port is None:
            raise BrokerError(f"{self.name} was never started")
        if self.is_running():
            self.kill() if kill else self.stop()
        wait_port_free(self.bootstrap.rsplit(":", 1)[0], self.port, port_free_timeout)
        # the first listener (the one in the ready line) keeps its port; others on port 0 get new ones
        first, *rest = str(self.overrides.get("listeners", "PLAINTEXT://127.0.0.1:0")).split(",")
        self.overrides["listeners"] = ",".join([re.sub(r":0$", f":{self.port}", first), *rest])
        want_port = self.port
        self._spawn()
        if self.port != want_port:
            raise BrokerError(f"{self.name} restarted on port {self.port}, expected {want_port}")
        return self

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> int | None:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._append("[brokerproc] did not exit on SIGTERM; sending SIGKILL\n")
                self.proc.kill()
                self.proc.wait()
        self._join_readers()
        return self.proc.returncode

    def kill(self) -> int | None:
        """SIGKILL (a crash, as far as the broker is concerned)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
            self.proc.wait()
        self._join_readers()
        return self.proc.returncode

    def signal(self, sig: int) -> None:
        if self.is_running():
            assert self.proc is not None
            self.proc.send_signal(sig)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to exit by itself; returns its exit code."""
        if self.proc is None:
            raise BrokerError(f"{self.name} has not been started")
        rc = self.proc.wait(timeout)
        self._join_readers()
        return rc

    def close(self) -> None:
        """Stop if running and remove the log dir if this object created it."""
        self.stop()
        if self._own_tmp is not None:
            self._own_tmp.cleanup()
            self._own_tmp = None

    def __enter__(self) -> "BrokerProcess":
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<BrokerProcess {self.describe()}>"

    # -------------------------------------------------------------- internals
    def _spawn(self) -> None:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        # `python -m pykbroker` must find this checkout even if not installed.
        pp = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + pp if pp else "")
        env.update(self.extra_env)

        argv = self.argv()
        self._ready.clear()
        self.ready_line = None
        self._append(f"[brokerproc] start #{self.starts + 1}: {' '.join(argv)}\n")
        use_pdeathsig = threading.current_thread() is threading.main_thread()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=str(self.log_dir.parent if self.log_dir else REPO_ROOT),
            env=env,
            # Kernel kills the broker if the test process dies (only reliable
            # from the main thread: the signal fires when the *thread* exits).
            preexec_fn=_set_pdeathsig if use_pdeathsig else None,
        )
        with _live_lock:
            _live.add(self)
        self._threads = [
            threading.Thread(target=self._drain, args=(self.proc.stdout, True), daemon=True,
                             name=f"{self.name}-stdout"),
            threading.Thread(target=self._drain, args=(self.proc.stderr, False), daemon=True,
                             name=f"{self.name}-stderr"),
        ]
        for t in self._threads:
            t.start()

        deadline = time.monotonic() + self.ready_timeout
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None:
                self._join_readers(1.0)
                raise BrokerError(
                    f"{self.name} exited with code {self.proc.returncode} before it was ready\n"
                    f"--- broker log ---\n{self.log_tail(300)}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise BrokerError(
                    f"{self.name} printed no 'listening on HOST:PORT' line within "
                    f"{self.ready_timeout:.0f}s\n--- broker log ---\n{self.log_tail(300)}"
                )
        self.starts += 1

    def _drain(self, pipe, look_for_ready: bool) -> None:
        try:
            for raw in iter(pipe.readline, b""):
                line = raw.decode("utf-8", "replace")
                if not line.endswith("\n"):
                    line += "\n"
                self._append(line)
                if look_for_ready and not self._ready.is_set():
                    m = READY_RE.search(line)
                    if m:
                        self.host, self.port = m.group(1), int(m.group(2))
                        self.ready_line = line.rstrip("\n")
                        self._ready.set()
        except (OSError, ValueError):
            pass
        finally:
            try:
                pipe.close()
            except OSError:
                pass

    def _append(self, line: str) -> None:
        with self._log_lock:
            if len(self._lines) == self._lines.maxlen:
                self._dropped += 1
            self._lines.append(line)

    def _join_readers(self, timeout: float = 5.0) -> None:
        for t in self._threads:
            t.join(timeout)


def _prop(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return ",".join(_prop(x) for x in v)
    return str(v)


def live_brokers() -> list[BrokerProcess]:
    with _live_lock:
        return [b for b in list(_live) if b.is_running()]


def kill_all() -> list[BrokerProcess]:
    """SIGKILL every broker process this module started that is still running."""
    killed = live_brokers()
    for b in killed:
        try:
            b.kill()
        except Exception:
            pass
    return killed


atexit.register(kill_all)
