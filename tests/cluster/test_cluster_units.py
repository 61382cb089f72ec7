"""Cluster pieces without processes: replica placement, znode formats,
the controller's decisions, follower truncation, the lease."""

from __future__ import annotations

import random
from collections import Counter
from types import SimpleNamespace

import pytest

from pykbroker.cluster import zkdata as zd
from pykbroker.cluster.assignment import AssignmentError, assign_replicas, rack_alternated
from pykbroker.cluster.controller import Controller
from pykbroker.cluster.zk import split_connect
from pykbroker.protocol import errors


# --- placement ------------------------------------------------------------------------------

@pytest.mark.parametrize("n,parts,rf", [(3, 6, 3), (5, 20, 3), (4, 7, 2), (1, 3, 1)])
def test_rack_unaware_spreads_leaders_and_replicas(n, parts, rf):
    brokers = {b: None for b in range(n)}
    a = assign_replicas(brokers, parts, rf, rng=random.Random(1))
    assert sorted(a) == list(range(parts))
    for reps in a.values():
        assert len(reps) == rf and len(set(reps)) == rf and set(reps) <= set(brokers)
    leaders = Counter(r[0] for r in a.values())
    assert max(leaders.values()) - min(leaders.get(b, 0) for b in brokers) <= 1
    replicas = Counter(b for r in a.values() for b in r)
    assert max(replicas.values()) - min(replicas.get(b, 0) for b in brokers) <= 1 + parts // n


def test_rack_aware_puts_replicas_in_different_racks():
    racks = {0: "a", 1: "a", 2: "b", 3: "b", 4: "c", 5: "c"}
    assert rack_alternated(racks) == [0, 2, 4, 1, 3, 5]
    a = assign_replicas(racks, 12, 3, rng=random.Random(7))
    for reps in a.values():
        assert {racks[b] for b in reps} == {"a", "b", "c"}
    a = assign_replicas({0: "a", 1: "a", 2: "b"}, 6, 2, rng=random.Random(2))
    for reps in a.values():
        assert {racks.get(b, {0: "a", 1: "a", 2: "b"}[b]) for b in reps} == {"a", "b"}


def test_placement_errors():
    with pytest.raises(AssignmentError) as e:
        assign_replicas({0: None, 1: None}, 3, 3)
    assert e.value.code == errors.INVALID_REPLICATION_FACTOR
    assert "larger than available brokers: 2" in str(e.value)
    with pytest.raises(AssignmentError):
        assign_replicas({0: "a", 1: None}, 3, 2)
    with pytest.raises(AssignmentError) as e:
        assign_replicas({0: None}, 0, 1)
    assert e.value.code == errors.INVALID_PARTITIONS


def test_fixed_start_continues_round_robin():
    a = assign_replicas({0: None, 1: None, 2: None}, 3, 2, fixed_start=1, start_partition=3)
    assert sorted(a) == [3, 4, 5]
    assert [a[p][0] for p in (3, 4, 5)] == [1, 2, 0]


# --- znodes ------------------------------------------------------------------------------------

def test_znode_round_trips():
    tid = bytes(range(16))
    ta = zd.decode_topic("t", zd.encode_topic(tid, {0: [1, 2], 1: (2, 0)}), 4)
    assert ta == zd.TopicAssignment("t", tid, {0: (1, 2), 1: (2, 0)}, 4)
    st = zd.decode_state(zd.encode_state(2, 7, [2, 1], 3), 9, 123)
    assert st == zd.LeaderIsr(2, 7, (2, 1), 3, 9, 123)
    ep = zd.RegisteredEndpoint("PLAINTEXT", "PLAINTEXT", "127.0.0.1", 9093)
    b = zd.decode_broker(1, zd.encode_broker(1, [ep], "r1"), 55)
    assert b == zd.BrokerInfo(1, "127.0.0.1", 9093, "r1", 55, (ep,))
    assert zd.decode_controller(zd.encode_controller(4)) == 4 and zd.decode_controller(b"junk") == -1
    assert zd.decode_config(zd.encode_config({"min.insync.replicas": "2"})) == {"min.insync.replicas": "2"}
    assert zd.decode_shutdown(zd.encode_shutdown(8, [("t", 1)])) == (8, [("t", 1)])
    assert zd.decode_shutdown(zd.encode_shutdown(8)) == (8, None)
    assert zd.decode_cluster_id(zd.encode_cluster_id("abc")) == "abc"
    assert zd.decode_state(b"{}") is None and zd.decode_topic("t", b"[]", 0) is None


