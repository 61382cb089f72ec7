"""``pykbroker topics|groups|produce|consume`` (pykbroker/admin/) against the
in-process broker over real sockets, checked against kafka-python."""

from __future__ import annotations

import io
import re
import time
from typing import Any

import pytest
from clientlib import kafka_python_group_metadata
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
from kafka.partitioner.default import murmur2 as kp_murmur2

from pykbroker import cli
from pykbroker.admin.client import murmur2, partition_for_key

# record timestamps: recent ones (older than log.retention.ms, 7 days, are
# deleted by the broker's first retention check, 30 s after it starts)
BASE_TS = int(time.time() * 1000)


def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *argv: str,
        stdin: str | None = None) -> tuple[int, str, str]:
    capsys.readouterr()
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def sh(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, kafka_bootstrap: str) -> Any:
    """sh("topics", "--list") -> (exit status, stdout, stderr), with --bootstrap-server."""
    def call(cmd: str, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
        return run(capsys, monkeypatch, cmd, "--bootstrap-server", kafka_bootstrap, *args, stdin=stdin)
    return call


def _name(prefix: str) -> str:
    return f"{prefix}-{time.time_ns()}"


def test_murmur2_matches_the_java_partitioner() -> None:
    for key in (b"", b"a", b"ab", b"abc", b"abcd", b"customer-17", bytes(range(256))):
        assert murmur2(key) & 0x7FFFFFFF == kp_murmur2(key) & 0x7FFFFFFF
    assert partition_for_key(b"customer-17", 6) == (kp_murmur2(b"customer-17") & 0x7FFFFFFF) % 6


def test_topics_create_list_describe_alter_delete(sh: Any, kafka_bootstrap: str) -> None:
    t = _name("cli-topics")
    rc, out, _ = sh("topics", "--create", "--topic", t, "--partitions", "3", "--replication-factor", "1",
                    "--config", "retention.ms=123456")
    assert (rc, out) == (0, f"Created topic {t}.\n")
    rc, out, _ = sh("topics", "--list")
    assert rc == 0 and t in out.splitlines()
    rc, out, err = sh("topics", "--create", "--topic", t)
    assert rc == 1 and "TOPIC_ALREADY_EXISTS" in err
    assert sh("topics", "--create", "--topic", t, "--if-not-exists")[0] == 0

    rc, out, _ = sh("produce", "--topic", t, "--partition", "2", stdin="a\nb\nc\n")
    assert rc == 0
    rc, out, _ = sh("topics", "--describe", "--topic", re.escape(t), "--offsets")
    lines = out.splitlines()
    assert rc == 0 and len(lines) == 4
    assert lines[0].startswith(f"Topic: {t}\tTopicId: ")
    assert "\tPartitionCount: 3\tReplicationFactor: 1\tConfigs: retention.ms=123456" in lines[0]
    assert lines[1] == f"\tTopic: {t}\tPartition: 0\tLeader: 0\tReplicas: 0\tIsr: 0\tLogStartOffset: 0\t" \
                       "HighWatermark: 0"
    assert lines[3].endswith("\tPartition: 2\tLeader: 0\tReplicas: 0\tIsr: 0\tLogStartOffset: 0\t"
                             "HighWatermark: 3")

    rc, out, _ = sh("topics", "--alter", "--topic", t, "--partitions", "5", "--config", "cleanup.policy=compact",
                    "--delete-config", "retention.ms")
    assert rc == 0, out
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        desc = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t)])
        flat = desc["topic"][t] if isinstance(desc, dict) else desc
        assert flat["cleanup.policy"]["value"] == "compact"
        # the override is gone: the default (or no entry: kafka-python lists overrides only)
        assert flat.get("retention.ms", {"value": "604800000"})["value"] == "604800000"
    finally:
        admin.close()
    rc, out, _ = sh("topics", "--describe", "--topic", t)
    assert "PartitionCount: 5" in out and "Configs: cleanup.policy=compact" in out

    rc, out, _ = sh("topics", "--delete", "--topic", t)
    assert (rc, out) == (0, f"Deleted topic {t}.\n")
    assert t not in sh("topics", "--list")[1].splitlines()


