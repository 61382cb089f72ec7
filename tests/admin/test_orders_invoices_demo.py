"""examples/orders_invoices.py: steady state in under 10 s, every order
invoiced exactly once across a worker killed with SIGKILL, Ctrl-C (SIGINT
to the process group, as a terminal sends it) stops everything cleanly."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

DEMO = Path(__file__).resolve().parents[2] / "examples" / "orders_invoices.py"


def _as_in_a_terminal() -> None:
    """Ctrl-C's default action, as a terminal's foreground job has it: a test
    run started in the background by a non-interactive shell (``cmd &``)
    ignores SIGINT, every child inherits that, and Python then installs no
    KeyboardInterrupt handler (the demo never saw the test's Ctrl-C)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Demo:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, str(DEMO), "--port", "0", "--control-port", "0", "--rate", "3000",
             "--status-interval", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            preexec_fn=_as_in_a_terminal)
        self.lines: list[str] = []
        self._q: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._q.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        rx = re.compile(pattern)
        for line in self.lines:
            m = rx.search(line)
            if m:
                return m
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._q.get(timeout=0.2)
            except queue.Empty:
                continue
            self.lines.append(line)
            m = rx.search(line)
            if m:
                return m
        raise AssertionError(f"no {pattern!r} within {timeout} s; output:\n" + "\n".join(self.lines[-60:]))

    def drain(self) -> None:
        while True:
            try:
                self.lines.append(self._q.get_nowait())
            except queue.Empty:
                return


def _read_all(bootstrap: str, topic: str, isolation: str) -> list[dict[str, str]]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{time.time_ns()}",
                  "enable.auto.commit": False, "isolation.level": isolation})
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(6)])
        ends = {}
        for p in range(6):
            ends[p] = c.get_watermark_offsets(TopicPartition(topic, p), 10)[1]
        pos = dict.fromkeys(range(6), 0)
        out = []
        deadline = time.monotonic() + 30
        # read_committed stops at the last stable offset, below the high watermark while a
        # transaction is open: stop at an idle second once every committed record is in
        idle_since = time.monotonic()
        while time.monotonic() < deadline:
            msgs = c.consume(500, 0.3)
            if not msgs:
                if all(pos[p] >= ends[p] for p in range(6)) or time.monotonic() - idle_since > 2:
                    break
                continue
            idle_since = time.monotonic()
            for m in msgs:
                if m.error() is None:
                    out.append(json.loads(m.value()))
                    pos[m.partition()] = m.offset() + 1
        return out
    finally:
        c.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_demo_invoices_every_order_exactly_once_across_a_worker_kill() -> None:
    demo = Demo()
    try:
        bootstrap = demo.wait_for(r"broker on (\S+)", 30).group(1)
        m = demo.wait_for(r"steady state after ([\d.]+) s: 2 workers own 6 partitions; console (\S+)", 30)
        assert float(m.group(1)) < 10
        assert time.monotonic() - demo.started < 15  # interpreter start-up included, on a loaded machine
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/console", m.group(2))
        pids = {n: int(p) for n, p in re.findall(r"started (\S+) \(pid (\d+)\)", "\n".join(demo.lines))}
        assert set(pids) == {"orders", "worker-1", "worker-2"}

        demo.wait_for(r"orders \d{3,}, lag", 30)
        os.kill(pids["worker-1"], signal.SIGKILL)
        demo.wait_for(r"worker-1 exited with status -9", 10)
        # the group notices (session.timeout.ms 6 s) and worker-2 takes every partition
        demo.wait_for(r"lag \d+; worker-2 \[0, 1, 2, 3, 4, 5\]$", 60)
        time.sleep(2)
        os.kill(pids["orders"], signal.SIGTERM)
        demo.wait_for(r"orders +stopped after \d+ orders", 20)
        demo.wait_for(r"lag 0; worker-2 \[0, 1, 2, 3, 4, 5\]$", 60)

        orders = _read_all(bootstrap, "orders", "read_uncommitted")
        invoices = _read_all(bootstrap, "invoices", "read_committed")
        assert len(orders) > 300
        counts = Counter(i["order_id"] for i in invoices)
        dupes = {k: v for k, v in counts.items() if v > 1}
        assert not dupes, f"invoiced more than once: {list(dupes.items())[:5]}"
        assert set(counts) == {o["order_id"] for o in orders}
        assert {i["worker"] for i in invoices} == {"worker-1", "worker-2"}

        # Ctrl-C in a terminal: SIGINT to the whole process group
        t0 = time.monotonic()
        os.killpg(demo.proc.pid, signal.SIGINT)
        try:
            rc = demo.proc.wait(15)
        except subprocess.TimeoutExpired:
            time.sleep(0.5)
            demo.drain()
            alive = [n for n, pid in pids.items() if _alive(pid)]
            raise AssertionError(f"the demo did not stop within 15 s of Ctrl-C; services still running: "
                                 f"{alive}; output:\n" + "\n".join(demo.lines[-40:])) from None
        assert rc == 0
        assert time.monotonic() - t0 < 10
        demo.wait_for(r"demo +stopped$", 5)
        for pid in pids.values():
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        if demo.proc.poll() is None:
            os.killpg(demo.proc.pid, signal.SIGKILL)
            demo.proc.wait()
