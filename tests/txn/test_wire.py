"""Every served version of the transaction APIs, raw over a socket (our
codec), against a broker process; plus the produce/fetch/list-offsets
behaviour that idempotence and transactions add.

What is proved here:
- InitProducerId v0-5, AddPartitionsToTxn v0-5 (batched v4+ with
  verify_only), AddOffsetsToTxn v0-4, TxnOffsetCommit v0-5, EndTxn v0-5
  (v5 answers the bumped epoch), WriteTxnMarkers v1-2, DescribeProducers,
  DescribeTransactions, ListTransactions v0-2 and FindCoordinator(key type
  1) v1-6 answer in Kafka's shapes and codes, including the version-
  dependent ones (INVALID_PRODUCER_EPOCH instead of PRODUCER_FENCED for old
  versions; INVALID_TXN_STATE / TRANSACTION_ABORTABLE / implicit add for
  Produce v3-10 / v11 / v12+);
- Produce: a retried idempotent batch gets its original offset (success),
  a gap gets OUT_OF_ORDER_SEQUENCE_NUMBER, an old epoch
  INVALID_PRODUCER_EPOCH; Fetch read_committed stops at the LSO and lists
  the aborted transactions (read_uncommitted: null); ListOffsets LATEST
  read_committed is the LSO; OffsetFetch require_stable answers
  UNSTABLE_OFFSET_COMMIT while a transactional commit is pending.
"""

from __future__ import annotations

import time
import uuid

import pytest

from pykbroker.handlers import load_all
from pykbroker.protocol import errors
from rawclient import RawClient
from txn_helpers import batch

REGISTRY = load_all()


def versions(key: int) -> list[int]:
    h = REGISTRY[key]
    return list(range(h.min_version, h.max_version + 1))


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create(c: RawClient, topic: str, partitions: int = 2) -> None:
    r = c.call(19, 4, {"topics": [{"name": topic, "num_partitions": partitions, "replication_factor": 1,
                                   "assignments": [], "configs": []}], "timeout_ms": 10000})
    assert r["topics"][0]["error_code"] == 0


def init(c: RawClient, tid: str | None, v: int = 4, timeout: int = 60000) -> tuple[int, int]:
    if tid is not None:
        assert c.call(10, 3, {"key": tid, "key_type": 1})["error_code"] == 0
    r = c.call(22, v, {"transactional_id": tid, "transaction_timeout_ms": timeout,
                       "producer_id": -1, "producer_epoch": -1})
    assert r["error_code"] == 0, r
    return r["producer_id"], r["producer_epoch"]


def add(c: RawClient, tid: str, pid: int, epoch: int, parts: dict[str, list[int]], v: int = 3) -> dict:
    r = c.call(24, v, {"v3_and_below_transactional_id": tid, "v3_and_below_producer_id": pid,
                       "v3_and_below_producer_epoch": epoch,
                       "v3_and_below_topics": [{"name": t, "partitions": ps} for t, ps in parts.items()]})
    return {(t["name"], p["partition_index"]): p["partition_error_code"]
            for t in r["results_by_topic_v3_and_below"] for p in t["results_by_partition"]}


def produce(c: RawClient, topic: str, partition: int, data: bytes, v: int = 9, tid: str | None = None) -> dict:
    body = {"transactional_id": tid, "acks": -1, "timeout_ms": 10000,
            "topic_data": [{"name": topic, "partition_data": [{"index": partition, "records": data}]}]}
    r = c.call(0, v, body)
    return r["responses"][0]["partition_responses"][0]


def end(c: RawClient, tid: str, pid: int, epoch: int, commit: bool, v: int = 3) -> dict:
    return c.call(26, v, {"transactional_id": tid, "producer_id": pid, "producer_epoch": epoch,
                          "committed": commit})


