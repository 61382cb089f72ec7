"""Issue 3 acceptance: brokers going away and coming back.

- min.insync.replicas=2 with two of three brokers down: acks=all gets
  NOT_ENOUGH_REPLICAS, acks=1 still succeeds.
- A follower that was down catches up, rejoins the ISR, and its log is
  byte-identical to the leader's up to the high watermark.
- SIGTERM on a leader moves its leaderships away before it exits; producers
  see at most retriable errors (nothing fails, nothing is lost).
- A broker cut off from ZooKeeper (SIGSTOP for longer than the session
  timeout) acknowledges nothing sent after it was cut off, and every write
  it did acknowledge is on the new leader at its acknowledged offset.
- Preferred leader election (ElectLeaders) gives leadership back to the
  first replica once it is in sync again.
- replica.lag.time.max.ms: a follower that stops fetching leaves the ISR,
  and rejoins once caught up.
"""

from __future__ import annotations

import os
import signal
import struct
import threading
import time

from clusterlib import SESSION_MS, log_bytes, wait_until
from rawclient import ConnectionClosed, RawClient

from pykbroker.protocol import errors
from pykbroker.protocol.records import build_batch, decode_records, iter_batches


def produce(bootstrap: str, topic: str, p: int, acks: int, n: int = 1, timeout_ms: int = 10000,
            sock_timeout: float = 30) -> dict:
    batch = build_batch([(b"k", b"v%d" % i, (), int(time.time() * 1000)) for i in range(n)])
    body = {"transactional_id": None, "acks": acks, "timeout_ms": timeout_ms,
            "topic_data": [{"name": topic, "partition_data": [{"index": p, "records": batch}]}]}
    with RawClient(bootstrap, timeout=sock_timeout) as rc:
        return rc.call(0, 9, body)["responses"][0]["partition_responses"][0]


def high_watermark(bootstrap: str, topic: str, p: int) -> int:
    with RawClient(bootstrap) as rc:
        r = rc.call(2, 5, {"replica_id": -1, "isolation_level": 0, "topics": [
            {"name": topic, "partitions": [{"partition_index": p, "current_leader_epoch": -1, "timestamp": -1}]}]})
    part = r["topics"][0]["partitions"][0]
    assert part["error_code"] == 0, part
    return part["offset"]


def test_min_insync_replicas(cluster):
    cluster.create_topic("minisr", 1, 3, {"min.insync.replicas": "2"})
    leader = cluster.leader("minisr", 0)
    assert produce(cluster.brokers[leader].bootstrap, "minisr", 0, -1)["error_code"] == 0
    survivor = leader
    for b in range(3):
        if b != survivor:
            cluster.kill(b)
    wait_until(lambda: cluster.state("minisr", 0)["isr"] == [survivor], 30, "the ISR to shrink to the survivor")
    boot = cluster.brokers[survivor].bootstrap
    r = produce(boot, "minisr", 0, -1)
    assert r["error_code"] == errors.NOT_ENOUGH_REPLICAS, r
    r = produce(boot, "minisr", 0, 1)
    assert r["error_code"] == 0 and r["base_offset"] == 1, r
    # with a real client too: acks=1 goes through
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": boot, "acks": "1"})
    done = []
    p.produce("minisr", b"x", partition=0, on_delivery=lambda e, m: done.append(e))
    assert p.flush(30) == 0 and done == [None]
    # the others come back, catch up, and acks=all works again
    for b in range(3):
        if b != survivor:
            cluster.restart(b)
    cluster.wait_full_isr("minisr", 1)
    assert produce(boot, "minisr", 0, -1)["error_code"] == 0


def test_follower_catches_up_and_matches_the_leader(cluster):
    from clientlib import expected_records, produce_confluent

    cluster.create_topic("catchup", 3, 3)
    victim = 2
    cluster.kill(victim)
    wait_until(lambda: all(victim not in cluster.state("catchup", p)["isr"] for p in range(3)), 30,
               "the dead follower to leave the ISRs")
    recs = expected_records("catchup", 3000, 3, int(time.time() * 1000))
    produce_confluent(cluster.running_bootstrap(), "catchup", recs, acks="all", compression="gzip")
    cluster.restart(victim)
    cluster.wait_full_isr("catchup", 3, timeout=60)
    for p in range(3):
        leader = cluster.leader("catchup", p)
        hw = high_watermark(cluster.brokers[leader].bootstrap, "catchup", p)
        assert hw == 1000
        ref = log_bytes(cluster.log_dir(leader, "catchup", p), hw)
        got = log_bytes(cluster.log_dir(victim, "catchup", p), hw)
        assert len(got) == len(ref) > 0 and got == ref, f"partition {p}: follower log differs"


