"""Share groups (KIP-932) over the wire with our raw client: every advertised
version of ShareGroupHeartbeat (76), ShareGroupDescribe (77), ShareFetch
(78), ShareAcknowledge (79), DescribeShareGroupOffsets (90),
AlterShareGroupOffsets (91), DeleteShareGroupOffsets (92), and the
share-partition rules: acknowledgement types, lock expiry, the delivery
count limit, the in-flight limit, sessions, persistence across a restart."""

from __future__ import annotations

import time
import uuid

import pytest

from pykbroker.protocol import errors
from rawclient import RawClient
from share_helpers import (ACCEPT, GAP, RELEASE, REJECT, RENEW, acquired, acquired_offsets, alter_offsets,
                           create_topic, heartbeat, join, partition_result, produce, share_ack, share_fetch,
                           values)

LOCK_MS = 1000


@pytest.fixture(scope="module")
def sbroker(tmp_path_factory):
    from brokerproc import BrokerProcess

    b = BrokerProcess(name="share_broker")
    b.start({"group.share.record.lock.duration.ms": LOCK_MS, "group.share.delivery.count.limit": 3,
             "group.share.partition.max.record.locks": 100, "group.share.heartbeat.interval.ms": 1000,
             "share.coordinator.state.topic.num.partitions": 3, "offsets.topic.num.partitions": 3},
            log_dir=tmp_path_factory.mktemp("share-broker-data"))
    yield b
    b.stop()


@pytest.fixture
def topic(request) -> str:
    return f"share-{request.node.name[:40]}-{uuid.uuid4().hex[:8]}".replace("[", "-").replace("]", "")


def _setup(c: RawClient, topic: str, n: int, partitions: int = 1, *, batch: int = 0) -> tuple[bytes, str]:
    tid = create_topic(c, topic, partitions)
    group = "g-" + topic
    for p in range(partitions):
        produce(c, topic, [f"{p}-{i}".encode() for i in range(n)], p, batch=batch)
    assert alter_offsets(c, group, topic, {p: 0 for p in range(partitions)})["error_code"] == 0
    return tid, group


# -- ShareGroupHeartbeat / ShareGroupDescribe ----------------------------------------------------

def test_heartbeat_v1_join_assign_leave(sbroker, topic):
    with RawClient(sbroker.bootstrap) as c:
        tid = create_topic(c, topic, 3)
        group = "g-" + topic
        m1, r1 = join(c, group, [topic])
        assert r1["member_id"] == m1 and r1["member_epoch"] >= 1 and r1["heartbeat_interval_ms"] == 1000
        assert r1["assignment"]["topic_partitions"] == [{"topic_id": tid, "partitions": [0, 1, 2]}]
        # a second member: partitions are split
        m2, r2 = join(c, group, [topic])
        got2 = r2["assignment"]["topic_partitions"][0]["partitions"]
        r1b = heartbeat(c, group, m1, r1["member_epoch"])
        assert r1b["error_code"] == 0 and r1b["member_epoch"] == r2["member_epoch"]
        got1 = r1b["assignment"]["topic_partitions"][0]["partitions"]
        assert sorted(got1 + got2) == [0, 1, 2] and got1 and got2
        # unchanged: no assignment in the answer
        again = heartbeat(c, group, m1, r1b["member_epoch"])
        assert again["error_code"] == 0 and again["assignment"] is None
        # errors
        assert heartbeat(c, group, m1, 999)["error_code"] == errors.FENCED_MEMBER_EPOCH
        assert heartbeat(c, group, "nobody", 5)["error_code"] == errors.UNKNOWN_MEMBER_ID
        assert heartbeat(c, group, "", 0, [topic])["error_code"] == errors.INVALID_REQUEST
        assert heartbeat(c, group, "x", 0, None)["error_code"] == errors.INVALID_REQUEST
        assert heartbeat(c, "", "x", 0, [topic])["error_code"] == errors.INVALID_GROUP_ID
        # describe
        d = c.call(77, 1, {"group_ids": [group, "no-such-group"], "include_authorized_operations": True})
        g, missing = d["groups"]
        assert g["error_code"] == 0 and g["group_state"] == "Stable" and g["assignor_name"] == "simple"
        assert g["group_epoch"] == g["assignment_epoch"] >= 2
        assert g["authorized_operations"] > 0
        members = {m["member_id"]: m for m in g["members"]}
        assert set(members) == {m1, m2}
        assert members[m1]["subscribed_topic_names"] == [topic]
        tp = members[m1]["assignment"]["topic_partitions"][0]
        assert tp["topic_id"] == tid and tp["topic_name"] == topic and tp["partitions"] == got1
        assert missing["error_code"] == errors.GROUP_ID_NOT_FOUND and missing["group_state"] == "Dead"
        # leave: the other member gets everything
        left = heartbeat(c, group, m2, -1)
        assert left["error_code"] == 0 and left["member_epoch"] == -1
        r1c = heartbeat(c, group, m1, r1b["member_epoch"])
        assert r1c["assignment"]["topic_partitions"][0]["partitions"] == [0, 1, 2]
        assert heartbeat(c, group, m1, -1)["member_epoch"] == -1
        d = c.call(77, 1, {"group_ids": [group], "include_authorized_operations": False})
        assert d["groups"][0]["group_state"] == "Empty" and d["groups"][0]["members"] == []


