"""Exactly-once with real clients over sockets (issue 6 acceptance).

What each test proves:
- test_consume_transform_produce_survives_kills: a confluent-kafka
  consume-transform-produce app (send_offsets_to_transaction) is SIGKILLed
  in the middle of a transaction (its records already written), the broker
  is SIGKILLed and restarted too, the app restarts with the same
  transactional id: the output topic read with read_committed holds every
  input exactly once (the killed transaction's records are there, aborted).
- test_aborted_records_visibility: committed, aborted and non-transactional
  records interleaved over partitions; librdkafka and kafka-python
  read_committed consumers never see aborted records, read_uncommitted ones
  see everything; an open transaction holds the last stable offset
  (ListOffsets LATEST read_committed) until it commits.
- test_kafka_python_default_producer_and_transactions: kafka-python 3.0's
  default producer (idempotence on) works, its producer state shows in
  DescribeProducers; its transactional API (with send_offsets_to_transaction)
  commits output and group offsets together.
- test_lost_response_retry_does_not_duplicate: a fault rule drops the
  connection after the broker appended a Produce; idempotent kafka-python
  and librdkafka producers retry and the topic holds each record once
  (a non-idempotent producer, as a control, duplicates it).
- test_second_producer_fences_the_first: the same transactional.id in a new
  producer fences the old one: kafka-python gets PRODUCER_FENCED on its
  commit, librdkafka a fatal fenced error; the fenced transaction never
  becomes visible.
- test_transaction_timeout_aborts: a transaction left open past
  transaction.timeout.ms is aborted by the broker (DescribeTransactions:
  CompleteAbort), its records never become visible to read_committed, and
  the last stable offset moves on.
- test_broker_restarts_mid_transaction_all_or_nothing: a producer runs
  transactions over three partitions while the broker is SIGKILLed and
  restarted twice: afterwards, read_committed shows every transaction
  completely or not at all, and every transaction whose commit returned.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from clientlib import create_topic
from rawclient import RawClient

# a light broker for these tests: few internal partitions
OVERRIDES = {"transaction.state.log.num.partitions": 3, "offsets.topic.num.partitions": 3}


def _uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- reading ---------------------------------------------------------------------------------------

def consume_confluent(bootstrap: str, topic: str, partitions: int, isolation: str,
                      timeout: float = 60) -> list[bytes]:
    """Every value up to the end (the LSO for read_committed), via librdkafka."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": _uid("reader"), "isolation.level": isolation,
                  "enable.partition.eof": True, "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        out: list[bytes] = []
        eof: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(eof) < partitions:
            assert time.monotonic() < deadline, f"consume timed out, eof {eof}"
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == -191:  # _PARTITION_EOF
                    eof.add(m.partition())
                    continue
                raise AssertionError(str(m.error()))
            eof.discard(m.partition())
            out.append(m.value())
        return out
    finally:
        c.close()


