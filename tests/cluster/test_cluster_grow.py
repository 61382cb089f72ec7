"""Issue 13 acceptance: the cluster grows and shrinks under load.

- 3 brokers; a 12-partition topic with replication factor 2 under an
  idempotent acks=all load from librdkafka (confluent-kafka) and
  kafka-python; a 4th broker starts; ``pykbroker reassign --generate``
  proposes a plan that moves its fair share onto it, ``--execute --throttle
  --wait`` carries it out while the load goes on. Afterwards every
  acknowledged record is there exactly once, in order per key; the new
  broker leads partitions (auto.leader.rebalance.enable with a short
  interval); the old replicas' directories are gone.
- A generated plan on brokers with racks keeps every partition on both
  racks, growing and draining.
- Draining: every replica moved off broker 2 (a plan for brokers 0 and 1)
  while a consumer group consumes; broker 2 then stops with no partition
  offline and the group has consumed everything.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections import Counter

from clusterlib import Cluster, wait_until
from rawclient import RawClient

from pykbroker import reassign

KEYS = 12


class Load:
    """Two idempotent acks=all producers (keyed, a sequence number per key)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.lock = threading.Lock()
        self.acked: dict[bytes, list[int]] = {}
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._confluent, name="confluent"),
                        threading.Thread(target=self._kafka_python, name="kafka-python")]

    def __enter__(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=300)

    def ok(self, key: bytes, value: bytes) -> None:
        with self.lock:
            self.acked.setdefault(key, []).append(int(value))

    def fail(self, what: str) -> None:
        with self.lock:
            self.errors.append(what)

    def count(self) -> int:
        with self.lock:
            return sum(len(v) for v in self.acked.values())

    def _confluent(self) -> None:
        from confluent_kafka import Producer

        p = Producer({"bootstrap.servers": self.bootstrap, "acks": "all", "enable.idempotence": True,
                      "linger.ms": 5, "message.timeout.ms": 300000, "retry.backoff.ms": 100,
                      "topic.metadata.refresh.interval.ms": 2000, "socket.timeout.ms": 10000})
        seq = [0] * KEYS

        def cb(err, msg):  # type: ignore[no-untyped-def]
            if err is not None:
                self.fail(f"confluent: {err}")
            else:
                self.ok(msg.key(), msg.value())

        i = 0
        while not self.stop.is_set():
            k = i % KEYS
            i += 1
            try:
                p.produce(self.topic, key=f"c-{k}".encode(), value=str(seq[k]).encode(), on_delivery=cb)
                seq[k] += 1
            except BufferError:
                pass
            p.poll(0)
            time.sleep(0.003)
        if p.flush(300):
            self.fail("confluent: records neither delivered nor failed")

    def _kafka_python(self) -> None:
        from kafka import KafkaProducer

        p = KafkaProducer(bootstrap_servers=self.bootstrap.split(","), acks="all", enable_idempotence=True,
                          linger_ms=5, retry_backoff_ms=100, request_timeout_ms=15000,
                          delivery_timeout_ms=300000, metadata_max_age_ms=2000)
        seq = [0] * KEYS
        i = 0
        while not self.stop.is_set():
            k = i % KEYS
            i += 1
            key, value = f"p-{k}".encode(), str(seq[k]).encode()
            seq[k] += 1
            fut = p.send(self.topic, key=key, value=value)
            fut.add_callback(lambda md, key=key, value=value: self.ok(key, value))
            fut.add_errback(lambda e, key=key: self.fail(f"kafka-python {key!r}: {e!r}"))
            time.sleep(0.003)
        p.flush(timeout=300)
        p.close(timeout=30)