def test_more_members_than_partitions_share_a_partition(sbroker, topic):
    with RawClient(sbroker.bootstrap) as c:
        tid = create_topic(c, topic, 1)
        group = "g-" + topic
        for _ in range(3):
            _, r = join(c, group, [topic])
            assert r["assignment"]["topic_partitions"] == [{"topic_id": tid, "partitions": [0]}]


def test_list_and_describe_groups_show_share_type(sbroker, topic):
    with RawClient(sbroker.bootstrap) as c:
        create_topic(c, topic, 1)
        group = "g-" + topic
        join(c, group, [topic])
        lg = c.call(16, 5, {"states_filter": [], "types_filter": ["share"]})
        mine = [g for g in lg["groups"] if g["group_id"] == group]
        assert mine == [{"group_id": group, "protocol_type": "share", "group_state": "Stable",
                         "group_type": "share"}]
        assert all(g["group_type"] == "share" for g in lg["groups"])
        assert not [g for g in c.call(16, 5, {"states_filter": [], "types_filter": ["classic"]})["groups"]
                    if g["group_id"] == group]
        assert [g["protocol_type"] for g in c.call(16, 0, {})["groups"] if g["group_id"] == group] == ["share"]
        dg = c.call(15, 6, {"groups": [group], "include_authorized_operations": False})["groups"][0]
        assert dg["error_code"] == errors.GROUP_ID_NOT_FOUND
        assert dg["error_message"] == f"Group {group} is not a classic group."
        assert c.call(15, 5, {"groups": [group], "include_authorized_operations": False})["groups"][0][
            "group_state"] == "Dead"


# -- ShareFetch / ShareAcknowledge -------------------------------------------------------------------

@pytest.mark.parametrize("v", [1, 2])
def test_share_fetch_acquires_and_accepts(sbroker, topic, v):
    with RawClient(sbroker.bootstrap) as c:
        tid, group = _setup(c, topic, 10, batch=4)
        m, _ = join(c, group, [topic])
        r = share_fetch(c, group, m, 0, tid, v=v)
        assert r["error_code"] == 0 and r["acquisition_lock_timeout_ms"] == LOCK_MS
        assert acquired(r) == [(0, 9, 1)]
        assert values(r) == {i: f"0-{i}".encode() for i in range(10)}
        p = partition_result(r)
        assert p["error_code"] == 0 and p["current_leader"]["leader_id"] == 0
        # acknowledge in the next fetch (piggybacked), which finds nothing new
        r2 = share_fetch(c, group, m, 1, tid, acks=[(0, 9, [ACCEPT])], max_wait_ms=50, v=v)
        assert r2["error_code"] == 0
        assert partition_result(r2)["acknowledge_error_code"] == 0 and acquired(r2) == []
        d = c.call(90, 1, {"groups": [{"group_id": group, "topics": None}]})
        row = d["groups"][0]["topics"][0]["partitions"][0]
        assert row["start_offset"] == 10 and row["lag"] == 0
        # more records are delivered to the open session without naming the partition again
        produce(c, topic, [b"late"])
        r3 = c.call(78, v, {"group_id": group, "member_id": m, "share_session_epoch": 2, "max_wait_ms": 2000,
                            "min_bytes": 1, "max_bytes": 1 << 20, "max_records": 10, "batch_size": 10,
                            "topics": [], "forgotten_topics_data": []})
        assert acquired(r3) == [(10, 10, 1)] and values(r3) == {10: b"late"}