def test_sigterm_moves_leaderships_first(cluster):
    from confluent_kafka import Producer

    cluster.create_topic("handover", 6, 3, {"min.insync.replicas": "2"})
    victim = cluster.leader("handover", 0)
    led_before = [p for p in range(6) if cluster.leader("handover", p) == victim]
    errors_seen: list = []
    failed: list = []
    acked: dict = {}
    stop = threading.Event()

    def run() -> None:
        p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "linger.ms": 2,
                      "max.in.flight.requests.per.connection": 1, "message.timeout.ms": 120000,
                      "retry.backoff.ms": 50, "error_cb": lambda e: errors_seen.append(e)})
        i = 0
        while not stop.is_set():
            v = b"%d" % i
            p.produce("handover", v, partition=i % 6,
                      on_delivery=lambda e, m, v=v: failed.append(e) if e else acked.__setitem__(v, m.offset()))
            p.poll(0)
            i += 1
            time.sleep(0.003)
        assert p.flush(120) == 0

    t = threading.Thread(target=run)
    t.start()
    time.sleep(2)
    t0 = time.time()
    cluster.brokers[victim].signal(signal.SIGTERM)
    rc = cluster.brokers[victim].wait(timeout=60)
    t_exit = time.time()
    # before it exited, every partition it led had another leader (written by the controller)
    for p in led_before:
        st = cluster.state("handover", p)
        assert st["leader"] not in (victim, -1)
        assert st["mtime"] / 1000 <= t_exit, (p, st, t_exit)
        assert victim not in st["isr"]
    assert rc == 0
    assert "controlled shutdown done" in cluster.brokers[victim].log
    time.sleep(2)
    stop.set()
    t.join(timeout=150)
    assert not failed, failed[:5]
    # nothing but retriable errors: librdkafka reports transport errors through error_cb
    assert all(e.retriable() or "Disconnected" in str(e) or e.code() in (-195, -185) for e in errors_seen), \
        errors_seen
    print(f"\ncontrolled shutdown: {len(led_before)} leaderships moved in {t_exit - t0:.2f} s, "
          f"{len(acked)} acked, error_cb: {[str(e) for e in errors_seen][:3]}")
    cluster.restart(victim)
    cluster.wait_full_isr("handover", 6)


def read_values(bootstrap: str, topic: str, p: int, upto: int) -> dict[int, bytes | None]:
    """offset -> value of the partition's records below ``upto``, read from ``bootstrap``."""
    out: dict[int, bytes | None] = {}
    with RawClient(bootstrap) as rc:
        while len(out) < upto:
            nxt = max(out, default=-1) + 1
            body = {"cluster_id": None, "replica_id": -1, "max_wait_ms": 0, "min_bytes": 1,
                    "max_bytes": 1 << 20, "isolation_level": 0, "session_id": 0, "session_epoch": -1,
                    "topics": [{"topic": topic, "topic_id": bytes(16), "partitions": [
                        {"partition": p, "current_leader_epoch": -1, "fetch_offset": nxt,
                         "last_fetched_epoch": -1, "log_start_offset": -1, "partition_max_bytes": 1 << 20}]}],
                    "forgotten_topics_data": [], "rack_id": ""}
            part = rc.call(1, 12, body)["responses"][0]["partitions"][0]
            assert part["error_code"] == 0, part
            buf = part["records"] or b""
            before = len(out)
            for h in iter_batches(buf):
                for r in decode_records(buf, h.position):
                    if r.offset < upto:
                        out[r.offset] = r.value
            assert len(out) > before, f"no progress reading {topic}-{p} at {nxt}"
    return out


