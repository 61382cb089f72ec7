"""The per-partition producer state (storage/producer_state.py) and the
aborted-transaction index (storage/txn_index.py), without sockets.

What is proved here:
- the dedup window: each of a producer's last five batches is recognised
  as a duplicate and answered with its original offsets, nothing written;
  an older one is out of sequence; the window survives a reload from a
  snapshot plus log replay (only the last batch from the snapshot itself,
  as Kafka);
- sequence and epoch rules exactly where Kafka applies them:
  OUT_OF_ORDER_SEQUENCE_NUMBER (gap, new epoch not starting at 0),
  INVALID_PRODUCER_EPOCH (older epoch), any sequence for an unknown
  producer (no UNKNOWN_PRODUCER_ID), wrap-around at Int.MAX,
  INVALID_TXN_STATE (non-transactional write in an open transaction),
  TRANSACTION_COORDINATOR_FENCED (older coordinator epoch on a marker);
- transactions: open transactions bound the LSO, markers complete them,
  aborts enter the per-segment index with Kafka's 34-byte entries and LSO,
  Fetch's collection stops at the first entry whose LSO reaches the bound;
- snapshots: Kafka's byte layout, CRC checked, corrupt ones skipped,
  truncation reloads, rollback of an append that did not happen;
- a hypothesis property: any interleaving of fresh batches and retries of
  recent ones leaves each batch in the log exactly once.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st_

from pykbroker.protocol import errors
from pykbroker.protocol.errors import KafkaError
from pykbroker.storage.log import PartitionLog
from pykbroker.storage.log_config import LogConfig
from pykbroker.storage.memory import MemoryPartitionLog
from pykbroker.storage.producer_state import (
    CLIENT,
    COORDINATOR,
    ProducerStateManager,
    read_snapshot,
    write_snapshot,
)
from pykbroker.storage.txn_index import ENTRY_SIZE, AbortedTxn, AbortedTxnIndex, read_file
from txn_helpers import batch, headers, marker


class Log:
    """A partition log plus its producer state, appended as BrokerState does."""

    def __init__(self, plog) -> None:
        self.log = plog
        self.ps = ProducerStateManager.load(plog)

    def append(self, data: bytes, origin: str = CLIENT, *, advance_hw: bool = True):
        hs = headers(data)
        plan = self.ps.prepare(data, hs, self.log.log_end_offset, origin)
        if plan.duplicate is not None:
            return ("dup", plan.duplicate.base_offset, plan.duplicate.last_offset)
        segs = getattr(self.log, "segments", None)
        self.ps.apply(plan, segs[-1].base_offset if segs else 0)
        res = self.log.append(bytearray(data), hs, leader_epoch=0, now_ms=1000)
        if advance_hw:  # else: followers have not caught up (replication)
            self.log.high_watermark = self.log.log_end_offset
        self.ps.after_write(self.log)
        return ("new", res.base_offset, res.last_offset)

    def lso(self) -> int:
        hw = self.log.high_watermark
        f = self.ps.first_unstable_offset(hw)
        return hw if f is None or f >= hw else f


@pytest.fixture
def mem() -> Log:
    return Log(MemoryPartitionLog("t", 0, LogConfig.from_properties({})))


@pytest.fixture
def disk(tmp_path) -> Log:
    return Log(PartitionLog.open(tmp_path / "t-0", LogConfig.from_properties({"internal.segment.bytes": "1500"})))


def code_of(fn) -> int:
    with pytest.raises(KafkaError) as ei:
        fn()
    return ei.value.code


# -- idempotence -----------------------------------------------------------------------------------

def test_window_of_five_duplicates(mem):
    firsts = []
    for i in range(7):
        kind, base, last = mem.append(batch(7, 0, seq=i * 2, n=2))
        assert kind == "new"
        firsts.append((base, last))
    # the last five batches are recognised, with their original offsets
    for i in range(2, 7):
        assert mem.append(batch(7, 0, seq=i * 2, n=2)) == ("dup", *firsts[i])
    assert mem.log.log_end_offset == 14  # nothing written
    # older than the window: not a duplicate any more, and out of sequence
    assert code_of(lambda: mem.append(batch(7, 0, seq=2, n=2))) == errors.OUT_OF_ORDER_SEQUENCE_NUMBER


def test_sequence_rules(mem):
    assert mem.append(batch(1, 0, seq=0))[0] == "new"
    assert code_of(lambda: mem.append(batch(1, 0, seq=5))) == errors.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert mem.append(batch(1, 0, seq=1, n=3))[0] == "new"
    # a new epoch must start at sequence 0
    assert code_of(lambda: mem.append(batch(1, 1, seq=4))) == errors.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert mem.append(batch(1, 1, seq=0))[0] == "new"
    # an older epoch is fenced
    assert code_of(lambda: mem.append(batch(1, 0, seq=4))) == errors.INVALID_PRODUCER_EPOCH
    # an unknown producer may start anywhere (Kafka 2.5+: no UNKNOWN_PRODUCER_ID)
    assert mem.append(batch(2, 3, seq=1234))[0] == "new"
    assert mem.append(batch(2, 3, seq=1235))[0] == "new"


def test_sequence_wraps_at_int_max(mem):
    top = 2**31 - 1
    assert mem.append(batch(3, 0, seq=top - 1, n=2))[0] == "new"  # last sequence = Int.MAX
    assert mem.append(batch(3, 0, seq=0, n=1))[0] == "new"
    assert mem.ps.producers[3].last_seq == 0
    # a batch whose sequences wrap inside it, and its duplicate
    mem2 = Log(MemoryPartitionLog("t", 1, LogConfig.from_properties({})))
    assert mem2.append(batch(4, 0, seq=top, n=3))[0] == "new"
    assert mem2.ps.producers[4].last_seq == 1
    assert mem2.append(batch(4, 0, seq=top, n=3))[0] == "dup"


def test_non_transactional_write_in_open_transaction(mem):
    mem.append(batch(5, 0, seq=0, txn=True))
    assert code_of(lambda: mem.append(batch(5, 0, seq=1))) == errors.INVALID_TXN_STATE


def test_marker_epoch_and_coordinator_epoch(mem):
    mem.append(batch(6, 2, seq=0, txn=True))
    assert code_of(lambda: mem.append(marker(6, 1, True), COORDINATOR)) == errors.INVALID_PRODUCER_EPOCH
    mem.append(marker(6, 2, True, coord_epoch=4), COORDINATOR)
    mem.append(batch(6, 2, seq=1, txn=True))
    assert code_of(lambda: mem.append(marker(6, 2, False, coord_epoch=3), COORDINATOR)) == \
        errors.TRANSACTION_COORDINATOR_FENCED
    # a fencing marker with a higher epoch closes the transaction and fences the producer
    mem.append(marker(6, 3, False, coord_epoch=4), COORDINATOR)
    assert code_of(lambda: mem.append(batch(6, 2, seq=2, txn=True))) == errors.INVALID_PRODUCER_EPOCH


def test_coordinator_writes_skip_sequence_checks(mem):
    # transactional offset commits: producer id, no sequence
    mem.append(batch(8, 0, seq=-1, txn=True), COORDINATOR)
    mem.append(batch(8, 0, seq=-1, txn=True), COORDINATOR)
    assert mem.ps.has_ongoing(8)
    assert code_of(lambda: mem.append(batch(8, 0, seq=-1, txn=False), COORDINATOR)) == errors.INVALID_TXN_STATE


# -- transactions: LSO and the aborted index -------------------------------------------------------------

def test_lso_and_aborted_index(mem):
    mem.append(batch(-1, n=2))                                  # 0-1 plain
    mem.append(batch(10, 0, seq=0, n=2, txn=True))             # 2-3 txn A
    assert mem.lso() == 2
    mem.append(batch(11, 0, seq=0, n=1, txn=True))             # 4 txn B
    mem.append(batch(-1, n=1))                                  # 5 plain
    assert mem.lso() == 2
    mem.append(marker(10, 0, False), COORDINATOR)               # 6 abort A
    assert mem.lso() == 4  # B still open
    entries = mem.ps.aborted.entries()
    assert entries == [AbortedTxn(10, 2, 6, 4)]  # LSO after the abort: B's first offset
    mem.append(marker(11, 0, True), COORDINATOR)                # 7 commit B
    assert mem.lso() == 8 == mem.log.log_end_offset
    assert mem.ps.collect_aborted(0, 8) == [AbortedTxn(10, 2, 6, 4)]
    assert mem.ps.collect_aborted(7, 8) == []  # marker before the fetch offset
    # a transaction whose marker is above the high watermark stays unstable (replication)
    mem.append(batch(12, 0, seq=0, txn=True), advance_hw=False)       # 8
    mem.append(marker(12, 0, True), COORDINATOR, advance_hw=False)    # 9
    mem.log.high_watermark = 9
    assert mem.lso() == 8
    mem.log.high_watermark = 10
    assert mem.lso() == 10


def test_txn_index_format_and_collection(tmp_path):
    idx = AbortedTxnIndex(tmp_path)
    idx.append(0, AbortedTxn(1, 0, 10, 11))
    idx.append(0, AbortedTxn(2, 5, 20, 30))
    idx.append(100, AbortedTxn(3, 90, 120, 200))
    raw = (tmp_path / ("%020d.txnindex" % 0)).read_bytes()
    assert len(raw) == 2 * ENTRY_SIZE == 68
    assert struct.unpack(">hqqqq", raw[:34]) == (0, 1, 0, 10, 11)
    assert read_file(tmp_path / ("%020d.txnindex" % 100)) == [AbortedTxn(3, 90, 120, 200)]
    # overlap [fetch, upper); the search stops at the first entry whose LSO reaches the bound
    assert idx.collect(0, 12) == [AbortedTxn(1, 0, 10, 11), AbortedTxn(2, 5, 20, 30)]
    assert idx.collect(0, 11) == [AbortedTxn(1, 0, 10, 11)]
    assert idx.collect(15, 95) == [AbortedTxn(2, 5, 20, 30), AbortedTxn(3, 90, 120, 200)]
    assert idx.collect(121, 500) == []
    idx.truncate_to(20)  # drops every entry whose marker is at or after offset 20
    assert idx.entries() == [AbortedTxn(1, 0, 10, 11)]
    assert read_file(tmp_path / ("%020d.txnindex" % 0)) == [AbortedTxn(1, 0, 10, 11)]
    assert not (tmp_path / ("%020d.txnindex" % 100)).exists()
    again = AbortedTxnIndex(tmp_path)
    again.load([0])
    assert again.entries() == [AbortedTxn(1, 0, 10, 11)]


# -- snapshots and reload -----------------------------------------------------------------------------

def test_snapshot_format(tmp_path):
    m = Log(MemoryPartitionLog("t", 0, LogConfig.from_properties({})))
    m.append(batch(42, 3, seq=0, n=4, ts=5555))
    m.append(batch(43, 0, seq=0, n=1, txn=True, ts=6666))
    path = tmp_path / "x.snapshot"
    write_snapshot(path, m.ps.producers.values())
    raw = path.read_bytes()
    version, crc, count = struct.unpack_from(">hIi", raw)
    assert (version, count) == (1, 2) and len(raw) == 10 + 2 * 46
    pid, epoch, last_seq, last_off, delta, ts, coord, txn_first = struct.unpack_from(">qhiqiqiq", raw, 10)
    assert (pid, epoch, last_seq, last_off, delta, ts, coord, txn_first) == (42, 3, 3, 3, 3, 5555, -1, -1)
    back = {e.producer_id: e for e in read_snapshot(path)}
    assert back[43].current_txn_first_offset == 4 and back[42].last_seq == 3
    bad = bytearray(raw)
    bad[-1] ^= 1
    path.write_bytes(bytes(bad))
    with pytest.raises(ValueError):
        read_snapshot(path)


def test_reload_from_snapshot_and_replay(disk, tmp_path):
    # enough batches to roll segments (internal.segment.bytes=1500): a snapshot at each roll
    offsets = [disk.append(batch(9, 0, seq=i, value=b"x" * 60))[1] for i in range(40)]
    disk.append(batch(9, 0, seq=40, txn=True))
    disk.append(batch(20, 0, seq=0, txn=True))
    disk.append(marker(9, 0, False), COORDINATOR)
    assert len(disk.log.segments) > 3
    assert disk.ps.snapshots, "a snapshot per roll"
    lso, aborted = disk.lso(), disk.ps.aborted.entries()
    disk.log.close()
    reopened = PartitionLog.open(tmp_path / "t-0", LogConfig.from_properties({"internal.segment.bytes": "1500"}),
                                 recover=True)
    again = Log(reopened)
    assert again.ps.map_end_offset == reopened.log_end_offset
    assert again.lso() == lso
    assert again.ps.aborted.entries() == aborted
    assert again.ps.has_ongoing(20) and not again.ps.has_ongoing(9)
    # the dedup window: batches after the last snapshot come back from the replay
    e = again.ps.producers[9]
    assert e.batches[-1].last_offset == offsets[-1] + 1
    assert again.append(batch(9, 0, seq=40, txn=True))[0] == "dup"
    # a corrupt latest snapshot is skipped (an older one + a longer replay)
    snaps = sorted((tmp_path / "t-0").glob("*.snapshot"))
    snaps[-1].write_bytes(b"garbage")
    third = Log(reopened)
    assert third.lso() == lso and third.ps.aborted.entries() == aborted


def test_truncation_then_more_appends_reloads(mem):
    """A follower truncates and appends past the old end: the state is rebuilt
    (a batch that was truncated away is not a duplicate any more)."""
    mem.append(batch(40, 0, seq=0))
    mem.append(batch(40, 0, seq=1))
    end = mem.log.log_end_offset
    mem.log.truncate_to(end - 1)  # seq 1 is gone
    more = batch(41, 0, seq=0, n=3)
    mem.log.append(bytearray(more), headers(more), leader_epoch=1, now_ms=1000)  # as a follower
    mem.ps.sync(mem.log)
    assert mem.ps.producers[40].last_seq == 0 and mem.ps.producers[41].last_seq == 2
    assert mem.append(batch(40, 0, seq=1))[0] == "new"


def test_truncation_reloads(disk):
    for i in range(10):
        disk.append(batch(30, 0, seq=i, value=b"y" * 100))
    disk.append(batch(31, 0, seq=0, txn=True))
    end = disk.log.log_end_offset
    disk.log.truncate_to(end - 1)
    disk.ps.sync(disk.log)
    assert not disk.ps.has_ongoing(31)
    assert disk.ps.producers[30].last_seq == 9
    assert disk.append(batch(30, 0, seq=10))[0] == "new"


def test_rollback_of_an_append_that_did_not_happen(mem):
    mem.append(batch(50, 0, seq=0))
    data = batch(50, 0, seq=1, txn=True)
    plan = mem.ps.prepare(data, headers(data), mem.log.log_end_offset, CLIENT)
    mem.ps.apply(plan, 0)
    assert mem.ps.has_ongoing(50)
    mem.ps.rollback(plan)
    assert not mem.ps.has_ongoing(50) and mem.ps.producers[50].last_seq == 0
    assert mem.ps.map_end_offset == mem.log.log_end_offset
    assert mem.append(batch(50, 0, seq=1))[0] == "new"


def test_expiry(mem):
    mem.append(batch(60, 0, seq=0, ts=1000))
    mem.append(batch(61, 0, seq=0, ts=1000, txn=True))
    mem.ps.expiration_ms = 500
    assert mem.ps.remove_expired(2000) == 1  # the one with an open transaction stays
    assert set(mem.ps.producers) == {61}
    # an expired producer is unknown: any sequence is accepted again
    assert mem.append(batch(60, 0, seq=77))[0] == "new"


@settings(max_examples=60, deadline=None)
@given(st_.lists(st_.tuples(st_.integers(0, 2), st_.integers(1, 3), st_.booleans(), st_.integers(0, 4)),
                 min_size=1, max_size=40))
def test_retries_never_duplicate(ops):
    """Producers 0-2 send fresh batches; after each, a random retry of one
    of their last five batches. Each batch is in the log exactly once, and
    every retry gets the original offsets."""
    m = Log(MemoryPartitionLog("t", 0, LogConfig.from_properties({})))
    seqs = [0, 0, 0]
    sent: dict[int, list[tuple[int, int, tuple[int, int]]]] = {0: [], 1: [], 2: []}
    for pid, n, retry, back in ops:
        kind, base, last = m.append(batch(pid, 0, seq=seqs[pid], n=n))
        assert kind == "new"
        sent[pid].append((seqs[pid], n, (base, last)))
        seqs[pid] += n
        if retry:
            recent = sent[pid][-5:]
            s, k, where = recent[min(back, len(recent) - 1)]
            assert m.append(batch(pid, 0, seq=s, n=k)) == ("dup", *where)
    total = sum(k for v in sent.values() for _, k, _ in v)
    assert m.log.log_end_offset == total


def test_aborted_index_follows_compaction_swaps(tmp_path):
    idx = AbortedTxnIndex(tmp_path)
    idx.append(0, AbortedTxn(1, 0, 10, 11))
    idx.append(50, AbortedTxn(2, 55, 60, 61))
    idx.append(100, AbortedTxn(3, 101, 120, 121))
    idx.segments_replaced(0, [0, 50])  # a cleaned group [0, 100) swapped in at base 0
    assert idx.collect(40, 65) == [AbortedTxn(2, 55, 60, 61)]
    assert idx.entries() == [AbortedTxn(1, 0, 10, 11), AbortedTxn(2, 55, 60, 61), AbortedTxn(3, 101, 120, 121)]
    assert idx._bases == [0, 100]