@pytest.mark.parametrize("v", [1, 2])
def test_share_acknowledge_types(sbroker, topic, v):
    with RawClient(sbroker.bootstrap) as c:
        tid, group = _setup(c, topic, 6)
        m, _ = join(c, group, [topic])
        assert acquired(share_fetch(c, group, m, 0, tid)) == [(0, 5, 1)]
        # one type per offset: accept 0, release 1, reject 2, accept 3; whole-range release 4-5
        r = share_ack(c, group, m, 1, tid, 0, [(0, 3, [ACCEPT, RELEASE, REJECT, ACCEPT]), (4, 5, [RELEASE])], v=v)
        assert r["error_code"] == 0, r
        assert r["responses"][0]["partitions"][0]["error_code"] == 0
        if v >= 2:
            assert r["acquisition_lock_timeout_ms"] == LOCK_MS
        # released records come back with delivery count 2; rejected/accepted ones never
        r2 = share_fetch(c, group, m, 2, tid)
        assert acquired(r2) == [(1, 1, 2), (4, 5, 2)]
        assert sorted(values(r2)) == [1, 4, 5]
        # acknowledging what is not held (again, or never acquired) is INVALID_RECORD_STATE, all or nothing
        bad = share_ack(c, group, m, 3, tid, 0, [(1, 1, [ACCEPT]), (2, 2, [ACCEPT])], v=v)
        assert bad["responses"][0]["partitions"][0]["error_code"] == errors.INVALID_RECORD_STATE
        ok = share_ack(c, group, m, 4, tid, 0, [(1, 1, [ACCEPT]), (4, 5, [ACCEPT])], v=v)
        assert ok["responses"][0]["partitions"][0]["error_code"] == 0
        d = c.call(90, 0, {"groups": [{"group_id": group, "topics": [{"topic_name": topic, "partitions": [0]}]}]})
        assert d["groups"][0]["topics"][0]["partitions"][0]["start_offset"] == 6


def test_gap_acknowledgement(sbroker, topic):
    with RawClient(sbroker.bootstrap) as c:
        tid, group = _setup(c, topic, 3)
        m, _ = join(c, group, [topic])
        share_fetch(c, group, m, 0, tid)
        r = share_ack(c, group, m, 1, tid, 0, [(0, 2, [ACCEPT, GAP, ACCEPT])])
        assert r["responses"][0]["partitions"][0]["error_code"] == 0
        d = c.call(90, 1, {"groups": [{"group_id": group, "topics": None}]})
        assert d["groups"][0]["topics"][0]["partitions"][0]["start_offset"] == 3


def test_renew_v2_keeps_the_lock(sbroker, topic):
    with RawClient(sbroker.bootstrap) as c:
        tid, group = _setup(c, topic, 2)
        m, _ = join(c, group, [topic])
        m2, _ = join(c, group, [topic])
        assert acquired(share_fetch(c, group, m, 0, tid)) == [(0, 1, 1)]
        # Renew needs IsRenewAck
        bad = share_ack(c, group, m, 1, tid, 0, [(0, 1, [RENEW])], v=2, renew=False)
        assert bad["error_code"] == errors.INVALID_REQUEST
        for epoch in (1, 2):
            time.sleep(LOCK_MS * 0.6 / 1000)
            r = share_ack(c, group, m, epoch, tid, 0, [(0, 1, [RENEW])], v=2, renew=True)
            assert r["responses"][0]["partitions"][0]["error_code"] == 0
        # 1.2 lock durations after the fetch the records are still held by m
        assert acquired(share_fetch(c, group, m2, 0, tid, max_wait_ms=0)) == []
        assert share_ack(c, group, m, 3, tid, 0, [(0, 1, [ACCEPT])], v=2)["responses"][0]["partitions"][0][
            "error_code"] == 0


