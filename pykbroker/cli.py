"""``pykbroker [server.properties] [--override key=value ...]`` (Kafka's convention).

``pykbroker ctl ...`` is the control endpoint's client (ctl.py),
``pykbroker reassign ...`` the partition reassignment tool (reassign.py)."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
import time
from pathlib import Path

import trio

from . import __version__
from .admin import COMMANDS as ADMIN_COMMANDS  # Kafka's shell tools (imports nothing heavy)
from .config import BrokerConfig, ConfigError, read_properties

log = logging.getLogger("pykbroker")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="pykbroker",
        description="A Kafka-protocol broker. Properties use Kafka's names "
        "(listeners, log.dirs, num.partitions, ...).",
        epilog="Kafka's shell tools, as clients of any Kafka broker (docs/cli.md): "
        "pykbroker topics|groups|produce|consume --help; the control endpoint's client: "
        "pykbroker ctl --help.")
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    ap.add_argument("properties", nargs="?", help="a server.properties file")
    ap.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                    help="set a property (repeatable); wins over the file")
    ap.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ...")
    # testing and observability (docs/testing.md); `pykbroker ctl ...` is the control client
    ap.add_argument("--log-format", choices=["text", "json"], default="text",
                    help="json: one JSON object per log line")
    ap.add_argument("--as-version", metavar="KAFKA_RELEASE",
                    help="advertise and accept only this Kafka release's API versions (e.g. 3.9)")
    ap.add_argument("--trace", action="store_true",
                    help="log every request and response, decoded (logger pykbroker.trace)")
    ap.add_argument("--control", metavar="HOST:PORT",
                    help="open the HTTP control endpoint (metrics, fault rules, the web console) on a "
                    "loopback address (default for a single node: the console on " + DEFAULT_CONSOLE + ")")
    ap.add_argument("--no-console", action="store_true",
                    help="no web console (pykbroker.console.enable=false)")
    return ap.parse_args(argv)


def build_config(ns: argparse.Namespace) -> BrokerConfig:
    file_props = {}
    if ns.properties:
        path = Path(ns.properties)
        if not path.is_file():
            raise ConfigError(f"properties file {path} does not exist")
        file_props = read_properties(path)
    overrides = {}
    for item in ns.override:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--override expects key=value, got {item!r}")
        overrides[key.strip()] = value
    if getattr(ns, "as_version", None):
        overrides["pykbroker.as.version"] = ns.as_version
    if getattr(ns, "trace", False):
        overrides["pykbroker.trace"] = "true"
    if getattr(ns, "control", None):
        overrides["pykbroker.control.listener"] = ns.control
    if getattr(ns, "no_console", False):
        overrides["pykbroker.console.enable"] = "false"
    # the single-node dev command: the web console on by default (docs/console.md)
    given = {**file_props, **overrides}
    if "pykbroker.console.enable" not in given and not given.get("zookeeper.connect"):
        overrides["pykbroker.console.enable"] = "true"
    return BrokerConfig(overrides=overrides, file_props=file_props)


async def run(config: BrokerConfig, started_at: float) -> None:
    # imported here, not at the top: `pykbroker ctl` must not load the broker
    from .broker import Broker

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        broker = Broker(config)
        async with broker:
            host, port = broker.bound[0]
            ms = (time.monotonic() - started_at) * 1000
            print(f"pykbroker ready: listening on {host}:{port} "
                  f"(node.id={config.node_id}, "
                  + ("storage=memory, " if config["pykbroker.storage"] == "memory"
                     else f"log.dirs={','.join(map(str, config.log_dirs))}, ")
                  + (f"control={broker.control_url}, " if broker.control_url else "")
                  + f"{ms:.0f} ms)", flush=True)
            settle_gc()
            if config["pykbroker.console.enable"] and not config["pykbroker.control.listener"]:
                # after the ready line, so start-up is not slowed by the HTTP stack
                url = await broker.open_console(DEFAULT_CONSOLE)
                if url:
                    print(f"pykbroker console: {url}/console", flush=True)
            elif config["pykbroker.console.enable"] and broker.control_url:
                print(f"pykbroker console: {broker.control_url}/console", flush=True)
            async for signum in signals:
                log.info("received %s, shutting down", signal.Signals(signum).name)
                break
    log.info("stopped")


DEFAULT_CONSOLE = "127.0.0.1:9644"


def settle_gc() -> None:
    """After start-up (issue 17, tail latency): what start-up allocated
    (modules, classes, config, API tables) lives as long as the process, so
    move it out of the collector's reach with ``gc.freeze()``: full collections
    then scan only what serving allocates. The young generation is collected
    less often (request objects die young and are mostly freed by reference
    counting; the cyclic collector only finds cycles). ``PYKBROKER_GC=default``
    keeps CPython's defaults (for before/after comparisons)."""
    if os.environ.get("PYKBROKER_GC", "") == "default":
        return
    # no gc.collect() first: a full collection here took 17 ms (375 ms on a
    # loaded machine) just when the first clients connect; the little garbage
    # start-up leaves in cycles is frozen with the rest
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD[0], GC_THRESHOLD[1], GC_THRESHOLD[2])


# gen0 allocations between young collections, then how many young (and middle)
# collections per older one; CPython's default is (700, 10, 10)
GC_THRESHOLD = (10_000, 20, 20)


def _process_age_s() -> float:
    """Seconds since this process started (Linux /proc), else 0."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rpartition(")")[2].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def main(argv: list[str] | None = None) -> int:
    # "ready in N ms" counts from process start, interpreter start-up included.
    started = time.monotonic() - _process_age_s()
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "ctl":  # the control endpoint's client (ctl.py)
        # imported here: its urllib.request costs the broker's start-up ~60 ms
        from .ctl import main as ctl_main

        return ctl_main(args[1:])
    if args and args[0] in ADMIN_COMMANDS:  # Kafka's shell tools (admin/): a client, not the broker
        from .admin import run as admin_run

        return admin_run(args[0], args[1:])

    if args and args[0] == "reassign":  # kafka-reassign-partitions (reassign.py)
        from .reassign import main as reassign_main

        return reassign_main(args[1:])
    ns = parse_args(argv)
    logging.basicConfig(level=ns.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if ns.log_format == "json":
        from .server.metrics import JsonLogFormatter

        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonLogFormatter())
    if ns.trace:
        logging.getLogger("pykbroker.trace").setLevel(logging.INFO)
    try:
        config = build_config(ns)
    except ConfigError as e:
        print(f"pykbroker: configuration error: {e}", file=sys.stderr)
        return 2
    try:
        trio.run(run, config, started)
    except OSError as e:
        print(f"pykbroker: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
