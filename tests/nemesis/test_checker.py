"""The nemesis checker on hand-made histories (no processes)."""

from __future__ import annotations

from .checker import check, table
from .faults import CI_KINDS, schedule
from .workloads import Ack, Acked, Consumed


def _acked(name: str, acks: list[tuple[bytes, bytes, int, int, float]]) -> Acked:
    a = Acked(name)
    a.acks = [Ack(*x) for x in acks]
    a.sent = len(acks)
    return a


def test_clean_history():
    w = _acked("w", [(b"k", b"0", 0, 0, 1.0), (b"k", b"1", 0, 1, 1.5), (b"j", b"0", 1, 0, 1.2)])
    log = {0: [(0, b"k", b"0"), (1, b"k", b"1")], 1: [(0, b"j", b"0")]}
    res = check([w], log, 1.0, 2.0)
    assert (res["lost"], res["duplicates"], res["reordered"], res["offset_mismatch"]) == (0, 0, 0, 0)
    assert res["unavailability"]["windows"] == 0
    assert "| w | 3 | 3 | 0 | 0 | 0 |" in table(res)


def test_lost_duplicated_reordered_moved_and_windows():
    w = _acked("w", [(b"k", b"0", 0, 0, 1.0), (b"k", b"1", 0, 1, 1.1), (b"k", b"2", 0, 2, 5.0),
                     (b"x", b"0", 1, 0, 1.0)])
    # k=1 lost, k=0 written twice, k=2 before k=0's duplicate is fine but k=3 before k=2 is reordered,
    # x=0 acknowledged at offset 0 but found at offset 1
    log = {0: [(0, b"k", b"0"), (1, b"k", b"3"), (2, b"k", b"2"), (3, b"k", b"0")],
           1: [(0, b"y", b"0"), (1, b"x", b"0")]}
    res = check([w], log, 0.0, 6.0, window_s=1.0)
    assert res["lost"] == 1 and res["workloads"]["w"]["lost_examples"] == ["b'k'=b'1'@0:1"]
    assert res["duplicates"] == 1
    assert res["reordered"] == 1
    assert res["offset_mismatch"] == 1
    # partition 0: acks at 1.0, 1.1, 5.0 -> windows [0, 1.0) no (= 1.0), [1.1, 5.0) 3.9 s, [5.0, 6.0) no
    assert res["partitions"][0]["windows"] == 1 and res["partitions"][0]["longest_s"] == 3.9
    assert res["partitions"][0]["windows_at_s"] == [[1.1, 3.9]]
    assert res["partitions"][1]["longest_s"] == 5.0


def test_committed_offsets_going_backwards():
    w = _acked("w", [(b"k", b"0", 0, 0, 1.0)])
    c = Consumed("g")
    c.seen = {(b"k", b"0")}
    c.commits = [(0, 5, 1.0), (0, 9, 2.0), (1, 3, 2.0)]
    c.final_committed = {0: 7, 1: 3}
    res = check([w], {0: [(0, b"k", b"0")], 1: []}, 0.0, 1.0, consumers=[c])
    assert res["committed_backwards"] == 1
    assert res["consumers"]["g"]["backwards_examples"] == {"0": (7, 9)}
    assert res["unseen_by_consumers"] == 0


def test_schedule_is_seeded():
    a = schedule(7, CI_KINDS, 8, 6.0)
    assert a == schedule(7, CI_KINDS, 8, 6.0)
    assert a != schedule(8, CI_KINDS, 8, 6.0)
    assert {f.kind for f in a[:len(CI_KINDS)]} == {"kill", "pause-long", "partition-peers", "zk-expire",
                                                    "zk-restart"}
    assert any(f.kind == "kill" and f.target == "controller" for f in a)
    assert all(f.duration > 6.0 for f in a if f.kind in ("pause-long", "zk-expire"))


def test_losses_after_an_unclean_election_are_counted_apart():
    """isr-wipe with unclean.leader.election.enable: what the out-of-sync
    leader never got is lost, as Kafka documents; counted apart, not as a
    failure (partition 0 had the unclean election, partition 1 did not)."""
    w = _acked("w", [(b"k", b"0", 0, 0, 1.0), (b"k", b"1", 0, 1, 1.1), (b"j", b"0", 1, 0, 1.0),
                     (b"j", b"1", 1, 1, 1.1)])
    c = Consumed("g")
    c.seen = {(b"k", b"0"), (b"k", b"1"), (b"j", b"0")}
    c.commits = [(0, 2, 1.5), (1, 1, 1.5)]
    c.final_committed = {0: 1, 1: 0}
    log = {0: [(0, b"k", b"0")], 1: [(0, b"j", b"0")]}
    res = check([w], log, 0.0, 2.0, consumers=[c], unclean_partitions=[0])
    assert res["lost"] == 1 and res["workloads"]["w"]["lost_examples"] == ["b'j'=b'1'@1:1"]
    assert res["lost_unclean"] == 1 and res["unclean_partitions"] == [0]
    assert res["committed_backwards"] == 1 and res["consumers"]["g"]["committed_backwards_unclean"] == 1
    assert "unclean leader elections on partitions [0]: 1 acknowledged records lost there" in table(res)
    # without the unclean election both losses count
    assert check([w], log, 0.0, 2.0)["lost"] == 2


def test_new_fault_kinds_are_scheduled():
    plan = schedule(3, ("slow-disk", "isr-wipe"), 6, 6.0)
    assert {f.kind for f in plan} == {"slow-disk", "isr-wipe"}
    assert all(50 <= f.delay_ms <= 400 and 3.0 <= f.duration <= 9.0 for f in plan if f.kind == "slow-disk")
    assert all(f.target == "any" for f in plan if f.kind == "isr-wipe")
