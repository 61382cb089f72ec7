"""The transaction coordinator in process (a real BrokerState, no sockets).

What is proved here:
- a commit writes PrepareCommit, a COMMIT marker to every partition of the
  transaction and CompleteCommit before EndTxn returns; an abort puts the
  transaction in the aborted index and leaves the LSO past it;
- EndTxn answers as Kafka: NONE for a retried commit, INVALID_TXN_STATE
  for the other outcome or an Empty transaction, PRODUCER_FENCED /
  INVALID_PRODUCER_ID_MAPPING for the wrong producer;
- zombie fencing: InitProducerId for an id with an open transaction
  aborts it with a bumped epoch (CONCURRENT_TRANSACTIONS, then the retry
  bumps again); the old producer's writes, AddPartitions and EndTxn are
  refused from then on;
- the transaction timeout aborts (deadline-driven, no polling loop), and
  fences the producer;
- verification: a transactional write to a partition not in the
  transaction is refused; producers keep working with transaction version 2
  (EndTxn bumps the epoch);
- TxnOffsetCommit offsets become committed at the COMMIT marker, vanish at
  ABORT, and are restored as pending/committed when __consumer_offsets is
  reloaded;
- restarts: an Ongoing transaction survives (then times out), a
  PrepareCommit found at load gets its markers and completes; producer ids
  are never handed out twice across restarts; transactional ids expire.
"""

from __future__ import annotations

import trio

from pykbroker.protocol import errors
from pykbroker.protocol.errors import KafkaError
from pykbroker.txn.metadata import COMPLETE_ABORT, COMPLETE_COMMIT, ONGOING, PREPARE_COMMIT, TV_2
from txn_helpers import append, batch, make_state, read_all, start

T = "topic"


async def _init(tc, tid="tx", timeout=60000, expected=None):  # type: ignore[no-untyped-def]
    err, pid, epoch = await tc.init_producer_id(tid, timeout, expected)
    assert err == errors.NONE, errors.NAMES.get(err)
    return pid, epoch


async def test_commit_and_abort(tmp_path):
    st = make_state(tmp_path)
    st.create_topic(T, 2)
    async with trio.open_nursery() as n:
        tc = await start(n, st)
        pid, epoch = await _init(tc)
        assert await tc.add_partitions("tx", pid, epoch, [(T, 0), (T, 1)]) == errors.NONE
        await append(st, T, 0, batch(pid, epoch, 0, n=2, txn=True))
        await append(st, T, 1, batch(pid, epoch, 0, n=1, txn=True))
        p0 = st.partition(T, 0)
        assert p0.last_stable_offset == 0 and p0.high_watermark == 2
        assert await tc.end_txn("tx", pid, epoch, True, 0) == (errors.NONE, pid, epoch)
        assert tc.txns["tx"].state == COMPLETE_COMMIT
        assert read_all(st, T, 0)[-1][2] is True  # the COMMIT marker
        assert p0.last_stable_offset == 3 == p0.high_watermark
        # retried commit: NONE; abort after commit: INVALID_TXN_STATE
        assert (await tc.end_txn("tx", pid, epoch, True, 0))[0] == errors.NONE
        assert (await tc.end_txn("tx", pid, epoch, False, 0))[0] == errors.INVALID_TXN_STATE
        # an aborted transaction: in the index, LSO past it
        assert await tc.add_partitions("tx", pid, epoch, [(T, 0)]) == errors.NONE
        await append(st, T, 0, batch(pid, epoch, 2, n=2, txn=True))  # offsets 3-4
        assert p0.last_stable_offset == 3
        assert (await tc.end_txn("tx", pid, epoch, False, 0))[0] == errors.NONE
        assert p0.last_stable_offset == 6
        assert [(a.producer_id, a.first_offset, a.last_offset) for a in p0.producers.aborted.entries()] == \
            [(pid, 3, 5)]
        # wrong producer / epoch / state
        assert (await tc.end_txn("tx", pid, epoch, True, 0))[0] == errors.INVALID_TXN_STATE  # CompleteAbort
        assert (await tc.end_txn("tx", pid + 1, epoch, True, 0))[0] == errors.INVALID_PRODUCER_ID_MAPPING
        assert (await tc.end_txn("tx", pid, epoch + 3, True, 0))[0] == errors.PRODUCER_FENCED
        assert (await tc.end_txn("nope", pid, epoch, True, 0))[0] == errors.INVALID_PRODUCER_ID_MAPPING
        pid2, e2 = await _init(tc, "tx2")
        assert (await tc.end_txn("tx2", pid2, e2, True, 0))[0] == errors.INVALID_TXN_STATE  # Empty
        d = tc.describe("tx")
        assert (d["error_code"], d["transaction_state"], d["producer_id"]) == (0, "CompleteAbort", pid)
        assert tc.describe("nope")["error_code"] == errors.TRANSACTIONAL_ID_NOT_FOUND
        lst = tc.list(["CompleteAbort", "Bogus"], [])
        assert [x["transactional_id"] for x in lst["transaction_states"]] == ["tx"]
        assert lst["unknown_state_filters"] == ["Bogus"]
        assert [x["transactional_id"] for x in tc.list([], [], pattern="tx[0-9]")["transaction_states"]] == ["tx2"]
        n.cancel_scope.cancel()
    st.close()


