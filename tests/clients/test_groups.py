"""Consumer groups with real clients over real sockets (issue 4 acceptance).

For kafka-python, confluent-kafka (librdkafka) and aiokafka:
- 3 consumers / 6 partitions own 2 each and every record is consumed
  exactly once (content checked); one closes, the other two own 3 and 3 and
  consume the rest with nothing lost and nothing twice;
- a 7th consumer on 6 partitions stays idle; a second group on the same
  topic gets every record too;
- commit, stop every consumer, restart the broker: a new consumer resumes
  exactly at the committed offsets.
librdkafka only: cooperative-sticky incremental rebalance; a static member
restarted within session.timeout.ms gets its partitions back while the
others see no rebalance; group.protocol=consumer (KIP-848) end to end; a
consumer killed with SIGKILL is expelled after session.timeout.ms.

Consumers commit their consumed offsets when partitions are revoked (the
standard pattern), which is what makes "exactly once" hold across
rebalances. Each consumer polls continuously in its own thread (as
applications do); the test thread sends it commands (commit, close) that run
between two polls, so no client is used from two threads. (Polling several
kafka-python consumers round-robin with short timeouts trips a kafka-python
3.0 quirk: a JoinGroup that completes between two poll() calls is sent
again, and a leader's repeated JoinGroup restarts the rebalance.)
"""

from __future__ import annotations

import asyncio
import collections
import signal
import subprocess
import sys
import textwrap
import threading
import time
import traceback
import uuid
from typing import Any
from collections.abc import Callable

import pytest

from clientlib import Rec, create_topic, expected_records, kafka_python_group_metadata, produce_confluent

BROKER = {"group.min.session.timeout.ms": 1000, "group.consumer.heartbeat.interval.ms": 300,
          "group.consumer.session.timeout.ms": 3000}
SESSION_MS, HEARTBEAT_MS = 3000, 300
CLIENTS = ["kafka-python", "confluent-kafka", "aiokafka"]
DEADLINE = 45.0


# -- one consumer of a group, the same small interface for every client ----------------------

class Member:
    def __init__(self, name: str) -> None:
        self.name = name
        self.assigns: list[set[int]] = []  # partitions given in each assign callback
        self.revokes: list[set[int]] = []
        self.commit_on_revoke = True

    def poll(self, timeout: float) -> list[Rec]: ...
    def assignment(self) -> set[int]: ...
    def commit(self, offsets: dict[int, int] | None = None) -> None: ...
    def close(self) -> None: ...


class ConfluentMember(Member):
    def __init__(self, name: str, bootstrap: str, group: str, topic: str, extra: dict | None = None) -> None:
        from confluent_kafka import Consumer

        super().__init__(name)
        self.topic = topic
        conf = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                "enable.auto.commit": False, "session.timeout.ms": SESSION_MS,
                "heartbeat.interval.ms": HEARTBEAT_MS}
        conf.update(extra or {})
        if conf.get("group.protocol") == "consumer":
            for k in ("session.timeout.ms", "heartbeat.interval.ms"):
                conf.pop(k)
        self.c = Consumer({k: v for k, v in conf.items() if v is not None})
        self.c.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                         on_lost=self._on_lost)

    def _on_assign(self, c: Any, parts: list) -> None:
        self.assigns.append({p.partition for p in parts})

    def _on_revoke(self, c: Any, parts: list) -> None:
        self.revokes.append({p.partition for p in parts})
        if parts and self.commit_on_revoke:
            self._commit_quietly()

    def _on_lost(self, c: Any, parts: list) -> None:
        self.revokes.append({p.partition for p in parts})

    def _commit_quietly(self) -> None:
        from confluent_kafka import KafkaError, KafkaException

        try:
            self.c.commit(asynchronous=False)
        except KafkaException as e:
            if e.args[0].code() != KafkaError._NO_OFFSET:
                raise

    def poll(self, timeout: float) -> list[Rec]:
        out = []
        for m in self.c.consume(500, timeout):
            if m.error():
                raise AssertionError(f"{self.name}: {m.error()}")
            out.append(Rec(m.partition(), m.offset(), m.key(), m.value(), tuple(m.headers() or ()),
                           m.timestamp()[1]))
        return out

    def assignment(self) -> set[int]:
        return {tp.partition for tp in self.c.assignment()}

    def commit(self, offsets: dict[int, int] | None = None) -> None:
        from confluent_kafka import TopicPartition

        if offsets is None:
            self._commit_quietly()
        else:
            self.c.commit(offsets=[TopicPartition(self.topic, p, o) for p, o in offsets.items()],
                          asynchronous=False)

    def committed(self, partitions: list[int]) -> dict[int, int]:
        from confluent_kafka import TopicPartition

        tps = self.c.committed([TopicPartition(self.topic, p) for p in partitions], timeout=10)
        return {tp.partition: tp.offset for tp in tps}

    def close(self) -> None:
        self.c.close()


