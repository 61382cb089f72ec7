"""Several log directories per broker with real clients over real sockets
(issue 13 item 4): kafka-python's describe_log_dirs / alter_replica_log_dirs
shapes and values, a replica moved between directories under an idempotent
librdkafka load (content, order and offsets checked after), a failed
directory taking only its partitions offline, and DescribeLogDirs in a
ZooKeeper cluster (each broker answers for its own directories)."""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from pathlib import Path

import pytest
from clientlib import create_topic
from rawclient import RawClient

from pykbroker.protocol import errors
from pykbroker.protocol.records import build_batch

FAST = {"log.segment.delete.delay.ms": 300, "log.flush.offset.checkpoint.interval.ms": 200}


def wait_until(fn, timeout: float = 30.0, interval: float = 0.1):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last value {v!r})")
        time.sleep(interval)


@pytest.fixture
def two_dirs(tmp_path_factory, broker_factory):
    root = tmp_path_factory.mktemp("logdirs")
    a, b = root / "a", root / "b"
    broker = broker_factory({"log.dirs": f"{a},{b}", **FAST}, log_dir=a)
    return broker, str(a), str(b)


@pytest.fixture
def admin(two_dirs):
    from kafka.admin import KafkaAdminClient

    a = KafkaAdminClient(bootstrap_servers=two_dirs[0].bootstrap, request_timeout_ms=10000)
    yield a
    a.close()


def where(desc: list[dict], topic: str) -> dict[int, list[tuple[str, bool, int, int]]]:
    """partition -> [(log dir, is_future, size, offset lag)] from describe_log_dirs."""
    out: dict[int, list[tuple[str, bool, int, int]]] = {}
    for broker in desc:
        for d in broker["log_dirs"]:
            for t in d["topics"]:
                if t["name"] != topic:
                    continue
                for p in t["partitions"]:
                    out.setdefault(p["partition_index"], []).append(
                        (d["log_dir"], p["is_future_key"], p["partition_size"], p["offset_lag"]))
    return out


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.glob("*.log"))


def produce_values(bootstrap: str, topic: str, partition: int, values: list[bytes]) -> list[int]:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 2, "enable.idempotence": True})
    offsets: list[int] = []

    def done(err, msg):  # type: ignore[no-untyped-def]
        assert err is None, err
        offsets.append(msg.offset())

    for v in values:
        p.produce(topic, value=v, key=b"k", partition=partition, on_delivery=done)
    assert p.flush(30) == 0
    return offsets


def consume_all(bootstrap: str, topic: str, partition: int, n: int,
                extra: dict | None = None, timeout: float = 30) -> list[tuple[int, bytes]]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False, **(extra or {})})
    got: list[tuple[int, bytes]] = []
    try:
        c.assign([TopicPartition(topic, partition, 0)])
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            for m in c.consume(1000, 0.5):
                assert not m.error(), m.error()
                got.append((m.offset(), m.value()))
    finally:
        c.close()
    return got


def test_describe_and_alter_with_kafka_python(two_dirs, admin, unique_topic):
    from kafka.errors import LogDirNotFoundError, NoError, UnknownTopicOrPartitionError

    broker, a, b = two_dirs
    create_topic(broker.bootstrap, unique_topic, 4)
    for p in range(4):
        produce_values(broker.bootstrap, unique_topic, p, [b"v%d-%d" % (p, i) for i in range(10 * (p + 1))])
    desc = admin.describe_log_dirs()
    assert [x["broker"] for x in desc] == [0]
    dirs = desc[0]["log_dirs"]
    assert [d["log_dir"] for d in dirs] == [a, b]
    for d in dirs:
        assert d["error_code"] == 0 and d["is_cordoned"] is False
        assert d["total_bytes"] >= d["usable_bytes"] > 0
    # new partitions went to the directory with the fewest: 0 and 2 in a, 1 and 3 in b
    placed = where(desc, unique_topic)
    assert {p: [(x[0], x[1]) for x in v] for p, v in placed.items()} == {
        0: [(a, False)], 1: [(b, False)], 2: [(a, False)], 3: [(b, False)]}
    for p, [(d, _, size, lag)] in placed.items():
        assert lag == 0 and size == dir_size(Path(d) / f"{unique_topic}-{p}") > 0
    # only what was asked for
    only = admin.describe_log_dirs({unique_topic: [3]})
    assert sorted(where(only, unique_topic)) == [3]
    assert [d["topics"] for d in only[0]["log_dirs"]][0] == []

    res = admin.alter_replica_log_dirs({
        (unique_topic, 0, 0): b,
        (unique_topic, 1, 0): b,  # there already
        (unique_topic, 2, 0): "/no/such/dir",
        (unique_topic, 3, 0): "b",  # not an absolute path of log.dirs
        ("no-such-topic", 0, 0): a,
    })
    assert {(k.topic, k.partition): v for k, v in res.items()} == {
        (unique_topic, 0): NoError, (unique_topic, 1): NoError, (unique_topic, 2): LogDirNotFoundError,
        (unique_topic, 3): LogDirNotFoundError, ("no-such-topic", 0): UnknownTopicOrPartitionError}

    def moved():  # type: ignore[no-untyped-def]
        got = where(admin.describe_log_dirs({unique_topic: [0, 1, 2, 3]}), unique_topic)
        return got if [(x[0], x[1]) for x in got[0]] == [(b, False)] else None

    after = wait_until(moved)
    assert [(x[0], x[1]) for x in after[2]] == [(a, False)]
    wait_until(lambda: not any(n.startswith(f"{unique_topic}-0") for n in os.listdir(a)))
    moved_dir = Path(b) / f"{unique_topic}-0"
    assert (moved_dir / "partition.metadata").is_file() and dir_size(moved_dir) == after[0][0][2] > 0
    assert not [n for n in os.listdir(b) if n.endswith("-future")]
    got = consume_all(broker.bootstrap, unique_topic, 0, 10)
    assert got == [(i, b"v0-%d" % i) for i in range(10)]