def test_broker_cut_off_from_zookeeper_stops_acknowledging(cluster):
    cluster.create_topic("fenced", 1, 3)
    st = cluster.state("fenced", 0)
    old = st["leader"]
    boot = cluster.brokers[old].bootstrap
    # (wall time the request was sent, wall time of its answer, error code, base offset, value)
    acks: list[tuple[float, float, int, int, bytes]] = []
    stop = threading.Event()

    def loop() -> None:
        rc = RawClient(boot, timeout=60)
        try:
            i = 0
            while not stop.is_set():
                value = b"v%d" % i
                i += 1
                batch = build_batch([(b"k", value, (), int(time.time() * 1000))])
                body = {"transactional_id": None, "acks": -1, "timeout_ms": 2000,
                        "topic_data": [{"name": "fenced", "partition_data": [{"index": 0, "records": batch}]}]}
                sent = time.time()
                try:
                    r = rc.call(0, 9, body)["responses"][0]["partition_responses"][0]
                except (ConnectionClosed, OSError):
                    return
                acks.append((sent, time.time(), r["error_code"], r["base_offset"], value))
                time.sleep(0.01)
        finally:
            rc.close()

    t = threading.Thread(target=loop)
    t.start()
    wait_until(lambda: sum(1 for a in acks if a[2] == 0) >= 20, 30, "acknowledged writes on the leader")
    pid = cluster.brokers[old].pid
    os.kill(pid, signal.SIGSTOP)
    t_stop = time.time()
    try:
        wait_until(lambda: cluster.state("fenced", 0)["leader"] not in (old, -1), 30 + SESSION_MS / 1000,
                   "another broker to become leader")
        st2 = cluster.state("fenced", 0)
        assert st2["leader_epoch"] > st["leader_epoch"]
        time.sleep(0.5)
    finally:
        os.kill(pid, signal.SIGCONT)
    t_cont = time.time()
    time.sleep(3)
    stop.set()
    t.join(timeout=90)
    ok = [a for a in acks if a[2] == 0]
    after = [a for a in acks if a[0] > t_cont]
    # Nothing sent to it once it was stopped is acknowledged. The one request
    # in flight when it stopped may still be: its record can have reached
    # every replica in the ISR before the stop, and the followers' fetches
    # that say so are answered when it resumes (Kafka's leader does the same).
    # Whatever it acknowledged must then be on the new leader, checked below.
    assert ok and all(a[0] < t_stop for a in ok), ([a[:3] for a in ok if a[0] >= t_stop], t_stop)
    assert after, "the stopped broker answered nothing after it resumed"
    assert all(a[2] in (errors.NOT_LEADER_OR_FOLLOWER, errors.REQUEST_TIMED_OUT, errors.NOT_ENOUGH_REPLICAS)
               for a in after), [a[:3] for a in after]
    # every write it acknowledged is on the new leader, at the offset it was acknowledged with
    new = cluster.leader("fenced", 0)
    hw = high_watermark(cluster.brokers[new].bootstrap, "fenced", 0)
    assert hw > max(a[3] for a in ok), (hw, max(a[3] for a in ok))
    on_new = read_values(cluster.brokers[new].bootstrap, "fenced", 0, hw)
    lost = [(a[3], a[4]) for a in ok if on_new.get(a[3]) != a[4]]
    assert not lost, f"acknowledged writes not on the new leader {new}: {lost[:10]}"
    # the old leader comes back as a follower
    cluster.wait_full_isr("fenced", 1, timeout=60)
    assert "fenced" in cluster.brokers[old].log


