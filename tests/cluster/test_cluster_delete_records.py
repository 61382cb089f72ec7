"""Issue 20: DeleteRecords on a replicated partition answers once the
followers' log start offsets have moved too (Kafka's DelayedDeleteRecords):
the low watermark in the answer is the lowest log start offset of the live
replicas, every replica's ListOffsets EARLIEST (replica id -2, answered by
followers) shows it by then, and a follower that cannot fetch (SIGSTOP,
still registered) makes the request time out with REQUEST_TIMED_OUT."""

from __future__ import annotations

import os
import signal
import time

from clusterlib import wait_until
from rawclient import RawClient

from pykbroker.protocol import errors
from pykbroker.protocol.records import build_batch

TOPIC = "delrec"


def produce(bootstrap: str, p: int, n: int) -> None:
    batch = build_batch([(b"k", b"v%d" % i, (), int(time.time() * 1000)) for i in range(n)])
    body = {"transactional_id": None, "acks": -1, "timeout_ms": 10000,
            "topic_data": [{"name": TOPIC, "partition_data": [{"index": p, "records": batch}]}]}
    with RawClient(bootstrap, timeout=30) as rc:
        r = rc.call(0, 9, body)["responses"][0]["partition_responses"][0]
    assert r["error_code"] == 0, r


def delete_records(bootstrap: str, offsets: dict[int, int], timeout_ms: int = 30000) -> dict[int, tuple[int, int]]:
    body = {"topics": [{"name": TOPIC, "partitions": [{"partition_index": p, "offset": o}
                                                      for p, o in offsets.items()]}],
            "timeout_ms": timeout_ms}
    with RawClient(bootstrap, timeout=60) as rc:
        r = rc.call(21, 2, body)
    return {x["partition_index"]: (x["error_code"], x["low_watermark"]) for x in r["topics"][0]["partitions"]}


def log_start(bootstrap: str, p: int) -> int:
    """ListOffsets EARLIEST with replica id -2 (debug): any replica answers with its own."""
    with RawClient(bootstrap) as rc:
        r = rc.call(2, 5, {"replica_id": -2, "isolation_level": 0, "topics": [
            {"name": TOPIC, "partitions": [{"partition_index": p, "current_leader_epoch": -1, "timestamp": -2}]}]})
    part = r["topics"][0]["partitions"][0]
    assert part["error_code"] == 0, part
    offset: int = part["offset"]
    return offset


def test_delete_records_waits_for_the_followers(cluster):
    c = cluster
    c.create_topic(TOPIC, 2, 3, {"min.insync.replicas": "2"})
    leaders = {p: c.leader(TOPIC, p) for p in range(2)}
    for p in range(2):
        produce(c.brokers[leaders[p]].bootstrap, p, 100)
    # both partitions' leaders, one request each (admin clients send it to each leader)
    for p, off in ((0, 60), (1, 30)):
        boot = c.brokers[leaders[p]].bootstrap
        t0 = time.monotonic()
        assert delete_records(boot, {p: off}) == {p: (errors.NONE, off)}
        took = time.monotonic() - t0
        # answered only once every replica moved its log start offset
        assert [log_start(c.brokers[b].bootstrap, p) for b in range(3)] == [off] * 3, took

    # a follower that does not fetch (stopped, still registered): the request times out
    p = 0
    leader = leaders[p]
    follower = next(b for b in range(3) if b != leader)
    pid = c.brokers[follower].pid
    os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        assert delete_records(c.brokers[leader].bootstrap, {p: 80}, timeout_ms=800) == \
            {p: (errors.REQUEST_TIMED_OUT, -1)}
        assert time.monotonic() - t0 >= 0.7
        assert log_start(c.brokers[leader].bootstrap, p) == 80  # the leader moved its own
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(lambda: log_start(c.brokers[follower].bootstrap, p) == 80, 30, "the follower following")
    # -1: the high watermark
    assert delete_records(c.brokers[leader].bootstrap, {p: -1}) == {p: (errors.NONE, 100)}
    assert [log_start(c.brokers[b].bootstrap, p) for b in range(3)] == [100] * 3