def test_move_under_load_keeps_every_record_in_order(two_dirs, admin, unique_topic):
    broker, a, b = two_dirs
    create_topic(broker.bootstrap, unique_topic, 2, {"segment.bytes": "1048576"})
    # a few MiB first, so the copy takes many chunks while the load goes on
    first = [b"pre-%06d-" % i + b"x" * 400 for i in range(12000)]
    assert produce_values(broker.bootstrap, unique_topic, 0, first) == list(range(12000))
    acked: list[tuple[int, bytes]] = []
    stop = threading.Event()
    failures: list[BaseException] = []

    def load() -> None:
        from confluent_kafka import Producer

        p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 1, "enable.idempotence": True,
                      "acks": "all"})
        i = 0

        def done(err, msg):  # type: ignore[no-untyped-def]
            if err is not None:
                failures.append(AssertionError(str(err)))
            else:
                acked.append((msg.offset(), msg.value()))

        try:
            while not stop.is_set():
                p.produce(unique_topic, value=b"load-%06d" % i, key=b"k", partition=0, on_delivery=done)
                i += 1
                p.poll(0)
                if i % 200 == 0:
                    time.sleep(0.01)
            assert p.flush(30) == 0
        except BaseException as e:
            failures.append(e)

    t = threading.Thread(target=load)
    t.start()
    try:
        wait_until(lambda: len(acked) > 200)
        before_move = len(acked)
        assert admin.alter_replica_log_dirs({(unique_topic, 0, 0): b})

        def moved():  # type: ignore[no-untyped-def]
            got = where(admin.describe_log_dirs({unique_topic: [0]}), unique_topic)
            return [(x[0], x[1]) for x in got[0]] == [(b, False)]

        wait_until(moved, timeout=60)
        at_move = len(acked)
        wait_until(lambda: len(acked) > at_move + 200)  # the load goes on after the swap
    finally:
        stop.set()
        t.join(60)
    assert not failures, failures
    assert before_move < at_move
    acked.sort()
    want = [(o, v) for o, v in enumerate(first)] + acked
    assert [o for o, _ in want] == list(range(len(want)))  # offsets dense, no gap, no duplicate
    got = consume_all(broker.bootstrap, unique_topic, 0, len(want))
    assert got == want  # every acknowledged record, in order, at its offset
    vals = [v for _, v in acked]
    assert vals == sorted(vals)  # in produce order
    # the old directory goes after log.segment.delete.delay.ms
    wait_until(lambda: not any(n.startswith(f"{unique_topic}-0") for n in os.listdir(a)))