def test_config_znodes_in_kafkas_format():
    assert zd.encode_config_change("topics/t") == b'{"version":2,"entity_path":"topics/t"}'
    assert zd.decode_config_change(zd.encode_config_change("brokers/<default>")) == ("brokers", "<default>")
    assert zd.decode_config_change(b'{"version":1,"entity":"t"}') is None
    assert zd.broker_config_path(zd.broker_config_entity("")) == "/config/brokers/<default>"
    assert zd.broker_config_path(zd.broker_config_entity("2")) == "/config/brokers/2"
    assert zd.CONFIG_BROKERS in zd.PERSISTENT_PATHS and zd.CONFIG_CHANGES in zd.PERSISTENT_PATHS


def test_split_connect():
    assert split_connect("a:1,b:2/kafka/x") == ("a:1,b:2", "/kafka/x")
    assert split_connect("a:1") == ("a:1", "")
    assert split_connect("a:1/") == ("a:1", "")


# --- controller decisions -------------------------------------------------------------------------

def _controller(unclean: bool = False, topic_configs: dict | None = None) -> Controller:
    c = Controller.__new__(Controller)
    c.view = SimpleNamespace(configs={"t": topic_configs or {}})
    c.config = {"unclean.leader.election.enable": unclean}
    return c


TA = zd.TopicAssignment("t", bytes(16), {0: (1, 2, 3)})


def st(leader: int, isr: tuple, epoch: int = 5) -> zd.LeaderIsr:
    return zd.LeaderIsr(leader, epoch, isr, 1, 0, 0)


def test_decide_new_partition():
    c = _controller()
    assert c._decide(TA, 0, None, {1, 2, 3}, set()) == (1, (1, 2, 3), False)
    assert c._decide(TA, 0, None, {2, 3}, set()) == (2, (2, 3), False)
    assert c._decide(TA, 0, None, set(), set()) is None


def test_decide_failover_from_isr_only():
    c = _controller()
    assert c._decide(TA, 0, st(1, (1, 2, 3)), {2, 3}, set()) == (2, (2, 3), True)
    assert c._decide(TA, 0, st(1, (1, 3)), {2, 3}, set()) == (3, (3,), True)
    # nobody in sync is alive: no leader, the last ISR member is kept
    assert c._decide(TA, 0, st(1, (1,)), {2, 3}, set()) == (-1, (1,), True)
    assert c._decide(TA, 0, st(-1, (1,)), {2, 3}, set()) is None
    # ... and it leads again when it is back
    assert c._decide(TA, 0, st(-1, (1,)), {1, 2, 3}, set()) == (1, (1,), True)
    # unclean election (broker or topic config) picks any live replica
    assert _controller(unclean=True)._decide(TA, 0, st(1, (1,)), {3}, set()) == (3, (3,), True)
    t_on = _controller(topic_configs={"unclean.leader.election.enable": "true"})
    assert t_on._decide(TA, 0, st(1, (1,)), {2}, set()) == (2, (2,), True)


def test_decide_isr_and_shutdown():
    c = _controller()
    # a dead follower leaves the ISR (epoch bump), the leader stays
    assert c._decide(TA, 0, st(1, (1, 2, 3)), {1, 3}, set()) == (1, (1, 3), True)
    assert c._decide(TA, 0, st(1, (1, 2, 3)), {1, 2, 3}, set()) is None
    # controlled shutdown: leadership moves to the next in-sync replica, the broker leaves the ISR
    assert c._decide(TA, 0, st(1, (1, 2, 3)), {1, 2, 3}, {1}) == (2, (2, 3), True)
    assert c._decide(TA, 0, st(2, (2, 1, 3)), {1, 2, 3}, {1}) == (2, (2, 3), True)
    # nobody to take over: it keeps leading
    assert c._decide(TA, 0, st(1, (1,)), {1, 2, 3}, {1}) is None


def _with_epochs(c: Controller, epochs: dict[int, int]) -> Controller:
    c.view.brokers = {b: zd.BrokerInfo(b, "h", 1, None, e) for b, e in epochs.items()}
    return c


