"""The memory engine in cluster mode (issue 11): followers replicate into
memory (``assign_epoch``, ``append_as_follower``, truncation are part of the
one storage interface), so a 3-broker ``pykbroker.storage=memory`` cluster
acknowledges acks=all, survives losing the leader, and the new leader
serves every acknowledged record with its content, order and offset."""

from __future__ import annotations

import time

from clusterlib import wait_until
from rawclient import RawClient


def _leader_epoch(bootstrap: str, topic: str, p: int) -> int:
    with RawClient(bootstrap) as rc:
        md = rc.call(3, 9, {"topics": [{"name": topic}], "allow_auto_topic_creation": False})
    return md["topics"][0]["partitions"][p]["leader_epoch"]


def test_memory_followers_replicate_and_take_over(cluster_factory):
    from clientlib import consume_confluent, expected_records, produce_confluent

    c = cluster_factory(3, {"pykbroker.storage": "memory"})
    c.create_topic("inmem", 2, 3, {"min.insync.replicas": "2"})
    recs = expected_records("inmem", 400, 2, int(time.time() * 1000))
    produce_confluent(c.bootstrap, "inmem", recs, acks="all", compression="lz4")
    c.wait_full_isr("inmem", 2, size=3)
    # nothing on disk: no partition directories anywhere
    assert not any(c.log_dir(b, "inmem", p).exists() for b in range(3) for p in range(2))
    victim = c.leader("inmem", 0)
    epoch_before = c.state("inmem", 0)["leader_epoch"]
    c.kill(victim)
    wait_until(lambda: c.leader("inmem", 0) not in (victim, -1), 60, "a new leader from the in-memory followers")
    survivors = [b for b in range(3) if b != victim]
    wait_until(lambda: all(c.leader("inmem", p) in survivors for p in range(2)), 60, "leaders on the survivors")
    new_leader = c.leader("inmem", 0)
    assert c.state("inmem", 0)["leader_epoch"] > epoch_before
    wait_until(lambda: _leader_epoch(c.brokers[new_leader].bootstrap, "inmem", 0) > epoch_before, 30,
               "the new leader to know its epoch")
    boot = ",".join(c.brokers[b].bootstrap for b in survivors)
    got = consume_confluent(boot, "inmem", {0: 0, 1: 0}, {0: 200, 1: 200})
    for p in range(2):
        want = [r for r in recs if r.partition == p]
        assert [(r.offset, r.key, r.value, r.headers, r.timestamp) for r in got[p]] == \
            [(r.offset, r.key, r.value, r.headers, r.timestamp) for r in want]
    # the survivors keep replicating: acks=all with min.insync.replicas=2 still succeeds
    more = expected_records("inmem", 2, 2, int(time.time() * 1000))
    assert [o for _, o in produce_confluent(boot, "inmem", more, acks="all")] == [200, 200]