def test_move_keeps_transactions(two_dirs, admin, unique_topic):
    from confluent_kafka import Producer

    broker, a, b = two_dirs
    create_topic(broker.bootstrap, unique_topic, 1)  # in a
    p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": f"tx-{unique_topic}", "linger.ms": 1})
    p.init_transactions(30)

    def txn(values: list[bytes], commit: bool) -> None:
        p.begin_transaction()
        for v in values:
            p.produce(unique_topic, value=v, partition=0)
        p.flush(30)
        if commit:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)

    txn([b"c%d" % i for i in range(5)], True)
    txn([b"x%d" % i for i in range(5)], False)
    txn([b"d%d" % i for i in range(3)], True)
    p.begin_transaction()  # left open across the move
    p.produce(unique_topic, value=b"open", partition=0)
    p.flush(30)
    assert admin.alter_replica_log_dirs({(unique_topic, 0, 0): b})
    wait_until(lambda: [(x[0], x[1]) for x in where(admin.describe_log_dirs(), unique_topic)[0]] == [(b, False)])
    rc = {"isolation.level": "read_committed"}
    committed = [b"c%d" % i for i in range(5)] + [b"d%d" % i for i in range(3)]
    # the aborted transaction stays hidden (its .txnindex moved too), the open one is not visible yet
    assert [v for _, v in consume_all(broker.bootstrap, unique_topic, 0, 9, rc, timeout=4)] == committed
    p.commit_transaction(30)
    assert [v for _, v in consume_all(broker.bootstrap, unique_topic, 0, 9, rc)] == committed + [b"open"]
    assert Path(b, f"{unique_topic}-0").is_dir() and not Path(a, f"{unique_topic}-0").exists()


def _raw_produce(bootstrap: str, topic: str, partition: int) -> int:
    with RawClient(bootstrap) as c:
        resp = c.call(0, 9, {"acks": -1, "timeout_ms": 5000, "topic_data": [
            {"name": topic, "partition_data": [
                {"index": partition, "records": build_batch([(b"k", b"raw", [], int(time.time() * 1000))])}]}]})
    code: int = resp["responses"][0]["partition_responses"][0]["error_code"]
    return code


def _raw_fetch(bootstrap: str, topic: str, partition: int) -> int:
    with RawClient(bootstrap) as c:
        resp = c.call(1, 12, {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
                              "isolation_level": 0, "session_id": 0, "session_epoch": -1, "topics": [
                                  {"topic": topic, "partitions": [
                                      {"partition": partition, "fetch_offset": 0, "partition_max_bytes": 1 << 20,
                                       "current_leader_epoch": -1, "log_start_offset": -1,
                                       "last_fetched_epoch": -1}]}],
                              "forgotten_topics_data": [], "rack_id": ""})
    code: int = resp["responses"][0]["partitions"][0]["error_code"]
    return code


def test_failed_directory_takes_only_its_partitions_offline(two_dirs, admin, unique_topic):
    broker, a, b = two_dirs
    create_topic(broker.bootstrap, unique_topic, 2)  # partition 0 in a, 1 in b
    assert produce_values(broker.bootstrap, unique_topic, 0, [b"a%d" % i for i in range(20)]) == list(range(20))
    assert produce_values(broker.bootstrap, unique_topic, 1, [b"b%d" % i for i in range(20)]) == list(range(20))
    # the directory is replaced by a file (tests run as root: chmod would not stop us)
    shutil.move(b, b + ".gone")
    Path(b).write_text("not a directory\n")

    def failed():  # type: ignore[no-untyped-def]
        dirs = admin.describe_log_dirs()[0]["log_dirs"]
        return dirs if dirs[1]["error_code"] == errors.KAFKA_STORAGE_ERROR else None

    dirs = wait_until(failed)
    assert dirs[1]["log_dir"] == b and dirs[1]["topics"] == []
    assert dirs[0]["error_code"] == 0 and sorted(where([{"log_dirs": dirs}], unique_topic)) == [0]
    assert _raw_produce(broker.bootstrap, unique_topic, 1) == errors.KAFKA_STORAGE_ERROR
    with RawClient(broker.bootstrap) as c:  # Metadata: an offline partition (Kafka: no leader, replica offline)
        md = c.call(3, 12, {"topics": [{"name": unique_topic, "topic_id": b"\0" * 16}],
                            "allow_auto_topic_creation": False, "include_topic_authorized_operations": False})
    parts = {p["partition_index"]: p for p in md["topics"][0]["partitions"]}
    assert (parts[1]["error_code"], parts[1]["leader_id"], parts[1]["offline_replicas"]) == (
        errors.LEADER_NOT_AVAILABLE, -1, [0])
    assert (parts[0]["error_code"], parts[0]["leader_id"], parts[0]["offline_replicas"]) == (0, 0, [])
    assert _raw_fetch(broker.bootstrap, unique_topic, 1) == errors.KAFKA_STORAGE_ERROR
    # no move into a failed directory
    from kafka.errors import KafkaStorageError

    res = admin.alter_replica_log_dirs({(unique_topic, 0, 0): b})
    assert list(res.values()) == [KafkaStorageError]
    # the healthy directory keeps serving, its data untouched
    assert produce_values(broker.bootstrap, unique_topic, 0, [b"a%d" % i for i in range(20, 30)]) == list(
        range(20, 30))
    assert consume_all(broker.bootstrap, unique_topic, 0, 30) == [(i, b"a%d" % i) for i in range(30)]
    assert _raw_fetch(broker.bootstrap, unique_topic, 0) == errors.NONE
    # new partitions go to the healthy directory
    other = unique_topic + "-new"
    create_topic(broker.bootstrap, other, 2)
    assert sorted(where(admin.describe_log_dirs(), other)) == [0, 1]
    assert broker.is_running()
    assert broker.stop() == 0
    assert Path(b).read_text() == "not a directory\n"  # nothing written to the failed directory