def test_decide_broker_restarted_since_the_state_was_written():
    """The issue-12 failover: a new controller sees broker 1 live (it registered
    again as the old session expired) while the state written before (mzxid 100)
    still names it. It restarted since: failure, then start."""
    def s(leader: int, isr: tuple) -> zd.LeaderIsr:
        return zd.LeaderIsr(leader, 5, isr, 1, 3, 100)

    c = _with_epochs(_controller(), {1: 150, 2: 50, 3: 60})
    # the leader restarted: the next in-sync replica that did not restart leads, 1 leaves the ISR
    assert c._decide(TA, 0, s(1, (1, 2, 3)), {1, 2, 3}, set()) == (2, (2, 3), True)
    # a follower restarted: it leaves the ISR (it rejoins once caught up)
    assert c._decide(TA, 0, s(2, (2, 1, 3)), {1, 2, 3}, set()) == (2, (2, 3), True)
    # not named by the state: nothing to do
    assert c._decide(TA, 0, s(2, (2, 3)), {1, 2, 3}, set()) is None
    # everyone restarted (a whole-cluster restart): the leader keeps leading, alone in the ISR
    c = _with_epochs(_controller(), {1: 150, 2: 160, 3: 170})
    assert c._decide(TA, 0, s(1, (1, 2, 3)), {1, 2, 3}, set()) == (1, (1,), True)
    # the last ISR member, kept while it was away, leads again
    assert c._decide(TA, 0, s(-1, (1,)), {1, 2, 3}, set()) == (1, (1,), True)
    # written after the registrations: ordinary rules
    c = _with_epochs(_controller(), {1: 50, 2: 60, 3: 70})
    assert c._decide(TA, 0, s(1, (1, 2, 3)), {1, 2, 3}, set()) is None
    # unknown write zxid (a state we wrote ourselves and did not read back): ordinary rules
    c = _with_epochs(_controller(), {1: 150, 2: 50, 3: 60})
    assert c._decide(TA, 0, zd.LeaderIsr(1, 5, (1, 2, 3), 1, 3, -1), {1, 2, 3}, set()) is None


# --- follower truncation (Kafka's getOffsetTruncationState) ------------------------------------------

class _Log:
    def __init__(self, epochs: list[tuple[int, int]], leo: int, hw: int) -> None:
        self.epochs, self.log_end_offset, self.high_watermark = epochs, leo, hw
        self.truncated: list[int] = []

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        if not self.epochs:
            return -1, -1
        if self.epochs[-1][0] == epoch:
            return epoch, self.log_end_offset
        higher = [e for e in self.epochs if e[0] > epoch]
        if not higher:
            return -1, -1
        floor = [e for e in self.epochs if e[0] <= epoch]
        return (floor[-1][0] if floor else epoch), higher[0][1]

    def truncate_to(self, offset: int) -> None:
        self.truncated.append(offset)
        self.log_end_offset = offset


def _apply(plog: _Log, leader_epoch: int, end: int) -> tuple[list[int], bool]:
    from pykbroker.cluster.fetcher import FetchState, Fetcher

    f = Fetcher.__new__(Fetcher)
    f.leader = 9
    p = SimpleNamespace(log=plog, topic="t", index=0)
    fs = FetchState(p, 3)
    f._apply_epoch_end(fs, leader_epoch, end)
    return plog.truncated, fs.truncating


def test_follower_truncation():
    # same epoch on both sides, the leader's ends earlier: truncate there
    assert _apply(_Log([(0, 0), (2, 50)], 80, 40), 2, 70) == ([70], False)
    # the follower has a later epoch the leader never had: cut where epoch 2 ends in our log
    assert _apply(_Log([(0, 0), (2, 50), (3, 60)], 80, 40), 2, 65) == ([60], False)
    assert _apply(_Log([(0, 0), (1, 30), (3, 60)], 80, 40), 0, 45) == ([30], False)
    # the leader's epoch is one we never had: go to our end of the epoch before it, then ask again
    assert _apply(_Log([(0, 0), (3, 60)], 80, 40), 2, 70) == ([60], True)
    # the leader knows nothing: fall back to the high watermark
    assert _apply(_Log([(0, 0)], 80, 40), -1, -1) == ([40], False)
    # no record to cut: still truncated at the log end, which drops an epoch
    # entry there with no record (Kafka's truncateTo; storage tests check the drop)
    assert _apply(_Log([(0, 0), (2, 50)], 60, 40), 2, 90) == ([60], False)


def test_is_zk_error_sees_through_groups_of_zookeeper_errors():
    """Issue 12 (nemesis zk-restart run): concurrent ZooKeeper reads failing
    together when ZooKeeper restarted raised a group of ConnectionLoss from a
    nursery; the handlers that wait for the resync caught KazooException only,
    so the group went to log.exception (21,000 lines of traceback) or out of
    the ZooKeeper event loop. A group of ZooKeeper errors only is one now."""
    from kazoo.exceptions import ConnectionLoss, NoNodeError

    from pykbroker.cluster.zk import is_zk_error

    assert is_zk_error(ConnectionLoss())
    assert is_zk_error(ExceptionGroup("reads", [ConnectionLoss(), ExceptionGroup("inner", [NoNodeError()])]))
    assert not is_zk_error(ExceptionGroup("reads", [ConnectionLoss(), ValueError("a bug")]))
    assert not is_zk_error(RuntimeError("a bug"))