@pytest.mark.parametrize("args, status, message", [
    (["--describe", "--topic", "no-such-topic-xyz"], 1, "topic 'no-such-topic-xyz' does not exist"),
    (["--delete", "--topic", "no-such-topic-xyz"], 1, "does not exist"),
    (["--create", "--topic", "bad-config-t", "--config", "retention.ms=soon"], 1, "INVALID_CONFIG"),
    (["--create", "--topic", "bad-config-t", "--config", "retention.ms"], 2, "key=value"),
    (["--create", "--topic", "bad name!"], 1, "INVALID_TOPIC_EXCEPTION"),
    (["--create", "--topic", "x", "--partitions", "0"], 2, "--partitions must be at least 1"),
    (["--create"], 2, "--topic is needed"),
    (["--alter", "--topic", "x"], 2, "--alter needs"),
    (["--describe", "--topic", "("], 2, "not a regular expression"),
])
def test_topics_bad_input(sh: Any, args: list[str], status: int, message: str) -> None:
    rc, out, err = sh("topics", *args)
    assert rc == status and message in err and out == ""


def test_unreachable_broker(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    rc, _, err = run(capsys, monkeypatch, "topics", "--bootstrap-server", "127.0.0.1:1", "--list")
    assert rc == 1 and "cannot connect to 127.0.0.1:1" in err
    rc, _, err = run(capsys, monkeypatch, "topics", "--bootstrap-server", "nohostport", "--list")
    assert rc == 1 and "is not host:port" in err


def test_a_peer_that_is_not_kafka(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """An HTTP server where a broker was expected: a clear error, no hang."""
    import socket
    import threading

    srv = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        conn, _ = srv.accept()
        conn.recv(1024)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        time.sleep(2)
        conn.close()

    threading.Thread(target=answer, daemon=True).start()
    try:
        port = srv.getsockname()[1]
        t0 = time.monotonic()
        rc, _, err = run(capsys, monkeypatch, "topics", "--bootstrap-server", f"127.0.0.1:{port}", "--list")
        assert rc == 1 and "is not a Kafka broker?" in err and time.monotonic() - t0 < 2
    finally:
        srv.close()


def test_produce_keyed_like_the_java_client_and_consume_in_order(sh: Any, kafka_topic_factory: Any,
                                                                  kafka_bootstrap: str) -> None:
    t = kafka_topic_factory(partitions=4)
    keys = [f"customer-{i % 7}" for i in range(40)]
    lines = "".join(f"{k}\tvalue-{i}\n" for i, k in enumerate(keys))
    rc, out, _ = sh("produce", "--topic", t, "--property", "parse.key=true", "--print-offsets", stdin=lines)
    assert rc == 0
    sent = [tuple(line.split("\t")) for line in out.splitlines()]
    assert len(sent) == 40
    expect_part = {k: (kp_murmur2(k.encode()) & 0x7FFFFFFF) % 4 for k in keys}
    # offsets per partition are 0, 1, 2 ... in input order
    per: dict[int, list[int]] = {}
    for i, k in enumerate(keys):
        per.setdefault(expect_part[k], []).append(i)

    c = KafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    try:
        tps = [TopicPartition(t, p) for p in range(4)]
        c.assign(tps)
        c.seek_to_beginning()
        got: dict[int, list[tuple[int, bytes, bytes]]] = {}
        deadline = time.monotonic() + 20
        while sum(map(len, got.values())) < 40 and time.monotonic() < deadline:
            for tp, msgs in c.poll(timeout_ms=500).items():
                got.setdefault(tp.partition, []).extend((m.offset, m.key, m.value) for m in msgs)
    finally:
        c.close()
    for p, idxs in per.items():
        assert got[p] == [(o, keys[i].encode(), f"value-{i}".encode()) for o, i in enumerate(idxs)]

    rc, out, err = sh("consume", "--topic", t, "--from-beginning", "--max-messages", "40",
                      "--property", "print.key=true", "--property", "print.partition=true",
                      "--property", "print.offset=true", "--property", "key.separator=|")
    assert rc == 0 and "Processed a total of 40 messages" in err
    rows = [line.split("|") for line in out.splitlines()]
    assert len(rows) == 40
    for p, idxs in per.items():
        mine = [r for r in rows if r[0] == f"Partition:{p}"]
        assert mine == [[f"Partition:{p}", f"Offset:{o}", keys[i], f"value-{i}"] for o, i in enumerate(idxs)]


def test_consume_partition_offset_headers_timestamps_and_formats(sh: Any, kafka_topic_factory: Any,
                                                                 kafka_bootstrap: str) -> None:
    t = kafka_topic_factory(partitions=2)
    p = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for i in range(5):
        p.send(t, key=b"\x00\xff" if i == 3 else None, value=b'{"n": %d}' % i, partition=1,
               headers=[("h", b"v%d" % i), ("trace", b"x")], timestamp_ms=BASE_TS + i)
    p.flush()
    p.close()
    rc, out, err = sh("consume", "--topic", t, "--partition", "1", "--offset", "2", "--timeout-ms", "1500",
                      "--print-key", "--print-headers", "--print-timestamp", "--key-format", "hex",
                      "--value-format", "json")
    assert rc == 0, err
    assert out.splitlines() == [
        f"CreateTime:{BASE_TS + i}\th:v{i},trace:x\t{'00ff' if i == 3 else 'null'}\t{{\"n\":{i}}}"
        for i in (2, 3, 4)]
    assert "Processed a total of 3 messages" in err
    # latest: nothing old; an empty partition times out cleanly
    rc, out, err = sh("consume", "--topic", t, "--partition", "0", "--timeout-ms", "300")
    assert (rc, out) == (0, "") and "Processed a total of 0 messages" in err
    # bad input
    rc, _, err = sh("consume", "--topic", t, "--partition", "1", "--offset", "99")
    assert rc == 1 and "offset 99 is out of range" in err
    rc, _, err = sh("consume", "--topic", t, "--offset", "1")
    assert rc == 2 and "--offset needs --partition" in err
    rc, _, err = sh("consume", "--topic", "no-such-topic-xyz", "--max-messages", "1")
    assert rc == 1 and "does not exist" in err
    rc, _, err = sh("produce", "--topic", t, "--value-format", "json", stdin="{bad\n")
    assert rc == 2 and "line 1: the value is not JSON" in err
    rc, _, err = sh("produce", "--topic", t, "--property", "parse.key=true", stdin="nokey\n")
    assert rc == 2 and "no key separator" in err


def test_produce_headers_and_progress(sh: Any, kafka_topic: str) -> None:
    rc, out, err = sh("produce", "--topic", kafka_topic, "--property", "parse.headers=true",
                      "--property", "parse.key=true", "--progress", "--batch-size", "2",
                      stdin="a:1,b:2\tk\tv\n\tk2\tv2\nc:3\tk3\tv3\n")
    assert rc == 0 and re.search(r"produced to .*: 3 \(", err)
    rc, out, _ = sh("consume", "--topic", kafka_topic, "--from-beginning", "--max-messages", "3",
                    "--print-headers", "--print-key")
    assert out.splitlines() == ["a:1,b:2\tk\tv", "NO_HEADERS\tk2\tv2", "c:3\tk3\tv3"]


def _group_consume(bootstrap: str, topic: str, group: str, n: int) -> KafkaConsumer:
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                      auto_offset_reset="earliest", client_id="lag-checker", max_poll_records=50)
    kafka_python_group_metadata(c)
    got = 0
    deadline = time.monotonic() + 30
    while got < n and time.monotonic() < deadline:
        for msgs in c.poll(timeout_ms=500, max_records=n - got).values():
            got += len(msgs)
    assert got == n
    c.commit()
    return c


def _kp_lag(bootstrap: str, topic: str, group: str, parts: int) -> dict[int, tuple[int | None, int]]:
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in range(parts)]
        ends = c.end_offsets(tps)
        return {tp.partition: (c.committed(tp), ends[tp]) for tp in tps}
    finally:
        c.close()