def consume_kafka_python(bootstrap: str, topic: str, partitions: int, isolation: str,
                         timeout: float = 60) -> list[bytes]:
    """Every value up to the end offsets of ``isolation``, via kafka-python."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation, enable_auto_commit=False,
                      auto_offset_reset="earliest", request_timeout_ms=30000)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        c.assign(tps)
        c.seek_to_beginning()
        end = c.end_offsets(tps)
        out: list[bytes] = []
        deadline = time.monotonic() + timeout
        while any(c.position(tp) < end[tp] for tp in tps):
            assert time.monotonic() < deadline, "consume timed out"
            for recs in c.poll(timeout_ms=500).values():
                out.extend(r.value for r in recs)
        return out
    finally:
        c.close()


def end_offsets(bootstrap: str, topic: str, partitions: int, isolation: str) -> list[int]:
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        got = c.end_offsets(tps)
        return [got[tp] for tp in tps]
    finally:
        c.close()


def describe_transaction(bootstrap: str, txn_id: str) -> dict:
    with RawClient(bootstrap) as rc:
        coord = rc.call(10, 3, {"key": txn_id, "key_type": 1})
        assert coord["error_code"] == 0
        return rc.call(65, 0, {"transactional_ids": [txn_id]})["transaction_states"][0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _txn_producer(bootstrap: str, txn_id: str, **extra):  # type: ignore[no-untyped-def]
    from confluent_kafka import Producer

    conf = {"bootstrap.servers": bootstrap, "transactional.id": txn_id, "linger.ms": 5}
    conf.update(extra)
    p = Producer(conf)
    p.init_transactions(60)
    return p


# -- consume-transform-produce, killed -------------------------------------------------------------------

APP = textwrap.dedent("""
    import sys, time
    from confluent_kafka import Consumer, Producer, TopicPartition, KafkaException
    bootstrap, src, dst, parts, total, pause_at = sys.argv[1:7]
    parts, total, pause_at = int(parts), int(total), int(pause_at)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "eos-app", "isolation.level": "read_committed",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(src, p) for p in range(parts)])   # committed offsets (or earliest)
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "eos-app-txn", "linger.ms": 5,
                  "transaction.timeout.ms": 60000})
    p.init_transactions(60)
    print("ready", flush=True)
    batches = 0
    idle_since = time.monotonic()
    def rewind():
        committed = c.committed([TopicPartition(src, i) for i in range(parts)], timeout=30)
        for tp in committed:
            c.seek(TopicPartition(src, tp.partition, tp.offset if tp.offset >= 0 else 0))
    while True:
        msgs = [m for m in c.consume(num_messages=15, timeout=1.0) if not m.error()]
        if not msgs:
            pos = c.position([TopicPartition(src, i) for i in range(parts)])
            if sum(max(tp.offset, 0) for tp in pos) >= total and time.monotonic() - idle_since > 2:
                print("done", flush=True)
                break
            continue
        idle_since = time.monotonic()
        try:
            p.begin_transaction()
            for m in msgs:
                p.produce(dst, key=m.key(), value=b"T(" + m.value() + b")", partition=m.partition())
            batches += 1
            if batches == pause_at:
                p.flush(30)
                print("in-txn", flush=True)   # records written, not committed: kill me now
                time.sleep(60)
            p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), 30)
            p.commit_transaction(60)
            print("committed", batches, flush=True)
        except KafkaException as e:
            err = e.args[0]
            print("txn error", err, flush=True)
            if err.txn_requires_abort():
                p.abort_transaction(60)
                rewind()
            else:
                raise
    c.close()