def test_lock_timeout_redelivers_to_another_member(sbroker, topic):
    with RawClient(sbroker.bootstrap) as c:
        tid, group = _setup(c, topic, 5)
        m1, _ = join(c, group, [topic])
        m2, _ = join(c, group, [topic])
        assert acquired(share_fetch(c, group, m1, 0, tid)) == [(0, 4, 1)]
        # held by m1: m2 gets nothing right now
        t0 = time.monotonic()
        r = share_fetch(c, group, m2, 0, tid, max_wait_ms=LOCK_MS * 3)
        # ...but the long poll wakes when m1's lock times out
        assert acquired(r) == [(0, 4, 2)]
        assert LOCK_MS * 0.8 / 1000 <= time.monotonic() - t0 < LOCK_MS * 2.5 / 1000
        # m1's late acknowledgement is refused
        late = share_ack(c, group, m1, 1, tid, 0, [(0, 4, [ACCEPT])])
        assert late["responses"][0]["partitions"][0]["error_code"] == errors.INVALID_RECORD_STATE


def test_delivery_count_limit_archives(sbroker, topic):
    with RawClient(sbroker.bootstrap) as c:
        tid, group = _setup(c, topic, 2)
        m, _ = join(c, group, [topic])
        assert acquired(share_fetch(c, group, m, 0, tid, max_wait_ms=0)) == [(0, 1, 1)]
        share_ack(c, group, m, 1, tid, 0, [(0, 1, [RELEASE, ACCEPT])])
        epoch = 2
        for count in (2, 3):  # group.share.delivery.count.limit = 3
            assert acquired(share_fetch(c, group, m, epoch, tid, max_wait_ms=0)) == [(0, 0, count)]
            r = share_ack(c, group, m, epoch + 1, tid, 0, [(0, 0, [RELEASE])])
            assert r["responses"][0]["partitions"][0]["error_code"] == 0
            epoch += 2
        # released at the limit: archived, the start offset moves past it
        assert acquired(share_fetch(c, group, m, epoch, tid, max_wait_ms=0)) == []
        d = c.call(90, 1, {"groups": [{"group_id": group, "topics": None}]})
        assert d["groups"][0]["topics"][0]["partitions"][0]["start_offset"] == 2


def test_lock_timeout_at_the_limit_archives(sbroker, topic):
    with RawClient(sbroker.bootstrap) as c:
        tid, group = _setup(c, topic, 1)
        m, _ = join(c, group, [topic])
        for count, epoch in ((1, 0), (2, 1), (3, 2)):
            r = share_fetch(c, group, m, epoch, tid, max_wait_ms=LOCK_MS * 3)
            assert acquired(r) == [(0, 0, count)]
        time.sleep(LOCK_MS * 1.5 / 1000)
        assert acquired(share_fetch(c, group, m, 3, tid, max_wait_ms=0)) == []
        d = c.call(90, 1, {"groups": [{"group_id": group, "topics": None}]})
        assert d["groups"][0]["topics"][0]["partitions"][0]["start_offset"] == 1


