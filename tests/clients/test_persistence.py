"""Persistence across restarts and crashes (issue 2 acceptance).

- A clean restart keeps every topic and record at the same offsets.
- kill -9 while a producer sends with acks=1: after restart every
  acknowledged record is present (it was in the OS before the ack) and the
  log accepts new appends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from clientlib import (consume_confluent, create_topic, expected_records, produce_confluent,
                       produce_kafka_python)


def test_restart_keeps_topics_and_records(broker, unique_topic):
    create_topic(broker.bootstrap, unique_topic, 3)
    other = unique_topic + "-b"
    create_topic(broker.bootstrap, other, 1)
    recs = expected_records(unique_topic, 3000, 3, int(time.time() * 1000))
    produce_kafka_python(broker.bootstrap, unique_topic, recs)
    recs_b = expected_records(other, 100, 1, int(time.time() * 1000))
    produce_confluent(broker.bootstrap, other, recs_b)

    broker.restart()

    from confluent_kafka.admin import AdminClient

    md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
    assert len(md.topics[unique_topic].partitions) == 3
    assert len(md.topics[other].partitions) == 1
    want = {p: [r for r in recs if r.partition == p] for p in range(3)}
    got = consume_confluent(broker.bootstrap, unique_topic, {p: 0 for p in range(3)},
                            {p: len(want[p]) for p in range(3)})
    assert got == want
    got_b = consume_confluent(broker.bootstrap, other, {0: 0}, {0: 100})
    assert got_b[0] == recs_b
    # New appends continue at the next offsets.
    more = expected_records(other, 10, 1, int(time.time() * 1000))
    offs = produce_confluent(broker.bootstrap, other, more)
    assert [o for _, o in offs] == list(range(100, 110))


PRODUCER = textwrap.dedent("""
    import sys, time
    from confluent_kafka import Producer
    bootstrap, topic, out = sys.argv[1], sys.argv[2], sys.argv[3]
    p = Producer({"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 1,
                  "message.timeout.ms": 60000})
    f = open(out, "a", buffering=1)
    def done(err, msg):
        if err is None:
            f.write("%d %d %s\\n" % (msg.partition(), msg.offset(), msg.value().decode()))
    i = 0
    while True:
        try:
            p.produce(topic, value=b"rec-%d" % i, partition=i % 2, on_delivery=done)
            i += 1
        except BufferError:
            pass
        p.poll(0.0005 if i % 50 else 0.002)
""")


def test_kill9_during_acks1_produce_keeps_acknowledged(broker, unique_topic, tmp_path):
    create_topic(broker.bootstrap, unique_topic, 2)
    acked = tmp_path / "acked.txt"
    script = tmp_path / "producer.py"
    script.write_text(PRODUCER)
    proc = subprocess.Popen([sys.executable, str(script), broker.bootstrap, unique_topic, str(acked)])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if acked.exists() and sum(1 for _ in acked.open()) > 3000:
                break
            time.sleep(0.05)
        broker.kill()  # SIGKILL while the producer is still sending
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    lines = [ln.split() for ln in acked.read_text().splitlines() if ln.strip()]
    assert len(lines) > 3000
    acked_by_part: dict[int, dict[int, str]] = {0: {}, 1: {}}
    for part, off, val in lines:
        acked_by_part[int(part)][int(off)] = val

    broker.restart()
    want = {p: max(acked_by_part[p]) + 1 for p in (0, 1)}
    got = consume_confluent(broker.bootstrap, unique_topic, {0: 0, 1: 0}, want)
    for p in (0, 1):
        stored = {r.offset: r.value.decode() for r in got[p]}
        for off, val in acked_by_part[p].items():
            assert stored.get(off) == val, (p, off, val, stored.get(off))
        # offsets are dense from 0 and values in send order within the partition
        offs = [r.offset for r in got[p]]
        assert offs == list(range(len(offs)))
        idx = [int(r.value.decode().split("-")[1]) for r in got[p]]
        assert idx == sorted(idx)
    # The log accepts new appends after recovery.
    recs = expected_records(unique_topic, 5, 2, int(time.time() * 1000))
    offs = produce_confluent(broker.bootstrap, unique_topic, recs)
    for (p, off) in offs:
        assert off >= want[p]


def test_torn_tail_is_truncated_on_restart(broker, unique_topic):
    create_topic(broker.bootstrap, unique_topic, 1)
    recs = expected_records(unique_topic, 200, 1, int(time.time() * 1000))
    produce_confluent(broker.bootstrap, unique_topic, recs)
    broker.stop()
    seg = Path(broker.log_dir) / f"{unique_topic}-0" / ("0" * 20 + ".log")
    size = seg.stat().st_size
    with seg.open("ab") as f:
        f.write(os.urandom(37))  # garbage / half a batch at the tail
    broker.restart()
    assert seg.stat().st_size == size
    got = consume_confluent(broker.bootstrap, unique_topic, {0: 0}, {0: 200})
    assert got[0] == recs
    more = expected_records(unique_topic, 3, 1, int(time.time() * 1000))
    assert [o for _, o in produce_confluent(broker.bootstrap, unique_topic, more)] == [200, 201, 202]
