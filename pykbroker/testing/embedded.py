"""A broker in a background thread, for synchronous and asyncio test code.

::

    from pykbroker.testing import BrokerThread

    with BrokerThread() as kafka:              # in-memory storage, free port
        producer = Producer({"bootstrap.servers": kafka.bootstrap})
        ...
        kafka.faults.fail("Produce", "NOT_LEADER_OR_FOLLOWER", count=2)
        kafka.records("my-topic")

The broker runs its own trio loop in a daemon thread; every helper that
reads broker state runs on that loop (``trio.from_thread``), so it sees a
consistent state. ``faults`` is thread-safe and used directly.

Under trio, use :class:`pykbroker.Broker` itself (``async with Broker({...})``).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import uuid
from typing import Any, TypeVar
from collections.abc import Callable

from ..config import BrokerConfig

T = TypeVar("T")

# Defaults for tests: nothing on disk, one partition per topic, no waiting.
FAST_DEFAULTS: dict[str, str] = {
    "pykbroker.storage": "memory",
    "num.partitions": "1",
    "auto.create.topics.enable": "true",
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.num.partitions": "1",
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "500",
}


def preload() -> None:
    """Import the broker (trio, handlers, message specs, group coordinator) now,
    so the first :meth:`BrokerThread.start` only starts: the plugin calls
    this once per session."""
    import trio  # noqa: F401 - imported to load it now

    from ..handlers import load_all
    from ..protocol import codec
    from .. import group  # noqa: F401 - imported to load it now
    from .. import broker  # noqa: F401 - imported to load it now
    from ..server import faults, inspect, metrics  # noqa: F401 - imported to load it now
    from ..storage import memory  # noqa: F401 - imported to load it now

    load_all()
    codec.load_apis()


def unique_topic_name(prefix: str = "test") -> str:
    """A legal topic name no other test will use: ``<prefix>-<12 hex digits>``."""
    clean = "".join(c if c.isalnum() or c in "._-" else "-" for c in prefix).strip("-.") or "test"
    return f"{clean[:200]}-{uuid.uuid4().hex[:12]}"


class BrokerThread:
    """Start with :meth:`start` (or ``with``), stop with :meth:`stop`.

    ``config``: broker properties (Kafka names, values as str/int/bool) over
    :data:`FAST_DEFAULTS`. Keyword shortcuts: ``storage`` ("memory" or
    "disk"; disk uses a temporary log directory removed at stop unless
    ``log.dirs`` is given), ``host``/``port`` (default 127.0.0.1 and a free
    port), ``control`` (True for an HTTP control endpoint on a free port, or
    "host:port"), ``as_version`` ("3.9" ...), ``trace`` (record every request
    and response; see :meth:`trace`).
    """

    def __init__(self, config: dict[str, Any] | None = None, *, storage: str | None = None,
                 host: str = "127.0.0.1", port: int = 0, control: bool | str = False,
                 as_version: str | None = None, trace: bool = False) -> None:
        props: dict[str, str] = dict(FAST_DEFAULTS)
        props["listeners"] = f"PLAINTEXT://{host}:{port}"
        if control:
            props["pykbroker.control.listener"] = f"{host}:0" if control is True else str(control)
        if as_version:
            props["pykbroker.as.version"] = str(as_version)
        if trace:
            props["pykbroker.trace"] = "true"
        for k, v in (config or {}).items():
            props[k] = str(v).lower() if isinstance(v, bool) else str(v)
        if storage is not None:
            props["pykbroker.storage"] = storage
        self._tmpdir: str | None = None
        if props["pykbroker.storage"] == "disk" and "log.dirs" not in props and "log.dir" not in props:
            self._tmpdir = tempfile.mkdtemp(prefix="pykbroker-")
            props["log.dirs"] = self._tmpdir
        self.config = BrokerConfig(overrides=props)  # invalid properties fail here, in the caller
        self.broker: Any = None
        self.ready_ms: float | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._token: Any = None
        self._cancel: Any = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> "BrokerThread":
        if self._thread is not None:
            raise RuntimeError("already started")
        t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="pykbroker", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"broker not ready after {timeout} s")
        if self._error is not None:
            self._thread.join(5)
            self._thread = None
            raise RuntimeError(f"broker failed to start: {self._error!r}") from self._error
        self.ready_ms = (time.perf_counter() - t0) * 1000
        return self

    def _run(self) -> None:
        import trio

        try:
            trio.run(self._main)
        except BaseException as e:  # reported by start() or stop()
            if self._error is None:
                self._error = e
            self._ready.set()

    async def _main(self) -> None:
        import trio

        from ..broker import Broker

        self._token = trio.lowlevel.current_trio_token()
        self._cancel = trio.CancelScope()
        broker = Broker(self.config)
        async with broker:
            self.broker = broker
            self._ready.set()
            with self._cancel:
                await trio.sleep_forever()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the broker and its thread (idempotent)."""
        t = self._thread
        if t is not None and t.is_alive() and self._token is not None:
            import trio

            try:
                trio.from_thread.run_sync(self._cancel.cancel, trio_token=self._token)
            except trio.RunFinishedError:
                pass
            t.join(timeout)
            if t.is_alive():
                raise TimeoutError(f"broker thread still running after {timeout} s")
        self._thread = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> "BrokerThread":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self.broker is not None

    # -- addresses ----------------------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        """``host:port`` for ``bootstrap.servers``."""
        self._need()
        bootstrap: str = self.broker.bootstrap
        return bootstrap

    def bootstrap_for(self, listener: str) -> str:
        """``host:port`` of the named listener (``SSL``, ``SASL_SSL``, ...)."""
        self._need()
        return str(self.broker.bootstrap_for(listener))

    @property
    def control_url(self) -> str | None:
        self._need()
        url: str | None = self.broker.control_url
        return url

    def _need(self) -> None:
        if self.broker is None:
            raise RuntimeError("broker not started")

    # -- running code on the broker's loop -----------------------------------------------------------
    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` (synchronous) on the broker's trio thread."""
        import trio

        self._need()
        return trio.from_thread.run_sync(lambda: fn(*args), trio_token=self._token)

    # -- fault rules, inspection, metrics -------------------------------------------------------------
    @property
    def faults(self) -> Any:
        """The :class:`~pykbroker.server.faults.FaultInjector` (thread-safe)."""
        self._need()
        return self.broker.faults

    @property
    def state(self) -> Any:
        """The broker state (read it through :meth:`call`)."""
        self._need()
        return self.broker.state

    def create_topic(self, name: str, partitions: int = 1, config: dict[str, str] | None = None) -> str:
        """Create a topic directly (no admin client needed); returns its name."""
        self.call(lambda: self.broker.state.create_topic(name, partitions, config))
        return name

    def topics(self) -> dict[str, int]:
        """{topic: partition count}."""
        return self.call(lambda: {n: len(t.partitions) for n, t in self.broker.state.topics.items()})

    def records(self, topic: str, partition: int | None = None, *, offset: int | None = None,
                limit: int | None = None, include_control: bool = False) -> list[dict[str, Any]]:
        """The records of ``topic`` (see :func:`pykbroker.server.inspect.records`)."""
        from ..server import inspect

        return self.call(lambda: inspect.records(self.broker.state, topic, partition, offset=offset,
                                                 limit=limit, include_control=include_control))

    def values(self, topic: str, partition: int | None = None) -> list[bytes | None]:
        """Just the record values of ``topic``, in offset order per partition."""
        return [r["value"] for r in self.records(topic, partition)]

    def group(self, group_id: str) -> dict[str, Any]:
        """A group's state, members, committed offsets and lag."""
        from ..server import inspect

        return self.call(lambda: inspect.group(self.broker.state, group_id))

    def groups(self) -> list[dict[str, Any]]:
        from ..server import inspect

        return self.call(lambda: inspect.groups(self.broker.state))

    def metrics(self) -> dict[str, Any]:
        """Request counters as data: {"bytes_in", "bytes_out", "apis": {name: {...}}}."""
        return self.call(lambda: self.broker.instrumentation.metrics.snapshot())

    def metrics_text(self) -> str:
        """What /metrics serves (Prometheus text format)."""
        from ..server.metrics import render
        from ..server import inspect

        return self.call(lambda: render(self.broker.state, inspect.groups(self.broker.state)))

    def trace(self, clear: bool = False) -> list[dict[str, Any]]:
        """Trace events so far (requests and responses, decoded and bounded);
        tracing starts at the first call if it was not on."""
        def get() -> list[dict[str, Any]]:
            tracer = self.broker.instrumentation.enable_trace()
            events = list(tracer.events)
            if clear:
                tracer.events.clear()
            return events

        return self.call(get)

    def api_versions(self) -> dict[int, tuple[int, int]]:
        """The ranges advertised in ApiVersions: {api_key: (min, max)}."""
        return self.call(lambda: {e["api_key"]: (e["min_version"], e["max_version"])
                                  for e in self.broker.state.api_versions()})

    def __repr__(self) -> str:
        where = self.broker.bootstrap if self.broker is not None and self.broker.bound else "not started"
        return f"BrokerThread({where})"
