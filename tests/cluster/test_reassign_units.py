"""Pure parts of issue 13: the reassignment planner (pykbroker/reassign.py),
the replication quota (cluster/throttle.py), the topic znode's
adding/removing replicas (cluster/zkdata.py)."""

from __future__ import annotations

from collections import Counter

import pytest

from pykbroker.cluster import zkdata as zd
from pykbroker.cluster.throttle import UNLIMITED, ReplicationQuota, is_throttled
from pykbroker.reassign import ReassignError, parse_plan, plan, plan_json


def _rr(topic: str, partitions: int, rf: int, brokers: list[int]) -> dict[tuple[str, int], list[int]]:
    n = len(brokers)
    return {(topic, p): [brokers[(p + i) % n] for i in range(rf)] for p in range(partitions)}


def _moves(before: dict, after: dict) -> int:
    return sum(len(set(after[tp]) - set(before[tp])) for tp in before)


def test_plan_adds_a_broker_with_a_fair_share_and_few_moves():
    cur = _rr("t", 12, 2, [0, 1, 2])
    new = plan(cur, {0: None, 1: None, 2: None, 3: None})
    counts = Counter(b for r in new.values() for b in r)
    assert counts == {0: 6, 1: 6, 2: 6, 3: 6}
    assert _moves(cur, new) == 6  # exactly the new broker's share moves
    assert all(len(set(r)) == 2 for r in new.values())
    leaders = Counter(r[0] for r in new.values())
    assert leaders == {0: 3, 1: 3, 2: 3, 3: 3}
    # preferred leaders balanced by reordering, not by moving more data
    assert all(set(new[tp]) & set(cur[tp]) for tp in cur)


def test_plan_drains_a_broker():
    cur = _rr("t", 6, 2, [0, 1, 2])
    new = plan(cur, {0: None, 1: None})
    assert all(sorted(r) == [0, 1] for r in new.values())
    assert Counter(r[0] for r in new.values()) == {0: 3, 1: 3}


def test_plan_is_rack_aware():
    cur = {("t", p): [0, 1] for p in range(4)}
    brokers = {0: "a", 1: "b", 2: "a", 3: "b"}
    new = plan(cur, brokers)
    for r in new.values():
        assert {brokers[b] for b in r} == {"a", "b"}, new
    assert Counter(b for r in new.values() for b in r) == {0: 2, 1: 2, 2: 2, 3: 2}


def test_plan_balances_each_topic_and_rejects_too_few_brokers():
    cur = {**_rr("a", 4, 1, [0]), **_rr("b", 4, 1, [1])}
    new = plan(cur, {0: None, 1: None})
    for t in ("a", "b"):
        assert Counter(r[0] for (tt, _), r in new.items() if tt == t) == {0: 2, 1: 2}
    with pytest.raises(ReassignError):
        plan(_rr("t", 2, 3, [0, 1, 2]), {0: None, 1: None})


def test_plan_json_round_trip():
    a = {("t", 1): [2, 0], ("t", 0): [1, 2]}
    js = plan_json(a)
    assert js == {"version": 1, "partitions": [
        {"topic": "t", "partition": 0, "replicas": [1, 2], "log_dirs": ["any", "any"]},
        {"topic": "t", "partition": 1, "replicas": [2, 0], "log_dirs": ["any", "any"]}]}
    assert parse_plan(js) == a


def test_replication_quota_window():
    now = [100.0]
    limit = [1000]
    q = ReplicationQuota(lambda: limit[0], lambda: 11, lambda: 1, clock=lambda: now[0])
    assert q.enabled() and not q.exceeded()
    q.record(900)
    assert not q.exceeded()  # 900 B over (at least) one second
    q.record(200)
    assert q.exceeded()
    now[0] += 2.0
    assert q.rate() == pytest.approx(1100 / 2.0) and not q.exceeded()
    now[0] += 20.0  # the samples left the window
    assert q.rate() == 0.0
    limit[0] = UNLIMITED
    q.record(10**12)
    assert not q.enabled() and not q.exceeded() and q.total == 1100 + 10**12


def test_is_throttled():
    assert is_throttled(("*",), 3, 7)
    assert is_throttled(("0:1", "3:7"), 3, 7)
    assert not is_throttled(("0:1", "3:6"), 3, 7)
    assert not is_throttled((), 3, 7)


def test_topic_znode_with_a_move_in_progress():
    tid = bytes(range(16))
    data = zd.encode_topic(tid, {0: [3, 1, 2], 1: [1, 2]}, {0: [3]}, {0: [2], 1: []})
    ta = zd.decode_topic("t", data, 5)
    assert ta is not None
    assert ta.adding == {0: (3,)} and ta.removing == {0: (2,)}
    assert ta.reassigning(0) and not ta.reassigning(1)
    assert ta.origin(0) == (1, 2) and ta.target(0) == (3, 1)
    import json

    js = json.loads(data)
    assert js["adding_replicas"] == {"0": [3]} and js["removing_replicas"] == {"0": [2]}
    assert json.loads(zd.encode_topic(tid, {0: [1]}))["adding_replicas"] == {}


def test_plan_racks_win_over_an_even_spread():
    # one r1 broker left: it keeps a replica of every partition
    cur = {("t", p): r for p, r in enumerate([[0, 1], [1, 2], [2, 3], [3, 0], [0, 1], [2, 3]])}
    brokers = {0: "r1", 1: "r2", 3: "r2"}
    full = {0: "r1", 1: "r2", 2: "r1", 3: "r2"}
    new = plan(cur, brokers)
    assert all({full[b] for b in r} == {"r1", "r2"} for r in new.values()), new
    assert Counter(b for r in new.values() for b in r)[0] == 6
    # without rack awareness the spread is even
    flat = plan(cur, brokers, rack_aware=False)
    assert Counter(b for r in flat.values() for b in r) == {0: 4, 1: 4, 3: 4}


def test_reassign_partitions_znode_format():
    import json

    data = zd.encode_reassignment({("t", 1): [3, 1], ("u", 0): [2]})
    assert json.loads(data) == {"version": 1, "partitions": [{"topic": "t", "partition": 1, "replicas": [3, 1]},
                                                             {"topic": "u", "partition": 0, "replicas": [2]}]}
    assert zd.decode_reassignment(data) == {("t", 1): [3, 1], ("u", 0): [2]}
    # Kafka's tool adds log_dirs (ignored); a later entry for a partition wins
    assert zd.decode_reassignment(b'{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1],'
                                  b'"log_dirs":["any"]},{"topic":"t","partition":0,"replicas":[2]}]}') == \
        {("t", 0): [2]}
    assert zd.decode_reassignment(b'{"version":1,"partitions":[]}') == {}
    for bad in (b"", b"junk", b'{"version":1}', b'{"partitions":[{"topic":"t","partition":0}]}',
                b'{"partitions":[{"topic":"t","partition":"0","replicas":[1]}]}',
                b'{"partitions":[{"topic":"t","partition":0,"replicas":["1"]}]}'):
        assert zd.decode_reassignment(bad) is None, bad
    assert zd.REASSIGN_PARTITIONS == "/admin/reassign_partitions"
