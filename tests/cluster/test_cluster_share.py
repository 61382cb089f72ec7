"""Share groups (KIP-932) on a 3-broker ZooKeeper cluster.

ShareGroupHeartbeat and the other group-level share APIs are served by the
group's coordinator (the leader of its __consumer_offsets partition),
ShareFetch/ShareAcknowledge by each data partition's leader, which keeps
the share-partition and persists it in __share_group_state (RF 3 here).
With confluent-kafka's ShareConsumer: two consumers split a topic whose
partitions are led by different brokers; a kill -9 of a partition's leader
(the group's coordinator too) mid-way loses no record and redelivers no
acknowledged one (records acquired on the dead leader come back with a
higher delivery count). With the raw client: the errors that send clients
to the right broker, controlled leadership moves back and forth, and the
offsets administration on the coordinator reaching the leaders."""

from __future__ import annotations

import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "share"))

from clusterlib import wait_until
from rawclient import RawClient
from share_helpers import acquired, acquired_offsets, produce, share_ack, share_fetch, values

ck = pytest.importorskip("confluent_kafka")
if not hasattr(ck, "ShareConsumer"):  # confluent-kafka < 2.16
    pytest.skip("confluent-kafka without ShareConsumer", allow_module_level=True)

NOT_LEADER_OR_FOLLOWER = 6
NOT_COORDINATOR = 16
ACCEPT = 1
OVERRIDES = {"share.coordinator.state.topic.replication.factor": 3,
             "share.coordinator.state.topic.num.partitions": 3,
             "group.share.heartbeat.interval.ms": 1000}


def _topic_id(bootstrap: str, topic: str) -> bytes:
    with RawClient(bootstrap) as c:
        md = c.call(3, 12, {"topics": [{"name": topic, "topic_id": bytes(16)}], "allow_auto_topic_creation": False,
                            "include_topic_authorized_operations": False})
    return bytes(md["topics"][0]["topic_id"])


def _coordinator(cluster: Any, group: str) -> int:
    def find() -> list[int]:  # [node id], [] while there is none
        with RawClient(cluster.running_bootstrap().split(",")[0]) as c:
            r = c.call(10, 4, {"key_type": 0, "coordinator_keys": [group]})["coordinators"][0]
        return [r["node_id"]] if r["error_code"] == 0 else []

    return int(wait_until(find, 60, f"the coordinator of {group}")[0])


def _setup(cluster: Any, topic: str, group: str, per_partition: int, partitions: int = 3, batch: int = 10) -> bytes:
    """A topic of RF 3 whose partitions are led by different brokers, ``per_partition``
    records "p<partition>-<offset>" in each, and the group's start offsets at 0."""
    cluster.create_topic(topic, partitions, rf=3)
    leaders = [cluster.leader(topic, p) for p in range(partitions)]
    assert partitions == 1 or len(set(leaders)) >= 2, leaders
    for p in range(partitions):
        with RawClient(cluster.brokers[leaders[p]].bootstrap) as c:
            produce(c, topic, [f"p{p}-{i}".encode() for i in range(per_partition)], p, batch=batch)
    coord = _coordinator(cluster, group)

    def altered() -> bool:  # the coordinator's first answer may still be a load in progress
        with RawClient(cluster.brokers[coord].bootstrap) as c:
            r = c.call(91, 0, {"group_id": group, "topics": [{"topic_name": topic, "partitions": [
                {"partition_index": p, "start_offset": 0} for p in range(partitions)]}]})
        return r["error_code"] == 0 and all(p["error_code"] == 0 for t in r["responses"] for p in t["partitions"])

    wait_until(altered, 60, "AlterShareGroupOffsets to 0")
    return _topic_id(cluster.brokers[leaders[0]].bootstrap, topic)


def _start_offsets(cluster: Any, group: str) -> dict[int, int]:
    coord = _coordinator(cluster, group)
    with RawClient(cluster.brokers[coord].bootstrap) as c:
        d = c.call(90, 1, {"groups": [{"group_id": group, "topics": None}]})["groups"][0]
    assert d["error_code"] == 0, d
    return {p["partition_index"]: p["start_offset"] for t in d["topics"] for p in t["partitions"]}


def _consumer(bootstrap: str, group: str) -> Any:
    return ck.ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group,
                             "share.acknowledgement.mode": "explicit", "max.poll.records": 10})