def test_two_members_split_one_partition(sbroker, topic):
    with RawClient(sbroker.bootstrap) as c:
        tid, group = _setup(c, topic, 20, batch=5)
        m1, _ = join(c, group, [topic])
        m2, _ = join(c, group, [topic])
        r1 = share_fetch(c, group, m1, 0, tid, max_records=5)
        r2 = share_fetch(c, group, m2, 0, tid, max_records=5)
        assert acquired_offsets(r1) == list(range(0, 5))
        assert acquired_offsets(r2) == list(range(5, 10))
        seen = set(acquired_offsets(r1)) | set(acquired_offsets(r2))
        e1 = e2 = 1
        while len(seen) < 20:
            r = share_fetch(c, group, m1, e1, tid, max_records=5, max_wait_ms=0)
            e1 += 1
            got = acquired_offsets(r)
            assert not set(got) & seen
            seen |= set(got)
            r = share_fetch(c, group, m2, e2, tid, max_records=5, max_wait_ms=0)
            e2 += 1
            got = acquired_offsets(r)
            assert not set(got) & seen
            seen |= set(got)
        assert seen == set(range(20))


def test_in_flight_limit(sbroker, topic):
    with RawClient(sbroker.bootstrap) as c:
        tid, group = _setup(c, topic, 150, batch=10)
        m, _ = join(c, group, [topic])
        r = share_fetch(c, group, m, 0, tid, max_records=1000)
        assert acquired(r) == [(0, 99, 1)]  # group.share.partition.max.record.locks = 100
        assert acquired(share_fetch(c, group, m, 1, tid, max_records=1000, max_wait_ms=0)) == []
        r = share_fetch(c, group, m, 2, tid, acks=[(0, 9, [ACCEPT])], max_records=1000, max_wait_ms=0)
        assert acquired(r) == [(100, 109, 1)]


def test_share_sessions(sbroker, topic):
    with RawClient(sbroker.bootstrap) as c:
        tid, group = _setup(c, topic, 3)
        m, _ = join(c, group, [topic])
        assert share_fetch(c, group, m, 1, tid)["error_code"] == errors.SHARE_SESSION_NOT_FOUND
        assert share_ack(c, group, m, 0, tid, 0, [(0, 0, [ACCEPT])])["error_code"] == \
            errors.INVALID_SHARE_SESSION_EPOCH
        assert share_fetch(c, group, m, 0, tid, acks=[(0, 0, [ACCEPT])])["error_code"] == errors.INVALID_REQUEST
        assert acquired(share_fetch(c, group, m, 0, tid)) == [(0, 2, 1)]
        assert share_fetch(c, group, m, 5, tid)["error_code"] == errors.INVALID_SHARE_SESSION_EPOCH
        assert share_fetch(c, group, "", 0, tid)["error_code"] == errors.INVALID_REQUEST
        # closing the session (epoch -1) applies the acks and releases the rest
        r = share_fetch(c, group, m, -1, tid, acks=[(0, 0, [ACCEPT])])
        assert r["error_code"] == 0 and partition_result(r)["acknowledge_error_code"] == 0
        assert acquired(r) == []
        m2, _ = join(c, group, [topic])
        assert acquired(share_fetch(c, group, m2, 0, tid)) == [(1, 2, 2)]
        # ShareAcknowledge -1 closes too
        assert share_ack(c, group, m2, -1, tid, 0, [(1, 1, [ACCEPT])])["error_code"] == 0
        assert share_fetch(c, group, m2, 1, tid)["error_code"] == errors.SHARE_SESSION_NOT_FOUND
        assert acquired(share_fetch(c, group, m2, 0, tid)) == [(2, 2, 3)]


def test_member_leaving_releases_its_records(sbroker, topic):
    with RawClient(sbroker.bootstrap) as c:
        tid, group = _setup(c, topic, 4)
        m1, _ = join(c, group, [topic])
        m2, _ = join(c, group, [topic])
        assert acquired(share_fetch(c, group, m1, 0, tid)) == [(0, 3, 1)]
        assert heartbeat(c, group, m1, -1)["member_epoch"] == -1
        assert acquired(share_fetch(c, group, m2, 0, tid, max_wait_ms=0)) == [(0, 3, 2)]


# -- offsets administration -----------------------------------------------------------------------