def test_describe_log_dirs_in_a_cluster(shared_cluster, unique_topic):
    from kafka.admin import KafkaAdminClient
    from kafka.errors import LogDirNotFoundError, NoError, ReplicaNotAvailableError

    bs = shared_cluster.bootstrap
    create_topic(bs, unique_topic, 3, replication_factor=1)
    from confluent_kafka.admin import AdminClient

    md = AdminClient({"bootstrap.servers": bs}).list_topics(unique_topic, timeout=10)
    leaders = {p: m.leader for p, m in md.topics[unique_topic].partitions.items()}
    a = KafkaAdminClient(bootstrap_servers=bs, request_timeout_ms=10000)
    try:
        desc = wait_until(lambda: (lambda d: d if sum(len(v) for v in where(d, unique_topic).values()) == 3
                                   else None)(a.describe_log_dirs()))
        assert len(desc) == 3
        for entry in desc:
            hosted = sorted(p for p, v in where([entry], unique_topic).items() if v)
            assert hosted == sorted(p for p, leader in leaders.items() if leader == entry["broker"])
            assert len(entry["log_dirs"]) == 1 and entry["log_dirs"][0]["error_code"] == 0
        own = {e["broker"]: e["log_dirs"][0]["log_dir"] for e in desc}
        other = next(n for n in own if n != leaders[0])
        res = a.alter_replica_log_dirs({(unique_topic, 0, leaders[0]): own[leaders[0]],
                                        (unique_topic, 0, other): own[other],
                                        (unique_topic, 1, leaders[1]): "/no/such/dir"})
        assert {(k.partition, k.broker_id): v for k, v in res.items()} == {
            (0, leaders[0]): NoError, (0, other): ReplicaNotAvailableError, (1, leaders[1]): LogDirNotFoundError}
    finally:
        a.close()


@pytest.mark.parametrize("v", [1, 2, 3, 4, 5])
def test_describe_log_dirs_every_version(shared_broker, unique_topic, v):
    create_topic(shared_broker.bootstrap, unique_topic, 2)
    with RawClient(shared_broker.bootstrap) as c:
        resp = c.call(35, v, {"topics": [{"topic": unique_topic, "partitions": [1, 7]}]})
        everything = c.call(35, v, {"topics": None})
    assert resp["throttle_time_ms"] == 0 and resp["error_code"] == 0
    [d] = resp["results"]
    assert d["error_code"] == 0 and d["log_dir"] == os.path.abspath(shared_broker.log_dir)
    assert d["topics"] == [{"name": unique_topic, "partitions": [
        {"partition_index": 1, "partition_size": 0, "offset_lag": 0, "is_future_key": False}]}]
    if v >= 4:
        assert d["total_bytes"] >= d["usable_bytes"] > 0
    else:  # not on the wire: the defaults
        assert d["total_bytes"] == d["usable_bytes"] == -1
    assert d["is_cordoned"] is False
    assert sorted(p["partition_index"] for t in everything["results"][0]["topics"] if t["name"] == unique_topic
                  for p in t["partitions"]) == [0, 1]


@pytest.mark.parametrize("v", [1, 2])
def test_alter_replica_log_dirs_every_version(shared_broker, unique_topic, v):
    create_topic(shared_broker.bootstrap, unique_topic, 1)
    own = os.path.abspath(shared_broker.log_dir)
    with RawClient(shared_broker.bootstrap) as c:
        resp = c.call(34, v, {"dirs": [
            {"path": own, "topics": [{"name": unique_topic, "partitions": [0, 5]}]},
            {"path": own + "-elsewhere", "topics": [{"name": unique_topic, "partitions": [0]}]}]})
    # partition 0 is named twice: the last path counts (Kafka builds a map)
    assert resp == {"throttle_time_ms": 0, "results": [{"topic_name": unique_topic, "partitions": [
        {"partition_index": 0, "error_code": errors.LOG_DIR_NOT_FOUND},
        {"partition_index": 5, "error_code": errors.UNKNOWN_TOPIC_OR_PARTITION}]}]}
    with RawClient(shared_broker.bootstrap) as c:
        resp = c.call(34, v, {"dirs": [{"path": own, "topics": [{"name": unique_topic, "partitions": [0]}]}]})
    assert resp["results"][0]["partitions"] == [{"partition_index": 0, "error_code": errors.NONE}]