""")


def _wait_line(proc: subprocess.Popen, want: str, timeout: float) -> list[str]:
    lines = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise AssertionError(f"app exited ({proc.returncode}) before {want!r}: {lines[-20:]}")
            continue
        lines.append(line.strip())
        if line.strip().startswith(want):
            return lines
    raise AssertionError(f"no {want!r} line within {timeout}s: {lines[-20:]}")


def _start_app(tmp_path: Path, bootstrap: str, src: str, dst: str, parts: int, total: int,
               pause_at: int) -> subprocess.Popen:
    script = tmp_path / "eos_app.py"
    script.write_text(APP)
    return subprocess.Popen([sys.executable, str(script), bootstrap, src, dst, str(parts), str(total), str(pause_at)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)


def test_consume_transform_produce_survives_kills(broker_factory, tmp_path):
    b = broker_factory(OVERRIDES)
    src, dst, parts, total = "eos-in", "eos-out", 3, 450
    create_topic(b.bootstrap, src, parts)
    create_topic(b.bootstrap, dst, parts)
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5})
    for i in range(total):
        p.produce(src, key=b"k%d" % i, value=b"in-%d" % i, partition=i % parts)
    assert p.flush(30) == 0
    want = sorted(b"T(in-%d)" % i for i in range(total))

    app = _start_app(tmp_path, b.bootstrap, src, dst, parts, total, pause_at=8)
    try:
        lines = _wait_line(app, "in-txn", 120)
        assert sum(1 for x in lines if x.startswith("committed")) == 7
        app.send_signal(signal.SIGKILL)  # mid-transaction: its records are in the log, uncommitted
        app.wait(10)
        committed_before = consume_confluent(b.bootstrap, dst, parts, "read_committed")
        assert len(committed_before) == len(set(committed_before)) > 0
        b.restart(kill=True)  # and the broker crashes too
        app = _start_app(tmp_path, b.bootstrap, src, dst, parts, total, pause_at=0)
        _wait_line(app, "done", 240)
        assert app.wait(30) == 0
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
    got = consume_confluent(b.bootstrap, dst, parts, "read_committed")
    assert sorted(got) == want, (len(got), len(set(got)), len(want))
    everything = consume_confluent(b.bootstrap, dst, parts, "read_uncommitted")
    assert len(everything) > total  # the killed transaction's records are in the log, aborted
    assert set(everything) == set(want)


# -- visibility --------------------------------------------------------------------------------------------

def test_aborted_records_visibility(topology, unique_topic):
    """On one broker and on the 3-broker cluster (issue 20): the transaction
    coordinator, the partitions' leaders and the markers on several brokers."""
    from confluent_kafka import Producer

    b = topology
    topic, parts = unique_topic, 3
    create_topic(b.bootstrap, topic, parts, replication_factor=topology.replication_factor)
    tp = _txn_producer(b.bootstrap, _uid("vis-txn"))
    plain = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 0})
    committed, aborted, loose = [], [], []
    for t in range(6):
        tp.begin_transaction()
        for i in range(9):
            v = b"t%d-%d" % (t, i)
            tp.produce(topic, value=v, partition=i % parts)
            (committed if t % 2 == 0 else aborted).append(v)
            if i % 4 == 0:  # non-transactional records inside the open transaction's range
                lv = b"plain-%d-%d" % (t, i)
                plain.produce(topic, value=lv, partition=(i + t) % parts)
                loose.append(lv)
        tp.flush(30)
        assert plain.flush(30) == 0
        if t % 2 == 0:
            tp.commit_transaction(30)
        else:
            tp.abort_transaction(30)
    visible = sorted(committed + loose)
    everything = sorted(committed + aborted + loose)
    assert sorted(consume_confluent(b.bootstrap, topic, parts, "read_committed")) == visible
    assert sorted(consume_confluent(b.bootstrap, topic, parts, "read_uncommitted")) == everything
    assert sorted(consume_kafka_python(b.bootstrap, topic, parts, "read_committed")) == visible
    assert sorted(consume_kafka_python(b.bootstrap, topic, parts, "read_uncommitted")) == everything

    # an open transaction holds the last stable offset
    hw = end_offsets(b.bootstrap, topic, parts, "read_uncommitted")
    assert end_offsets(b.bootstrap, topic, parts, "read_committed") == hw
    tp.begin_transaction()
    tp.produce(topic, value=b"pending", partition=0)
    tp.flush(30)
    plain.produce(topic, value=b"after-pending", partition=0)
    assert plain.flush(30) == 0
    assert end_offsets(b.bootstrap, topic, parts, "read_committed")[0] == hw[0]
    assert end_offsets(b.bootstrap, topic, parts, "read_uncommitted")[0] == hw[0] + 2
    assert b"after-pending" not in consume_kafka_python(b.bootstrap, topic, parts, "read_committed")
    tp.commit_transaction(30)
    assert end_offsets(b.bootstrap, topic, parts, "read_committed")[0] == hw[0] + 3  # + the marker
    final = consume_confluent(b.bootstrap, topic, parts, "read_committed")
    assert b"pending" in final and b"after-pending" in final


# -- kafka-python --------------------------------------------------------------------------------------------