@pytest.mark.parametrize("v", [0, 1])
def test_describe_share_group_offsets(sbroker, topic, v):
    with RawClient(sbroker.bootstrap) as c:
        tid, group = _setup(c, topic, 8, partitions=2)
        m, _ = join(c, group, [topic])
        r = share_fetch(c, group, m, 0, tid, [0, 1])
        assert acquired_offsets(r, 0) == list(range(8)) and acquired_offsets(r, 1) == list(range(8))
        share_ack(c, group, m, 1, tid, 0, [(0, 2, [ACCEPT]), (4, 4, [REJECT])])
        d = c.call(90, v, {"groups": [
            {"group_id": group, "topics": [{"topic_name": topic, "partitions": [0, 1, 7]},
                                           {"topic_name": "no-such-topic", "partitions": [0]}]},
            {"group_id": "no-such-group-" + topic, "topics": None}]})
        g, missing = d["groups"]
        assert g["error_code"] == 0
        t, unknown = g["topics"]
        assert t["topic_name"] == topic and t["topic_id"] == tid
        rows = {p["partition_index"]: p for p in t["partitions"]}
        assert rows[0]["start_offset"] == 3 and rows[1]["start_offset"] == 0
        assert rows[0]["error_code"] == rows[1]["error_code"] == 0
        assert rows[7]["error_code"] == errors.UNKNOWN_TOPIC_OR_PARTITION
        assert unknown["partitions"][0]["error_code"] == errors.UNKNOWN_TOPIC_OR_PARTITION
        if v >= 1:
            assert rows[0]["lag"] == 4 and rows[1]["lag"] == 8  # 3..7 minus the rejected 4
        assert missing["error_code"] == errors.GROUP_ID_NOT_FOUND


def test_alter_share_group_offsets_v0(sbroker, topic):
    with RawClient(sbroker.bootstrap) as c:
        tid, group = _setup(c, topic, 10)
        r = alter_offsets(c, group, topic, {0: 7})
        assert r["error_code"] == 0
        assert r["responses"][0]["topic_id"] == tid and r["responses"][0]["partitions"][0]["error_code"] == 0
        bad = c.call(91, 0, {"group_id": group, "topics": [
            {"topic_name": topic, "partitions": [{"partition_index": 3, "start_offset": 0}]},
            {"topic_name": "no-such-topic", "partitions": [{"partition_index": 0, "start_offset": 0}]}]})
        assert [t["partitions"][0]["error_code"] for t in bad["responses"]] == [
            errors.UNKNOWN_TOPIC_OR_PARTITION, errors.UNKNOWN_TOPIC_OR_PARTITION]
        m, _ = join(c, group, [topic])
        assert acquired(share_fetch(c, group, m, 0, tid)) == [(7, 9, 1)]
        # not while the group has members
        assert alter_offsets(c, group, topic, {0: 0})["error_code"] == errors.NON_EMPTY_GROUP
        heartbeat(c, group, m, -1)
        assert alter_offsets(c, group, topic, {0: 2})["error_code"] == 0
        m, _ = join(c, group, [topic])
        assert acquired(share_fetch(c, group, m, 0, tid)) == [(2, 9, 1)]


def test_delete_share_group_offsets_v0(sbroker, topic):
    with RawClient(sbroker.bootstrap) as c:
        tid, group = _setup(c, topic, 5)
        m, _ = join(c, group, [topic])
        r = c.call(92, 0, {"group_id": group, "topics": [{"topic_name": topic}]})
        assert r["error_code"] == errors.NON_EMPTY_GROUP
        heartbeat(c, group, m, -1)
        r = c.call(92, 0, {"group_id": group, "topics": [{"topic_name": topic}, {"topic_name": "no-such-topic"}]})
        assert r["error_code"] == 0
        assert [(t["topic_name"], t["error_code"]) for t in r["responses"]] == [
            (topic, 0), ("no-such-topic", errors.UNKNOWN_TOPIC_OR_PARTITION)]
        assert r["responses"][0]["topic_id"] == tid
        d = c.call(90, 1, {"groups": [{"group_id": group, "topics": None}]})
        assert d["groups"][0]["topics"] == []
        assert c.call(92, 0, {"group_id": "nope-" + topic, "topics": []})["error_code"] == errors.GROUP_ID_NOT_FOUND
        # re-initialized at the next assignment: latest (share.auto.offset.reset default)
        join(c, group, [topic])
        d = c.call(90, 1, {"groups": [{"group_id": group, "topics": None}]})
        assert d["groups"][0]["topics"][0]["partitions"][0]["start_offset"] == 5