@pytest.mark.parametrize("v", versions(10)[1:])
def test_find_coordinator_transaction_key(shared_broker, v):
    with RawClient(shared_broker.bootstrap) as c:
        tid = uid("fc")
        if v >= 4:
            r = c.call(10, v, {"key_type": 1, "coordinator_keys": [tid]})["coordinators"][0]
        else:
            r = c.call(10, v, {"key_type": 1, "key": tid})
        assert r["error_code"] == 0 and r["node_id"] == 0 and r["port"] == int(shared_broker.bootstrap.split(":")[1])


@pytest.mark.parametrize("v", versions(22))
def test_init_producer_id(shared_broker, v):
    with RawClient(shared_broker.bootstrap) as c:
        a, ea = init(c, None, v)
        b, eb = init(c, None, v)
        assert a != b and ea == eb == 0  # idempotent producers: always a fresh id
        tid = uid("ipi")
        pid, e0 = init(c, tid, v)
        pid2, e1 = init(c, tid, v)
        assert (pid2, e1) == (pid, e0 + 1)  # the same id again: bumped (fences the first)
        bad = c.call(22, v, {"transactional_id": tid, "transaction_timeout_ms": 0})
        assert bad["error_code"] == errors.INVALID_TRANSACTION_TIMEOUT and bad["producer_id"] == -1
        assert c.call(22, v, {"transactional_id": "", "transaction_timeout_ms": 1000})["error_code"] == \
            errors.INVALID_REQUEST
        if v >= 3:
            half = c.call(22, v, {"transactional_id": tid, "transaction_timeout_ms": 1000, "producer_id": pid,
                                  "producer_epoch": -1})
            assert half["error_code"] == errors.INVALID_REQUEST
            stale = c.call(22, v, {"transactional_id": tid, "transaction_timeout_ms": 1000,
                                   "producer_id": pid + 1000, "producer_epoch": 0})
            assert stale["error_code"] == (errors.PRODUCER_FENCED if v >= 4 else errors.INVALID_PRODUCER_EPOCH)
            bump = c.call(22, v, {"transactional_id": tid, "transaction_timeout_ms": 1000, "producer_id": pid,
                                  "producer_epoch": e1})
            assert (bump["error_code"], bump["producer_epoch"]) == (0, e1 + 1)


@pytest.mark.parametrize("v", versions(24))
def test_add_partitions_to_txn(shared_broker, v):
    with RawClient(shared_broker.bootstrap) as c:
        topic = uid("apt")
        create(c, topic)
        tid = uid("apt")
        pid, epoch = init(c, tid)
        if v < 4:
            assert add(c, tid, pid, epoch, {topic: [0, 1]}, v) == {(topic, 0): 0, (topic, 1): 0}
            assert add(c, tid, pid, epoch, {topic: [0], "nope-" + topic: [0]}, v) == \
                {(topic, 0): errors.OPERATION_NOT_ATTEMPTED, ("nope-" + topic, 0): errors.UNKNOWN_TOPIC_OR_PARTITION}
            fenced = add(c, tid, pid, epoch + 1, {topic: [0]}, v)
            assert fenced == {(topic, 0): errors.PRODUCER_FENCED if v >= 2 else errors.INVALID_PRODUCER_EPOCH}
            assert add(c, tid, pid + 99, epoch, {topic: [0]}, v) == {(topic, 0): errors.INVALID_PRODUCER_ID_MAPPING}
            return
        tid2 = uid("apt")
        pid2, e2 = init(c, tid2)
        r = c.call(24, v, {"transactions": [
            {"transactional_id": tid, "producer_id": pid, "producer_epoch": epoch, "verify_only": False,
             "topics": [{"name": topic, "partitions": [0]}]},
            {"transactional_id": tid2, "producer_id": pid2, "producer_epoch": e2, "verify_only": True,
             "topics": [{"name": topic, "partitions": [0]}]}]})
        assert r["error_code"] == 0
        got = {t["transactional_id"]: t["topic_results"][0]["results_by_partition"][0]["partition_error_code"]
               for t in r["results_by_transaction"]}
        assert got == {tid: 0, tid2: errors.TRANSACTION_ABORTABLE}
        r = c.call(24, v, {"transactions": [
            {"transactional_id": tid, "producer_id": pid, "producer_epoch": epoch, "verify_only": True,
             "topics": [{"name": topic, "partitions": [0, 1]}]}]})
        codes = [p["partition_error_code"] for p in r["results_by_transaction"][0]["topic_results"][0]
                 ["results_by_partition"]]
        assert codes == [0, errors.TRANSACTION_ABORTABLE]