async def test_fencing_a_zombie(tmp_path):
    st = make_state(tmp_path)
    st.create_topic(T, 1)
    async with trio.open_nursery() as n:
        tc = await start(n, st)
        pid, e0 = await _init(tc)
        assert await tc.add_partitions("tx", pid, e0, [(T, 0)]) == errors.NONE
        await append(st, T, 0, batch(pid, e0, 0, n=3, txn=True))
        # a second producer with the same transactional id
        err, _, _ = await tc.init_producer_id("tx", 60000, None)
        assert err == errors.CONCURRENT_TRANSACTIONS  # the open transaction was aborted first
        assert tc.txns["tx"].state == COMPLETE_ABORT
        pid_b, e_b = await _init(tc)
        assert (pid_b, e_b) == (pid, e0 + 2)
        assert st.partition(T, 0).last_stable_offset == 4
        # the zombie: every path refused
        try:
            await append(st, T, 0, batch(pid, e0, 3, txn=True))
            raise AssertionError("the zombie's write went through")
        except KafkaError as e:
            assert e.code == errors.INVALID_PRODUCER_EPOCH
        assert await tc.add_partitions("tx", pid, e0, [(T, 0)]) == errors.PRODUCER_FENCED
        assert (await tc.end_txn("tx", pid, e0, True, 0))[0] == errors.PRODUCER_FENCED
        # v3+ InitProducerId with a stale epoch is fenced too; with the current one it bumps
        assert (await tc.init_producer_id("tx", 60000, (pid, e0)))[0] == errors.PRODUCER_FENCED
        assert await tc.init_producer_id("tx", 60000, (pid, e_b)) == (errors.NONE, pid, e_b + 1)
        assert await tc.init_producer_id("tx", 60000, (pid, e_b)) == (errors.NONE, pid, e_b + 1)  # its retry
        n.cancel_scope.cancel()
    st.close()


async def test_timeout_aborts_and_fences(tmp_path):
    st = make_state(tmp_path)
    st.create_topic(T, 1)
    async with trio.open_nursery() as n:
        tc = await start(n, st)
        pid, epoch = await _init(tc, timeout=300)
        assert await tc.add_partitions("tx", pid, epoch, [(T, 0)]) == errors.NONE
        await append(st, T, 0, batch(pid, epoch, 0, n=2, txn=True))
        p = st.partition(T, 0)
        assert p.last_stable_offset == 0
        with trio.fail_after(10):
            while tc.txns["tx"].state != COMPLETE_ABORT:
                await trio.sleep(0.05)
        assert p.last_stable_offset == p.high_watermark == 3
        assert tc.txns["tx"].producer_epoch == epoch + 1
        assert (await tc.end_txn("tx", pid, epoch, True, 0))[0] == errors.PRODUCER_FENCED
        assert tc.timers.pending(("expire", "tx")) and not tc.timers.pending(("timeout", "tx"))
        n.cancel_scope.cancel()
    st.close()