def test_transaction_markers_are_not_delivered(sbroker, topic):
    ck = pytest.importorskip("confluent_kafka")
    with RawClient(sbroker.bootstrap) as c:
        tid = create_topic(c, topic, 1)
        group = "g-" + topic
        assert alter_offsets(c, group, topic, {0: 0})["error_code"] == 0
        p = ck.Producer({"bootstrap.servers": sbroker.bootstrap, "transactional.id": "tx-" + topic})
        p.init_transactions(10)
        p.begin_transaction()
        for i in range(3):
            p.produce(topic, f"t{i}".encode(), partition=0)
        p.commit_transaction(10)
        m, _ = join(c, group, [topic])
        r = share_fetch(c, group, m, 0, tid)
        assert acquired(r) == [(0, 2, 1)] and values(r) == {0: b"t0", 1: b"t1", 2: b"t2"}
        share_ack(c, group, m, 1, tid, 0, [(0, 2, [ACCEPT])])
        d = c.call(90, 1, {"groups": [{"group_id": group, "topics": None}]})
        row = d["groups"][0]["topics"][0]["partitions"][0]
        assert row["start_offset"] == 4 and row["lag"] == 0  # past the COMMIT marker at 3


def test_share_version_0_turns_share_groups_off(broker_factory, topic):
    """UpdateFeatures share.version 0: every share-group API answers
    UNSUPPORTED_VERSION (Kafka 4.x), the share-partition state stays, and
    share.version 1 brings the group back where it was. Its own broker:
    the level is broker-wide."""
    b = broker_factory(name="share_off")
    with RawClient(b.bootstrap) as c:
        tid, group = _setup(c, topic, 3)
        m, _ = join(c, group, [topic])
        r = share_fetch(c, group, m, 0, tid, max_wait_ms=2000)
        assert acquired(r) == [(0, 2, 1)]
        assert share_ack(c, group, m, 1, tid, 0, [(0, 2, [ACCEPT])])["error_code"] == 0

        def update(level: int) -> None:
            u = c.call(57, 1, {"timeout_ms": 30000, "validate_only": False, "feature_updates": [
                {"feature": "share.version", "max_version_level": level, "upgrade_type": 1 if level else 2}]})
            assert u["error_code"] == 0 and [x["error_code"] for x in u["results"]] == [0]

        update(0)
        off = errors.UNSUPPORTED_VERSION
        assert heartbeat(c, group, m, 1, [topic])["error_code"] == off
        d = c.call(77, 1, {"group_ids": [group], "include_authorized_operations": False})
        assert [(g["group_id"], g["error_code"]) for g in d["groups"]] == [(group, off)]
        assert share_fetch(c, group, m, 2, tid)["error_code"] == off
        assert share_ack(c, group, m, 2, tid, 0, [(0, 0, [ACCEPT])])["error_code"] == off
        d = c.call(90, 1, {"groups": [{"group_id": group, "topics": None}]})
        assert [(g["group_id"], g["error_code"]) for g in d["groups"]] == [(group, off)]
        assert alter_offsets(c, group, topic, {0: 0})["error_code"] == off
        r = c.call(92, 0, {"group_id": group, "topics": [{"topic_name": topic}]})
        assert r["error_code"] == off
        update(1)
        # the delivered records stayed acknowledged: the start offset is 3
        d = c.call(90, 1, {"groups": [{"group_id": group, "topics": None}]})
        assert d["groups"][0]["error_code"] == 0
        assert d["groups"][0]["topics"][0]["partitions"][0]["start_offset"] == 3
        m2, r2 = join(c, group, [topic])
        assert r2["error_code"] == 0 and r2["assignment"]["topic_partitions"] == [{"topic_id": tid, "partitions": [0]}]
