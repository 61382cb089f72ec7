"""Issue 12 acceptance, CI-sized: a seeded nemesis schedule of about 60-90 s.

ZooKeeper + 3 brokers behind fault proxies, a topic with 6 partitions,
replication factor 3, min.insync.replicas=2; idempotent acks=all producers
(librdkafka, kafka-python) and a consumer-group member committing its
offsets (librdkafka) throughout; one fault at a time: the controller
killed with kill -9 (restarted after up to 2 s), a pause longer than the
session timeout, a partition of one broker from its peers, a broker cut
from ZooKeeper until its session expired, a ZooKeeper restart (seeded
order and targets).

Asserts: no acknowledged record lost or moved, no duplicate, order per key
kept, no delivery failure, every partition served again within session
timeout + 10 s of the last fault healing, and every broker's Metadata
agrees with ZooKeeper on every partition's leader and epoch (and the leader
serves it); the group's committed offsets never went below one that was
acknowledged; read_committed saw no aborted record and no input was
processed twice by the transactional loop.

``PYKBROKER_NEMESIS_SEED`` (default 12) and ``PYKBROKER_NEMESIS_SESSION_MS``
(default 6000; Kafka's is 18000, which makes the run about three times
longer) change the run; the JSON result and the brokers' logs land in the
test's tmp directory.
"""

from __future__ import annotations

import json
import os

import pytest

from pykbroker.cluster.zkserver import zookeeper_available

from . import checker
from .faults import CI_KINDS
from .runner import RunConfig, run

SEED = int(os.environ.get("PYKBROKER_NEMESIS_SEED", "12"))
SESSION_MS = int(os.environ.get("PYKBROKER_NEMESIS_SESSION_MS", "6000"))


@pytest.mark.slow
def test_nemesis_ci_schedule(tmp_path):
    if not zookeeper_available():
        pytest.skip("ZooKeeper (Debian package 'zookeeper' + java) is not installed")
    cfg = RunConfig(seed=SEED, kinds=CI_KINDS, faults=len(CI_KINDS), session_ms=SESSION_MS,
                    gap=(2.0, 4.0), confluent_rate=300.0, kafka_python_rate=60.0, txn_catch_up_s=30.0,
                    json_path=tmp_path / "nemesis.json", logs_path=tmp_path / "logs")
    res = run(cfg, tmp_path / "cluster")
    print("\n" + checker.table(res))
    summary = json.dumps({k: res[k] for k in ("lost", "duplicates", "reordered", "offset_mismatch",
                                              "recovery_s", "recovery_note")})
    kinds = [e["kind"] for e in res["events"]]
    assert "kill" in kinds and any(e["kind"] == "kill" and e["note"].startswith("controller -> controller")
                                   for e in res["events"]), res["events"]
    assert any(e["kind"] == "pause-long" and e["lasted_s"] > SESSION_MS / 1000 for e in res["events"])
    assert "partition-peers" in kinds and "zk-expire" in kinds and "zk-restart" in kinds
    assert res["acked"] > 0
    assert res["lost"] == 0, (summary, res["workloads"])
    assert res["offset_mismatch"] == 0, (summary, res["workloads"])
    assert res["duplicates"] == 0, (summary, res["duplicate_examples"])
    assert res["reordered"] == 0, summary
    failed = {n: w["error_examples"] for n, w in res["workloads"].items() if w["failed"]}
    assert not failed, failed
    assert res["recovered"] and res["recovery_s"] <= SESSION_MS / 1000 + 10, summary
    assert res["agreement_at_end"], summary
    # the consumer group: committed offsets never went backwards. Whether the member consumed every
    # acknowledged record is reported, not asserted (an open finding: after some faults the member
    # stops making progress; see docs/cluster.md "Nemesis runs")
    assert res["committed_backwards"] == 0, res["consumers"]
    # transactions: read_committed never sees aborted data, no input processed twice. Not asserted
    # (known open findings, see docs/cluster.md "Nemesis"): the loop can stall after a fault, and
    # some records of committed transactions may not be visible to read_committed at the end.
    assert res["transactions"]["aborted_visible"] == 0, res["transactions"]
    assert res["transactions"]["processed_twice"] == 0, res["transactions"]


@pytest.mark.slow
def test_nemesis_isr_wipe_with_unclean_election(tmp_path):
    """Issue 12, unclean.leader.election.enable: a schedule that empties the
    ISR (isr-wipe: a replica killed until it left every ISR, the others
    acknowledge more, then die; it comes back alone). With the workload
    topic's unclean election on, it leads every partition at once; what it
    never got is lost, as Kafka documents, and the checker counts it apart
    (expected). Nothing else is lost, duplicated or reordered, and the
    cluster recovers once the others return."""
    if not zookeeper_available():
        pytest.skip("ZooKeeper (Debian package 'zookeeper' + java) is not installed")
    cfg = RunConfig(seed=301, kinds=("isr-wipe",), faults=1, session_ms=SESSION_MS, gap=(2.0, 3.0),
                    confluent_rate=300.0, kafka_python_rate=60.0, group_consumer=False, transactions=False,
                    unclean=True, json_path=tmp_path / "nemesis.json", logs_path=tmp_path / "logs")
    res = run(cfg, tmp_path / "cluster")
    print("\n" + checker.table(res))
    ev = res["events"][0]
    assert ev["kind"] == "isr-wipe" and ev["details"]["unclean_partitions"], ev
    assert res["unclean_partitions"] == ev["details"]["unclean_partitions"]
    assert res["lost_unclean"] > 0, res["workloads"]  # acknowledged by the old ISR only
    assert res["lost"] == 0 and res["offset_mismatch"] == 0, res["workloads"]
    assert res["duplicates"] == 0, res["duplicate_examples"]
    assert res["reordered"] == 0
    assert res["recovered"] and res["agreement_at_end"], res["recovery_note"]
