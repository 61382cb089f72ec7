"""The transactional-id state machine (txn/metadata.py) and the
``__transaction_state`` record format (txn/records.py), as pure code.

What is proved here:
- only Kafka's transitions are possible (valid previous states; one
  pending transition at a time; aborting a pending one restores the state);
- InitProducerId epochs: a bump per call, the KIP-360 retry (expected
  epoch = the previous one gives the same epoch back), PRODUCER_FENCED for
  any other expected epoch, rotation to a new producer id when exhausted;
- fencing an open transaction bumps the epoch once (not again after a
  failed fence write) and leads to PrepareAbort;
- transaction version 2 (EndTxn v5): commit/abort bump the epoch and
  Complete keeps it; overflow moves to the next producer id at Complete;
- records round-trip in Kafka's layout (key version 0; value v0, v1 with
  tagged fields for TV2; null partitions in Empty; Java hash partitioning).
"""

from __future__ import annotations

import struct

import pytest

from pykbroker.protocol import errors
from pykbroker.txn import records
from pykbroker.txn.metadata import (
    COMPLETE_ABORT,
    COMPLETE_COMMIT,
    EMPTY,
    ONGOING,
    PREPARE_ABORT,
    PREPARE_COMMIT,
    PREPARE_EPOCH_FENCE,
    TV_0,
    TV_2,
    IllegalTransition,
    TransactionMetadata,
    TxnError,
)


def new(tid: str = "t") -> TransactionMetadata:
    return TransactionMetadata(tid, producer_id=100, timeout_ms=60000, update_ts=0)


def step(meta: TransactionMetadata, transit) -> TransactionMetadata:  # type: ignore[no-untyped-def]
    meta.complete_transition(transit)
    return meta


def test_full_cycle_and_invalid_transitions():
    m = new()
    step(m, m.prepare_increment_epoch(60000, None, 1))
    assert (m.state, m.producer_epoch, m.last_producer_epoch) == (EMPTY, 0, -1)
    with pytest.raises(IllegalTransition):
        m.prepare_abort_or_commit(PREPARE_COMMIT, TV_0, -1, 2)  # Empty -> PrepareCommit
    step(m, m.prepare_add_partitions({("a", 0)}, 10))
    assert m.state == ONGOING and m.start_ts == 10 and m.partitions == {("a", 0)}
    step(m, m.prepare_add_partitions({("b", 1)}, 20))
    assert m.start_ts == 10 and m.partitions == {("a", 0), ("b", 1)}
    t = m.prepare_abort_or_commit(PREPARE_COMMIT, TV_0, -1, 30)
    with pytest.raises(IllegalTransition):
        m.prepare_add_partitions({("c", 0)}, 31)  # one pending transition at a time
    step(m, t)
    assert m.state == PREPARE_COMMIT and m.producer_epoch == 0
    step(m, m.prepare_complete(40))
    assert m.state == COMPLETE_COMMIT and m.partitions == set() and m.update_ts == 40
    # the next transaction starts from CompleteCommit
    step(m, m.prepare_add_partitions({("a", 0)}, 50))
    assert m.start_ts == 50


def test_failed_write_restores():
    m = new()
    t = m.prepare_increment_epoch(60000, None, 1)
    m.abort_pending()
    assert m.pending is None and m.producer_epoch == -1
    step(m, m.prepare_increment_epoch(60000, None, 1))  # a new prepare works
    assert m.producer_epoch == 0
    assert t.producer_epoch == 0


def test_init_producer_id_epochs_kip360():
    m = new()
    step(m, m.prepare_increment_epoch(60000, None, 1))  # epoch 0
    step(m, m.prepare_increment_epoch(60000, 0, 2))     # the producer bumps after an error: 1, last 0
    assert (m.producer_epoch, m.last_producer_epoch) == (1, 0)
    step(m, m.prepare_increment_epoch(60000, 0, 3))     # its retry (expected = previous): same epoch
    assert (m.producer_epoch, m.last_producer_epoch) == (1, 0)
    with pytest.raises(TxnError) as ei:
        m.prepare_increment_epoch(60000, 7, 4)
    assert ei.value.code == errors.PRODUCER_FENCED
    step(m, m.prepare_increment_epoch(60000, None, 5))  # a new producer: bump, last -1
    assert (m.producer_epoch, m.last_producer_epoch) == (2, -1)


