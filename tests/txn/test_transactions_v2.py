"""Transactions v2 (KIP-890 part 2) as a Java 4.x producer drives them, raw.

The broker finalizes ``transaction.version`` 2 in ApiVersions; a client
that sees it sends no AddPartitionsToTxn/AddOffsetsToTxn (Produce v12 and
TxnOffsetCommit v5 add the partitions implicitly), ends each transaction
with EndTxn v5 and continues with the producer id and epoch it answers
(the epoch is bumped on every commit and abort). Proved here: commit,
abort, read_committed content and aborted-transaction lists, transactional
offsets, EndTxn retries, fencing by a new instance, and the feature's
absence under an older release (``--as-version 3.9``).
"""

from __future__ import annotations

import struct
import time
import uuid

from pykbroker.protocol import errors
from pykbroker.protocol.records import build_batch, decode_records
from rawclient import RawClient


def _uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _features(c: RawClient) -> dict[str, int]:
    r = c.call(18, 4, {"client_software_name": "tv2-test", "client_software_version": "4.2.0"})
    assert r["error_code"] == 0 and r["finalized_features_epoch"] >= 0
    return {f["name"]: f["max_version_level"] for f in r["finalized_features"]}


class Tv2Producer:
    """The requests a transaction.version 2 producer sends, and its id and epoch."""

    def __init__(self, c: RawClient, tid: str) -> None:
        self.c, self.tid = c, tid
        assert c.call(10, 6, {"key_type": 1, "coordinator_keys": [tid]})["coordinators"][0]["error_code"] == 0
        for _ in range(100):  # CONCURRENT_TRANSACTIONS while an open transaction is aborted: retry
            r = c.call(22, 5, {"transactional_id": tid, "transaction_timeout_ms": 60000,
                               "producer_id": -1, "producer_epoch": -1})
            if r["error_code"] != errors.CONCURRENT_TRANSACTIONS:
                break
            time.sleep(0.05)
        assert r["error_code"] == 0, r
        self.pid, self.epoch = r["producer_id"], r["producer_epoch"]
        self.seq: dict[tuple[str, int], int] = {}

    def produce(self, topic: str, partition: int, values: list[bytes], epoch: int | None = None) -> dict:
        key = (topic, partition)
        seq = self.seq.get(key, 0)
        ts = int(time.time() * 1000)
        data = build_batch([(None, v, (), ts) for v in values], producer_id=self.pid,
                           producer_epoch=self.epoch if epoch is None else epoch, base_sequence=seq,
                           transactional=True)
        r = self.c.call(0, 12, {"transactional_id": self.tid, "acks": -1, "timeout_ms": 10000, "topic_data": [
            {"name": topic, "partition_data": [{"index": partition, "records": data}]}]})
        p = r["responses"][0]["partition_responses"][0]
        if p["error_code"] == 0:
            self.seq[key] = seq + len(values)
        return p

    def commit_offsets(self, group: str, topic: str, offsets: dict[int, int]) -> list[int]:
        r = self.c.call(28, 5, {"transactional_id": self.tid, "group_id": group, "producer_id": self.pid,
                                "producer_epoch": self.epoch, "generation_id": -1, "member_id": "",
                                "group_instance_id": None, "topics": [{"name": topic, "partitions": [
                                    {"partition_index": p, "committed_offset": o, "committed_leader_epoch": -1,
                                     "committed_metadata": ""} for p, o in offsets.items()]}]})
        return [p["error_code"] for t in r["topics"] for p in t["partitions"]]

    def end(self, commit: bool, epoch: int | None = None) -> dict:
        r = self.c.call(26, 5, {"transactional_id": self.tid, "producer_id": self.pid,
                                "producer_epoch": self.epoch if epoch is None else epoch, "committed": commit})
        if r["error_code"] == 0 and epoch is None:
            assert r["producer_id"] == self.pid  # (a new id only when the epoch would overflow)
            assert r["producer_epoch"] == self.epoch + 1
            self.epoch = r["producer_epoch"]
            self.seq.clear()  # a new epoch starts its sequences at 0
        return r


def _create(c: RawClient, topic: str, partitions: int) -> None:
    r = c.call(19, 5, {"topics": [{"name": topic, "num_partitions": partitions, "replication_factor": 1,
                                   "assignments": [], "configs": []}], "timeout_ms": 10000})
    assert r["topics"][0]["error_code"] == 0


def _read_committed(c: RawClient, topic: str, partition: int) -> tuple[list[bytes], list[int], int]:
    """(values of data records, producer ids of aborted transactions, LSO)."""
    r = c.call(1, 12, {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 1, "max_bytes": 1 << 20,
                       "isolation_level": 1, "session_id": 0, "session_epoch": -1, "topics": [
                           {"topic": topic, "partitions": [{"partition": partition, "current_leader_epoch": -1,
                                                            "fetch_offset": 0, "last_fetched_epoch": -1,
                                                            "log_start_offset": -1,
                                                            "partition_max_bytes": 1 << 20}]}],
                       "forgotten_topics_data": [], "rack_id": ""})
    p = r["responses"][0]["partitions"][0]
    assert p["error_code"] == 0
    # as a read_committed consumer does: from an aborted transaction's first offset, skip
    # that producer's batches until its ABORT marker
    data, pos = p["records"], 0
    aborted = {a["producer_id"]: a["first_offset"] for a in p["aborted_transactions"] or []}
    pending = sorted((o, pid) for pid, o in aborted.items())
    skipping: set[int] = set()
    values = []
    while pos + 61 <= len(data):
        (n,) = struct.unpack_from(">i", data, pos + 8)
        (base,) = struct.unpack_from(">q", data, pos)
        attrs = struct.unpack_from(">h", data, pos + 21)[0]
        pid = struct.unpack_from(">q", data, pos + 43)[0]
        while pending and pending[0][0] <= base:
            skipping.add(pending.pop(0)[1])
        if attrs & 0x20:  # a control batch ends that producer's transaction
            skipping.discard(pid)
        elif pid not in skipping:
            values += [rec.value for rec in decode_records(data[pos:pos + 12 + n])]
        pos += 12 + n
    return values, sorted(aborted), p["last_stable_offset"]