async def test_verification_and_tv2(tmp_path):
    from pykbroker.txn.producers import verify_transactional
    from txn_helpers import headers

    st = make_state(None)
    st.create_topic(T, 2)
    async with trio.open_nursery() as n:
        tc = await start(n, st)
        pid, epoch = await _init(tc)
        assert await tc.add_partitions("tx", pid, epoch, [(T, 0)]) == errors.NONE
        data = batch(pid, epoch, 0, txn=True)
        p1 = st.partition(T, 1)
        assert await verify_transactional(st, "tx", p1, headers(data), add_partition=False,
                                          generic_errors=False) == (errors.INVALID_TXN_STATE,
                                                                    "Partition was not added to the transaction")
        assert (await verify_transactional(st, "tx", p1, headers(data), add_partition=False,
                                           generic_errors=True))[0] == errors.TRANSACTION_ABORTABLE
        assert (await verify_transactional(st, None, p1, headers(data), add_partition=False,
                                           generic_errors=True))[0] == errors.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        stale = batch(pid, epoch + 5, 0, txn=True)
        assert (await verify_transactional(st, "tx", p1, headers(stale), add_partition=False,
                                           generic_errors=True))[0] == errors.INVALID_PRODUCER_EPOCH
        # Produce v12+: the partition is added implicitly
        assert await verify_transactional(st, "tx", p1, headers(data), add_partition=True,
                                          generic_errors=True) == (errors.NONE, None)
        assert (T, 1) in tc.txns["tx"].partitions
        await append(st, T, 1, data)
        # transaction version 2: EndTxn v5 bumps the epoch, the retry is recognised
        assert await tc.end_txn("tx", pid, epoch, True, TV_2) == (errors.NONE, pid, epoch + 1)
        assert await tc.end_txn("tx", pid, epoch, True, TV_2) == (errors.NONE, pid, epoch + 1)
        # the other outcome of the same (retried) transaction; an older epoch is fenced
        assert (await tc.end_txn("tx", pid, epoch, False, TV_2))[0] == errors.INVALID_TXN_STATE
        assert (await tc.end_txn("tx", pid, epoch + 1, True, TV_2))[0] == errors.PRODUCER_FENCED
        # the next transaction uses the new epoch; its data passes the partition's epoch check
        assert await tc.add_partitions("tx", pid, epoch + 1, [(T, 0)]) == errors.NONE
        await append(st, T, 0, batch(pid, epoch + 1, 0, txn=True))
        assert await tc.end_txn("tx", pid, epoch + 1, False, TV_2) == (errors.NONE, pid, epoch + 2)
        n.cancel_scope.cancel()
    st.close()


async def test_txn_offset_commit(tmp_path):
    st = make_state(tmp_path)
    st.create_topic(T, 1)
    async with trio.open_nursery() as n:
        tc = await start(n, st)
        gc = st.group_coordinator
        gc.ensure_topic()
        gp = ("__consumer_offsets", gc.partition_for("g"))
        pid, epoch = await _init(tc)
        assert await tc.add_partitions("tx", pid, epoch, [gp]) == errors.NONE
        res = await gc.commit_txn_offsets("g", pid, epoch, -1, "", None, [(T, 0, 42, -1, "meta")])
        assert res == {(T, 0): errors.NONE}
        assert gc.fetch_offsets("g", [(T, [0])])[1] == [(T, [(0, None)])]
        assert gc.has_pending_txn_offsets("g", T, 0)
        assert (await tc.end_txn("tx", pid, epoch, True, 0))[0] == errors.NONE
        assert gc.fetch_offsets("g", [(T, [0])])[1][0][1][0][1].offset == 42
        assert not gc.has_pending_txn_offsets("g", T, 0)
        # aborted: dropped
        assert await tc.add_partitions("tx", pid, epoch, [gp]) == errors.NONE
        await gc.commit_txn_offsets("g", pid, epoch, -1, "", None, [(T, 0, 99, -1, None)])
        assert (await tc.end_txn("tx", pid, epoch, False, 0))[0] == errors.NONE
        assert gc.fetch_offsets("g", [(T, [0])])[1][0][1][0][1].offset == 42
        # an open one at shutdown is pending again after a reload
        assert await tc.add_partitions("tx", pid, epoch, [gp]) == errors.NONE
        await gc.commit_txn_offsets("g", pid, epoch, -1, "", None, [(T, 0, 77, -1, None)])
        n.cancel_scope.cancel()
    st.close()
    st = make_state(tmp_path)
    async with trio.open_nursery() as n:
        tc = await start(n, st)
        gc = st.group_coordinator
        await gc.loaded.wait()
        assert gc.fetch_offsets("g", [(T, [0])])[1][0][1][0][1].offset == 42
        assert gc.has_pending_txn_offsets("g", T, 0)
        assert tc.txns["tx"].state == ONGOING
        assert (await tc.end_txn("tx", pid, epoch, True, 0))[0] == errors.NONE
        assert gc.fetch_offsets("g", [(T, [0])])[1][0][1][0][1].offset == 77
        n.cancel_scope.cancel()
    st.close()


