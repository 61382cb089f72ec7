"""What every command shares: the connection options, errors, progress."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TextIO

from .client import ClientError, KafkaClient


class UsageError(Exception):
    """Bad flags or values: the message goes to stderr, exit status 2."""


def add_connection_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--bootstrap-server", default=os.environ.get("PYKBROKER_BOOTSTRAP", "127.0.0.1:9092"),
                    metavar="HOST:PORT[,...]",
                    help="the broker(s) to connect to (default: $PYKBROKER_BOOTSTRAP or 127.0.0.1:9092)")
    ap.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                    help="socket timeout of each request (default 30)")
    ap.add_argument("--client-id", default="pykbroker-cli", help=argparse.SUPPRESS)


def connect(ns: argparse.Namespace) -> KafkaClient:
    return KafkaClient(ns.bootstrap_server, client_id=ns.client_id, timeout=ns.timeout)


def parse_kv(items: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{what} expects key=value, got {item!r}")
        out[key.strip()] = value
    return out


def run_command(prog: str, body: "CommandBody", argv: list[str]) -> int:
    """Parse, run, and turn failures into a message and an exit status:
    2 for bad usage, 1 for a failure (connection, broker error), 130 on Ctrl-C."""
    ap = body.parser(prog)
    ns = ap.parse_args(argv)
    try:
        return body.run(ns)
    except UsageError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    except ClientError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `... | head`
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0


class CommandBody:
    """One subcommand: its parser and what it does."""

    def parser(self, prog: str) -> argparse.ArgumentParser:  # pragma: no cover - abstract
        raise NotImplementedError

    def run(self, ns: argparse.Namespace) -> int:  # pragma: no cover - abstract
        raise NotImplementedError


class Progress:
    """A one-line counter on stderr, redrawn at most 4 times a second.

    On by default when stderr is a terminal; ``--progress`` forces it on
    (a line per update then, as a log), ``--no-progress`` off."""

    def __init__(self, enabled: bool | None, what: str, total: int | None = None,
                 stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.enabled = self.tty if enabled is None else enabled
        self.what = what
        self.total = total
        self.count = 0
        self.started = time.monotonic()
        self._last = 0.0
        self._shown = False

    def add(self, n: int = 1) -> None:
        self.count += n
        now = time.monotonic()
        if self.enabled and now - self._last >= 0.25:
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        rate = self.count / max(now - self.started, 1e-6)
        of = f"/{self.total}" if self.total is not None else ""
        line = f"{self.what}: {self.count}{of} ({rate:,.0f}/s)"
        if self.tty:
            self.stream.write("\r" + line + "\x1b[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._shown = True

    def done(self) -> None:
        if self.enabled and (self._shown or self.count):
            self._draw(time.monotonic())
            if self.tty:
                self.stream.write("\n")
            self.stream.flush()


def add_progress_args(ap: argparse.ArgumentParser) -> None:
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="show a record counter on stderr (default: when stderr is a terminal)")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no counter")
