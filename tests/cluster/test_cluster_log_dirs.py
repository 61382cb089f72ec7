"""Several log directories in a ZooKeeper cluster: the leader's and a
follower's replica moved to their other directory while an idempotent
acks=all load runs; afterwards every acknowledged record is there once, in
order, at its offset, the replicas hold the same bytes and both are in the
ISR."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from clusterlib import log_bytes, wait_until


def _where(desc: list[dict], topic: str) -> dict[int, list[tuple[str, bool]]]:
    """broker -> [(log dir, is_future)] of partition 0 of ``topic``."""
    out: dict[int, list[tuple[str, bool]]] = {}
    for entry in desc:
        for d in entry["log_dirs"]:
            for t in d["topics"]:
                if t["name"] == topic:
                    for p in t["partitions"]:
                        out.setdefault(entry["broker"], []).append((d["log_dir"], p["is_future_key"]))
    return out


def test_moves_on_leader_and_follower_under_load(cluster_factory, tmp_path):
    dirs = {i: (str(tmp_path / f"b{i}-one"), str(tmp_path / f"b{i}-two")) for i in range(2)}
    c = cluster_factory(n=2, overrides={"offsets.topic.replication.factor": 2, "default.replication.factor": 2,
                                        "log.segment.delete.delay.ms": 300},
                        per_broker={i: {"log.dirs": ",".join(d)} for i, d in dirs.items()})
    topic = "moved"
    c.create_topic(topic, 1, rf=2, config={"min.insync.replicas": "2"})
    from confluent_kafka import Producer
    from kafka.admin import KafkaAdminClient

    acked: list[tuple[int, bytes]] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def load() -> None:
        p = Producer({"bootstrap.servers": c.bootstrap, "acks": "all", "enable.idempotence": True,
                      "linger.ms": 1})
        i = 0

        def done(err, msg):  # type: ignore[no-untyped-def]
            if err is not None:
                failures.append(AssertionError(str(err)))
            else:
                acked.append((msg.offset(), msg.value()))

        try:
            while not stop.is_set():
                p.produce(topic, value=b"v%07d-" % i + b"y" * 200, partition=0, on_delivery=done)
                i += 1
                p.poll(0)
                if i % 100 == 0:
                    time.sleep(0.005)
            assert p.flush(60) == 0
        except BaseException as e:
            failures.append(e)

    t = threading.Thread(target=load)
    t.start()
    admin = KafkaAdminClient(bootstrap_servers=c.bootstrap, request_timeout_ms=20000)
    try:
        wait_until(lambda: len(acked) > 3000, 60, "records before the move")
        start = _where(admin.describe_log_dirs(), topic)
        assert {b: [x[1] for x in v] for b, v in start.items()} == {0: [False], 1: [False]}
        target = {b: next(d for d in dirs[b] if d != start[b][0][0]) for b in (0, 1)}
        res = admin.alter_replica_log_dirs({(topic, 0, b): target[b] for b in (0, 1)})
        assert all(e.__name__ == "NoError" for e in res.values()), res

        def moved() -> bool:
            got = _where(admin.describe_log_dirs(), topic)
            return got == {b: [(target[b], False)] for b in (0, 1)}

        wait_until(moved, 90, "both replicas in their new directory")
        at_move = len(acked)
        wait_until(lambda: len(acked) > at_move + 500, 60, "the load goes on after the moves")
    finally:
        stop.set()
        t.join(90)
        admin.close()
    assert not failures, failures
    acked.sort()
    assert [o for o, _ in acked] == list(range(len(acked)))  # dense from 0: no gap, no duplicate
    c.wait_full_isr(topic, 1, size=2)
    end = acked[-1][0] + 1

    def same_bytes() -> bool:
        a = log_bytes(Path(target[0]) / f"{topic}-0", end)
        b = log_bytes(Path(target[1]) / f"{topic}-0", end)
        return a == b and len(a) > 0

    wait_until(same_bytes, 30, "the replicas hold the same bytes")
    from confluent_kafka import Consumer, TopicPartition

    cons = Consumer({"bootstrap.servers": c.bootstrap, "group.id": "check", "enable.auto.commit": False})
    got: list[tuple[int, bytes]] = []
    try:
        cons.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 60
        while len(got) < len(acked) and time.monotonic() < deadline:
            for m in cons.consume(1000, 0.5):
                assert not m.error(), m.error()
                got.append((m.offset(), m.value()))
    finally:
        cons.close()
    assert got == acked  # every acknowledged record once, in order, at its offset
    for b in (0, 1):
        wait_until(lambda b=b: not any(Path(d, f"{topic}-0").exists() for d in dirs[b] if d != target[b]),
                   30, "the old directories are gone")


def test_failed_directory_moves_leadership_off_its_replicas(cluster_factory, tmp_path):
    import shutil

    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient
    from kafka.admin import KafkaAdminClient

    dirs = {i: (str(tmp_path / f"b{i}-one"), str(tmp_path / f"b{i}-two")) for i in range(2)}
    c = cluster_factory(n=2, overrides={"offsets.topic.replication.factor": 2, "default.replication.factor": 2,
                                        "log.flush.offset.checkpoint.interval.ms": 200},
                        per_broker={i: {"log.dirs": ",".join(d)} for i, d in dirs.items()})
    topic = "failing"
    c.create_topic(topic, 4, rf=2)
    p = Producer({"bootstrap.servers": c.bootstrap, "acks": "all", "enable.idempotence": True})

    def produce(part: int, values: list[bytes]) -> None:
        errs: list[object] = []
        for v in values:
            p.produce(topic, value=v, partition=part, on_delivery=lambda e, m: errs.append(e) if e else None)
        assert p.flush(60) == 0 and not errs, errs

    for part in range(4):
        produce(part, [b"before-%d-%d" % (part, i) for i in range(20)])
    admin = KafkaAdminClient(bootstrap_servers=c.bootstrap, request_timeout_ms=20000)
    try:
        desc = {e["broker"]: e for e in admin.describe_log_dirs()}
    finally:
        admin.close()
    victim = c.leader(topic, 0)
    failed_dir = next(d["log_dir"] for d in desc[victim]["log_dirs"]
                      for t in d["topics"] if t["name"] == topic for x in t["partitions"] if x["partition_index"] == 0)
    in_failed = {x["partition_index"] for d in desc[victim]["log_dirs"] if d["log_dir"] == failed_dir
                 for t in d["topics"] if t["name"] == topic for x in t["partitions"]}
    healthy = set(range(4)) - in_failed
    assert 0 in in_failed and healthy  # the victim's replicas are spread over its two directories
    shutil.move(failed_dir, failed_dir + ".gone")
    Path(failed_dir).write_text("not a directory\n")
    other = 1 - victim

    def moved() -> bool:
        return all(c.leader(topic, q) == other and victim not in c.state(topic, q)["isr"] for q in in_failed)

    wait_until(moved, 60, "leadership off the failed directory's replicas")
    # the victim's healthy replicas are untouched: still in the ISR
    assert all(victim in c.state(topic, q)["isr"] for q in healthy)
    md = AdminClient({"bootstrap.servers": c.bootstrap}).list_topics(topic, timeout=10).topics[topic]
    assert all(victim in md.partitions[q].replicas for q in range(4))
    for part in range(4):  # acks=all goes on everywhere (min.insync.replicas=1)
        produce(part, [b"after-%d-%d" % (part, i) for i in range(10)])
    from confluent_kafka import Consumer, TopicPartition

    cons = Consumer({"bootstrap.servers": c.bootstrap, "group.id": "check-failed", "enable.auto.commit": False})
    got: dict[int, list[bytes]] = {q: [] for q in range(4)}
    try:
        cons.assign([TopicPartition(topic, q, 0) for q in range(4)])
        deadline = time.monotonic() + 60
        while sum(map(len, got.values())) < 120 and time.monotonic() < deadline:
            for m in cons.consume(1000, 0.5):
                assert not m.error(), m.error()
                got[m.partition()].append(m.value())
    finally:
        cons.close()
    for q in range(4):
        assert got[q] == [b"before-%d-%d" % (q, i) for i in range(20)] + [b"after-%d-%d" % (q, i) for i in range(10)]
    assert c.brokers[victim].is_running()


def test_offline_replicas_in_controller_decisions():
    from types import SimpleNamespace

    from pykbroker.cluster import zkdata as zd
    from pykbroker.cluster.controller import Controller
    from pykbroker.cluster.log_dir_failures import LogDirFailures, decode, encode

    assert decode(encode(7, [("t", 1), ("a", 0)])) == (7, frozenset({("t", 1), ("a", 0)}))
    node = SimpleNamespace(view=SimpleNamespace(brokers={1: SimpleNamespace(epoch=7), 2: SimpleNamespace(epoch=9)}),
                           zk=None)
    failures = LogDirFailures(node)  # type: ignore[arg-type]
    failures.offline = {1: (7, frozenset({("t", 0)})), 2: (8, frozenset({("t", 0)}))}  # broker 2's entry is stale
    assert failures.offline_brokers("t", 0) == {1} and failures.offline_brokers("t", 1) == set()
    c = Controller.__new__(Controller)
    c.view = SimpleNamespace(configs={"t": {}})
    c.config = {"unclean.leader.election.enable": False}
    c.offline_replicas = failures.offline_brokers  # type: ignore[method-assign]
    ta = zd.TopicAssignment("t", bytes(16), {0: (1, 2), 1: (1, 2)})
    st = zd.LeaderIsr(1, 5, (1, 2), 1, 0, -1)
    # partition 0: broker 1's replica is offline: leadership moves to 2, 1 leaves the ISR
    assert c._decide(ta, 0, st, {1, 2}, set()) == (2, (2,), True)
    # partition 1 (its replica on broker 1 is healthy): nothing changes
    assert c._decide(ta, 1, st, {1, 2}, set()) is None
    # the only replica offline: no leader, the last ISR member kept (Kafka's OfflinePartition)
    ta1 = zd.TopicAssignment("t", bytes(16), {0: (1,)})
    assert c._decide(ta1, 0, zd.LeaderIsr(1, 5, (1,), 1, 0, -1), {1, 2}, set()) == (-1, (1,), True)