def test_kafka_python_default_producer_and_transactions(broker_factory):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    b = broker_factory(OVERRIDES)
    topic = "kp"
    create_topic(b.bootstrap, topic, 2)
    p = KafkaProducer(bootstrap_servers=b.bootstrap)
    assert p.config["enable_idempotence"] is True  # kafka-python 3.0's default
    metas = [p.send(topic, value=b"idem-%d" % i, partition=i % 2) for i in range(100)]
    offsets = sorted((m.get(30).partition, m.get(30).offset) for m in metas)
    p.close()
    assert offsets == sorted([(0, i) for i in range(50)] + [(1, i) for i in range(50)])
    with RawClient(b.bootstrap) as rc:
        resp = rc.call(61, 0, {"topics": [{"name": topic, "partition_indexes": [0, 1]}]})
    for part in resp["topics"][0]["partitions"]:
        assert part["error_code"] == 0
        (prod,) = part["active_producers"]
        assert prod["producer_epoch"] == 0 and prod["last_sequence"] == 49
        assert prod["current_txn_start_offset"] == -1

    # transactional API: output and group offsets committed together
    out = "kp-out"
    create_topic(b.bootstrap, out, 2)
    tp = KafkaProducer(bootstrap_servers=b.bootstrap, transactional_id="kp-txn")
    tp.init_transactions()
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id="kp-group", enable_auto_commit=False,
                      isolation_level="read_committed", auto_offset_reset="earliest")
    tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
    c.assign(tps)
    seen = 0
    deadline = time.monotonic() + 60
    while seen < 100:
        assert time.monotonic() < deadline
        batch = c.poll(timeout_ms=500, max_records=30)
        if not batch:
            continue
        tp.begin_transaction()
        for recs in batch.values():
            for r in recs:
                tp.send(out, value=b"out-" + r.value, partition=r.partition)
                seen += 1
        tp.send_offsets_to_transaction({t: OffsetAndMetadata(c.position(t), "", -1) for t in tps},
                                       c.group_metadata() if hasattr(c, "group_metadata") else "kp-group")
        tp.commit_transaction()
    # one more, aborted: neither its output nor its offsets count
    tp.begin_transaction()
    tp.send(out, value=b"never", partition=0)
    tp.send_offsets_to_transaction({TopicPartition(topic, 0): OffsetAndMetadata(1, "", -1)},
                                   c.group_metadata() if hasattr(c, "group_metadata") else "kp-group")
    tp.abort_transaction()
    tp.close()
    c.close()
    got = sorted(consume_kafka_python(b.bootstrap, out, 2, "read_committed"))
    assert got == sorted(b"out-idem-%d" % i for i in range(100))
    check = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id="kp-group", enable_auto_commit=False)
    try:
        assert [check.committed(t) for t in tps] == [50, 50]
    finally:
        check.close()


# -- a lost response ------------------------------------------------------------------------------------