async def test_restart_completes_prepared_transactions(tmp_path):
    st = make_state(tmp_path)
    st.create_topic(T, 2)
    async with trio.open_nursery() as n:
        tc = await start(n, st)
        pid, epoch = await _init(tc, "a")
        pid_b, epoch_b = await _init(tc, "b", timeout=1500)
        assert pid_b != pid
        for tid, p, e in (("a", pid, epoch), ("b", pid_b, epoch_b)):
            assert await tc.add_partitions(tid, p, e, [(T, 0), (T, 1)]) == errors.NONE
            await append(st, T, 0, batch(p, e, 0, txn=True))
            await append(st, T, 1, batch(p, e, 0, txn=True))
        # "a" decided to commit, the broker stopped before any marker: PrepareCommit in the log only
        meta = tc.txns["a"]
        t = meta.prepare_abort_or_commit(PREPARE_COMMIT, 0, -1, 0)
        assert await tc._write(meta, t) == errors.NONE
        n.cancel_scope.cancel()
    assert st.partition(T, 0).last_stable_offset == 0
    st.close()
    st = make_state(tmp_path)
    async with trio.open_nursery() as n:
        tc = await start(n, st)
        with trio.fail_after(10):
            while tc.txns["a"].state != COMPLETE_COMMIT:
                await trio.sleep(0.02)
        assert tc.txns["b"].state == ONGOING
        # a is committed everywhere, b still holds the LSO until its timeout aborts it
        assert st.partition(T, 0).last_stable_offset == 1
        with trio.fail_after(15):
            while tc.txns["b"].state != COMPLETE_ABORT:
                await trio.sleep(0.05)
        for i in (0, 1):
            p = st.partition(T, i)
            assert p.last_stable_offset == p.high_watermark == 4
        # producer ids are not handed out twice after a restart
        err, pid_c, _ = await tc.init_producer_id(None, 60000, None)
        assert err == 0 and pid_c not in (pid, pid_b)
        n.cancel_scope.cancel()
    st.close()


async def test_transactional_id_expiry(tmp_path):
    st = make_state(tmp_path, transactional_id_expiration_ms=300)
    async with trio.open_nursery() as n:
        tc = await start(n, st)
        await _init(tc)
        with trio.fail_after(10):
            while "tx" in tc.txns:
                await trio.sleep(0.05)
        assert tc.describe("tx")["error_code"] == errors.TRANSACTIONAL_ID_NOT_FOUND
        n.cancel_scope.cancel()
    st.close()
    st = make_state(tmp_path)  # the tombstone keeps it gone after a restart
    async with trio.open_nursery() as n:
        tc = await start(n, st)
        assert "tx" not in tc.txns
        n.cancel_scope.cancel()
    st.close()