def _describe_rows(out: str) -> list[list[str]]:
    lines = [line.split() for line in out.splitlines() if line.strip()]
    header = next(i for i, line in enumerate(lines) if line[0] == "GROUP")
    assert lines[header] == ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
                             "CONSUMER-ID", "HOST", "CLIENT-ID"]
    return lines[header + 1:]


def test_groups_describe_lag_agrees_with_kafka_python(sh: Any, kafka_topic_factory: Any,
                                                      kafka_bootstrap: str) -> None:
    t = kafka_topic_factory(partitions=1)
    group = _name("cli-lag")
    rc, _, _ = sh("produce", "--topic", t, stdin="".join(f"m{i}\n" for i in range(1000)))
    assert rc == 0
    c = _group_consume(kafka_bootstrap, t, group, 400)
    try:
        rc, out, _ = sh("groups", "--describe", "--group", group)
        assert rc == 0
        rows = _describe_rows(out)
        assert len(rows) == 1
        g, topic, part, cur, end, lag, member, host, client = rows[0]
        assert (g, topic, part, cur, end, lag, client) == (group, t, "0", "400", "1000", "600", "lag-checker")
        assert member.startswith("lag-checker") and host != "-"
        rc, out, _ = sh("groups", "--describe", "--group", group, "--state")
        assert rc == 0 and "Stable" in out
        rc, out, err = sh("groups", "--reset-offsets", "--group", group, "--topic", t, "--to-earliest",
                          "--execute")
        assert rc == 1 and "the current state is Stable" in err
    finally:
        c.close()
    rc, out, _ = sh("groups", "--describe", "--group", group)
    assert f"Consumer group '{group}' has no active members." in out
    rows = _describe_rows(out)
    assert rows == [[group, t, "0", "400", "1000", "600", "-", "-", "-"]]
    committed, end = _kp_lag(kafka_bootstrap, t, group, 1)[0]
    assert end - (committed or 0) == 600
    rc, out, _ = sh("groups", "--list")
    assert group in out.splitlines()

    # catch up: lag 0
    c = _group_consume(kafka_bootstrap, t, group, 600)
    try:
        rows = _describe_rows(sh("groups", "--describe", "--group", group)[1])
        assert rows[0][:6] == [group, t, "0", "1000", "1000", "0"]
        rc, out, err = sh("groups", "--delete", "--group", group)
        assert rc == 1 and "NON_EMPTY_GROUP" in err
    finally:
        c.close()
    rows = _describe_rows(sh("groups", "--describe", "--group", group)[1])
    assert rows == [[group, t, "0", "1000", "1000", "0", "-", "-", "-"]]
    rc, out, _ = sh("groups", "--delete", "--group", group)
    assert (rc, out) == (0, f"Deletion of requested consumer groups ('{group}') was successful.\n")
    assert sh("groups", "--describe", "--group", group)[0] == 1
    assert group not in sh("groups", "--list")[1].splitlines()