@pytest.mark.parametrize("v", versions(26))
def test_end_txn(shared_broker, v):
    with RawClient(shared_broker.bootstrap) as c:
        topic = uid("end")
        create(c, topic)
        tid = uid("end")
        pid, epoch = init(c, tid, 5 if v >= 5 else 4)
        assert add(c, tid, pid, epoch, {topic: [0]}) == {(topic, 0): 0}
        assert produce(c, topic, 0, batch(pid, epoch, 0, n=2, txn=True), tid=tid)["error_code"] == 0
        r = end(c, tid, pid, epoch, True, v)
        assert r["error_code"] == 0
        if v >= 5:
            assert (r["producer_id"], r["producer_epoch"]) == (pid, epoch + 1)  # KIP-890: bumped per transaction
            assert end(c, tid, pid, epoch, True, v)["producer_epoch"] == epoch + 1  # a retry
            epoch += 1
        else:
            assert end(c, tid, pid, epoch, True, v)["error_code"] == 0  # a retry
        assert end(c, tid, pid, epoch, False, v)["error_code"] == (
            errors.PRODUCER_FENCED if v >= 5 else errors.INVALID_TXN_STATE)
        assert end(c, tid, pid, epoch + 7, True, v)["error_code"] == (
            errors.PRODUCER_FENCED if v >= 2 else errors.INVALID_PRODUCER_EPOCH)
        assert end(c, "", pid, epoch, True, v)["error_code"] == errors.INVALID_REQUEST
        with RawClient(shared_broker.bootstrap) as c2:
            data = c2.call(1, 11, {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
                                   "isolation_level": 1, "topics": [{"topic": topic, "partitions": [
                                       {"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20}]}]})
        part = data["responses"][0]["partitions"][0]
        assert part["last_stable_offset"] == part["high_watermark"] == 3
        assert part["aborted_transactions"] == []


@pytest.mark.parametrize("v", versions(25))
def test_add_offsets_and_txn_offset_commit(shared_broker, v):
    with RawClient(shared_broker.bootstrap) as c:
        topic, gid, tid = uid("off"), uid("grp"), uid("off")
        create(c, topic, 1)
        pid, epoch = init(c, tid)
        tv = min(v, versions(28)[-1])
        if tv < 5:  # TxnOffsetCommit v5+ adds the partition implicitly: try the others without it
            early = c.call(28, tv, {"transactional_id": tid, "group_id": gid, "producer_id": pid,
                                    "producer_epoch": epoch, "topics": [{"name": topic, "partitions": [
                                        {"partition_index": 0, "committed_offset": 5}]}]})
            assert early["topics"][0]["partitions"][0]["error_code"] == (
                errors.TRANSACTION_ABORTABLE if tv == 4 else errors.INVALID_TXN_STATE)
        assert c.call(25, v, {"transactional_id": tid, "producer_id": pid, "producer_epoch": epoch,
                              "group_id": gid})["error_code"] == 0
        assert c.call(25, v, {"transactional_id": tid, "producer_id": pid, "producer_epoch": epoch + 1,
                              "group_id": gid})["error_code"] == (
            errors.PRODUCER_FENCED if v >= 2 else errors.INVALID_PRODUCER_EPOCH)
        r = c.call(28, tv, {"transactional_id": tid, "group_id": gid, "producer_id": pid, "producer_epoch": epoch,
                            "generation_id": -1, "member_id": "", "group_instance_id": None,
                            "topics": [{"name": topic, "partitions": [
                                {"partition_index": 0, "committed_offset": 5, "committed_leader_epoch": -1,
                                 "committed_metadata": "m"},
                                {"partition_index": 9, "committed_offset": 5}]}]})
        assert [p["error_code"] for p in r["topics"][0]["partitions"]] == [0, errors.UNKNOWN_TOPIC_OR_PARTITION]
        fetch = {"group_id": gid, "topics": [{"name": topic, "partition_indexes": [0]}], "require_stable": True}
        pending = c.call(9, 7, fetch)["topics"][0]["partitions"][0]
        assert (pending["error_code"], pending["committed_offset"]) == (errors.UNSTABLE_OFFSET_COMMIT, -1)
        assert c.call(9, 7, {**fetch, "require_stable": False})["topics"][0]["partitions"][0]["committed_offset"] == -1
        assert end(c, tid, pid, epoch, True)["error_code"] == 0
        done = c.call(9, 7, fetch)["topics"][0]["partitions"][0]
        assert (done["error_code"], done["committed_offset"], done["metadata"]) == (0, 5, "m")


@pytest.mark.parametrize("v", versions(28))
def test_txn_offset_commit_versions(shared_broker, v):
    with RawClient(shared_broker.bootstrap) as c:
        topic, gid, tid = uid("toc"), uid("grp"), uid("toc")
        create(c, topic, 1)
        pid, epoch = init(c, tid)
        if v < 5:
            assert c.call(25, 3, {"transactional_id": tid, "producer_id": pid, "producer_epoch": epoch,
                                  "group_id": gid})["error_code"] == 0
        body = {"transactional_id": tid, "group_id": gid, "producer_id": pid, "producer_epoch": epoch,
                "generation_id": -1, "member_id": "", "group_instance_id": None,
                "topics": [{"name": topic, "partitions": [{"partition_index": 0, "committed_offset": 3,
                                                            "committed_leader_epoch": -1}]}]}
        assert c.call(28, v, body)["topics"][0]["partitions"][0]["error_code"] == 0
        assert c.call(28, v, {**body, "producer_epoch": epoch + 1})["topics"][0]["partitions"][0]["error_code"] == \
            errors.INVALID_PRODUCER_EPOCH
        assert c.call(28, v, {**body, "group_id": ""})["topics"][0]["partitions"][0]["error_code"] == \
            errors.INVALID_GROUP_ID
        if v >= 3:  # an unknown group with a generation (its partition added to the transaction first)
            other = uid("grp")
            assert c.call(25, 3, {"transactional_id": tid, "producer_id": pid, "producer_epoch": epoch,
                                  "group_id": other})["error_code"] == 0
            gen = c.call(28, v, {**body, "group_id": other, "generation_id": 3})
            assert gen["topics"][0]["partitions"][0]["error_code"] == errors.ILLEGAL_GENERATION
        assert end(c, tid, pid, epoch, False)["error_code"] == 0
        got = c.call(9, 7, {"group_id": gid, "topics": [{"name": topic, "partition_indexes": [0]}],
                            "require_stable": True})["topics"][0]["partitions"][0]
        assert (got["error_code"], got["committed_offset"]) == (0, -1)  # aborted: never committed


@pytest.mark.parametrize("v", [3, 10, 11, 12, 13])
def test_produce_transactional_verification(shared_broker, v):
    with RawClient(shared_broker.bootstrap) as c:
        topic, tid = uid("ver"), uid("ver")
        create(c, topic)
        pid, epoch = init(c, tid)
        data = batch(pid, epoch, 0, txn=True)
        if v >= 13:
            md = c.call(3, 12, {"topics": [{"name": topic, "topic_id": b"\0" * 16}],
                                "allow_auto_topic_creation": False})
            topic_id = md["topics"][0]["topic_id"]
            r = c.call(0, v, {"transactional_id": tid, "acks": -1, "timeout_ms": 10000, "topic_data": [
                {"topic_id": topic_id, "partition_data": [{"index": 0, "records": data}]}]})
            res = r["responses"][0]["partition_responses"][0]
        else:
            res = produce(c, topic, 0, data, v, tid)
        if v >= 12:
            assert res["error_code"] == 0  # KIP-890: added implicitly
            d = c.call(65, 0, {"transactional_ids": [tid]})["transaction_states"][0]
            assert d["transaction_state"] == "Ongoing" and d["topics"] == [{"topic": topic, "partitions": [0]}]
        else:
            assert res["error_code"] == (errors.TRANSACTION_ABORTABLE if v == 11 else errors.INVALID_TXN_STATE)
        no_id = produce(c, topic, 1, batch(pid, epoch, 0, txn=True), min(v, 12), None)
        assert no_id["error_code"] == errors.TRANSACTIONAL_ID_AUTHORIZATION_FAILED


def test_idempotent_produce_and_read_committed(shared_broker):
    with RawClient(shared_broker.bootstrap) as c:
        topic = uid("idem")
        create(c, topic, 1)
        pid, epoch = init(c, None)
        first = produce(c, topic, 0, batch(pid, epoch, 0, n=3))
        assert (first["error_code"], first["base_offset"]) == (0, 0)
        assert produce(c, topic, 0, batch(pid, epoch, 3, n=2))["base_offset"] == 3
        dup = produce(c, topic, 0, batch(pid, epoch, 0, n=3))
        assert (dup["error_code"], dup["base_offset"]) == (0, 0)  # the original offset, nothing written
        assert produce(c, topic, 0, batch(pid, epoch, 9))["error_code"] == errors.OUT_OF_ORDER_SEQUENCE_NUMBER
        assert produce(c, topic, 0, batch(pid, epoch + 1, 0))["base_offset"] == 5  # a new epoch from 0
        assert produce(c, topic, 0, batch(pid, epoch, 5))["error_code"] == errors.INVALID_PRODUCER_EPOCH

        # an aborted transaction and an open one, read both ways
        tid = uid("rc")
        tpid, te = init(c, tid)
        assert add(c, tid, tpid, te, {topic: [0]}) == {(topic, 0): 0}
        assert produce(c, topic, 0, batch(tpid, te, 0, n=2, txn=True), tid=tid)["base_offset"] == 6
        assert end(c, tid, tpid, te, False)["error_code"] == 0  # marker at 8
        assert add(c, tid, tpid, te, {topic: [0]}) == {(topic, 0): 0}
        assert produce(c, topic, 0, batch(tpid, te, 2, n=1, txn=True), tid=tid)["base_offset"] == 9
        plain = produce(c, topic, 0, batch(n=1))
        assert plain["base_offset"] == 10

        def fetch(iso: int, v: int = 11) -> dict:
            return c.call(1, v, {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
                                 "isolation_level": iso, "topics": [{"topic": topic, "partitions": [
                                     {"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20}]}]}
                          )["responses"][0]["partitions"][0]

        rc, ru = fetch(1), fetch(0)
        assert (rc["high_watermark"], rc["last_stable_offset"]) == (11, 9)
        assert rc["aborted_transactions"] == [{"producer_id": tpid, "first_offset": 6}]
        assert ru["aborted_transactions"] is None
        assert len(rc["records"]) < len(ru["records"])  # stops at the LSO
        for v in (2, 5, 11):
            lo = c.call(2, v, {"replica_id": -1, "isolation_level": 1, "topics": [
                {"name": topic, "partitions": [{"partition_index": 0, "timestamp": -1}]}]})
            assert lo["topics"][0]["partitions"][0]["offset"] == 9
        producers = c.call(61, 0, {"topics": [{"name": topic, "partition_indexes": [0, 5]}]})["topics"][0]
        by_pid = {p["producer_id"]: p for p in producers["partitions"][0]["active_producers"]}
        assert by_pid[tpid]["current_txn_start_offset"] == 9 and by_pid[pid]["last_sequence"] == 0
        assert producers["partitions"][1]["error_code"] == errors.UNKNOWN_TOPIC_OR_PARTITION
        assert end(c, tid, tpid, te, True)["error_code"] == 0
        assert fetch(1)["last_stable_offset"] == 12


@pytest.mark.parametrize("v", versions(27))
def test_write_txn_markers(shared_broker, v):
    with RawClient(shared_broker.bootstrap) as c:
        topic = uid("wtm")
        create(c, topic, 1)
        pid, epoch = 987654 + v, 0
        assert produce(c, topic, 0, batch(pid, epoch, 0, txn=True), v=12, tid=None)["error_code"] == \
            errors.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        r = c.call(27, v, {"markers": [{"producer_id": pid, "producer_epoch": epoch, "transaction_result": False,
                                        "topics": [{"name": topic, "partition_indexes": [0, 3]}],
                                        "coordinator_epoch": 0, "transaction_version": 0}]})
        codes = [p["error_code"] for p in r["markers"][0]["topics"][0]["partitions"]]
        assert codes == [0, errors.UNKNOWN_TOPIC_OR_PARTITION]


@pytest.mark.parametrize("v", versions(66))
def test_describe_and_list_transactions(shared_broker, v):
    with RawClient(shared_broker.bootstrap) as c:
        topic, tid = uid("lt"), uid("lt")
        create(c, topic, 1)
        pid, epoch = init(c, tid)
        assert add(c, tid, pid, epoch, {topic: [0]}) == {(topic, 0): 0}
        d = c.call(65, 0, {"transactional_ids": [tid, uid("none")]})["transaction_states"]
        assert (d[0]["error_code"], d[0]["transaction_state"], d[0]["producer_id"], d[0]["producer_epoch"]) == \
            (0, "Ongoing", pid, epoch)
        assert d[0]["transaction_timeout_ms"] == 60000 and d[0]["transaction_start_time_ms"] > 0
        assert d[1]["error_code"] in (errors.TRANSACTIONAL_ID_NOT_FOUND, errors.NOT_COORDINATOR)
        body = {"state_filters": ["Ongoing", "Weird"], "producer_id_filters": [pid], "duration_filter": -1,
                "transactional_id_pattern": None}
        r = c.call(66, v, body)
        assert r["error_code"] == 0 and r["unknown_state_filters"] == ["Weird"]
        assert r["transaction_states"] == [{"transactional_id": tid, "producer_id": pid,
                                            "transaction_state": "Ongoing"}]
        if v >= 1:
            assert c.call(66, v, {**body, "duration_filter": 3_600_000})["transaction_states"] == []
        if v >= 2:
            assert c.call(66, v, {**body, "transactional_id_pattern": "lt-.*"})["transaction_states"]
            assert not c.call(66, v, {**body, "transactional_id_pattern": "x.*"})["transaction_states"]
            assert c.call(66, v, {**body, "transactional_id_pattern": "("})["error_code"] == \
                errors.INVALID_REGULAR_EXPRESSION
        assert end(c, tid, pid, epoch, False)["error_code"] == 0


def test_dedup_survives_restart_and_crash(broker_factory):
    """The producer state comes back from the `.snapshot` written at a clean
    shutdown and, after kill -9, from the log replay: a retried batch is
    still a duplicate, the next sequence still follows."""
    b = broker_factory({"transaction.state.log.num.partitions": 2, "offsets.topic.num.partitions": 2})
    with RawClient(b.bootstrap) as c:
        topic = uid("dd")
        create(c, topic, 1)
        pid, epoch = init(c, None)
        for i in range(7):  # more than the five-batch window
            assert produce(c, topic, 0, batch(pid, epoch, i * 2, n=2))["base_offset"] == i * 2
    b.restart()
    snaps = list(b.log_dir.glob(f"{topic}-0/*.snapshot"))
    assert snaps, "a producer snapshot at shutdown"
    with RawClient(b.bootstrap) as c:
        dup = produce(c, topic, 0, batch(pid, epoch, 12, n=2))
        assert (dup["error_code"], dup["base_offset"]) == (0, 12)
        assert produce(c, topic, 0, batch(pid, epoch, 20))["error_code"] == errors.OUT_OF_ORDER_SEQUENCE_NUMBER
        assert produce(c, topic, 0, batch(pid, epoch, 14, n=3))["base_offset"] == 14
    b.restart(kill=True)  # no snapshot at the log end: rebuilt by replaying the log
    with RawClient(b.bootstrap) as c:
        for seq, off in ((14, 14), (12, 12)):
            dup = produce(c, topic, 0, batch(pid, epoch, seq, n=3 if seq == 14 else 2))
            assert (dup["error_code"], dup["base_offset"]) == (0, off)
        assert produce(c, topic, 0, batch(pid, epoch, 17))["base_offset"] == 17
        r = c.call(61, 0, {"topics": [{"name": topic, "partition_indexes": [0]}]})
        (prod,) = r["topics"][0]["partitions"][0]["active_producers"]
        assert (prod["producer_id"], prod["last_sequence"]) == (pid, 17)


def test_open_transaction_still_bounds_the_last_stable_offset_after_a_clean_restart(broker_factory):
    """After a clean shutdown a partition's producer state is loaded on first
    use (issue 17), not at start: the first read_committed question about a
    partition with a transaction still open (its snapshot says so) must
    load it, so ListOffsets and Fetch stop at the transaction's first offset."""
    b = broker_factory({"transaction.state.log.num.partitions": 2, "offsets.topic.num.partitions": 2})
    with RawClient(b.bootstrap) as c:
        topic, tid = uid("lso"), uid("tx")
        create(c, topic, 1)
        assert produce(c, topic, 0, batch(n=2))["base_offset"] == 0
        pid, epoch = init(c, tid, timeout=600000)
        assert add(c, tid, pid, epoch, {topic: [0]}) == {(topic, 0): 0}
        assert produce(c, topic, 0, batch(pid, epoch, 0, n=3, txn=True), tid=tid)["base_offset"] == 2
        assert produce(c, topic, 0, batch(n=1))["base_offset"] == 5
    b.restart()
    with RawClient(b.bootstrap) as c:
        def list_offset(isolation: int) -> int:
            r = c.call(2, 5, {"replica_id": -1, "isolation_level": isolation, "topics": [
                {"name": topic, "partitions": [{"partition_index": 0, "current_leader_epoch": -1,
                                                "timestamp": -1}]}]})
            offset: int = r["topics"][0]["partitions"][0]["offset"]
            return offset
        assert list_offset(1) == 2  # read_committed: the open transaction's first offset
        assert list_offset(0) == 6  # read_uncommitted: the high watermark
        f = c.call(1, 11, {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 1, "max_bytes": 1 << 20,
                           "isolation_level": 1, "session_id": 0, "session_epoch": -1, "topics": [
                               {"topic": topic, "partitions": [{"partition": 0, "current_leader_epoch": -1,
                                                                "fetch_offset": 0, "log_start_offset": -1,
                                                                "partition_max_bytes": 1 << 20}]}],
                           "forgotten_topics_data": [], "rack_id": ""})
        assert f["responses"][0]["partitions"][0]["last_stable_offset"] == 2
        deadline = time.monotonic() + 30
        while (code := end(c, tid, pid, epoch, True)["error_code"]) == errors.COORDINATOR_LOAD_IN_PROGRESS:
            assert time.monotonic() < deadline, "the coordinator did not load __transaction_state"
            time.sleep(0.05)  # the restarted coordinator may still be loading
        assert code == 0
        assert list_offset(1) == 7  # committed (the marker at 6)