async def _prepared_commit_then_restarted_not_leading(tmp_path):  # type: ignore[no-untyped-def]
    """Transactional id "a" with records in T-0 and its commit decided
    (PrepareCommit written, no marker: the coordinator killed); then the
    state opened again, its replica of every __transaction_state partition
    not leading (add one to ``leading`` to grant it), nothing loaded.
    Returns (state, coordinator, leading, a's partition, producer id, epoch)."""
    from pykbroker.txn.records import TRANSACTION_STATE_TOPIC

    st = make_state(tmp_path)
    st.create_topic(T, 2)
    async with trio.open_nursery() as n:
        tc = await start(n, st)
        pid, epoch = await _init(tc, "a")
        assert await tc.add_partitions("a", pid, epoch, [(T, 0)]) == errors.NONE
        await append(st, T, 0, batch(pid, epoch, 0, n=3, txn=True))
        meta = tc.txns["a"]  # the commit decided, the coordinator killed before any marker
        assert await tc._write(meta, meta.prepare_abort_or_commit(PREPARE_COMMIT, 0, -1, 0)) == errors.NONE
        n.cancel_scope.cancel()
    st.close()
    st = make_state(tmp_path)
    tc = st.txn_coordinator
    leading: set[int] = set()
    real_is_leader = st.replicas.is_leader
    st.replicas.is_leader = lambda p: (p.index in leading if p.topic == TRANSACTION_STATE_TOPIC  # type: ignore[method-assign]
                                       else real_is_leader(p))
    tc.loading.clear()
    tc.epochs.clear()  # as if constructed while not leading (the patch above came after)
    tc.loaded.set()
    part = tc.partition_for("a")
    return st, tc, leading, part, pid, epoch


async def test_not_coordinator_until_leading_and_loaded(tmp_path):
    """Issue 12 (nemesis kill run, seed 202): a broker restarted after a kill
    -9 sees ZooKeeper still naming it the leader of a __transaction_state
    partition (its earlier incarnation's leadership, which its replica must
    not take) before the controller moves it. Its coordinator had loaded
    nothing and answered a retried EndTxn of a transaction in PrepareCommit
    with INVALID_PRODUCER_ID_MAPPING, a definitive failure for a transaction
    that then committed. It must answer NOT_COORDINATOR until its replica
    leads the partition and the partition is loaded; then the retry succeeds."""
    from pykbroker.txn.records import TRANSACTION_STATE_TOPIC

    st, tc, leading, part, pid, epoch = await _prepared_commit_then_restarted_not_leading(tmp_path)
    async with trio.open_nursery() as n:
        await start(n, st)
        assert tc.availability("a") == errors.NOT_COORDINATOR
        assert (await tc.end_txn("a", pid, epoch, True, 0))[0] == errors.NOT_COORDINATOR
        assert (await tc.add_partitions("a", pid, epoch, [(T, 1)])) == errors.NOT_COORDINATOR
        assert tc.verify_partition("a", pid, epoch, (T, 0)) == errors.NOT_COORDINATOR
        # the replica becomes leader: load, complete the prepared commit; the retry succeeds
        leading.add(part)
        st.partition(TRANSACTION_STATE_TOPIC, part).leader_epoch = 1  # as the cluster sets it before telling
        tc._on_leadership(TRANSACTION_STATE_TOPIC, part, True, 1)
        with trio.fail_after(10):
            while True:
                err = (await tc.end_txn("a", pid, epoch, True, 0))[0]
                if err not in (errors.COORDINATOR_LOAD_IN_PROGRESS, errors.CONCURRENT_TRANSACTIONS):
                    break
                await trio.sleep(0.02)
        assert err == errors.NONE
        assert tc.txns["a"].state == COMPLETE_COMMIT
        assert st.partition(T, 0).last_stable_offset == 4
        # leadership lost: unloaded, NOT_COORDINATOR again
        leading.discard(part)
        tc._on_leadership(TRANSACTION_STATE_TOPIC, part, False, 1)
        assert "a" not in tc.txns
        assert (await tc.end_txn("a", pid, epoch, True, 0))[0] == errors.NOT_COORDINATOR
        n.cancel_scope.cancel()
    st.close()