class KafkaPythonMember(Member):
    def __init__(self, name: str, bootstrap: str, group: str, topic: str, extra: dict | None = None) -> None:
        from kafka import AsyncConsumerRebalanceListener, KafkaConsumer

        super().__init__(name)
        self.topic = topic
        me = self

        class Listener(AsyncConsumerRebalanceListener):
            # kafka-python 3 runs listeners on its IO thread: blocking calls are
            # refused there, so the commit is awaited
            async def on_partitions_revoked(self, revoked):  # type: ignore[no-untyped-def]
                me.revokes.append({tp.partition for tp in revoked})
                if revoked and me.commit_on_revoke:
                    await me.c.commit_async()

            async def on_partitions_assigned(self, assigned):  # type: ignore[no-untyped-def]
                me.assigns.append({tp.partition for tp in assigned})

        # metadata_max_age_ms: a group leader that assigned before its metadata
        # had the topic ("No partition metadata for topic") rejoins only when
        # its metadata changes (the default is 5 minutes); see also
        # kafka_python_group_metadata, which avoids that first empty assignment
        self.c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                               enable_auto_commit=False, session_timeout_ms=SESSION_MS,
                               heartbeat_interval_ms=HEARTBEAT_MS, metadata_max_age_ms=5000, **(extra or {}))
        self.c.subscribe([topic], listener=Listener())
        kafka_python_group_metadata(self.c)

    def poll(self, timeout: float) -> list[Rec]:
        out = []
        for _, msgs in self.c.poll(timeout_ms=int(timeout * 1000)).items():
            for m in msgs:
                out.append(Rec(m.partition, m.offset, m.key, m.value, tuple((k, v) for k, v in m.headers),
                               m.timestamp))
        return out

    def assignment(self) -> set[int]:
        return {tp.partition for tp in self.c.assignment()}

    def commit(self, offsets: dict[int, int] | None = None) -> None:
        from kafka import OffsetAndMetadata, TopicPartition

        if offsets is None:
            self.c.commit()
        else:
            self.c.commit({TopicPartition(self.topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()})

    def close(self) -> None:
        self.c.close()


class AioLoop:
    """One asyncio loop in a thread for all aiokafka consumers of a test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class AioMember(Member):
    def __init__(self, name: str, bootstrap: str, group: str, topic: str, extra: dict | None = None,
                 *, loop: AioLoop) -> None:
        from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener

        super().__init__(name)
        self.topic = topic
        self.loop = loop
        me = self

        class Listener(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked):  # type: ignore[no-untyped-def]
                me.revokes.append({tp.partition for tp in revoked})
                if revoked and me.commit_on_revoke:
                    await me.c.commit()

            async def on_partitions_assigned(self, assigned):  # type: ignore[no-untyped-def]
                me.assigns.append({tp.partition for tp in assigned})

        async def make() -> Any:
            c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                                 enable_auto_commit=False, session_timeout_ms=SESSION_MS,
                                 heartbeat_interval_ms=HEARTBEAT_MS, **(extra or {}))
            await c.start()
            c.subscribe([topic], listener=Listener())
            return c

        self.c = loop.run(make())

    def poll(self, timeout: float) -> list[Rec]:
        batch = self.loop.run(self.c.getmany(timeout_ms=int(timeout * 1000)))
        return [Rec(m.partition, m.offset, m.key, m.value, tuple((k, v) for k, v in m.headers), m.timestamp)
                for msgs in batch.values() for m in msgs]

    def assignment(self) -> set[int]:
        return {tp.partition for tp in self.c.assignment()}

    def commit(self, offsets: dict[int, int] | None = None) -> None:
        from aiokafka import TopicPartition

        if offsets is None:
            self.loop.run(self.c.commit())
        else:
            self.loop.run(self.c.commit({TopicPartition(self.topic, p): o for p, o in offsets.items()}))

    def close(self) -> None:
        self.loop.run(self.c.stop())


class Runner:
    """Polls one member in its own thread; runs commands between polls."""

    def __init__(self, member: Member, ledger: "Ledger") -> None:
        self.m = member
        self.name = member.name
        self.ledger = ledger
        self.assigned: frozenset[int] = frozenset()
        self.paused = threading.Event()
        self.stopped = threading.Event()
        self.error: BaseException | None = None
        self._cmds: list[tuple[Callable[[], Any], dict]] = []
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name=f"poll-{member.name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.stopped.is_set():
                with self._lock:
                    cmds, self._cmds = self._cmds, []
                for fn, slot in cmds:
                    try:
                        slot["value"] = fn()
                    except BaseException as e:  # handed to the caller
                        slot["error"] = e
                    slot["done"].set()
                if self.stopped.is_set():
                    break
                if self.paused.is_set():
                    time.sleep(0.01)
                    continue
                recs = self.m.poll(0.1)
                self.ledger.add(self.m, recs)
                self.assigned = frozenset(self.m.assignment())
        except BaseException as e:
            self.error = e

    def call(self, fn: Callable[[], Any], timeout: float = 60) -> Any:
        slot: dict = {"done": threading.Event()}
        with self._lock:
            self._cmds.append((fn, slot))
        if not slot["done"].wait(timeout):
            raise AssertionError(f"{self.name}: command did not run ({self.error!r})")
        if "error" in slot:
            raise slot["error"]
        return slot.get("value")

    def assignment(self) -> set[int]:
        if self.error is not None:
            raise AssertionError(f"{self.name} failed: {self.error!r}") from self.error
        return set(self.assigned)

    def commit(self, offsets: dict[int, int] | None = None) -> None:
        self.call(lambda: self.m.commit(offsets))

    def close(self) -> None:
        """Close the consumer in its thread and stop the thread."""
        if not self.stopped.is_set():
            self.call(self.m.close)
            self.stopped.set()
            self.thread.join(30)


class Fleet:
    """Makes members of one client kind (each with its polling thread);
    closes whatever is left at the end."""

    def __init__(self, client: str, bootstrap: str, topic: str) -> None:
        self.client, self.bootstrap, self.topic = client, bootstrap, topic
        self.loop = AioLoop() if client == "aiokafka" else None
        self.runners: list[Runner] = []

    def member(self, group: str, name: str | None = None, extra: dict | None = None,
               ledger: "Ledger | None" = None) -> Runner:
        name = name or f"{group}/{len(self.runners)}"
        if self.client == "confluent-kafka":
            m: Member = ConfluentMember(name, self.bootstrap, group, self.topic, extra)
        elif self.client == "kafka-python":
            m = KafkaPythonMember(name, self.bootstrap, group, self.topic, extra)
        else:
            assert self.loop is not None
            m = AioMember(name, self.bootstrap, group, self.topic, extra, loop=self.loop)
        r = Runner(m, ledger if ledger is not None else Ledger())
        self.runners.append(r)
        return r

    def close_all(self) -> None:
        for r in self.runners:
            try:
                r.close()
            except Exception:
                pass
        if self.loop is not None:
            self.loop.stop()


@pytest.fixture
def fleet_factory():
    made: list[Fleet] = []

    def make(client: str, bootstrap: str, topic: str) -> Fleet:
        f = Fleet(client, bootstrap, topic)
        made.append(f)
        return f

    yield make
    for f in made:
        f.close_all()


class Ledger:
    """Every record delivered, and to whom (thread-safe)."""

    def __init__(self) -> None:
        self.seen: dict[tuple[int, int], list[str]] = collections.defaultdict(list)
        self.recs: dict[tuple[int, int], Rec] = {}
        self.lock = threading.Lock()

    def add(self, m: Member, recs: list[Rec]) -> None:
        with self.lock:
            for r in recs:
                self.seen[(r.partition, r.offset)].append(m.name)
                self.recs[(r.partition, r.offset)] = r

    def has_all(self, want: list[Rec]) -> bool:
        with self.lock:
            return all((r.partition, r.offset) in self.seen for r in want)

    def check_exactly_once(self, want: list[Rec]) -> None:
        with self.lock:
            dups = {k: v for k, v in self.seen.items() if len(v) > 1}
            assert not dups, f"delivered more than once: {list(dups.items())[:5]}"
            missing = [r for r in want if (r.partition, r.offset) not in self.seen]
            assert not missing, f"{len(missing)} records never delivered, e.g. {missing[:3]}"
            extra = set(self.seen) - {(r.partition, r.offset) for r in want}
            assert not extra, f"unexpected records {sorted(extra)[:5]}"
            for r in want:
                assert self.recs[(r.partition, r.offset)] == r


def print_thread_stacks() -> None:
    """Where every thread of the test process is (the clients' own threads
    included), printed into the failed test's report: a member that stopped
    talking to the broker shows here what it waits on."""
    frames = sys._current_frames()
    for th in threading.enumerate():
        f = frames.get(th.ident or -1)
        if f is not None and th is not threading.current_thread():
            print(f"--- thread {th.name} ---\n{''.join(traceback.format_stack(f)[-12:])}", file=sys.stderr)


def wait_for(cond: Callable[[], bool], members: list[Runner], timeout: float = DEADLINE,
             what: str = "") -> float:
    """Wait until ``cond()`` (the members poll in their threads); returns seconds taken."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            print_thread_stacks()
            raise AssertionError(f"timed out waiting for {what}: assignments "
                                 f"{[(m.name, sorted(m.assignment())) for m in members]}")
        time.sleep(0.01)
    return time.monotonic() - t0


def split(members: list[Runner], sizes: list[int], total: int = 6) -> Callable[[], bool]:
    def ok() -> bool:
        a = [m.assignment() for m in members]
        return sorted(len(x) for x in a) == sorted(sizes) and len(set().union(*a)) == sum(sizes) <= total
    return ok


def make_records(topic: str, n: int, partitions: int = 6) -> list[Rec]:
    return expected_records(topic, n, partitions, int(time.time() * 1000) - 60_000)


def produce_recs(bootstrap: str, topic: str, recs: list[Rec]) -> None:
    got = produce_confluent(bootstrap, topic, recs)
    assert got == [(r.partition, r.offset) for r in recs]


# -- per-client acceptance -------------------------------------------------------------------------

@pytest.mark.parametrize("client", CLIENTS)
def test_three_consumers_own_two_each_then_one_leaves(broker_factory, fleet_factory, unique_topic, client):
    b = broker_factory(BROKER)
    three_consumers_then_one_leaves(b.bootstrap, 1, fleet_factory, unique_topic, client)


@pytest.mark.parametrize("client", CLIENTS)
def test_three_consumers_then_one_leaves_on_a_cluster(shared_cluster, fleet_factory, unique_topic, client):
    """The same on a 3-broker cluster: the group coordinator and the
    partition leaders on different brokers (issue 20)."""
    three_consumers_then_one_leaves(shared_cluster.bootstrap, 3, fleet_factory, unique_topic, client)


def three_consumers_then_one_leaves(bootstrap: str, rf: int, fleet_factory: Any, unique_topic: str,
                                    client: str) -> None:
    create_topic(bootstrap, unique_topic, 6, replication_factor=rf)
    recs = make_records(unique_topic, 1200)
    first, second = recs[:600], recs[600:]
    produce_recs(bootstrap, unique_topic, first)
    fleet = fleet_factory(client, bootstrap, unique_topic)
    group = f"g-{uuid.uuid4().hex[:6]}"
    ledger = Ledger()
    ms = [fleet.member(group, ledger=ledger) for _ in range(3)]
    wait_for(lambda: split(ms, [2, 2, 2])() and ledger.has_all(first), ms, what="2/2/2 and batch 1")
    ledger.check_exactly_once(first)
    owned = [m.assignment() for m in ms]
    assert all(len(o) == 2 for o in owned) and set().union(*owned) == set(range(6))
    # member 0 stops, commits what it consumed and leaves; more records arrive meanwhile
    ms[0].paused.set()
    ms[0].commit()
    produce_recs(bootstrap, unique_topic, second)
    ms[0].close()
    rest = ms[1:]
    wait_for(lambda: split(rest, [3, 3])() and ledger.has_all(second), rest, what="3/3 and batch 2")
    time.sleep(0.3)  # anything delivered twice would show up now
    ledger.check_exactly_once(recs)
    assert set().union(*(m.assignment() for m in rest)) == set(range(6))


class _Where:
    """Where a test runs: a bootstrap and the replication factor to use."""

    def __init__(self, bootstrap: str, rf: int) -> None:
        self.bootstrap = bootstrap
        self.rf = rf


@pytest.fixture(params=["single", "cluster"])
def group_topology(request, broker_factory):  # type: ignore[no-untyped-def]
    """(bootstrap, replication factor): a broker with this module's group
    settings, or the shared 3-broker cluster (the same group settings; issue 20)."""
    if request.param == "single":
        return broker_factory(BROKER).bootstrap, 1
    return request.getfixturevalue("shared_cluster").bootstrap, 3


@pytest.mark.parametrize("client", CLIENTS)
def test_seventh_consumer_idle_and_two_groups_each_get_everything(group_topology, fleet_factory,
                                                                 unique_topic, client):
    bootstrap, rf = group_topology
    create_topic(bootstrap, unique_topic, 6, replication_factor=rf)
    recs = make_records(unique_topic, 600)
    produce_recs(bootstrap, unique_topic, recs)
    fleet = fleet_factory(client, bootstrap, unique_topic)
    g1, g2 = f"seven-{uuid.uuid4().hex[:6]}", f"other-{uuid.uuid4().hex[:6]}"
    l1, l2 = Ledger(), Ledger()
    seven = [fleet.member(g1, ledger=l1) for _ in range(7)]
    two = [fleet.member(g2, ledger=l2) for _ in range(2)]
    # (six members of the previous generation, the seventh not yet in, also look like 0/1/1/1/1/1/1:
    # wait for the broker to hold all seven in a stable generation too)
    wait_for(lambda: l1.has_all(recs) and l2.has_all(recs) and split(seven, [0, 1, 1, 1, 1, 1, 1])()
             and split(two, [3, 3])() and stable_with(bootstrap, g1, 7),
             seven + two, timeout=2 * DEADLINE,  # nine kafka-python members in one process, on a loaded machine
             what="7 consumers on 6 partitions, and a second group")
    time.sleep(0.3)
    l1.check_exactly_once(recs)
    l2.check_exactly_once(recs)
    idle = [m for m in seven if not m.assignment()]
    assert len(idle) == 1
    # it stays idle and everyone keeps their partition
    before = {m.name: m.assignment() for m in seven}
    time.sleep(1.0)
    assert {m.name: m.assignment() for m in seven} == before


@pytest.mark.parametrize("client", CLIENTS)
def test_commit_restart_broker_resume_exactly(broker_factory, fleet_factory, unique_topic, client):
    b = broker_factory(BROKER)
    create_topic(b.bootstrap, unique_topic, 3)
    recs = make_records(unique_topic, 300, 3)
    produce_recs(b.bootstrap, unique_topic, recs)
    group = f"resume-{uuid.uuid4().hex[:6]}"
    fleet = fleet_factory(client, b.bootstrap, unique_topic)
    ledger = Ledger()
    m = fleet.member(group, ledger=ledger)
    wait_for(lambda: ledger.has_all(recs), [m], what="all records")
    committed = {0: 17, 1: 33, 2: 100}  # 100 = the end of partition 2
    m.m.commit_on_revoke = False  # (closing would commit the consumed positions)
    m.commit(committed)
    m.close()
    b.restart()
    fleet2 = fleet_factory(client, b.bootstrap, unique_topic)
    ledger2 = Ledger()
    m2 = fleet2.member(group, ledger=ledger2)
    want = [r for r in recs if r.offset >= committed[r.partition]]
    wait_for(lambda: ledger2.has_all(want) and len(m2.assignment()) == 3, [m2], what="resume")
    time.sleep(0.3)
    ledger2.check_exactly_once(want)
    firsts = {p: min(o for (pp, o) in ledger2.seen if pp == p) for p in (0, 1)}
    assert firsts == {0: 17, 1: 33}
    if isinstance(m2.m, ConfluentMember):
        assert m2.call(lambda: m2.m.committed([0, 1, 2])) == committed


# -- librdkafka specifics ------------------------------------------------------------------------------

def test_librdkafka_cooperative_sticky(group_topology, fleet_factory, unique_topic):
    b = _Where(*group_topology)
    create_topic(b.bootstrap, unique_topic, 6, replication_factor=b.rf)
    recs = make_records(unique_topic, 1200)
    produce_recs(b.bootstrap, unique_topic, recs[:600])
    fleet = fleet_factory("confluent-kafka", b.bootstrap, unique_topic)
    group = f"coop-{uuid.uuid4().hex[:6]}"
    extra = {"partition.assignment.strategy": "cooperative-sticky"}
    ledger = Ledger()
    ms = [fleet.member(group, extra=extra, ledger=ledger) for _ in range(3)]
    wait_for(lambda: split(ms, [2, 2, 2])() and ledger.has_all(recs[:600]), ms, what="2/2/2")
    time.sleep(0.5)  # cooperative rebalancing may take a follow-up round
    owned = {m.name: m.assignment() for m in ms}
    assert sorted(len(o) for o in owned.values()) == [2, 2, 2]
    revokes_before = {m.name: len(m.m.revokes) for m in ms}
    ms[0].paused.set()
    ms[0].commit()
    ms[0].close()
    produce_recs(b.bootstrap, unique_topic, recs[600:])
    rest = ms[1:]
    wait_for(lambda: split(rest, [3, 3])() and ledger.has_all(recs), rest, what="3/3")
    time.sleep(0.3)
    ledger.check_exactly_once(recs)
    for m in rest:
        # incremental: kept its two partitions, was given one more, revoked nothing
        assert owned[m.name] <= m.assignment()
        assert m.m.assigns[-1] == m.assignment() - owned[m.name]
        assert all(not r for r in m.m.revokes[revokes_before[m.name]:])


def _events(ms: list[Runner]) -> dict[str, tuple[int, int]]:
    """Per member: (assign callbacks, revoke callbacks with partitions)."""
    return {m.name: (len(m.m.assigns), sum(1 for r in m.m.revokes if r)) for m in ms}


def test_librdkafka_cooperative_sticky_callback_counts(broker_factory, fleet_factory, unique_topic):
    """As Kafka: a member that leaves, then one that unsubscribes, causes exactly one
    incremental assign (of the freed partitions only) on each remaining member and no
    revoke; the unsubscribing member sees exactly one revoke of everything it owned."""
    b = broker_factory(BROKER)
    create_topic(b.bootstrap, unique_topic, 6)
    recs = make_records(unique_topic, 1800)
    produce_recs(b.bootstrap, unique_topic, recs[:600])
    fleet = fleet_factory("confluent-kafka", b.bootstrap, unique_topic)
    group = f"coop-n-{uuid.uuid4().hex[:6]}"
    extra = {"partition.assignment.strategy": "cooperative-sticky"}
    ledger = Ledger()
    ms = [fleet.member(group, extra=extra, ledger=ledger) for _ in range(3)]
    wait_for(lambda: split(ms, [2, 2, 2])() and ledger.has_all(recs[:600]), ms, what="2/2/2")
    time.sleep(1.5)  # settled: any follow-up round is over
    owned = {m.name: m.assignment() for m in ms}
    before = _events(ms)
    ms[0].paused.set()
    ms[0].commit()
    ms[0].close()
    produce_recs(b.bootstrap, unique_topic, recs[600:1200])
    rest = ms[1:]
    wait_for(lambda: split(rest, [3, 3])() and ledger.has_all(recs[:1200]), rest, what="3/3")
    time.sleep(1.5)
    for m in rest:
        assigns, revokes = _events([m])[m.name]
        assert (assigns - before[m.name][0], revokes - before[m.name][1]) == (1, 0), (m.name, m.m.assigns)
        assert m.m.assigns[-1] == m.assignment() - owned[m.name] and len(m.m.assigns[-1]) == 1
    # the second member unsubscribes (stays alive): one revoke there, one assign of three on the last
    quitter, last = rest
    owned = {m.name: m.assignment() for m in rest}
    before = _events(rest)
    quitter.call(quitter.m.c.unsubscribe)
    produce_recs(b.bootstrap, unique_topic, recs[1200:])
    wait_for(lambda: last.assignment() == set(range(6)) and ledger.has_all(recs), rest, what="6 on the last")
    time.sleep(1.5)
    assert quitter.assignment() == set()
    assert _events([quitter])[quitter.name][1] - before[quitter.name][1] == 1
    assert [r for r in quitter.m.revokes if r][-1] == owned[quitter.name]
    assert _events([last])[last.name] == (before[last.name][0] + 1, before[last.name][1])
    assert last.m.assigns[-1] == owned[quitter.name]
    ledger.check_exactly_once(recs)


def test_librdkafka_commit_after_the_rebalance_moved_on_fails(broker_factory, unique_topic):
    """A member still in its revoke callback when the rebalance completes without it
    (past its rebalance timeout, max.poll.interval.ms) commits there: Kafka refuses
    (the member is gone: UNKNOWN_MEMBER_ID), nothing is stored, and the partitions'
    new owner resumes at the last commit that succeeded."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    b = broker_factory(BROKER)
    create_topic(b.bootstrap, unique_topic, 2)
    recs = make_records(unique_topic, 20, partitions=2)
    produce_recs(b.bootstrap, unique_topic, recs)
    group = f"late-commit-{uuid.uuid4().hex[:6]}"
    conf = {"bootstrap.servers": b.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
            "enable.auto.commit": False, "session.timeout.ms": 3000, "heartbeat.interval.ms": 300,
            "max.poll.interval.ms": 3000}
    late: dict[str, Any] = {}

    def slow_revoke(c: Any, parts: list) -> None:
        if not parts or "error" in late:
            return
        time.sleep(5)  # the group moves on without this member meanwhile
        try:
            c.commit(offsets=[TopicPartition(unique_topic, p, 7) for p in (0, 1)], asynchronous=False)
            late["error"] = None
        except KafkaException as e:
            late["error"] = e.args[0].code()

    a = Consumer(conf)
    a.subscribe([unique_topic], on_revoke=slow_revoke)
    seen = 0
    deadline = time.monotonic() + DEADLINE
    while seen < 20 and time.monotonic() < deadline:
        m = a.poll(0.2)
        seen += m is not None and not m.error()
    assert seen == 20
    a.commit(offsets=[TopicPartition(unique_topic, p, 3) for p in (0, 1)], asynchronous=False)

    b_seen: dict[int, list[int]] = {0: [], 1: []}
    b_committed: dict[int, int] = {}
    stop = threading.Event()

    def run_b() -> None:  # the second member, in its own thread (one thread per client)
        c = Consumer(conf)
        c.subscribe([unique_topic])
        try:
            while not stop.is_set():
                m = c.poll(0.2)
                if m is not None and not m.error():
                    b_seen[m.partition()].append(m.offset())
            b_committed.update({tp.partition: tp.offset for tp in c.committed(
                [TopicPartition(unique_topic, p) for p in (0, 1)], timeout=10)})
        finally:
            c.close()

    t = threading.Thread(target=run_b, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + DEADLINE
        while "error" not in late and time.monotonic() < deadline:
            a.poll(0.2)
        wait_for(lambda: all(len(v) >= 7 for v in b_seen.values()), [], what="the new owner reads")
    finally:
        stop.set()
        t.join(30)
        a.close()
    from confluent_kafka import KafkaError

    assert late["error"] in (KafkaError.UNKNOWN_MEMBER_ID, KafkaError.ILLEGAL_GENERATION), late
    assert b_committed == {0: 3, 1: 3}  # the late commit stored nothing
    assert b_seen == {0: list(range(3, 10)), 1: list(range(3, 10))}


def coordinator_call(bootstrap: str, group: str, api_key: int, version: int, body: dict) -> dict:
    """A request to the group's coordinator (FindCoordinator first: on a
    cluster it may be another broker than the first of ``bootstrap``)."""
    from rawclient import RawClient

    deadline = time.monotonic() + 15
    while True:
        with RawClient(bootstrap.split(",")[0]) as c:
            fc = c.call(10, 3, {"key": group, "key_type": 0})
        if fc["error_code"] == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)  # COORDINATOR_NOT_AVAILABLE while the offsets topic is created or moves
    assert fc["error_code"] == 0, fc
    with RawClient(f"{fc['host']}:{fc['port']}") as c:
        resp: dict = c.call(api_key, version, body)
    return resp


def describe(bootstrap: str, group: str) -> dict:
    group_desc: dict = coordinator_call(bootstrap, group, 15, 5, {"groups": [group]})["groups"][0]
    return group_desc


def stable_with(bootstrap: str, group: str, members: int) -> bool:
    d = describe(bootstrap, group)
    return bool(d["group_state"] == "Stable" and len(d["members"]) == members)


def test_librdkafka_static_member_restart_keeps_partitions_without_rebalance(group_topology, fleet_factory,
                                                                           unique_topic):
    b = _Where(*group_topology)
    create_topic(b.bootstrap, unique_topic, 6, replication_factor=b.rf)
    fleet = fleet_factory("confluent-kafka", b.bootstrap, unique_topic)
    group = f"static-{uuid.uuid4().hex[:6]}"
    conf = {"session.timeout.ms": 10_000}
    ms = [fleet.member(group, f"s{i}", extra={"group.instance.id": f"inst-{i}", **conf}) for i in range(3)]
    wait_for(split(ms, [2, 2, 2]), ms, what="2/2/2")
    time.sleep(0.5)
    owned = {m.name: m.assignment() for m in ms}
    events = {m.name: (len(m.m.assigns), len(m.m.revokes)) for m in ms}
    members_before = {x["group_instance_id"]: x["member_id"] for x in describe(b.bootstrap, group)["members"]}
    ms[0].close()  # a static member sends no LeaveGroup
    t0 = time.monotonic()
    back = fleet.member(group, "s0-again", extra={"group.instance.id": "inst-0", **conf})
    others = ms[1:]
    wait_for(lambda: back.assignment() == owned["s0"], [back] + others, what="static member back")
    assert time.monotonic() - t0 < 10  # within its session timeout
    time.sleep(2)  # a quiet period: nobody else saw a rebalance
    for m in others:
        assert m.assignment() == owned[m.name]
        assert (len(m.m.assigns), len(m.m.revokes)) == events[m.name], m.name
    d = describe(b.bootstrap, group)
    assert d["group_state"] == "Stable"
    members_after = {x["group_instance_id"]: x["member_id"] for x in d["members"]}
    assert members_after["inst-1"] == members_before["inst-1"]
    assert members_after["inst-2"] == members_before["inst-2"]
    assert members_after["inst-0"] != members_before["inst-0"]


def test_librdkafka_consumer_protocol_kip848(group_topology, fleet_factory, unique_topic):
    b = _Where(*group_topology)
    create_topic(b.bootstrap, unique_topic, 6, replication_factor=b.rf)
    recs = make_records(unique_topic, 1800)
    a, bb, c = recs[:600], recs[600:1200], recs[1200:]
    produce_recs(b.bootstrap, unique_topic, a)
    fleet = fleet_factory("confluent-kafka", b.bootstrap, unique_topic)
    group = f"kip848-{uuid.uuid4().hex[:6]}"
    extra = {"group.protocol": "consumer"}
    ledger = Ledger()
    ms = [fleet.member(group, extra=extra, ledger=ledger) for _ in range(3)]
    wait_for(lambda: split(ms, [2, 2, 2])() and ledger.has_all(a), ms, what="2/2/2 (KIP-848)")
    ledger.check_exactly_once(a)
    d = coordinator_call(b.bootstrap, group, 69, 0, {"group_ids": [group]})["groups"][0]
    assert d["group_state"] == "Stable" and len(d["members"]) == 3
    assert sorted(len(m["assignment"]["topic_partitions"][0]["partitions"]) for m in d["members"]) == [2, 2, 2]
    # a member leaves: the others take over its partitions
    ms[0].paused.set()
    ms[0].commit()
    produce_recs(b.bootstrap, unique_topic, bb)
    ms[0].close()
    rest = ms[1:]
    wait_for(lambda: split(rest, [3, 3])() and ledger.has_all(bb), rest, what="3/3 (KIP-848)")
    time.sleep(0.3)
    ledger.check_exactly_once(a + bb)
    # commit and stop; a new member resumes at the committed offsets
    for m in rest:
        m.paused.set()
        m.commit()
    for m in rest:
        m.close()
    produce_recs(b.bootstrap, unique_topic, c)
    fresh = fleet.member(group, extra=extra, ledger=ledger)
    wait_for(lambda: ledger.has_all(c) and len(fresh.assignment()) == 6, [fresh], what="resume (KIP-848)")
    time.sleep(0.3)
    ledger.check_exactly_once(recs)


def test_librdkafka_consumer_protocol_group_survives_a_broker_restart(broker_factory, fleet_factory,
                                                                        unique_topic):
    """Issue 15 item 5: a KIP-848 group is kept in __consumer_offsets, so after
    a broker restart the members carry on with their member ids, epochs and
    partitions: no revoke, no lost partitions, no new assignment."""
    from rawclient import RawClient

    b = broker_factory({**BROKER, "group.consumer.session.timeout.ms": 8000})
    create_topic(b.bootstrap, unique_topic, 6)
    recs = make_records(unique_topic, 1200)
    produce_recs(b.bootstrap, unique_topic, recs[:600])
    fleet = fleet_factory("confluent-kafka", b.bootstrap, unique_topic)
    group = f"durable848-{uuid.uuid4().hex[:6]}"
    ledger = Ledger()
    ms = [fleet.member(group, extra={"group.protocol": "consumer"}, ledger=ledger) for _ in range(3)]
    wait_for(lambda: split(ms, [2, 2, 2])() and ledger.has_all(recs[:600]), ms, what="2/2/2 (KIP-848)")
    # one leaves: the group epoch (4 by now) is one a group started afresh would not have
    ms[0].paused.set()
    ms[0].commit()
    ms[0].close()
    ms = ms[1:]
    wait_for(lambda: split(ms, [3, 3])(), ms, what="3/3 (KIP-848)")
    for m in ms:
        m.commit()

    def describe() -> dict:
        with RawClient(b.bootstrap) as rc:
            d = rc.call(69, 0, {"group_ids": [group]})["groups"][0]
        assert d["error_code"] == 0, d
        return {m["member_id"]: (m["member_epoch"], sorted(m["assignment"]["topic_partitions"][0]["partitions"]))
                for m in d["members"]} | {"": d["group_epoch"]}

    time.sleep(1.0)  # every member's heartbeat has confirmed its epoch
    before = describe()
    assert before[""] >= 4
    callbacks = [(list(m.m.assigns), list(m.m.revokes)) for m in ms]
    assignments = [m.assignment() for m in ms]
    b.restart()
    produce_recs(b.bootstrap, unique_topic, recs[600:])
    wait_for(lambda: ledger.has_all(recs), ms, what="the rest after the restart")
    time.sleep(2.0)  # several heartbeats on the restarted broker
    assert describe() == before
    assert [(m.m.assigns, m.m.revokes) for m in ms] == callbacks
    assert [m.assignment() for m in ms] == assignments
    ledger.check_exactly_once(recs)


KILLED_CONSUMER = textwrap.dedent("""
    import sys
    from confluent_kafka import Consumer
    bootstrap, group, topic = sys.argv[1:4]
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "session.timeout.ms": 2000,
                  "heartbeat.interval.ms": 300, "auto.offset.reset": "earliest"})
    c.subscribe([topic], on_assign=lambda c, ps: print("ASSIGNED", len(ps), flush=True))
    while True:
        c.poll(0.1)
""")


def test_sigkilled_consumer_is_expelled_after_session_timeout(group_topology, fleet_factory, unique_topic):
    b = _Where(*group_topology)
    create_topic(b.bootstrap, unique_topic, 6, replication_factor=b.rf)
    group = f"kill-{uuid.uuid4().hex[:6]}"
    fleet = fleet_factory("confluent-kafka", b.bootstrap, unique_topic)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_CONSUMER, b.bootstrap, group, unique_topic],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("ASSIGNED"), line
        ms = [fleet.member(group, extra={"session.timeout.ms": 2000}) for _ in range(2)]

        def stable() -> bool:
            d = describe(b.bootstrap, group)
            return d["group_state"] == "Stable" and len(d["members"]) == 3 and split(ms, [2, 2], 6)()

        wait_for(stable, ms, what="2/2/2 with the subprocess")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        t0 = time.monotonic()
        wait_for(split(ms, [3, 3]), ms, what="3/3 after SIGKILL")
        took = time.monotonic() - t0
        # expelled after its session timeout (2 s), not before; then the others rejoin
        assert 2.0 - HEARTBEAT_MS / 1000 - 0.2 <= took <= 2.0 + 3.0, took
        assert len(describe(b.bootstrap, group)["members"]) == 2
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