def test_preferred_leader_election(cluster):
    cluster.create_topic("pref", 3, 3)
    preferred = {p: r[0] for p, r in cluster.assignment("pref").items()}
    victim = preferred[0]
    cluster.kill(victim)
    wait_until(lambda: cluster.leader("pref", 0) not in (victim, -1), 30, "a new leader for partition 0")
    cluster.restart(victim)
    cluster.wait_full_isr("pref", 3)
    assert cluster.leader("pref", 0) != victim
    ctrl = cluster.controller()
    with RawClient(cluster.brokers[ctrl].bootstrap) as rc:
        r = rc.call(43, 2, {"election_type": 0, "topic_partitions": [{"topic": "pref", "partitions": [0, 1, 2]}],
                            "timeout_ms": 30000})
        assert r["error_code"] == 0
        res = {x["partition_id"]: x["error_code"] for x in r["replica_election_results"][0]["partition_result"]}
        assert res[0] == errors.NONE
        assert all(res[p] in (errors.NONE, errors.ELECTION_NOT_NEEDED) for p in (1, 2))
        assert all(cluster.leader("pref", p) == preferred[p] for p in range(3))
        r = rc.call(43, 1, {"election_type": 0, "topic_partitions": [{"topic": "pref", "partitions": [0, 9]}],
                            "timeout_ms": 1000})
        res = {x["partition_id"]: x["error_code"] for x in r["replica_election_results"][0]["partition_result"]}
        assert res == {0: errors.ELECTION_NOT_NEEDED, 9: errors.UNKNOWN_TOPIC_OR_PARTITION}
        # unclean election: not needed while the leader is alive
        r = rc.call(43, 1, {"election_type": 1, "topic_partitions": [{"topic": "pref", "partitions": [1]}],
                            "timeout_ms": 1000})
        assert r["replica_election_results"][0]["partition_result"][0]["error_code"] == errors.ELECTION_NOT_NEEDED
        # all partitions (null): only those that needed an election are listed
        r = rc.call(43, 1, {"election_type": 0, "topic_partitions": None, "timeout_ms": 1000})
        assert r["replica_election_results"] == []


def test_lagging_follower_leaves_and_rejoins_the_isr(cluster_factory):
    """replica.lag.time.max.ms: a follower that stops fetching (SIGSTOP, shorter
    than the session timeout, so it stays registered) is dropped from the ISR
    by the leader; once it runs again it catches up and the leader adds it back."""
    cl = cluster_factory(overrides={"zookeeper.session.timeout.ms": 15000, "replica.lag.time.max.ms": 1500})
    cl.create_topic("lag", 1, 3)
    st = cl.state("lag", 0)
    leader = st["leader"]
    follower = next(b for b in range(3) if b != leader)
    boot = cl.brokers[leader].bootstrap
    os.kill(cl.brokers[follower].pid, signal.SIGSTOP)
    try:
        # acks=all waits for the stopped follower until the leader drops it from the ISR
        t0 = time.monotonic()
        r = produce(boot, "lag", 0, -1, n=10, timeout_ms=20000)
        waited = time.monotonic() - t0
        assert r["error_code"] == 0, r
        assert 1.0 <= waited < 12, waited
        st2 = cl.state("lag", 0)
        assert follower not in st2["isr"] and st2["leader"] == leader
        assert st2["leader_epoch"] == st["leader_epoch"]  # the leader's own ISR change keeps the epoch
        assert follower in cl.live_ids()
    finally:
        os.kill(cl.brokers[follower].pid, signal.SIGCONT)
    wait_until(lambda: follower in cl.state("lag", 0)["isr"], 30, "the follower back in the ISR")
    assert produce(boot, "lag", 0, -1, n=5)["error_code"] == 0
    hw = high_watermark(boot, "lag", 0)
    assert hw == 15
    assert log_bytes(cl.log_dir(follower, "lag", 0), hw) == log_bytes(cl.log_dir(leader, "lag", 0), hw)