async def test_prepared_commit_completed_when_leadership_comes_again_during_the_load(tmp_path, monkeypatch):
    """Issue 12: a second leadership notice for the __transaction_state
    partition (a later epoch) while its load was reading the log. The stale
    load skipped it and no new load started: the partition stayed loading,
    the transaction in PrepareCommit was never completed, and InitProducerId
    would answer CONCURRENT_TRANSACTIONS for good. The load in flight now
    finishes at the later epoch (still leading: the state stays, as in
    Kafka)."""
    import threading

    from pykbroker.txn import coordinator as tc_module
    from pykbroker.txn.records import TRANSACTION_STATE_TOPIC

    st, tc, leading, part, pid, epoch = await _prepared_commit_then_restarted_not_leading(tmp_path)
    reading, go_on = threading.Event(), threading.Event()
    real_read = tc_module._read_partition

    def held_read(plog):  # type: ignore[no-untyped-def]
        reading.set()
        go_on.wait(10)
        return real_read(plog)

    monkeypatch.setattr(tc_module, "_read_partition", held_read)
    async with trio.open_nursery() as n:
        await start(n, st)
        leading.add(part)
        st.partition(TRANSACTION_STATE_TOPIC, part).leader_epoch = 1
        tc._on_leadership(TRANSACTION_STATE_TOPIC, part, True, 1)
        assert await trio.to_thread.run_sync(reading.wait, 10)
        st.partition(TRANSACTION_STATE_TOPIC, part).leader_epoch = 2  # again, while the first load reads
        tc._on_leadership(TRANSACTION_STATE_TOPIC, part, True, 2)
        go_on.set()
        with trio.fail_after(10):
            while tc.txns.get("a") is None or tc.txns["a"].state != COMPLETE_COMMIT:
                await trio.sleep(0.02)
        assert tc.loading == set() and st.partition(T, 0).last_stable_offset == 4
        n.cancel_scope.cancel()
    st.close()


async def test_writes_fenced_by_leader_epoch(tmp_path):
    """Issue 12: the transaction coordinator's appends to __transaction_state
    carry the leader epoch its state was loaded at. Once the partition's
    epoch moved on (another broker may have led it and changed the
    transaction meanwhile), a transition decided on the old state is refused
    (NOT_COORDINATOR), nothing reaches the log, and the partition is
    unloaded (reloaded at the new epoch when this broker still leads it)."""
    from pykbroker.txn.records import TRANSACTION_STATE_TOPIC

    st = make_state(tmp_path)
    st.create_topic(T, 2)
    async with trio.open_nursery() as n:
        tc = await start(n, st)
        pid, epoch = await _init(tc, "a")
        part = tc.partition_for("a")
        p = st.partition(TRANSACTION_STATE_TOPIC, part)
        loaded_at = p.leader_epoch
        assert tc.epochs[part] == loaded_at
        end = p.log.log_end_offset

        async def loaded() -> None:
            with trio.fail_after(10):
                while tc.availability("a") == errors.COORDINATOR_LOAD_IN_PROGRESS:
                    await trio.sleep(0.02)

        # 1. the epoch moved on before the leadership listener told the coordinator
        p.leader_epoch = loaded_at + 1
        assert await tc.add_partitions("a", pid, epoch, [(T, 0)]) == errors.NOT_COORDINATOR
        assert p.log.log_end_offset == end  # nothing written
        await loaded()
        assert tc.epochs[part] == loaded_at + 1 and tc.txns["a"].state != ONGOING  # reloaded: the add never happened
        assert await tc.add_partitions("a", pid, epoch, [(T, 0)]) == errors.NONE
        await append(st, T, 0, batch(pid, epoch, 0, n=2, txn=True))
        end = p.log.log_end_offset

        # 2. a decision in flight: the lock holder decided at the loaded epoch;
        # the leadership was lost and regained at a later epoch meanwhile
        async with tc._lock("a"):
            meta = tc.txns["a"]
            t = meta.prepare_abort_or_commit(PREPARE_COMMIT, 0, -1, 0)
            p.leader_epoch = loaded_at + 2
            tc._on_leadership(TRANSACTION_STATE_TOPIC, part, False, p.leader_epoch)
            tc._on_leadership(TRANSACTION_STATE_TOPIC, part, True, p.leader_epoch)
            assert await tc._write(meta, t) == errors.NOT_COORDINATOR
        assert p.log.log_end_offset == end
        await loaded()
        assert tc.txns["a"].state == ONGOING  # the stale PrepareCommit never happened
        # the reloaded coordinator commits at its epoch
        with trio.fail_after(10):
            while True:
                err = (await tc.end_txn("a", pid, epoch, True, 0))[0]
                if err != errors.CONCURRENT_TRANSACTIONS:
                    break
                await trio.sleep(0.02)
        assert err == errors.NONE
        with trio.fail_after(10):
            while tc.txns["a"].state != COMPLETE_COMMIT:
                await trio.sleep(0.02)
        assert st.partition(T, 0).last_stable_offset == 3
        n.cancel_scope.cancel()
    st.close()