def test_groups_reset_offsets_dry_run_then_execute(sh: Any, kafka_topic_factory: Any,
                                                   kafka_bootstrap: str) -> None:
    t = kafka_topic_factory(partitions=2)
    group = _name("cli-reset")
    p = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for i in range(100):
        p.send(t, value=b"x", partition=i % 2, timestamp_ms=1_600_000_000_000 + i * 1000)
    p.flush()
    p.close()
    _group_consume(kafka_bootstrap, t, group, 60).close()
    before = _kp_lag(kafka_bootstrap, t, group, 2)
    assert sum(c or 0 for c, _ in before.values()) == 60

    def reset(*how: str) -> tuple[int, list[list[str]], str]:
        rc, out, err = sh("groups", "--reset-offsets", "--group", group, "--topic", t, *how)
        rows = [line.split() for line in out.splitlines() if line.strip()]
        assert rows[0] == ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]
        return rc, rows[1:], err

    rc, rows, err = reset("--to-earliest")
    assert rc == 0 and rows == [[group, t, "0", "0"], [group, t, "1", "0"]]
    assert "No action will be performed as the --execute option is missing" in err
    rc, rows, _ = reset("--to-latest", "--dry-run")
    assert rows == [[group, t, "0", "50"], [group, t, "1", "50"]]
    assert _kp_lag(kafka_bootstrap, t, group, 2) == before  # dry runs changed nothing

    # record i is at partition i%2, offset i//2, timestamp base + i s: t=base+41s is record 41 (p1 off 20)
    rc, rows, _ = reset("--to-datetime", "2020-09-13T12:27:21.000Z", "--execute")  # 1_600_000_041_000
    assert rows == [[group, t, "0", "21"], [group, t, "1", "20"]]
    assert _kp_lag(kafka_bootstrap, t, group, 2) == {0: (21, 50), 1: (20, 50)}
    rc, rows, _ = reset("--shift-by", "-5", "--execute")
    assert rows == [[group, t, "0", "16"], [group, t, "1", "15"]]
    rc, rows, err = reset("--shift-by", "100", "--execute")
    assert rows == [[group, t, "0", "50"], [group, t, "1", "50"]] and "higher than the latest" in err
    rc, rows, _ = sh("groups", "--reset-offsets", "--group", group, "--topic", f"{t}:1", "--to-offset", "7",
                     "--execute")[0], None, None
    assert rc == 0
    assert _kp_lag(kafka_bootstrap, t, group, 2) == {0: (50, 50), 1: (7, 50)}
    rc, out, _ = sh("groups", "--reset-offsets", "--group", group, "--all-topics", "--to-earliest", "--execute")
    assert rc == 0 and _kp_lag(kafka_bootstrap, t, group, 2) == {0: (0, 50), 1: (0, 50)}

    # bad input
    for args, status, message in [
        (["--topic", t], 2, "needs one of --to-earliest"),
        (["--to-earliest"], 2, "--topic T"),
        (["--topic", t, "--to-datetime", "yesterday"], 2, "expected YYYY-MM-DDTHH:mm:SS.sss"),
        (["--topic", f"{t}:9", "--to-earliest"], 1, "has no partition 9"),
        (["--topic", f"{t}:x", "--to-earliest"], 2, "partitions must be numbers"),
        (["--topic", "no-such-topic-xyz", "--to-earliest"], 1, "does not exist"),
    ]:
        rc, out, err = sh("groups", "--reset-offsets", "--group", group, *args)
        assert rc == status and message in err, (args, err)
    rc, _, err = sh("groups", "--describe")
    assert rc == 2 and "--group" in err