def _committed(c: RawClient, group: str, topic: str) -> dict[int, int]:
    r = c.call(9, 7, {"group_id": group, "topics": None, "require_stable": True})
    assert r["error_code"] == 0, r
    return {p["partition_index"]: p["committed_offset"] for t in r["topics"] if t["name"] == topic
            for p in t["partitions"]}


def test_feature_finalized_at_level_2(shared_broker):
    with RawClient(shared_broker.bootstrap) as c:
        r = c.call(18, 3, {"client_software_name": "x", "client_software_version": "1"})
        assert {"name": "transaction.version", "min_version": 0, "max_version": 2} in r["supported_features"]
        assert _features(c)["transaction.version"] == 2
        assert _features(c)["group.version"] == 1


def test_feature_not_finalized_for_older_releases(broker_factory):
    b = broker_factory({"pykbroker.as.version": "3.9"})
    with RawClient(b.bootstrap) as c:
        assert "transaction.version" not in _features(c)
        keys = {k["api_key"]: k["max_version"] for k in c.call(18, 3, {
            "client_software_name": "x", "client_software_version": "1"})["api_keys"]}
        assert keys[26] < 5


def test_commit_abort_and_read_committed(shared_broker):
    topic, group = _uid("tv2"), _uid("tv2-group")
    with RawClient(shared_broker.bootstrap) as c:
        _create(c, topic, 2)
        p = Tv2Producer(c, _uid("tv2-tx"))
        e0 = p.epoch
        # transaction 1: no AddPartitionsToTxn, no AddOffsetsToTxn
        assert p.produce(topic, 0, [b"a1", b"a2"])["error_code"] == 0
        assert p.produce(topic, 1, [b"b1"])["error_code"] == 0
        assert p.commit_offsets(group, topic, {0: 10, 1: 20}) == [0, 0]
        assert _read_committed(c, topic, 0)[2] == 0  # open transaction: LSO at its first offset
        assert p.end(True)["error_code"] == 0 and p.epoch == e0 + 1
        assert _read_committed(c, topic, 0)[:2] == ([b"a1", b"a2"], [])
        assert _read_committed(c, topic, 1)[:2] == ([b"b1"], [])
        assert _committed(c, group, topic) == {0: 10, 1: 20}
        # a retried EndTxn (its epoch one below) answers NONE with the same id and epoch
        r = p.end(True, epoch=e0)
        assert (r["error_code"], r["producer_id"], r["producer_epoch"]) == (0, p.pid, e0 + 1)
        # transaction 2 with the bumped epoch, sequences from 0: aborted
        assert p.produce(topic, 0, [b"x1"])["error_code"] == 0
        assert p.commit_offsets(group, topic, {0: 99}) == [0]
        assert p.end(False)["error_code"] == 0 and p.epoch == e0 + 2
        values, aborted, _ = _read_committed(c, topic, 0)
        assert values == [b"a1", b"a2"] and aborted == [p.pid]
        assert _committed(c, group, topic) == {0: 10, 1: 20}
        # transaction 3 straight after the abort (no InitProducerId): committed
        assert p.produce(topic, 0, [b"c1"])["error_code"] == 0
        assert p.end(True)["error_code"] == 0
        assert _read_committed(c, topic, 0)[0] == [b"a1", b"a2", b"c1"]
        # the old epochs are fenced
        assert p.produce(topic, 1, [b"stale"], epoch=e0)["error_code"] == errors.INVALID_PRODUCER_EPOCH
        assert p.end(True, epoch=e0)["error_code"] == errors.PRODUCER_FENCED


def test_new_instance_fences_the_old(shared_broker):
    topic, tid = _uid("tv2-fence"), _uid("tv2-fence-tx")
    with RawClient(shared_broker.bootstrap) as c:
        _create(c, topic, 1)
        old = Tv2Producer(c, tid)
        assert old.produce(topic, 0, [b"old-open"])["error_code"] == 0
        new = Tv2Producer(c, tid)  # aborts the old instance's open transaction, bumps the epoch
        assert new.pid == old.pid and new.epoch > old.epoch
        assert old.produce(topic, 0, [b"old-late"])["error_code"] == errors.INVALID_PRODUCER_EPOCH
        assert old.end(True)["error_code"] == errors.PRODUCER_FENCED
        assert new.produce(topic, 0, [b"new"])["error_code"] == 0
        assert new.end(True)["error_code"] == 0
        values, aborted, _ = _read_committed(c, topic, 0)
        assert values == [b"new"] and aborted == [old.pid]


def test_kafka_python_describe_features(shared_broker):
    """Admin clients' DescribeFeatures is ApiVersions: kafka-python's shows the levels."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=shared_broker.bootstrap)
    try:
        f = admin.describe_features()
    finally:
        admin.close()
    assert f["transaction.version"]["supported"] == (0, 2)
    assert f["transaction.version"]["finalized"] == (2, 2)
    assert f["group.version"]["finalized"] == (1, 1)
    assert f["transaction.version"]["finalized_epoch"] is not None