def read_all(bootstrap: str, topic: str, partitions: int, want: int) -> dict[bytes, list[int]]:
    """Every record from offset 0, per key in log order."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{time.time()}", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    out: dict[bytes, list[int]] = {}
    n = 0
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        deadline = time.monotonic() + 120
        idle = 0
        while time.monotonic() < deadline and (n < want or idle < 3):
            msgs = [m for m in c.consume(1000, 1.0) if m.error() is None]
            idle = 0 if msgs else idle + 1
            for m in msgs:
                out.setdefault(m.key(), []).append(int(m.value()))
                n += 1
    finally:
        c.close()
    return out


def check_exactly_once(load: Load, got: dict[bytes, list[int]]) -> None:
    assert not load.errors, load.errors[:5]
    for key, acked in load.acked.items():
        seqs = got.get(key, [])
        assert len(seqs) == len(set(seqs)), f"{key!r}: duplicates"
        assert seqs == sorted(seqs), f"{key!r}: out of order"
        missing = set(acked) - set(seqs)
        assert not missing, f"{key!r}: {len(missing)} acknowledged records lost, e.g. {sorted(missing)[:5]}"


def run_tool(*args: str) -> str:
    out = io.StringIO()
    rc = reassign.main(list(args), out=out)
    assert rc == 0, out.getvalue()
    return out.getvalue()


def generate(cl: Cluster, topic: str, brokers: str, path) -> dict[tuple[str, int], list[int]]:
    text = run_tool("--bootstrap-server", cl.running_bootstrap(), "--generate", "--topics", topic,
                    "--broker-list", brokers)
    proposed = text.split("Proposed partition reassignment configuration\n", 1)[1]
    path.write_text(proposed)
    return reassign.parse_plan(json.loads(proposed))


def metadata_brokers(cl: Cluster, i: int) -> list[int]:
    with RawClient(cl.brokers[i].bootstrap) as rc:
        return [b["node_id"] for b in rc.call(3, 9, {"topics": [], "allow_auto_topic_creation": False})["brokers"]]


def offline_partitions(cl: Cluster, i: int) -> list[tuple[str, int]]:
    with RawClient(cl.brokers[i].bootstrap) as rc:
        md = rc.call(3, 9, {"topics": None, "allow_auto_topic_creation": False})
    return [(t["name"], p["partition_index"]) for t in md["topics"] for p in t["partitions"]
            if p["leader_id"] < 0 or p["error_code"]]


def test_new_broker_takes_its_share_under_load(cluster_factory, tmp_path):
    cl = cluster_factory(overrides={"leader.imbalance.check.interval.seconds": 3})
    cl.create_topic("grow", 12, 2)
    before = cl.assignment("grow")
    with Load(cl.bootstrap, "grow") as load:
        wait_until(lambda: load.count() > 500, 60, "the load to start")
        new = cl.add_broker()
        assert new == 3
        wait_until(lambda: all(3 in metadata_brokers(cl, i) for i in range(4)), 30, "every broker to know broker 3")
        plan = generate(cl, "grow", "0,1,2,3", tmp_path / "plan.json")
        assert Counter(b for r in plan.values() for b in r)[3] == 6  # a fair share: 24 replicas / 4
        assert sum(len(set(r) - set(before[p])) for (_, p), r in plan.items()) == 6  # and nothing more moves
        progress = run_tool("--bootstrap-server", cl.running_bootstrap(), "--execute", "--reassignment-json-file",
                            str(tmp_path / "plan.json"), "--throttle", "20000000", "--wait")
        assert "Successfully started partition reassignments" in progress
        assert "12/12 partitions in place" in progress
        assert "Clearing topic-level throttles on topic grow" in progress
        after = cl.assignment("grow")
        assert after == {p: r for (_, p), r in plan.items()}
        verify = run_tool("--bootstrap-server", cl.running_bootstrap(), "--verify", "--reassignment-json-file",
                          str(tmp_path / "plan.json"))
        assert verify.count("is completed.") == 12
        # the preferred leaders come back (auto.leader.rebalance.enable, every 3 s)
        wait_until(lambda: sum(cl.leader("grow", p) == 3 for p in range(12)) == 3, 60, "broker 3 leading its share")
        time.sleep(1)
    check_exactly_once(load, read_all(cl.running_bootstrap(), "grow", 12, load.count()))
    for p, reps in after.items():
        for b in range(4):
            assert cl.log_dir(b, "grow", p).exists() == (b in reps), (p, b, reps)
    z = cl.topic_znode("grow")
    assert (z["adding_replicas"], z["removing_replicas"]) == ({}, {})
    # the throttles are gone again
    assert json.loads(cl.zk.get("/config/topics/grow")[0])["config"] == {}


def test_drain_a_broker_while_a_group_consumes(cluster_factory, tmp_path):
    from confluent_kafka import Consumer

    cl = cluster_factory()
    cl.create_topic("drain", 6, 2)
    seen: set[tuple[bytes, int]] = set()
    stop = threading.Event()

    def consume() -> None:
        c = Consumer({"bootstrap.servers": cl.bootstrap, "group.id": "drainers", "auto.offset.reset": "earliest",
                      "enable.auto.commit": True, "auto.commit.interval.ms": 200, "session.timeout.ms": 10000,
                      "topic.metadata.refresh.interval.ms": 2000})
        c.subscribe(["drain"])
        try:
            while not stop.is_set():
                for m in c.consume(500, 0.3):
                    if m.error() is None:
                        seen.add((m.key(), int(m.value())))
        finally:
            c.close()

    t = threading.Thread(target=consume, name="group-consumer")
    t.start()
    try:
        with Load(cl.bootstrap, "drain") as load:
            wait_until(lambda: load.count() > 300, 60, "the load to start")
            plan = generate(cl, "drain", "0,1", tmp_path / "drain.json")
            assert all(2 not in r for r in plan.values())
            run_tool("--bootstrap-server", cl.running_bootstrap(), "--execute", "--reassignment-json-file",
                     str(tmp_path / "drain.json"), "--wait")
            assert all(2 not in r for r in cl.assignment("drain").values())
            wait_until(lambda: not any(cl.log_dir(2, "drain", p).exists() for p in range(6)), 30,
                       "broker 2's replicas deleted")
            cl.brokers[2].stop(timeout=60)
            wait_until(lambda: 2 not in cl.live_ids(), 30, "broker 2 gone")
            for i in (0, 1):
                wait_until(lambda i=i: not offline_partitions(cl, i), 30, f"no partition offline on broker {i}")
            assert all(cl.leader("drain", p) in (0, 1) for p in range(6))
            time.sleep(2)  # the load goes on without broker 2
        check_exactly_once(load, read_all(cl.running_bootstrap(), "drain", 6, load.count()))
        want = {(k, s) for k, seqs in load.acked.items() for s in seqs}
        wait_until(lambda: want <= seen, 60, "the group to consume every acknowledged record")
    finally:
        stop.set()
        t.join(timeout=60)


def test_preferred_leaders_come_back_after_a_restart(cluster_factory):
    """auto.leader.rebalance.enable (default true) every
    leader.imbalance.check.interval.seconds: a restarted broker leads its
    preferred partitions again without anyone asking."""
    cl = cluster_factory(overrides={"leader.imbalance.check.interval.seconds": 2})
    cl.create_topic("bal", 6, 3)
    preferred = {p: r[0] for p, r in cl.assignment("bal").items()}
    wait_until(lambda: all(cl.leader("bal", p) == b for p, b in preferred.items()), 30, "preferred leaders")
    victim = preferred[0]
    cl.restart(victim)  # controlled shutdown moves its leaderships away
    mine = [p for p, b in preferred.items() if b == victim]
    assert mine
    wait_until(lambda: all(cl.leader("bal", p) == victim for p in mine), 60, "the restarted broker leading again")
    wait_until(lambda: all(len(cl.state("bal", p)["isr"]) == 3 for p in range(6)), 60, "full ISRs")


def test_no_rebalance_when_disabled(cluster_factory):
    cl = cluster_factory(overrides={"leader.imbalance.check.interval.seconds": 1,
                                    "auto.leader.rebalance.enable": False})
    cl.create_topic("nobal", 3, 3)
    preferred = {p: r[0] for p, r in cl.assignment("nobal").items()}
    victim = preferred[0]
    cl.restart(victim)
    mine = [p for p, b in preferred.items() if b == victim]
    cl.wait_full_isr("nobal", 3)
    time.sleep(4)  # several check intervals
    assert all(cl.leader("nobal", p) != victim for p in mine)


def test_generated_plan_is_rack_aware(cluster_factory, tmp_path):
    racks = {0: "r1", 1: "r2", 2: "r1"}
    cl = cluster_factory(per_broker={i: {"broker.rack": r} for i, r in racks.items()})
    cl.create_topic("racked", 6, 2)
    racks[cl.add_broker({"broker.rack": "r2"})] = "r2"
    wait_until(lambda: all(3 in metadata_brokers(cl, i) for i in range(4)), 30, "every broker to know broker 3")
    grown = generate(cl, "racked", "0,1,2,3", tmp_path / "grow.json")
    assert Counter(b for r in grown.values() for b in r) == {0: 3, 1: 3, 2: 3, 3: 3}
    drained = generate(cl, "racked", "0,1,3", tmp_path / "drain.json")
    for plan in (grown, drained):
        for tp, reps in plan.items():
            assert {racks[b] for b in reps} == {"r1", "r2"}, (tp, reps)
    assert all(2 not in r for r in drained.values())
    # without rack information on some broker the tool refuses unless told to ignore racks
    out = io.StringIO()
    assert reassign.main(["--bootstrap-server", cl.running_bootstrap(), "--generate", "--topics", "racked",
                          "--broker-list", "0,1,2,3", "--disable-rack-aware"], out=out) == 0
