"""Faults and seeded schedules.

A :class:`Fault` names a kind, how its target is chosen when it runs
(``controller``, ``leader`` = the leader of a random partition, ``any``
broker) and how long it lasts. :func:`schedule` draws a sequence from a
seed; the same seed gives the same kinds, targets rules and durations (the
brokers a rule picks depend on what the cluster looks like then).

Kinds (durations relative to the ZooKeeper session timeout ``S``):

=================== ==========================================================
``kill``            ``kill -9``, restarted after ``down`` seconds (the new
                    process waits for its old session to expire, then
                    registers again)
``pause-short``     SIGSTOP for 0.3-0.6 S, then SIGCONT (session survives)
``pause-long``      SIGSTOP for 1.3-1.8 S (session expires; a paused leader
                    must not acknowledge after it is replaced)
``partition-peers`` the broker's listener proxy blackholes the other brokers
                    and its connections to their proxies are blackholed too;
                    clients still reach it
``partition-zk``    its ZooKeeper proxy blackholes it for 0.4-0.7 S
``zk-expire``       the same for 1.3-1.8 S: the session expires
``zk-restart``      ZooKeeper is stopped and started again after 1-3 s
``slow-disk``       every log write and fsync of the broker sleeps 50-400 ms
                    (``PYKBROKER_SLOW_DISK_FILE``, storage/disk_faults.py)
                    for 0.5-1.5 S: its event loop crawls, its ZooKeeper
                    session (kazoo's own thread) stays alive
``isr-wipe``        empties the ISR: the broker is killed and stays down
                    until it left every ISR of the topic, the others
                    acknowledge more for ``duration`` seconds, then all of
                    them are killed and the first one comes back alone (an
                    out-of-sync replica: with ``unclean.leader.election.enable``
                    it leads and what it never got is lost, as Kafka
                    documents; without, the partitions stay offline) for
                    about one S, then the others come back
=================== ==========================================================

With ``Nemesis.run_overlapping`` the faults start every ``every`` seconds
whether or not the previous ones have healed (the issue's "a kill every 8
s"); a fault's broker is chosen among those no running fault holds.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from collections.abc import Callable

if TYPE_CHECKING:
    from .cluster import NemesisCluster

KINDS = ("kill", "pause-short", "pause-long", "partition-peers", "partition-zk", "zk-expire", "zk-restart",
         "slow-disk", "isr-wipe")

# the CI schedule: at least one of each acceptance case (controller kill, pause
# longer than the session timeout, a partition, a session expiry, a ZooKeeper restart)
CI_KINDS = ("kill-controller", "pause-long", "partition-peers", "zk-expire", "zk-restart")


@dataclass
class Fault:
    kind: str
    target: str  # "controller" | "leader" | "any" | "zookeeper"
    duration: float  # seconds the fault lasts (kill: time down before the restart)
    gap: float  # quiet seconds after it healed
    delay_ms: int = 0  # slow-disk: the delay of every write and fsync


@dataclass
class Event:
    kind: str
    broker: int | None
    start: float  # monotonic
    healed: float = 0.0
    note: str = ""
    extra: dict = field(default_factory=dict)


def _fault(rng: random.Random, kind: str, session_s: float, gap: tuple[float, float]) -> Fault:
    g = rng.uniform(*gap)
    if kind == "kill-controller":
        return Fault("kill", "controller", rng.uniform(0.0, 2.0), g)
    if kind == "kill":
        return Fault("kill", rng.choice(["leader", "any", "controller"]), rng.uniform(0.0, 3.0), g)
    if kind == "pause-short":
        return Fault(kind, rng.choice(["leader", "any"]), rng.uniform(0.3, 0.6) * session_s, g)
    if kind == "pause-long":
        return Fault(kind, rng.choice(["leader", "controller"]), rng.uniform(1.3, 1.8) * session_s, g)
    if kind == "partition-peers":
        return Fault(kind, rng.choice(["leader", "any"]), rng.uniform(0.5, 1.2) * session_s, g)
    if kind == "partition-zk":
        return Fault(kind, rng.choice(["leader", "controller"]), rng.uniform(0.4, 0.7) * session_s, g)
    if kind == "zk-expire":
        return Fault(kind, rng.choice(["leader", "controller"]), rng.uniform(1.3, 1.8) * session_s, g)
    if kind == "zk-restart":
        return Fault(kind, "zookeeper", rng.uniform(1.0, 3.0), g)
    if kind == "slow-disk":
        f = Fault(kind, rng.choice(["leader", "any"]), rng.uniform(0.5, 1.5) * session_s, g)
        f.delay_ms = int(rng.uniform(50, 400))
        return f
    if kind == "isr-wipe":
        return Fault(kind, "any", rng.uniform(2.0, 4.0), g)
    raise ValueError(f"unknown fault kind {kind!r}")


def schedule(seed: int, kinds: tuple[str, ...] | list[str], count: int, session_s: float,
             gap: tuple[float, float] = (2.0, 5.0), shuffle: bool = True) -> list[Fault]:
    """``count`` faults: every kind of ``kinds`` once (in a seeded order when
    ``shuffle``), then random kinds from ``kinds``."""
    rng = random.Random(seed)
    first = list(kinds)[:count]
    if shuffle:
        rng.shuffle(first)
    rest = [rng.choice(list(kinds)) for _ in range(count - len(first))]
    return [_fault(rng, k, session_s, gap) for k in first + rest]


class Nemesis:
    """Runs faults against a :class:`NemesisCluster`, one at a time, and
    records what it did (``events``)."""

    def __init__(self, cluster: "NemesisCluster", topic: str, partitions: int, seed: int,
                 log: Callable[[str], None] = print) -> None:
        self.c = cluster
        self.topic = topic
        self.partitions = partitions
        self.rng = random.Random(seed ^ 0x5EED)
        self.events: list[Event] = []
        self.log = log
        self.t0 = time.monotonic()
        self.lock = threading.Lock()
        self.busy: set[int] = set()  # brokers a running fault holds (overlapping faults)
        self.zk_busy = False
        #: the topic allows unclean leader election (isr-wipe then waits for it)
        self.unclean = False

    def run_overlapping(self, plan: list[Fault], every: float) -> None:
        """Start a fault every ``every`` seconds, each in its own thread,
        whether or not the earlier ones have healed; then wait for all."""
        threads = []
        for f in plan:
            t = threading.Thread(target=self._run_quietly, args=(f,), daemon=True, name=f"nemesis-{f.kind}")
            t.start()
            threads.append(t)
            time.sleep(every)
        for t in threads:
            t.join()

    def _run_quietly(self, fault: Fault) -> None:
        try:
            self.run(fault)
        except Exception as e:  # reported in the log; the run goes on
            self.log(f"[nemesis] {fault.kind} failed: {e!r}")

    def _pick(self, target: str) -> int | None:
        with self.lock:
            b = self._pick_locked(target)
            if b is not None:
                self.busy.add(b)
            return b

    def _pick_locked(self, target: str) -> int | None:
        live = [i for i in range(self.c.n) if self.c.brokers[i].is_running() and i not in self.busy]
        if not live:
            return None
        if target == "controller":
            cid = self.c.controller()
            if cid in live:
                return cid
        if target == "leader":
            p = self.rng.randrange(self.partitions)
            lid = self.c.leader(self.topic, p)
            if lid in live:
                return lid
        return self.rng.choice(live)

    def run(self, fault: Fault) -> Event:
        """One fault, then (unless overlapping) wait until every broker is
        registered again and for the quiet gap."""
        c = self.c
        if fault.target == "zookeeper":
            with self.lock:
                if self.zk_busy:
                    ev = Event(fault.kind, None, time.monotonic(), time.monotonic(), note="skipped: ZooKeeper busy")
                    self.events.append(ev)
                    return ev
                self.zk_busy = True
            b = None
        else:
            b = self._pick(fault.target)
            if b is None:
                ev = Event(fault.kind, None, time.monotonic(), time.monotonic(), note="skipped: no free broker")
                self.events.append(ev)
                self.log(f"[nemesis] {fault.kind} skipped: every broker is under a fault")
                return ev
        if fault.kind == "isr-wipe":
            with self.lock:  # it takes every broker
                self.busy |= set(range(c.n))
        try:
            return self._run(fault, b)
        finally:
            with self.lock:
                if fault.kind == "isr-wipe":
                    self.busy.clear()
                elif b is not None:
                    self.busy.discard(b)
                else:
                    self.zk_busy = False

    def _run(self, fault: Fault, b: int | None) -> Event:
        c = self.c
        role = ("controller " if b is not None and b == c.controller() else "") + \
            (f"leader of {sum(1 for p in range(self.partitions) if c.leader(self.topic, p) == b)} "
             if b is not None else "")
        ev = Event(fault.kind, b, time.monotonic(), note=f"{fault.target} -> {role}".strip())
        self.events.append(ev)
        self.log(f"[nemesis +{ev.start - self.t0:6.1f}s] {fault.kind} broker={b} ({ev.note}) "
                 f"for {fault.duration:.1f}s")
        others = [i for i in range(c.n) if i != b]
        if fault.kind == "kill":
            assert b is not None
            c.kill(b)
            time.sleep(fault.duration)
            c.restart(b)  # back when it printed its listening line
            ev.extra["restarted"] = time.monotonic() - ev.start
        elif fault.kind in ("pause-short", "pause-long"):
            assert b is not None
            c.pause(b)
            time.sleep(fault.duration)
            c.resume(b)
        elif fault.kind == "partition-peers":
            assert b is not None
            c.broker_proxies[b].block(lambda src: src is not None and src != b)
            for o in others:
                c.broker_proxies[o].block(lambda src: src == b)
            time.sleep(fault.duration)
            for i in range(c.n):
                c.broker_proxies[i].heal()
        elif fault.kind in ("partition-zk", "zk-expire"):
            assert b is not None
            c.zk_proxies[b].block()
            time.sleep(fault.duration)
            c.zk_proxies[b].heal()
        elif fault.kind == "zk-restart":
            c.restart_zookeeper(fault.duration)
        elif fault.kind == "slow-disk":
            assert b is not None
            c.slow_disk(b, fault.delay_ms)
            ev.extra["delay_ms"] = fault.delay_ms
            time.sleep(fault.duration)
            c.slow_disk(b, 0)
        elif fault.kind == "isr-wipe":
            assert b is not None
            self._isr_wipe(b, others, fault, ev)
        else:
            raise ValueError(fault.kind)
        ev.healed = time.monotonic()
        self.log(f"[nemesis +{ev.healed - self.t0:6.1f}s] healed {fault.kind} broker={b}")
        # one fault at a time: every broker registered again before the quiet gap
        try:
            c.wait_registered(range(c.n), timeout=3 * c.session_ms / 1000 + 60)
        except AssertionError as e:
            ev.extra["not_registered"] = str(e)
            self.log(f"[nemesis] {e}")
        ev.extra["all_registered"] = time.monotonic() - ev.healed
        time.sleep(fault.gap)
        return ev

    def _isr_wipe(self, b: int, others: list[int], fault: Fault, ev: Event) -> None:
        c = self.c
        session_s = c.session_ms / 1000
        c.kill(b)
        deadline = time.monotonic() + 3 * session_s + 30
        while time.monotonic() < deadline and any(
                b in ((c.state(self.topic, p) or {}).get("isr") or []) for p in range(self.partitions)):
            time.sleep(0.2)
        ev.extra["out_of_isr_s"] = round(time.monotonic() - ev.start, 1)
        time.sleep(fault.duration)  # the others acknowledge what b never gets
        for o in others:
            c.kill(o)
        self.log(f"[nemesis +{time.monotonic() - self.t0:6.1f}s] isr-wipe: killed {others}, "
                 f"broker {b} comes back alone")
        c.restart(b)
        # alone: an unclean election (if the topic allows it) once b registered
        deadline = time.monotonic() + (2 * session_s + 10 if self.unclean else 0)
        unclean: list[int] = []
        while time.monotonic() < deadline:
            unclean = [p for p in range(self.partitions)
                       if (st := c.state(self.topic, p)) and st["leader"] == b and st.get("isr") == [b]]
            if len(unclean) == self.partitions:
                break
            time.sleep(0.2)
        time.sleep(max(1.0, session_s))
        unclean = [p for p in range(self.partitions)
                   if (st := c.state(self.topic, p)) and st["leader"] == b and st.get("isr") == [b]]
        offline = [p for p in range(self.partitions) if c.leader(self.topic, p) < 0]
        ev.extra["unclean_partitions"] = unclean
        ev.extra["offline_partitions"] = offline
        self.log(f"[nemesis +{time.monotonic() - self.t0:6.1f}s] isr-wipe: broker {b} alone leads {unclean} "
                 f"(unclean), offline {offline}; the others come back")
        for o in others:
            c.restart(o)