def test_rotation_when_epoch_exhausted():
    m = new()
    m.producer_epoch = 32766
    assert m.epoch_exhausted
    with pytest.raises(IllegalTransition):
        m.prepare_increment_epoch(60000, None, 1)
    step(m, m.prepare_rotation(555, 60000, 1, True))
    assert (m.producer_id, m.producer_epoch, m.prev_producer_id, m.last_producer_epoch) == (555, 0, 100, 32766)


def test_fence_then_abort():
    m = new()
    step(m, m.prepare_increment_epoch(60000, None, 1))
    step(m, m.prepare_add_partitions({("a", 0)}, 2))
    fence = m.prepare_fence_epoch()
    assert fence.state == PREPARE_EPOCH_FENCE and fence.producer_epoch == 1 and m.pending == PREPARE_EPOCH_FENCE
    # the coordinator turns the fence into PrepareAbort with the bumped epoch (as Kafka's endTransaction)
    m.pending = None
    m.producer_epoch = fence.producer_epoch
    step(m, m.prepare_abort_or_commit(PREPARE_ABORT, TV_0, -1, 3))
    assert (m.state, m.producer_epoch) == (PREPARE_ABORT, 1)
    step(m, m.prepare_complete(4))
    assert m.state == COMPLETE_ABORT
    # a failed fence write is not bumped twice
    step(m, m.prepare_add_partitions({("a", 0)}, 5))
    m.failed_epoch_fence = True
    assert m.prepare_fence_epoch().producer_epoch == 1


def test_transaction_version_2_bumps_on_end():
    m = new()
    step(m, m.prepare_increment_epoch(60000, None, 1))
    step(m, m.prepare_add_partitions({("a", 0)}, 2))
    step(m, m.prepare_abort_or_commit(PREPARE_COMMIT, TV_2, -1, 3))
    assert (m.producer_epoch, m.last_producer_epoch, m.tv) == (1, 0, TV_2)
    step(m, m.prepare_complete(4))
    assert (m.state, m.producer_epoch) == (COMPLETE_COMMIT, 1)
    # overflow: at Complete the next producer id takes over at epoch 0
    m2 = new()
    step(m2, m2.prepare_increment_epoch(60000, None, 1))
    m2.producer_epoch = 32766
    step(m2, m2.prepare_add_partitions({("a", 0)}, 2))
    step(m2, m2.prepare_abort_or_commit(PREPARE_ABORT, TV_2, 777, 3))
    assert m2.producer_epoch == 32767 and m2.next_producer_id == 777
    step(m2, m2.prepare_complete(4))
    assert (m2.producer_id, m2.producer_epoch, m2.prev_producer_id) == (777, 0, 100)


def test_records_roundtrip():
    m = new("my-txn")
    step(m, m.prepare_increment_epoch(60000, None, 1))
    t = m.prepare_add_partitions({("b", 2), ("a", 0), ("a", 1)}, 1234)
    key = records.key_bytes("my-txn")
    assert key == struct.pack(">hh", 0, 6) + b"my-txn"
    value = records.value_bytes(t)
    assert struct.unpack_from(">h", value)[0] == 0  # v0 for classic transactions
    tid, v = records.decode(key, value)
    back = TransactionMetadata.from_log(tid, v)
    assert (back.producer_id, back.producer_epoch, back.state, back.partitions, back.start_ts, back.timeout_ms) == \
        (100, 0, ONGOING, {("a", 0), ("a", 1), ("b", 2)}, 1234, 60000)
    m.abort_pending()
    # Empty: partitions are null in the record
    e = records.value_bytes(m.prepare_increment_epoch(60000, None, 2))
    assert records.decode(key, e)[1]["transaction_partitions"] is None
    m.abort_pending()
    # TV2: value v1 (flexible, tagged fields)
    step(m, m.prepare_add_partitions({("a", 0)}, 3))
    t2 = m.prepare_abort_or_commit(PREPARE_COMMIT, TV_2, 999, 4)
    v2 = records.value_bytes(t2)
    assert struct.unpack_from(">h", v2)[0] == 1
    d = records.decode(key, v2)[1]
    assert (d["next_producer_id"], d["client_transaction_version"], d["producer_epoch"]) == (999, 2, 1)
    assert records.decode(key, None) == ("my-txn", None)  # tombstone
    # Kafka's partitioning: Utils.abs(String.hashCode) % partitions
    assert records.partition_for("my-txn", 50) == abs(_java_hash("my-txn")) % 50


def _java_hash(s: str) -> int:
    h = 0
    for ch in s:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h