def test_groups_describe_a_kip848_consumer_group(sh: Any, kafka_topic_factory: Any, kafka_bootstrap: str) -> None:
    from confluent_kafka import Consumer, Producer

    t = kafka_topic_factory(partitions=2)
    group = _name("cli-848")
    p = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(20):
        p.produce(t, value=b"v", partition=i % 2)
    p.flush()
    c = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group, "group.protocol": "consumer",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False, "client.id": "kip848"})
    try:
        c.subscribe([t])
        got = 0
        deadline = time.monotonic() + 30
        while got < 20 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got += 1
        assert got == 20
        c.commit(asynchronous=False)
        rc, out, _ = sh("groups", "--describe", "--group", group)
        assert rc == 0
        rows = _describe_rows(out)
        assert [r[:6] + r[8:] for r in rows] == [[group, t, "0", "10", "10", "0", "kip848"],
                                                 [group, t, "1", "10", "10", "0", "kip848"]]
        assert "has no active members" not in out
        rc, out, _ = sh("groups", "--describe", "--group", group, "--state")
        assert "Stable" in out and ("uniform" in out or "range" in out)
    finally:
        c.close()


def test_commands_against_a_three_broker_cluster(capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch, shared_cluster: Any,
                                                 unique_topic: str) -> None:
    """Leaders spread over three brokers, the controller on one: requests are
    routed as Kafka's clients route them."""
    b = shared_cluster.bootstrap

    def sh(cmd: str, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
        return run(capsys, monkeypatch, cmd, "--bootstrap-server", b, *args, stdin=stdin)

    t = unique_topic
    rc, out, err = sh("topics", "--create", "--topic", t, "--partitions", "6", "--replication-factor", "3")
    assert rc == 0, err
    rc, out, _ = sh("topics", "--describe", "--topic", t)
    leaders = set(re.findall(r"\tLeader: (\d+)", out))
    assert len(leaders) == 3 and "ReplicationFactor: 3" in out
    deadline = time.monotonic() + 20  # followers join the ISR
    while sh("topics", "--describe", "--topic", t, "--under-replicated-partitions")[1] \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sh("topics", "--describe", "--topic", t, "--under-replicated-partitions")[1] == ""
    assert sh("topics", "--describe", "--topic", t, "--unavailable-partitions")[1] == ""
    lines = "".join(f"k{i}\tv{i}\n" for i in range(300))
    rc, out, _ = sh("produce", "--topic", t, "--property", "parse.key=true", "--print-offsets", stdin=lines)
    assert rc == 0 and len(out.splitlines()) == 300
    rc, out, err = sh("consume", "--topic", t, "--from-beginning", "--max-messages", "300", "--print-key")
    assert rc == 0 and sorted(out.splitlines()) == sorted(f"k{i}\tv{i}" for i in range(300))
    group = _name("cli-cluster")
    c = _group_consume(b, t, group, 100)
    c.close()
    rows = _describe_rows(sh("groups", "--describe", "--group", group)[1])
    kp = _kp_lag(b, t, group, 6)  # only partitions with a commit are listed, as Kafka's tool does
    assert {int(r[2]): (int(r[3]), int(r[4])) for r in rows} == {p: v for p, v in kp.items() if v[0] is not None}
    assert sum(int(r[3]) for r in rows) == 100 and all(int(r[5]) == int(r[4]) - int(r[3]) for r in rows)
    assert sh("groups", "--reset-offsets", "--group", group, "--all-topics", "--to-latest", "--execute")[0] == 0
    rows = _describe_rows(sh("groups", "--describe", "--group", group)[1])
    assert {r[5] for r in rows} == {"0"}
    assert sh("topics", "--delete", "--topic", t)[0] == 0


def test_consume_with_a_group_commits_and_resumes(sh: Any, kafka_topic_factory: Any, kafka_bootstrap: str) -> None:
    t = kafka_topic_factory(partitions=1)
    group = _name("cli-consume-group")
    assert sh("produce", "--topic", t, stdin="".join(f"m{i}\n" for i in range(1000)))[0] == 0
    rc, out, err = sh("consume", "--topic", t, "--group", group, "--from-beginning", "--max-messages", "400")
    assert rc == 0 and out.splitlines() == [f"m{i}" for i in range(400)]
    assert "partitions [0]" in err
    committed, end = _kp_lag(kafka_bootstrap, t, group, 1)[0]
    assert (committed, end) == (400, 1000)
    rows = _describe_rows(sh("groups", "--describe", "--group", group)[1])
    assert rows == [[group, t, "0", "400", "1000", "600", "-", "-", "-"]]
    # the next run resumes at the committed offset (--from-beginning only applies without one)
    rc, out, _ = sh("consume", "--topic", t, "--group", group, "--from-beginning", "--timeout-ms", "1000")
    assert rc == 0 and out.splitlines() == [f"m{i}" for i in range(400, 1000)]
    assert _kp_lag(kafka_bootstrap, t, group, 1)[0] == (1000, 1000)
    rc, _, err = sh("consume", "--topic", t, "--group", group, "--partition", "0")
    assert rc == 2 and "--group excludes --partition" in err


def test_consume_group_members_share_partitions(sh: Any, kafka_topic_factory: Any, kafka_bootstrap: str) -> None:
    """A CLI member and a kafka-python member split the partitions (range
    assignment, the CLI rejoins on the rebalance), as two Kafka consumers do."""
    import subprocess
    import sys

    t = kafka_topic_factory(partitions=4)
    group = _name("cli-members")
    proc = subprocess.Popen([sys.executable, "-m", "pykbroker", "consume", "--bootstrap-server", kafka_bootstrap,
                             "--topic", t, "--group", group, "--timeout-ms", "20000", "--print-partition"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    kc = None
    try:
        deadline = time.monotonic() + 20
        rows: list[list[str]] = []
        while time.monotonic() < deadline:
            rows = _describe_rows(sh("groups", "--describe", "--group", group)[1]) \
                if "Stable" in sh("groups", "--describe", "--group", group, "--state")[1] else []
            if len(rows) == 4:
                break
            time.sleep(0.3)
        assert {r[8] for r in rows} == {"pykbroker-cli"} and len(rows) == 4
        kc = KafkaConsumer(t, bootstrap_servers=kafka_bootstrap, group_id=group, client_id="kp-member",
                           enable_auto_commit=False, session_timeout_ms=10000)
        kafka_python_group_metadata(kc)
        owners: dict[str, set[str]] = {}
        while time.monotonic() < deadline + 20:
            kc.poll(timeout_ms=200)
            rc, out, _ = sh("groups", "--describe", "--group", group)
            owners = {}
            for r in _describe_rows(out) if "Stable" in sh("groups", "--describe", "--group", group,
                                                           "--state")[1] else []:
                owners.setdefault(r[8], set()).add(r[2])
            if set(owners) == {"pykbroker-cli", "kp-member"}:
                break
        assert {k: len(v) for k, v in owners.items()} == {"pykbroker-cli": 2, "kp-member": 2}
        p = KafkaProducer(bootstrap_servers=kafka_bootstrap)
        for i in range(40):
            p.send(t, value=b"x%d" % i, partition=i % 4)
        p.flush()
        p.close()
        got = 0
        end = time.monotonic() + 15
        while got < 20 and time.monotonic() < end:
            for msgs in kc.poll(timeout_ms=300).values():
                got += len(msgs)
        assert got == 20
    finally:
        if kc is not None:
            kc.close()
        proc.terminate()  # as Ctrl-C: commits, leaves the group
        out, err = proc.communicate(20)
    assert proc.returncode == 130 and "Processed a total of 20 messages" in err
    mine = {line.split("\t")[0] for line in out.splitlines()}
    assert len(mine) == 2 and mine == {f"Partition:{p}" for p in owners["pykbroker-cli"]}
    assert len(out.splitlines()) == 20


def test_range_assignor_and_consumer_protocol_bytes() -> None:
    from pykbroker.admin.membership import (
        decode_assignment,
        decode_subscription,
        encode_assignment,
        encode_subscription,
        range_assign,
    )

    subs = {"b": ["t", "u"], "a": ["t"], "c": ["u"]}
    assert range_assign(subs, {"t": 5, "u": 1}) == {"a": {"t": [0, 1, 2]}, "b": {"t": [3, 4], "u": [0]}, "c": {}}
    assert decode_subscription(encode_subscription(["u", "t"])) == ["t", "u"]
    data = encode_assignment({"t": [0, 2]})
    assert decode_assignment(data) == {"t": [0, 2]}
    # version 0, one topic "t" (int16 length + bytes), partitions [0, 2], null user data
    assert data == bytes.fromhex("0000" "00000001" "0001") + b"t" + bytes.fromhex("00000002" "00000000"
                                                                                 "00000002" "ffffffff")


def test_groups_describe_unknown_group(sh: Any) -> None:
    rc, out, err = sh("groups", "--describe", "--group", "no-such-group-xyz")
    assert rc == 1 and "consumer group 'no-such-group-xyz' does not exist" in err and out == ""