def test_a_leader_that_appended_nothing_rejoins_the_isr_after_a_pause(cluster):
    """Issue 12 (nemesis pause-long run): a broker elected leader that
    appends nothing before it is paused past its session keeps an empty
    epoch at its log end. Back as a follower (no restart: the pause), it
    sent that epoch on every fetch, the new leader answered with a diverging
    epoch, and truncating to its own log end kept the entry (Kafka's
    truncateTo drops it): it never caught up, and the partition stayed at
    an ISR of one; an idle partition never got back. It rejoins now."""
    t = "empty-epoch"
    cluster.create_topic(t, 1, 3, {"min.insync.replicas": "2"})
    first = cluster.state(t, 0)["leader"]
    assert produce(cluster.brokers[first].bootstrap, t, 0, -1, n=5)["error_code"] == 0

    def pause_until_replaced(b: int) -> int:
        """SIGSTOP ``b`` (a leader) until another broker leads; SIGCONT; the new leader."""
        before = cluster.state(t, 0)["leader_epoch"]
        os.kill(cluster.brokers[b].pid, signal.SIGSTOP)
        try:
            wait_until(lambda: cluster.state(t, 0)["leader"] not in (b, -1), 30 + SESSION_MS / 1000,
                       f"a leader other than {b}")
        finally:
            os.kill(cluster.brokers[b].pid, signal.SIGCONT)
        st = cluster.state(t, 0)
        assert st["leader_epoch"] > before
        return int(st["leader"])

    second = pause_until_replaced(first)  # leads from offset 5 and appends nothing
    wait_until(lambda: sorted(cluster.state(t, 0)["isr"]) == [0, 1, 2], 60, "all three back in the ISR")
    third = pause_until_replaced(second)
    assert third != second
    # the paused leader of an empty epoch follows again and is back in the ISR
    wait_until(lambda: second in cluster.state(t, 0)["isr"], 60, f"broker {second} back in the ISR")
    # and acks=all with min.insync.replicas=2 works everywhere, every record in order
    r = produce(cluster.brokers[third].bootstrap, t, 0, -1, n=3)
    assert r["error_code"] == 0 and r["base_offset"] == 5
    wait_until(lambda: sorted(cluster.state(t, 0)["isr"]) == [0, 1, 2], 60, "all three in the ISR")


def test_group_coordinator_keeps_its_groups_when_a_follower_dies(cluster):
    """Issue 12 (nemesis pause-long run): a follower of a group's
    __consumer_offsets partition dies; the controller takes it out of the
    ISR at a new leader epoch, and the coordinator (the leader throughout)
    dropped every group of the partition and loaded them again: a join
    parked in a rebalance failed, heartbeats waiting behind a write found no
    group, and the transactional loop's consumer, rejoining as a new member
    while coordinators kept moving, never got an assignment again. As in
    Kafka (ReplicaManager skips the become-leader change of a partition it
    already leads), the group stays as it is: here a rebalance in progress
    across the epoch change completes with both members."""
    t, gid = "kept", "kept-group"
    cluster.create_topic(t, 1, 3)
    with RawClient(cluster.brokers[0].bootstrap) as rc:
        def coordinator() -> tuple[int] | None:  # (node id,): node 0 is a coordinator too
            r = rc.call(10, 3, {"key": gid, "key_type": 0})
            return (int(r["node_id"]),) if r["error_code"] == 0 else None
        coord, = wait_until(coordinator, 60, "a group coordinator")
    part = coord_partition(gid)
    cluster.wait_full_isr("__consumer_offsets", 3)
    assert cluster.state("__consumer_offsets", part)["leader"] == coord
    # the consumer protocol's subscription v0: topics [t], no user data
    subscription = struct.pack(">hih", 0, 1, len(t)) + t.encode() + struct.pack(">i", -1)
    body = {"group_id": gid, "session_timeout_ms": 30000, "rebalance_timeout_ms": 60000, "member_id": "",
            "group_instance_id": None, "protocol_type": "consumer",
            "protocols": [{"name": "range", "metadata": subscription}], "reason": None}
    boot = cluster.brokers[coord].bootstrap

    def join(c: RawClient, member: str = "") -> dict:
        r = c.call(11, 9, dict(body, member_id=member))
        if r["error_code"] == errors.MEMBER_ID_REQUIRED:
            r = c.call(11, 9, dict(body, member_id=r["member_id"]))
        return r

    with RawClient(boot) as a, RawClient(boot, timeout=120) as b:
        r = join(a)
        assert r["error_code"] == 0, r
        member, gen = r["member_id"], r["generation_id"]
        r = a.call(14, 5, {"group_id": gid, "generation_id": gen, "member_id": member, "group_instance_id": None,
                           "protocol_type": "consumer", "protocol_name": "range",
                           "assignments": [{"member_id": member, "assignment": b""}]})
        assert r["error_code"] == 0, r
        # a second member joins: the rebalance waits for the first to join again
        second: dict = {}
        th = threading.Thread(target=lambda: second.update(join(b)), daemon=True)
        th.start()

        def heartbeat() -> int:
            return int(a.call(12, 4, {"group_id": gid, "generation_id": gen, "member_id": member,
                                      "group_instance_id": None})["error_code"])

        wait_until(lambda: heartbeat() == errors.REBALANCE_IN_PROGRESS, 30, "the rebalance to start")
        before = cluster.state("__consumer_offsets", part)
        follower = next(x for x in before["isr"] if x != coord)
        cluster.kill(follower)
        codes = []
        deadline = time.monotonic() + 30 + SESSION_MS / 1000
        while cluster.state("__consumer_offsets", part)["leader_epoch"] == before["leader_epoch"]:
            assert time.monotonic() < deadline, "the controller never took the dead follower out of the ISR"
            codes.append(heartbeat())
            time.sleep(0.2)
        after = cluster.state("__consumer_offsets", part)
        assert after["leader"] == coord and follower not in after["isr"]
        for _ in range(10):  # the coordinator hears of the new epoch and goes on
            codes.append(heartbeat())
            time.sleep(0.2)
        assert set(codes) == {errors.REBALANCE_IN_PROGRESS}, codes
        assert th.is_alive() and not second, second  # still parked, not failed
        # the first member joins again: the rebalance completes with both
        r = join(a, member)
        th.join(30)
        assert r["error_code"] == 0 and second.get("error_code") == 0, (r, second)
        assert r["generation_id"] == second["generation_id"] == gen + 1
        assert {m["member_id"] for m in (r["members"] or second["members"])} == {member, second["member_id"]}


