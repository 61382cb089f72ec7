"""The share-partition state machine (pykbroker/share/partition.py), as pure code."""

from __future__ import annotations

import pytest

from pykbroker.share.partition import (ACK_ACCEPT, ACK_GAP, ACK_REJECT, ACK_RELEASE, ACK_RENEW, ACKNOWLEDGED,
                                       ACQUIRED, ARCHIVED, AVAILABLE, VALID_PREVIOUS, InvalidRecordState,
                                       InvalidTransition, SharePartition, ranges)


def _sp(start: int = 0) -> SharePartition:
    return SharePartition("g", b"\1" * 16, 0, start)


def test_transition_table():
    assert VALID_PREVIOUS[ACQUIRED] == {AVAILABLE}
    assert VALID_PREVIOUS[ACKNOWLEDGED] == {ACQUIRED}
    assert VALID_PREVIOUS[AVAILABLE] == {ACQUIRED}
    assert VALID_PREVIOUS[ARCHIVED] == {AVAILABLE, ACQUIRED}
    sp = _sp()
    a = sp.new_acquisition()
    sp.acquire(0, "m", a)
    with pytest.raises(InvalidTransition):
        sp.acquire(0, "m", a)  # ACQUIRED -> ACQUIRED


def test_acquire_acknowledge_and_advance():
    sp = _sp(10)
    a = sp.new_acquisition()
    assert [sp.acquire(o, "m", a) for o in range(10, 15)] == [1] * 5
    assert sp.in_flight() == 5 and sp.acquired_by(a) == [10, 11, 12, 13, 14]
    sp.acknowledge("m", 10, 12, [ACK_ACCEPT, ACK_REJECT, ACK_RELEASE], delivery_limit=5)
    assert sp.start_offset == 12  # 10 acknowledged, 11 archived
    assert sp.state_of(12) == (AVAILABLE, 1)
    with pytest.raises(InvalidRecordState):
        sp.check_acks("other", 13, 13, [ACK_ACCEPT])
    with pytest.raises(InvalidRecordState):
        sp.check_acks("m", 12, 12, [ACK_ACCEPT])  # released: not held
    with pytest.raises(InvalidRecordState):
        sp.check_acks("m", 13, 14, [ACK_ACCEPT, ACK_ACCEPT, ACK_ACCEPT])  # one type per offset or one
    assert sp.acknowledge("m", 13, 14, [ACK_RENEW], delivery_limit=5) == [13, 14]
    assert sp.state_of(13) == (ACQUIRED, 1)
    sp.acknowledge("m", 13, 14, [ACK_GAP], delivery_limit=5)
    assert sp.state_of(13)[0] == ARCHIVED and sp.start_offset == 12


def test_release_and_delivery_limit():
    sp = _sp()
    for count in (1, 2):
        a = sp.new_acquisition()
        assert sp.acquire(0, "m", a) == count
        assert sp.release(2, acquisition=a) == 1
    assert sp.state_of(0) == (ACKNOWLEDGED, 0)  # archived at the limit, then below the SPSO
    assert sp.start_offset == 1 and sp.records == {}


def test_in_flight_limit_and_persisted_batches():
    sp = _sp()
    assert sp.acquirable(2, limit=3) and not sp.acquirable(3, limit=3)
    a = sp.new_acquisition()
    for o in range(3):
        sp.acquire(o, "m", a)
    sp.acknowledge("m", 1, 1, [ACK_ACCEPT], delivery_limit=5)
    sp.release(5, member_id="m")
    assert sp.state_batches() == [
        {"first_offset": 0, "last_offset": 0, "delivery_state": AVAILABLE, "delivery_count": 1},
        {"first_offset": 1, "last_offset": 1, "delivery_state": ACKNOWLEDGED, "delivery_count": 1},
        {"first_offset": 2, "last_offset": 2, "delivery_state": AVAILABLE, "delivery_count": 1}]
    back = _sp()
    back.load_batches(sp.state_batches())
    assert back.state_of(1) == (ACKNOWLEDGED, 1) and back.state_of(2) == (AVAILABLE, 1) and back.end_offset == 3


def test_skip_and_clamp():
    sp = _sp()
    sp.skip(0)
    assert sp.start_offset == 1
    a = sp.new_acquisition()
    sp.acquire(3, "m", a)  # 1-2 are a gap (compaction): archived
    assert sp.state_of(1)[0] == ARCHIVED and sp.state_of(3) == (ACQUIRED, 1)
    sp.clamp(3)
    assert sp.start_offset == 3 and list(sp.records) == [3]


def test_ranges():
    counts = {1: 1, 2: 1, 3: 2, 5: 2}
    assert list(ranges(counts, counts)) == [(1, 2, 1), (3, 3, 2), (5, 5, 2)]


def test_latest_snapshot_wins_by_state_and_leader_epoch():
    """records.latest: a deposed leader's late write (lower leader epoch) or one from
    before AlterShareGroupOffsets (lower state epoch) never overrides; a tombstone clears."""
    from pykbroker.share import records

    tid = b"\2" * 16

    def snap(start: int, state_epoch: int, leader_epoch: int, partition: int = 0) -> records.ShareSnapshot:
        key = records.snapshot_key("g", tid, partition)
        value = records.snapshot_value({"snapshot_epoch": 0, "state_epoch": state_epoch,
                                        "leader_epoch": leader_epoch, "start_offset": start, "state_batches": []})
        s = records.decode(key, value)
        assert s is not None
        return s

    assert records.decode(records.read_barrier_key(), None) is None  # a read barrier is no state
    got = records.latest([snap(5, 0, 1), snap(7, 0, 2), snap(6, 0, 1), snap(8, 0, 2)])
    assert got[("g", tid, 0)]["start_offset"] == 8  # the epoch-1 write after epoch 2 lost
    got = records.latest([snap(9, 0, 3), snap(2, 1, 3), snap(12, 0, 4)])
    assert got[("g", tid, 0)]["start_offset"] == 2  # altered (state epoch 1): older state loses
    tomb = records.decode(records.snapshot_key("g", tid, 0), None)
    assert tomb is not None
    got = records.latest([snap(9, 0, 3), tomb, snap(0, 0, 3), snap(4, 0, 0, partition=1)])
    assert got[("g", tid, 0)]["start_offset"] == 0 and got[("g", tid, 1)]["start_offset"] == 4
    assert records.latest([snap(9, 0, 3), tomb]) == {("g", tid, 0): None}