def _add_fault(url: str, rule: dict) -> None:
    req = urllib.request.Request(f"{url}/faults", data=json.dumps(rule).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status in (200, 201)


def _fault_hits(url: str) -> int:
    with urllib.request.urlopen(f"{url}/faults", timeout=10) as r:
        return sum(x["hits"] for x in json.loads(r.read()))


def test_lost_response_retry_does_not_duplicate(broker_factory):
    from confluent_kafka import Producer
    from kafka import KafkaProducer

    port = _free_port()
    b = broker_factory({**OVERRIDES, "pykbroker.control.listener": f"127.0.0.1:{port}"})
    url = f"http://127.0.0.1:{port}"

    def values(topic: str) -> list[bytes]:
        return consume_confluent(b.bootstrap, topic, 1, "read_uncommitted")

    # kafka-python's default (idempotent) producer
    create_topic(b.bootstrap, "lost-kp", 1)
    p = KafkaProducer(bootstrap_servers=b.bootstrap, retry_backoff_ms=100)
    p.send("lost-kp", b"warm-up").get(30)
    _add_fault(url, {"action": "drop", "api": "Produce", "topic": "lost-kp", "count": 1})
    md = p.send("lost-kp", b"once").get(60)
    p.close()
    assert _fault_hits(url) == 1
    assert values("lost-kp") == [b"warm-up", b"once"]
    assert md.offset == 1

    # librdkafka with enable.idempotence
    create_topic(b.bootstrap, "lost-rdk", 1)
    rp = Producer({"bootstrap.servers": b.bootstrap, "enable.idempotence": True, "linger.ms": 0})
    rp.produce("lost-rdk", b"warm-up")
    assert rp.flush(30) == 0
    _add_fault(url, {"action": "drop", "api": "Produce", "topic": "lost-rdk", "count": 1})
    results = []
    rp.produce("lost-rdk", b"once", on_delivery=lambda err, msg: results.append((err, msg.offset())))
    assert rp.flush(60) == 0
    assert results == [(None, 1)]
    assert values("lost-rdk") == [b"warm-up", b"once"]

    # the control: without idempotence the retry duplicates (the rule drops after the append)
    create_topic(b.bootstrap, "lost-plain", 1)
    np = Producer({"bootstrap.servers": b.bootstrap, "enable.idempotence": False, "linger.ms": 0,
                   "retries": 5, "acks": "all"})
    np.produce("lost-plain", b"warm-up")
    assert np.flush(30) == 0
    _add_fault(url, {"action": "drop", "api": "Produce", "topic": "lost-plain", "count": 1})
    np.produce("lost-plain", b"twice")
    assert np.flush(60) == 0
    assert values("lost-plain") == [b"warm-up", b"twice", b"twice"]


# -- fencing ---------------------------------------------------------------------------------------------

def test_second_producer_fences_the_first(topology, unique_topic):
    """On one broker and on the 3-broker cluster (issue 20)."""
    from confluent_kafka import KafkaError, KafkaException
    from kafka import KafkaProducer
    from kafka.errors import ProducerFencedError

    b = topology
    topic = unique_topic
    create_topic(b.bootstrap, topic, 2, replication_factor=topology.replication_factor)
    kp_id, rdk_id = _uid("fence-kp"), _uid("fence-rdk")

    # kafka-python: EndTxn v3 answers PRODUCER_FENCED
    first = KafkaProducer(bootstrap_servers=b.bootstrap, transactional_id=kp_id)
    first.init_transactions()
    first.begin_transaction()
    first.send(topic, b"zombie-kp", partition=0).get(30)
    second = KafkaProducer(bootstrap_servers=b.bootstrap, transactional_id=kp_id)
    second.init_transactions()  # aborts and fences the first one's transaction
    with pytest.raises(ProducerFencedError):
        first.commit_transaction()
    first.close(timeout=5)
    second.begin_transaction()
    second.send(topic, b"alive-kp", partition=1).get(30)
    second.commit_transaction()
    second.close()

    # librdkafka: a fatal fenced error (INVALID_PRODUCER_EPOCH at EndTxn v1, as Kafka answers old versions)
    one = _txn_producer(b.bootstrap, rdk_id)
    one.begin_transaction()
    one.produce(topic, b"zombie-rdk", partition=0)
    one.flush(30)
    two = _txn_producer(b.bootstrap, rdk_id)
    with pytest.raises(KafkaException) as ei:
        one.commit_transaction(30)
    err = ei.value.args[0]
    assert err.fatal() and err.code() == KafkaError._FENCED, err
    two.begin_transaction()
    two.produce(topic, b"alive-rdk", partition=1)
    two.commit_transaction(30)

    got = consume_confluent(b.bootstrap, topic, 2, "read_committed")
    assert sorted(got) == [b"alive-kp", b"alive-rdk"]
    assert sorted(consume_kafka_python(b.bootstrap, topic, 2, "read_uncommitted")) == \
        [b"alive-kp", b"alive-rdk", b"zombie-kp", b"zombie-rdk"]


# -- timeout ---------------------------------------------------------------------------------------------

def test_transaction_timeout_aborts(broker_factory):
    from confluent_kafka import KafkaException, Producer

    b = broker_factory(OVERRIDES)
    topic = "slow"
    create_topic(b.bootstrap, topic, 2)
    tp = _txn_producer(b.bootstrap, "slow-txn", **{"transaction.timeout.ms": 2000, "message.timeout.ms": 2000})
    tp.begin_transaction()
    for i in range(6):
        tp.produce(topic, b"abandoned-%d" % i, partition=i % 2)
    tp.flush(30)
    assert end_offsets(b.bootstrap, topic, 2, "read_committed") == [0, 0]
    deadline = time.monotonic() + 30
    while describe_transaction(b.bootstrap, "slow-txn")["transaction_state"] != "CompleteAbort":
        assert time.monotonic() < deadline, describe_transaction(b.bootstrap, "slow-txn")
        time.sleep(0.2)
    # aborted, the LSO moved past it: later records are visible, the abandoned ones never
    plain = Producer({"bootstrap.servers": b.bootstrap})
    plain.produce(topic, b"later", partition=0)
    assert plain.flush(30) == 0
    assert end_offsets(b.bootstrap, topic, 2, "read_committed") == end_offsets(b.bootstrap, topic, 2,
                                                                                "read_uncommitted")
    assert consume_confluent(b.bootstrap, topic, 2, "read_committed") == [b"later"]
    assert consume_kafka_python(b.bootstrap, topic, 2, "read_committed") == [b"later"]
    with pytest.raises(KafkaException):
        tp.commit_transaction(30)  # fenced by the timeout's epoch bump
    assert consume_confluent(b.bootstrap, topic, 2, "read_committed") == [b"later"]


# -- broker restarts mid-transaction ------------------------------------------------------------------------

LOOPER = textwrap.dedent("""
    import os, sys, time
    from confluent_kafka import Producer, KafkaException
    bootstrap, topic, log_path, stop_path = sys.argv[1:5]
    out = open(log_path, "a", buffering=1)
    def make():
        p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "looper", "linger.ms": 2,
                      "transaction.timeout.ms": 10000, "message.timeout.ms": 10000,
                      "socket.connection.setup.timeout.ms": 3000, "reconnect.backoff.max.ms": 500})
        while True:
            try:
                p.init_transactions(30)
                return p
            except KafkaException as e:
                out.write("init error %s\\n" % e.args[0])
                if e.args[0].fatal():
                    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "looper"})
                time.sleep(0.5)
    p = make()
    n = 0
    while not os.path.exists(stop_path):
        n += 1
        try:
            p.begin_transaction()
            for part in range(3):
                p.produce(topic, value=b"%d-%d" % (n, part), partition=part)
            p.flush(30)
            time.sleep(0.1)  # linger inside the transaction, its records written
            while True:
                try:
                    p.commit_transaction(30)
                    break
                except KafkaException as e:
                    if not e.args[0].retriable():
                        raise
                    time.sleep(0.2)
            out.write("committed %d\\n" % n)
        except KafkaException as e:
            err = e.args[0]
            out.write("txn %d error %s\\n" % (n, err))
            if err.fatal():
                p = make()
            elif err.txn_requires_abort():
                try:
                    p.abort_transaction(30)
                except KafkaException as e2:
                    out.write("abort error %s\\n" % e2.args[0])
                    p = make()
            else:
                time.sleep(0.2)
        time.sleep(0.01)
    out.write("stopped\\n")
""")


def test_broker_restarts_mid_transaction_all_or_nothing(broker_factory, tmp_path):
    b = broker_factory(OVERRIDES)
    topic = "restarts"
    create_topic(b.bootstrap, topic, 3)
    script = tmp_path / "looper.py"
    script.write_text(LOOPER)
    log_path, stop_path = tmp_path / "looper.log", tmp_path / "stop"
    proc = subprocess.Popen([sys.executable, str(script), b.bootstrap, topic, str(log_path), str(stop_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def committed() -> list[int]:
        if not log_path.exists():
            return []
        return [int(x.split()[1]) for x in log_path.read_text().splitlines() if x.startswith("committed ")]

    def wait_more(than: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while len(committed()) < than:
            assert time.monotonic() < deadline and proc.poll() is None, log_path.read_text()[-3000:]
            time.sleep(0.1)

    def kill_mid_transaction() -> None:
        deadline = time.monotonic() + 60
        while describe_transaction(b.bootstrap, "looper")["transaction_state"] != "Ongoing":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        b.restart(kill=True)

    try:
        wait_more(15)
        for _ in range(2):
            kill_mid_transaction()
            wait_more(len(committed()) + 15)
        stop_path.write_text("stop")
        proc.wait(90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    raw = consume_confluent(b.bootstrap, topic, 3, "read_uncommitted")
    print("looper log:", [x for x in log_path.read_text().splitlines() if not x.startswith("committed")],
          len(raw), len(committed()))
    b.restart()  # and a clean restart: the same picture
    done = set(committed())
    got = consume_confluent(b.bootstrap, topic, 3, "read_committed")
    by_txn: dict[int, set[int]] = {}
    for v in got:
        n, part = (int(x) for x in v.split(b"-"))
        by_txn.setdefault(n, set()).add(part)
    partial = {n: parts for n, parts in by_txn.items() if parts != {0, 1, 2}}
    assert not partial, partial
    assert len(got) == 3 * len(by_txn)  # no duplicates either
    assert done <= set(by_txn), sorted(done - set(by_txn))