def coord_partition(key: str) -> int:
    """The __consumer_offsets partition of ``key`` (3 partitions here: clusterlib's overrides)."""
    h = 0
    for ch in key:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    if h >= 1 << 31:
        h -= 1 << 32
    return abs(h) % 3


def test_a_new_leader_knows_the_transactions_it_replicated(cluster):
    """Issue 12 (nemesis pause-long run): a follower applied fetched batches
    to its log but not to its producer state (only the leader's append path
    did, lazily). Once it led, read_committed fetches got no aborted
    transactions and a last stable offset that ignored open ones, until its
    first append: aborted records and those of an open transaction were
    served as committed. Followers now keep their producer state with their
    log, as Kafka's appendAsFollower does."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    t = "txn-failover"
    cluster.create_topic(t, 1, 3, {"min.insync.replicas": "2"})
    first = cluster.leader(t, 0)
    p = Producer({"bootstrap.servers": cluster.bootstrap, "transactional.id": "failover-txn",
                  "transaction.timeout.ms": 300000, "linger.ms": 0})
    p.init_transactions(60)
    for kind in ("committed", "aborted", "open"):
        p.begin_transaction()
        for i in range(5):
            p.produce(t, key=b"k", value=f"{kind}-{i}".encode(), partition=0)
        p.flush(60)
        if kind == "committed":
            p.commit_transaction(60)
        elif kind == "aborted":
            p.abort_transaction(60)
    # committed 0-4, marker 5, aborted 6-10, marker 11, open 12-16
    cluster.wait_full_isr(t, 1)
    wait_until(lambda: high_watermark(cluster.brokers[first].bootstrap, t, 0) == 17, 30, "all replicated")
    cluster.kill(first)
    wait_until(lambda: cluster.state(t, 0)["leader"] not in (first, -1), 30 + SESSION_MS / 1000, "a new leader")
    leader = cluster.state(t, 0)["leader"]
    with RawClient(cluster.brokers[leader].bootstrap) as rc:
        def lso() -> int | None:
            r = rc.call(2, 5, {"replica_id": -1, "isolation_level": 1, "topics": [
                {"name": t, "partitions": [{"partition_index": 0, "current_leader_epoch": -1, "timestamp": -1}]}]})
            part = r["topics"][0]["partitions"][0]
            return (part["offset"],) if part["error_code"] == 0 else None
        assert wait_until(lso, 30, "the new leader to answer ListOffsets") == (12,)
    c = Consumer({"bootstrap.servers": cluster.brokers[leader].bootstrap, "group.id": "failover-reader",
                  "isolation.level": "read_committed", "enable.auto.commit": False})
    c.assign([TopicPartition(t, 0, 0)])
    seen: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and len(seen) < 5:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                seen.append(m.value())
        for _ in range(4):  # nothing more is visible: the aborted ones are skipped, the open ones wait
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                seen.append(m.value())
    finally:
        c.close()
    assert seen == [f"committed-{i}".encode() for i in range(5)]