class Ledger:
    """What the consumers saw: every delivery (partition, offset, delivery count, value,
    consumer) in order, the records whose Accept the broker confirmed, and those whose
    Accept has an unknown outcome (the commit failed: the broker may have died after
    writing it; such a record is either never delivered again or delivered again)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.deliveries: list[tuple[int, int, int, bytes, int]] = []
        self.accepted: dict[tuple[int, int], int] = {}  # (partition, offset) -> confirmations
        self.doubtful: set[tuple[int, int]] = set()
        self.after_accept: list[tuple[int, int, int]] = []  # delivered again after a confirmed Accept
        self.errors: list[BaseException] = []

    def run(self, bootstrap: str, group: str, topic: str, who: int, stop: threading.Event) -> None:
        try:
            c = _consumer(bootstrap, group)
            c.subscribe([topic])
            while not stop.is_set():
                try:
                    msgs = c.poll(0.5)
                except ck.KafkaException:
                    continue
                pending: dict[int, list[int]] = {}
                for m in msgs:
                    if m.error() is not None:
                        continue
                    with self.lock:
                        self.deliveries.append((m.partition(), m.offset(), m.delivery_count(), m.value(), who))
                        if (m.partition(), m.offset()) in self.accepted:
                            self.after_accept.append((m.partition(), m.offset(), m.delivery_count()))
                    c.acknowledge(m, ck.AcknowledgeType.ACCEPT)
                    pending.setdefault(m.partition(), []).append(m.offset())
                if not pending:
                    continue
                time.sleep(0.05)  # a little work per batch
                try:
                    res = c.commit_sync(10)
                except ck.KafkaException:
                    res = {}
                ok = {tp.partition for tp, err in res.items() if err is None}
                with self.lock:
                    for p, offs in pending.items():
                        for off in offs:
                            if p in ok:
                                self.accepted[(p, off)] = self.accepted.get((p, off), 0) + 1
                            else:
                                self.doubtful.add((p, off))
            c.close()
        except BaseException as e:
            self.errors.append(e)


def _consume(cluster: Any, group: str, topic: str, per: int, *, when: Any = None, watch: int = 0,
             timeout: float = 120) -> Ledger:
    """Two ShareConsumers of the topic's three partitions of ``per`` records, until every
    record is accepted (or its Accept in doubt) and the coordinator's start offsets are at
    the end (nothing left to deliver). ``when(ledger)`` is called once while they run,
    after a quarter of the records are accepted, ten of partition ``watch`` among them."""
    total = 3 * per
    want = {(p, o) for p in range(3) for o in range(per)}
    ledger = Ledger()
    stop = threading.Event()
    threads = [threading.Thread(target=ledger.run, args=(cluster.bootstrap, group, topic, i, stop))
               for i in range(2)]
    for t in threads:
        t.start()
    try:
        if when is not None:
            wait_until(lambda: (len(ledger.accepted) >= total // 4 and sum(1 for p, _o in list(ledger.accepted)
                                                                             if p == watch) >= 10) or ledger.errors,
                       timeout, "first records")
            when(ledger)

        def done() -> bool:
            with ledger.lock:
                if not want <= set(ledger.accepted) | ledger.doubtful:
                    return False
            return _start_offsets(cluster, group) == {0: per, 1: per, 2: per}

        wait_until(lambda: ledger.errors or done(), timeout,
                   f"{total} records accepted (so far {len(ledger.accepted)})", interval=0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not ledger.errors, ledger.errors
    return ledger


def _check_exactly_once(ledger: Ledger, partitions: int, per_partition: int) -> None:
    want = {(p, o) for p in range(partitions) for o in range(per_partition)}
    assert set(ledger.accepted) | ledger.doubtful == want
    assert all(n == 1 for n in ledger.accepted.values()), {k: n for k, n in ledger.accepted.items() if n != 1}
    assert ledger.after_accept == []  # nothing confirmed accepted was delivered again
    for p, o, _dc, v, _who in ledger.deliveries:
        assert v == f"p{p}-{o}".encode()
    counts: dict[tuple[int, int], list[int]] = {}
    for p, o, dc, _v, _who in ledger.deliveries:
        counts.setdefault((p, o), []).append(dc)
    for key, dcs in counts.items():  # a record delivered again: each time with a higher delivery count
        assert dcs == sorted(set(dcs)), (key, dcs)


def test_two_share_consumers_split_partitions_led_by_different_brokers(cluster_factory):
    cluster = cluster_factory(3, OVERRIDES)
    topic, group, per = "jobs", "workers", 60
    _setup(cluster, topic, group, per)
    ledger = _consume(cluster, group, topic, per)
    _check_exactly_once(ledger, 3, per)
    assert not ledger.doubtful and len(ledger.accepted) == 3 * per
    assert all(dc == 1 for _p, _o, dc, _v, _who in ledger.deliveries)  # nothing failed: one delivery each
    assert {who for *_x, who in ledger.deliveries} == {0, 1}  # both consumers got records


def test_kill_of_a_partition_leader_loses_nothing_and_redelivers_no_accepted_record(cluster_factory):
    """The victim leads partition q and, when it can, is the group's coordinator too (with three
    partitions led by three brokers it always is): membership and share-partitions move at once."""
    cluster = cluster_factory(3, OVERRIDES)
    topic, group, per = "jobs", "workers", 100
    tid = _setup(cluster, topic, group, per)
    coord = _coordinator(cluster, group)
    led = [p for p in range(3) if cluster.leader(topic, p) == coord]
    q = led[0] if led else 0
    victim = cluster.leader(topic, q)
    # a member that acquires the first batch of partition q on its leader and never acknowledges it
    with RawClient(cluster.brokers[victim].bootstrap) as c:
        r = share_fetch(c, group, "holder-" + uuid.uuid4().hex, 0, tid, [q], max_records=10)
    assert acquired(r, q) == [(0, 9, 1)], r
    killed: list[int] = []  # records accepted when the leader was killed
    before: set[tuple[int, int]] = set()  # records of partition q accepted on the killed leader

    def kill(ledger: Ledger) -> None:
        with ledger.lock:
            killed.append(len(ledger.accepted))
            before.update(k for k in ledger.accepted if k[0] == q)
        cluster.kill(victim)

    ledger = _consume(cluster, group, topic, per, when=kill, watch=q)
    assert len(killed) == 1 and killed[0] < 3 * per and len(before) >= 10, (killed, before)
    assert cluster.leader(topic, q) != victim
    if led:
        assert _coordinator(cluster, group) != victim
    _check_exactly_once(ledger, 3, per)
    # the held records were acquired on the dead leader: the new one hands them out again, counted
    firsts = {}
    for p, o, dc, _v, _who in ledger.deliveries:
        if p == q and o < 10:
            firsts.setdefault(o, dc)
    assert sorted(firsts) == list(range(10))
    assert all(dc >= 2 for dc in firsts.values()), firsts


def test_share_requests_to_the_wrong_broker(cluster_factory):
    cluster = cluster_factory(3, OVERRIDES)
    topic, group = "jobs", "g-" + uuid.uuid4().hex[:6]
    tid = _setup(cluster, topic, group, 10, partitions=1)
    leader = cluster.leader(topic, 0)
    other = next(i for i in range(3) if i != leader)
    member = uuid.uuid4().hex
    with RawClient(cluster.brokers[other].bootstrap) as c:
        r = share_fetch(c, group, member, 0, tid, [0], max_wait_ms=0)
        assert r["error_code"] == 0, r
        (p,) = r["responses"][0]["partitions"]
        assert p["error_code"] == NOT_LEADER_OR_FOLLOWER and p["records"] in (b"", None), p
        assert p["current_leader"]["leader_id"] == leader
        assert [(e["node_id"], e["port"]) for e in r["node_endpoints"]] == [(leader, cluster.brokers[leader].port)]
        a = share_ack(c, group, member, 1, tid, 0, [(0, 0, [1])])
        assert a["error_code"] == 0, a
        (pa,) = a["responses"][0]["partitions"]
        assert pa["error_code"] == NOT_LEADER_OR_FOLLOWER and pa["current_leader"]["leader_id"] == leader, a
        assert [e["node_id"] for e in a["node_endpoints"]] == [leader]
    with RawClient(cluster.brokers[leader].bootstrap) as c:
        r = share_fetch(c, group, member, 0, tid, [0])
        assert acquired_offsets(r, 0) == list(range(10))
        assert values(r, 0) == {i: f"p0-{i}".encode() for i in range(10)}
        assert r["node_endpoints"] == []
    coord = _coordinator(cluster, group)
    for i in range(3):
        with RawClient(cluster.brokers[i].bootstrap) as c:
            hb = c.call(76, 1, {"group_id": group, "member_id": member, "member_epoch": 0, "rack_id": None,
                                "subscribed_topic_names": [topic]})
            desc = c.call(77, 1, {"group_ids": [group], "include_authorized_operations": False})["groups"][0]
        if i == coord:
            assert hb["error_code"] == 0, hb
            assert [(bytes(t["topic_id"]), t["partitions"]) for t in hb["assignment"]["topic_partitions"]] == [
                (tid, [0])], hb
            assert desc["error_code"] == 0 and desc["group_state"] == "Stable", desc
        else:
            assert hb["error_code"] == NOT_COORDINATOR, hb
            assert desc["error_code"] == NOT_COORDINATOR, desc
    # what the leader persisted is what the coordinator reports (ten records in flight, none done)
    assert _start_offsets(cluster, group) == {0: 0}


def _accept(cluster, broker: int, group: str, member: str, tid: bytes, first: int, last: int) -> None:
    """ShareAcknowledge ACCEPT of ``first``-``last`` of partition 0 on ``broker`` (epoch 1 of the member's session)."""
    with RawClient(cluster.brokers[broker].bootstrap) as c:
        ack = share_ack(c, group, member, 1, tid, 0, [(first, last, [ACCEPT])])
    assert [p["error_code"] for t in ack["responses"] for p in t["partitions"]] == [0], ack


def _fetch_from_leader(cluster: Any, topic: str, group: str, member: str, tid: bytes,
                       max_records: int) -> tuple[int, dict[str, Any]]:
    """ShareFetch (a new session) from the partition's leader as ZooKeeper names it, until it
    answers without a partition error (brokers learn a leadership a moment after ZooKeeper, and
    a new leader may not read the share-partition's state before the state partitions have
    leaders). (leader, response)."""
    got: list[Any] = []

    def ok() -> bool:
        leader = cluster.leader(topic, 0)
        if leader < 0:
            return False
        with RawClient(cluster.brokers[leader].bootstrap) as c:
            r = share_fetch(c, group, member, 0, tid, [0], max_records=max_records, max_wait_ms=0)
        if r["error_code"] or any(p["error_code"] for t in r["responses"] for p in t["partitions"]):
            return False
        got[:] = [leader, r]
        return True

    wait_until(ok, 60, f"a ShareFetch answered by the leader of {topic}-0")
    return got[0], got[1]


def test_leadership_moves_back_and_forth_state_follows(cluster_factory):
    """Controlled moves (SIGTERM: leaderships move first; then a preferred-leader
    election back): each new leader serves from the last state its predecessor wrote,
    a deposed one answers NOT_LEADER_OR_FOLLOWER, and one that leads again does not
    serve the state it had before (it dropped it when deposed)."""
    cluster = cluster_factory(3, OVERRIDES)
    topic, group = "moves", "movers"
    tid = _setup(cluster, topic, group, 20, partitions=1, batch=5)
    preferred = cluster.assignment(topic)[0][0]
    assert cluster.leader(topic, 0) == preferred
    # on the preferred leader: 0-9 acquired, 0-4 accepted, 5-9 held
    a = uuid.uuid4().hex
    first, r = _fetch_from_leader(cluster, topic, group, a, tid, 10)
    assert first == preferred and acquired(r, 0) == [(0, 9, 1)], r
    _accept(cluster, first, group, a, tid, 0, 4)
    cluster.restart(preferred)  # SIGTERM: the controlled shutdown moves the leadership first
    cluster.wait_full_isr(topic, 1)
    # the next leader: 5-9 again, delivered a second time; 0-4 never again
    b = uuid.uuid4().hex
    second, r = _fetch_from_leader(cluster, topic, group, b, tid, 5)
    assert second != preferred and acquired(r, 0) == [(5, 9, 2)], r
    assert values(r, 0) == {i: f"p0-{i}".encode() for i in range(5, 10)}
    _accept(cluster, second, group, b, tid, 5, 9)
    with RawClient(cluster.brokers[cluster.controller()].bootstrap) as c:
        e = c.call(43, 2, {"election_type": 0, "topic_partitions": [{"topic": topic, "partitions": [0]}],
                           "timeout_ms": 30000})
    assert e["replica_election_results"][0]["partition_result"][0]["error_code"] == 0, e
    assert cluster.leader(topic, 0) == preferred
    cluster.wait_metadata(topic, 1)
    # the deposed leader sends the member to the preferred one
    with RawClient(cluster.brokers[second].bootstrap) as c:
        r = share_fetch(c, group, b, 2, tid, [0], max_wait_ms=0)
    (p,) = r["responses"][0]["partitions"]
    assert p["error_code"] == NOT_LEADER_OR_FOLLOWER and p["current_leader"]["leader_id"] == preferred, r
    # back on the preferred leader (restarted, so read from __share_group_state): 10-14 are next
    c3 = uuid.uuid4().hex
    third, r = _fetch_from_leader(cluster, topic, group, c3, tid, 5)
    assert third == preferred and acquired(r, 0) == [(10, 14, 1)], r
    _accept(cluster, third, group, c3, tid, 10, 14)
    # away again, to the second broker (the first live in-sync replica in assignment order, as
    # before). It served this share-partition up to offset 10 before it was deposed, and the
    # member of that time still has its share session there (no new session, which would
    # read the state again anyway): it serves 15-19 now, not 10-14
    cluster.restart(preferred)
    cluster.wait_full_isr(topic, 1)
    assert cluster.leader(topic, 0) == second
    epoch = [3]

    def fetched() -> dict[str, Any] | None:
        with RawClient(cluster.brokers[second].bootstrap) as c:
            r = share_fetch(c, group, b, epoch[0], tid, [0], max_records=10, max_wait_ms=0)
        assert r["error_code"] == 0, r
        epoch[0] += 1
        return None if any(p["error_code"] for t in r["responses"] for p in t["partitions"]) else r

    r = wait_until(fetched, 60, "the second broker serving again")
    assert acquired(r, 0) == [(15, 19, 1)], r
    assert _start_offsets(cluster, group) == {0: 15}


def test_offsets_administration_reaches_the_partition_leader(cluster_factory):
    """Describe/Alter/DeleteShareGroupOffsets on the coordinator work on the state the
    partition's leader wrote, and the leader (which has the share-partition in memory)
    serves the altered or deleted state to the next share session."""
    cluster = cluster_factory(3, OVERRIDES)
    topic, group = "admin", "admins"
    tid = _setup(cluster, topic, group, 10, partitions=1)
    coord = _coordinator(cluster, group)
    leader = cluster.leader(topic, 0)
    a, b, c3 = (uuid.uuid4().hex for _ in range(3))
    with RawClient(cluster.brokers[leader].bootstrap) as c:
        assert acquired(share_fetch(c, group, a, 0, tid, [0]), 0) == [(0, 9, 1)]
        ack = share_ack(c, group, a, -1, tid, 0, [(0, 9, [ACCEPT])])  # and close the session
        assert [p["error_code"] for t in ack["responses"] for p in t["partitions"]] == [0], ack
    assert _start_offsets(cluster, group) == {0: 10}
    with RawClient(cluster.brokers[coord].bootstrap) as c:
        r = c.call(91, 0, {"group_id": group, "topics": [{"topic_name": topic, "partitions": [
            {"partition_index": 0, "start_offset": 3}]}]})
        assert r["error_code"] == 0 and r["responses"][0]["partitions"][0]["error_code"] == 0, r
    assert _start_offsets(cluster, group) == {0: 3}
    with RawClient(cluster.brokers[leader].bootstrap) as c:
        r = share_fetch(c, group, b, 0, tid, [0])
        assert acquired(r, 0) == [(3, 9, 1)], r  # the altered state (its own delivery counts)
        ack = share_ack(c, group, b, -1, tid, 0, [(3, 9, [2])])  # release and close
        assert [p["error_code"] for t in ack["responses"] for p in t["partitions"]] == [0], ack
    with RawClient(cluster.brokers[coord].bootstrap) as c:
        r = c.call(92, 0, {"group_id": group, "topics": [{"topic_name": topic}]})
        assert r["error_code"] == 0 and r["responses"][0]["error_code"] == 0, r
    assert _start_offsets(cluster, group) == {}
    with RawClient(cluster.brokers[leader].bootstrap) as c:
        produce(c, topic, [b"late"], 0)
        r = share_fetch(c, group, c3, 0, tid, [0], max_wait_ms=0)
        assert acquired(r, 0) == [], r  # deleted: initialized again, at the log end (latest: 11)
        produce(c, topic, [b"later"], 0)
        r = share_fetch(c, group, c3, 1, tid, [0])
        assert acquired(r, 0) == [(11, 11, 1)], r
    for i in range(3):  # only the coordinator answers
        with RawClient(cluster.brokers[i].bootstrap) as c:
            d = c.call(90, 1, {"groups": [{"group_id": group, "topics": None}]})["groups"][0]
        assert d["error_code"] == (0 if i == coord else NOT_COORDINATOR), d
